// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * virtio_rdma provider: queue pairs (RC and UD). Create, modify, query and destroy go through
 * the kernel; post_send and post_recv write WQEs into the rings and publish them through the
 * doorbell records (spec §11.2, §12.1), with a notify store only when the device asks for one.
 *
 * Every work request is checked against the queue's limits before its slot is written, so a bad
 * one leaves the ring as it was and comes back in bad_wr; the ones before it are posted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ccan/minmax.h>

#include "vrdma.h"
#include "vrdma-abi.h"

static uint32_t vrdma_wqe_shift(size_t bytes)
{
	uint32_t shift = VRDMA_MIN_WQE_SHIFT;

	while (((size_t)1 << shift) < bytes && shift <= VRDMA_MAX_WQE_SHIFT)
		shift++;
	return shift;
}

/*
 * Send slot: the 64-byte header plus max_sge SGEs or max_inline bytes, whichever is larger.
 * Room for at least one SGE either way, as the kernel driver sizes it.
 */
static uint32_t vrdma_send_wqe_shift(uint32_t max_sge, uint32_t max_inline)
{
	size_t sges = (size_t)max_t(uint32_t, max_sge, 1) * sizeof(struct virtio_rdma_sge);

	return vrdma_wqe_shift(sizeof(struct virtio_rdma_send_wqe) +
			       max_t(size_t, sges, max_inline));
}

uint32_t vrdma_recv_wqe_shift(uint32_t max_sge)
{
	return vrdma_wqe_shift(sizeof(struct virtio_rdma_recv_wqe) +
			       (size_t)max_t(uint32_t, max_sge, 1) * sizeof(struct virtio_rdma_sge));
}

/* What fits in a slot, whatever the kernel answered: we never write past a slot. */
static uint32_t vrdma_send_sge_room(uint32_t shift)
{
	return ((1u << shift) - sizeof(struct virtio_rdma_send_wqe)) / sizeof(struct virtio_rdma_sge);
}

static uint32_t vrdma_recv_sge_room(uint32_t shift)
{
	return ((1u << shift) - sizeof(struct virtio_rdma_recv_wqe)) / sizeof(struct virtio_rdma_sge);
}

void vrdma_wq_free(struct vrdma_context *ctx, struct vrdma_wq *wq)
{
	vrdma_free_db(ctx, wq->db);
	vrdma_free_ring(wq->ring, wq->ring_size);
	pthread_spin_destroy(&wq->lock);
}

/* Ring and record of a work queue of depth slots of 2^shift bytes (its lock is set up apart). */
int vrdma_wq_alloc(struct vrdma_context *ctx, struct vrdma_wq *wq, uint32_t depth,
		   uint32_t shift, struct virtio_rdma_user_wq *desc)
{
	int ret;

	wq->depth = depth;
	wq->wqe_shift = shift;
	ret = vrdma_alloc_ring(ctx, (size_t)depth << shift, &wq->ring, &wq->ring_size);
	if (ret)
		return ret;
	wq->db = vrdma_alloc_db(ctx);
	if (!wq->db)
		return ENOMEM;
	desc->ring_addr = (uintptr_t)wq->ring;
	desc->doorbell_addr = (uintptr_t)wq->db;
	desc->depth = depth;
	desc->wqe_shift = shift;
	return 0;
}

/* Power-of-two depth >= the request (at least 1), within the device's limit. */
int vrdma_wq_depth(uint32_t wanted, uint32_t max, uint32_t *depth)
{
	if (wanted > max)
		return EINVAL;
	*depth = roundup_pow_of_two(wanted ? wanted : 1);
	return *depth <= max ? 0 : EINVAL;
}

