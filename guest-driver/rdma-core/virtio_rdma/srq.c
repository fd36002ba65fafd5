// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * virtio_rdma provider: shared receive queues. Create, modify, query and destroy go through the
 * kernel; post_srq_recv writes receive WQEs into the SRQ's ring and publishes them exactly as a
 * QP's receive queue does (qp.c), notifying the SRQ's own doorbell queue when asked to.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ccan/minmax.h>

#include "vrdma.h"
#include "vrdma-abi.h"

struct ibv_srq *vrdma_create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *attr)
{
	struct vrdma_context *ctx = to_vctx(pd->context);
	struct vrdma_create_srq_resp resp = {};
	struct vrdma_create_srq_cmd cmd = {};
	struct vrdma_srq *srq;
	uint32_t depth, shift;
	bool created = false;
	int ret;

	ret = vrdma_wq_depth(attr->attr.max_wr, ctx->max_srq_wr, &depth);
	if (!ret && attr->attr.max_sge > ctx->max_srq_sge)
		ret = EINVAL;
	shift = vrdma_recv_wqe_shift(attr->attr.max_sge);
	if (!ret && shift > VRDMA_MAX_WQE_SHIFT)
		ret = EINVAL;
	if (ret) {
		errno = ret;
		return NULL;
	}

	srq = calloc(1, sizeof(*srq));
	if (!srq)
		return NULL;
	pthread_spin_init(&srq->rq.lock, PTHREAD_PROCESS_PRIVATE);
	ret = vrdma_wq_alloc(ctx, &srq->rq, depth, shift, &cmd.drv.rq);
	if (ret)
		goto err;

	ret = ibv_cmd_create_srq(pd, &srq->ibv_srq, attr, &cmd.ibv, sizeof(cmd), &resp.ibv,
				 sizeof(resp));
	if (ret)
		goto err;
	created = true;

	srq->rq.max_sge = min_t(uint32_t, resp.drv.max_sge,
				((1u << shift) - sizeof(struct virtio_rdma_recv_wqe)) /
					sizeof(struct virtio_rdma_sge));
	srq->rq.notify = vrdma_get_notify(ctx, &resp.drv.notify);
	if (!srq->rq.notify) {
		ret = errno;
		goto err;
	}
	srq->rq.notify_queue = resp.drv.notify.doorbell_queue;

	attr->attr.max_wr = depth;
	attr->attr.max_sge = srq->rq.max_sge;
	return &srq->ibv_srq;

err:
	if (created)
		ibv_cmd_destroy_srq(&srq->ibv_srq);
	vrdma_wq_free(ctx, &srq->rq);
	free(srq);
	errno = ret;
	return NULL;
}

/* Only the limit can change (spec §10.6: no resizing); the device refuses IBV_SRQ_MAX_WR. */
int vrdma_modify_srq(struct ibv_srq *ibsrq, struct ibv_srq_attr *attr, int attr_mask)
{
	struct ibv_modify_srq cmd;

	return ibv_cmd_modify_srq(ibsrq, attr, attr_mask, &cmd, sizeof(cmd));
}

int vrdma_query_srq(struct ibv_srq *ibsrq, struct ibv_srq_attr *attr)
{
	struct ibv_query_srq cmd;

	return ibv_cmd_query_srq(ibsrq, attr, &cmd, sizeof(cmd));
}

int vrdma_destroy_srq(struct ibv_srq *ibsrq)
{
	struct vrdma_context *ctx = to_vctx(ibsrq->context);
	struct vrdma_srq *srq = to_vsrq(ibsrq);
	int ret;

	ret = ibv_cmd_destroy_srq(ibsrq);
	if (ret)
		return ret;
	vrdma_wq_free(ctx, &srq->rq);
	free(srq);
	return 0;
}

int vrdma_post_srq_recv(struct ibv_srq *ibsrq, struct ibv_recv_wr *wr,
			struct ibv_recv_wr **bad_wr)
{
	return vrdma_post_recv_wq(&to_vsrq(ibsrq)->rq, wr, bad_wr);
}