struct ibv_qp *vrdma_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	struct vrdma_context *ctx = to_vctx(pd->context);
	struct ibv_qp_cap *cap = &attr->cap;
	struct vrdma_create_qp_resp resp = {};
	struct vrdma_create_qp_cmd cmd = {};
	uint32_t sq_depth, rq_depth = 0, sq_shift, rq_shift = 0;
	struct vrdma_qp *qp;
	bool created = false;
	int ret;

	if (attr->qp_type != IBV_QPT_RC && attr->qp_type != IBV_QPT_UD) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	ret = vrdma_wq_depth(cap->max_send_wr, ctx->max_qp_wr, &sq_depth);
	if (!ret && (cap->max_send_sge > ctx->max_sge ||
		     cap->max_inline_data > ctx->max_inline_data))
		ret = EINVAL;
	if (!ret && !attr->srq) {
		ret = vrdma_wq_depth(cap->max_recv_wr, ctx->max_qp_wr, &rq_depth);
		if (!ret && cap->max_recv_sge > ctx->max_sge)
			ret = EINVAL;
		rq_shift = vrdma_recv_wqe_shift(cap->max_recv_sge);
	}
	sq_shift = vrdma_send_wqe_shift(cap->max_send_sge, cap->max_inline_data);
	if (!ret && (sq_shift > VRDMA_MAX_WQE_SHIFT || rq_shift > VRDMA_MAX_WQE_SHIFT))
		ret = EINVAL;
	if (ret) {
		errno = ret;
		return NULL;
	}

	qp = calloc(1, sizeof(*qp));
	if (!qp)
		return NULL;
	pthread_spin_init(&qp->sq.lock, PTHREAD_PROCESS_PRIVATE);
	pthread_spin_init(&qp->rq.lock, PTHREAD_PROCESS_PRIVATE);
	qp->has_srq = attr->srq != NULL;
	ret = vrdma_wq_alloc(ctx, &qp->sq, sq_depth, sq_shift, &cmd.drv.sq);
	/* With an SRQ the request's rq stays all zero. */
	if (!ret && !qp->has_srq)
		ret = vrdma_wq_alloc(ctx, &qp->rq, rq_depth, rq_shift, &cmd.drv.rq);
	if (ret)
		goto err;

	ret = ibv_cmd_create_qp(pd, &qp->ibv_qp, attr, &cmd.ibv, sizeof(cmd), &resp.ibv,
				sizeof(resp));
	if (ret)
		goto err;
	created = true;

	qp->sq.max_sge = min(resp.drv.max_send_sge, vrdma_send_sge_room(sq_shift));
	qp->sq.max_inline = min_t(uint32_t, resp.drv.max_inline_data,
				  (1u << sq_shift) - sizeof(struct virtio_rdma_send_wqe));
	if (!qp->has_srq)
		qp->rq.max_sge = min(resp.drv.max_recv_sge, vrdma_recv_sge_room(rq_shift));

	qp->sq.notify = vrdma_get_notify(ctx, &resp.drv.notify);
	if (!qp->sq.notify) {
		ret = errno;
		goto err;
	}
	qp->sq.notify_queue = resp.drv.notify.doorbell_queue;
	qp->rq.notify = qp->sq.notify;
	qp->rq.notify_queue = qp->sq.notify_queue;

	/* What the QP got: depths are powers of two, SGE and inline limits as the kernel said. */
	cap->max_send_wr = sq_depth;
	cap->max_send_sge = qp->sq.max_sge;
	cap->max_inline_data = qp->sq.max_inline;
	cap->max_recv_wr = qp->has_srq ? 0 : rq_depth;
	cap->max_recv_sge = qp->has_srq ? 0 : qp->rq.max_sge;
	return &qp->ibv_qp;

err:
	if (created)
		ibv_cmd_destroy_qp(&qp->ibv_qp);
	vrdma_wq_free(ctx, &qp->sq);
	vrdma_wq_free(ctx, &qp->rq);
	free(qp);
	errno = ret;
	return NULL;
}

int vrdma_query_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *attr, int attr_mask,
		   struct ibv_qp_init_attr *init_attr)
{
	struct ibv_query_qp cmd;

	return ibv_cmd_query_qp(ibqp, attr, attr_mask, init_attr, &cmd, sizeof(cmd));
}

int vrdma_modify_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *attr, int attr_mask)
{
	struct ibv_modify_qp cmd;

	return ibv_cmd_modify_qp(ibqp, attr, attr_mask, &cmd, sizeof(cmd));
}

int vrdma_destroy_qp(struct ibv_qp *ibqp)
{
	struct vrdma_context *ctx = to_vctx(ibqp->context);
	struct vrdma_qp *qp = to_vqp(ibqp);
	int ret;

	ret = ibv_cmd_destroy_qp(ibqp);
	if (ret)
		return ret;
	/* The device no longer touches the rings or records once the destroy has returned. */
	vrdma_wq_free(ctx, &qp->sq);
	vrdma_wq_free(ctx, &qp->rq);
	free(qp);
	return 0;
}

/* ---- posting ---------------------------------------------------------------------------------- */

static bool vrdma_wr_is_atomic(enum ibv_wr_opcode op)
{
	return op == IBV_WR_ATOMIC_CMP_AND_SWP || op == IBV_WR_ATOMIC_FETCH_AND_ADD;
}

/* Inline data goes with SENDs and WRITEs; READ and atomics carry their SGEs whatever the flag. */
static bool vrdma_wr_inline(const struct ibv_send_wr *wr)
{
	return (wr->send_flags & IBV_SEND_INLINE) &&
	       wr->opcode != IBV_WR_RDMA_READ && !vrdma_wr_is_atomic(wr->opcode);
}

static int vrdma_check_send_wr(struct vrdma_qp *qp, const struct ibv_send_wr *wr)
{
	uint64_t total = 0;
	int i;

	switch (wr->opcode) {
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_IMM:
		break;
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
	case IBV_WR_RDMA_READ:
	case IBV_WR_ATOMIC_CMP_AND_SWP:
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		if (qp->ibv_qp.qp_type != IBV_QPT_RC)
			return EINVAL;
		break;
	default:
		return EINVAL;
	}
	if (wr->num_sge < 0)
		return EINVAL;
	if (qp->ibv_qp.qp_type == IBV_QPT_UD && !wr->wr.ud.ah)
		return EINVAL;
	/* An atomic returns the original 8 bytes into exactly one SGE (spec §15.3). */
	if (vrdma_wr_is_atomic(wr->opcode) && (wr->num_sge != 1 || wr->sg_list[0].length != 8))
		return EINVAL;
	if (vrdma_wr_inline(wr)) {
		for (i = 0; i < wr->num_sge; i++)
			total += wr->sg_list[i].length;
		if (total > qp->sq.max_inline)
			return EINVAL;
	} else if ((uint32_t)wr->num_sge > qp->sq.max_sge) {
		return EINVAL;
	}
	return 0;
}

static void vrdma_write_sges(struct virtio_rdma_sge *dst, const struct ibv_sge *src, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		dst[i].addr = htole64(src[i].addr);
		dst[i].length = htole32(src[i].length);
		dst[i].lkey = htole32(src[i].lkey);
	}
}

static void vrdma_write_send_wqe(struct vrdma_qp *qp, const struct ibv_send_wr *wr,
				 struct virtio_rdma_send_wqe *wqe)
{
	uint16_t flags = 0;

	memset(wqe, 0, sizeof(*wqe));
	wqe->wr_id = htole64(wr->wr_id);
	wqe->opcode = wr->opcode;	/* VIRTIO_RDMA_WR_* are the ibv_wr_opcode values */
	if (wr->send_flags & IBV_SEND_FENCE)
		flags |= VIRTIO_RDMA_SEND_FENCE;
	if (wr->send_flags & IBV_SEND_SIGNALED)
		flags |= VIRTIO_RDMA_SEND_SIGNALED;
	if (wr->send_flags & IBV_SEND_SOLICITED)
		flags |= VIRTIO_RDMA_SEND_SOLICITED;
	if (wr->opcode == IBV_WR_SEND_WITH_IMM || wr->opcode == IBV_WR_RDMA_WRITE_WITH_IMM)
		memcpy(&wqe->imm_data, &wr->imm_data, sizeof(wqe->imm_data));

	switch (wr->opcode) {
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
	case IBV_WR_RDMA_READ:
		wqe->remote_addr = htole64(wr->wr.rdma.remote_addr);
		wqe->rkey = htole32(wr->wr.rdma.rkey);
		break;
	case IBV_WR_ATOMIC_CMP_AND_SWP:
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		wqe->remote_addr = htole64(wr->wr.atomic.remote_addr);
		wqe->compare_add = htole64(wr->wr.atomic.compare_add);
		wqe->swap = htole64(wr->wr.atomic.swap);
		wqe->rkey = htole32(wr->wr.atomic.rkey);
		break;
	default:
		break;
	}
	if (qp->ibv_qp.qp_type == IBV_QPT_UD) {
		wqe->ah = htole32(to_vah(wr->wr.ud.ah)->handle);
		wqe->remote_qpn = htole32(wr->wr.ud.remote_qpn);
		/* Bit 31 set: the device uses the QP's own Q_Key, as IBA says for the WR's. */
		wqe->remote_qkey = htole32(wr->wr.ud.remote_qkey);
	}

	if (vrdma_wr_inline(wr)) {
		uint8_t *data = (uint8_t *)(wqe + 1);
		uint32_t len = 0;
		int i;

		for (i = 0; i < wr->num_sge; i++) {
			memcpy(data + len, (void *)(uintptr_t)wr->sg_list[i].addr,
			       wr->sg_list[i].length);
			len += wr->sg_list[i].length;
		}
		flags |= VIRTIO_RDMA_SEND_INLINE;
		wqe->inline_length = htole32(len);
	} else {
		wqe->num_sge = htole32(wr->num_sge);
		vrdma_write_sges((struct virtio_rdma_sge *)(wqe + 1), wr->sg_list, wr->num_sge);
	}
	wqe->send_flags = htole16(flags);
}

/* Room for one more WQE? Re-reads the device's consumer index only when the ring looks full. */
static bool vrdma_wq_has_room(struct vrdma_wq *wq, uint32_t *cons)
{
	if (wq->prod - *cons < wq->depth)
		return true;
	/* Acquire: the device has read the slots it counts as taken before we reuse them. */
	*cons = vrdma_load_acquire(&wq->db->device_index);
	return wq->prod - *cons < wq->depth;
}

int vrdma_post_send(struct ibv_qp *ibqp, struct ibv_send_wr *wr, struct ibv_send_wr **bad_wr)
{
	struct vrdma_qp *qp = to_vqp(ibqp);
	struct vrdma_wq *sq = &qp->sq;
	uint32_t start, cons;
	int err = 0;

	pthread_spin_lock(&sq->lock);
	/* Spec §14.1: the driver must not post to a QP in RESET. */
	if (ibqp->state == IBV_QPS_RESET) {
		err = EINVAL;
		goto out;
	}
	start = sq->prod;
	cons = vrdma_load_acquire(&sq->db->device_index);
	for (; wr; wr = wr->next) {
		err = vrdma_check_send_wr(qp, wr);
		if (!err && !vrdma_wq_has_room(sq, &cons))
			err = ENOMEM;
		if (err)
			break;
		vrdma_write_send_wqe(qp, wr, vrdma_wq_slot(sq, sq->prod));
		sq->prod++;
	}
	if (sq->prod != start)
		vrdma_wq_publish(sq);
out:
	if (err)
		*bad_wr = wr;
	pthread_spin_unlock(&sq->lock);
	return err;
}

int vrdma_post_recv_wq(struct vrdma_wq *wq, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad_wr)
{
	struct virtio_rdma_recv_wqe *wqe;
	uint32_t start, cons;
	int err = 0;

	pthread_spin_lock(&wq->lock);
	start = wq->prod;
	cons = vrdma_load_acquire(&wq->db->device_index);
	for (; wr; wr = wr->next) {
		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > wq->max_sge)
			err = EINVAL;
		else if (!vrdma_wq_has_room(wq, &cons))
			err = ENOMEM;
		if (err)
			break;
		wqe = vrdma_wq_slot(wq, wq->prod);
		wqe->wr_id = htole64(wr->wr_id);
		wqe->num_sge = htole32(wr->num_sge);
		wqe->reserved = 0;
		vrdma_write_sges((struct virtio_rdma_sge *)(wqe + 1), wr->sg_list, wr->num_sge);
		wq->prod++;
	}
	if (wq->prod != start)
		vrdma_wq_publish(wq);
	if (err)
		*bad_wr = wr;
	pthread_spin_unlock(&wq->lock);
	return err;
}

int vrdma_post_recv(struct ibv_qp *ibqp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad_wr)
{
	struct vrdma_qp *qp = to_vqp(ibqp);

	/* Receives of an SRQ QP go to the SRQ; none in RESET (spec §14.1). */
	if (qp->has_srq || ibqp->state == IBV_QPS_RESET) {
		*bad_wr = wr;
		return EINVAL;
	}
	return vrdma_post_recv_wq(&qp->rq, wr, bad_wr);
}
