// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * virtio_rdma provider: completion queues. Create, resize and destroy go through the kernel;
 * poll and arm touch only the CQ ring and its doorbell record (spec §11.3, §12.3).
 *
 * Record use: device_index is the producer (CQEs written, each complete before the release store
 * that counts it), driver_index our consumer. Arming writes arm_flags, then increments
 * arm_sequence with release; the device fires one event for the first matching CQE after that.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vrdma.h"
#include "vrdma-abi.h"

/* A CQ ring of depth (a power of two) slots holds depth unpolled CQEs. */
static int vrdma_cq_depth(struct vrdma_context *ctx, int cqe, uint32_t *depth)
{
	if (cqe < 1)
		cqe = 1;
	if ((uint32_t)cqe > ctx->max_cqe)
		return EINVAL;
	*depth = roundup_pow_of_two(cqe);
	return *depth <= ctx->max_cqe ? 0 : EINVAL;
}

struct ibv_cq *vrdma_create_cq(struct ibv_context *ibctx, int cqe,
			       struct ibv_comp_channel *channel, int comp_vector)
{
	struct vrdma_context *ctx = to_vctx(ibctx);
	struct vrdma_create_cq_resp resp = {};
	struct vrdma_create_cq_cmd cmd = {};
	struct vrdma_cq *cq;
	uint32_t depth;
	int ret;

	ret = vrdma_cq_depth(ctx, cqe, &depth);
	if (ret) {
		errno = ret;
		return NULL;
	}
	cq = calloc(1, sizeof(*cq));
	if (!cq)
		return NULL;
	pthread_spin_init(&cq->lock, PTHREAD_PROCESS_PRIVATE);

	ret = vrdma_alloc_ring(ctx, (size_t)depth * sizeof(struct virtio_rdma_cqe),
			       (void **)&cq->ring, &cq->ring_size);
	if (ret)
		goto err;
	cq->db = vrdma_alloc_db(ctx);
	if (!cq->db) {
		ret = ENOMEM;
		goto err;
	}
	cq->depth = depth;

	cmd.drv.ring_addr = (uintptr_t)cq->ring;
	cmd.drv.doorbell_addr = (uintptr_t)cq->db;
	cmd.drv.depth = depth;
	ret = ibv_cmd_create_cq(ibctx, depth, channel, comp_vector, &cq->ibv_cq, &cmd.ibv,
				sizeof(cmd), &resp.ibv, sizeof(resp));
	if (ret)
		goto err;
	cq->ibv_cq.cqe = depth;
	return &cq->ibv_cq;

err:
	vrdma_free_db(ctx, cq->db);
	vrdma_free_ring(cq->ring, cq->ring_size);
	pthread_spin_destroy(&cq->lock);
	free(cq);
	errno = ret;
	return NULL;
}

/*
 * Spec §10.4: the device copies the unpolled CQEs to the start of the new ring and from then on
 * uses only the new ring and record. No poll or arm may run meanwhile: the CQ lock is held
 * across the command. A pending arm carries over by pre-arming the new record.
 */
int vrdma_resize_cq(struct ibv_cq *ibcq, int cqe)
{
	struct vrdma_context *ctx = to_vctx(ibcq->context);
	struct vrdma_cq *cq = to_vcq(ibcq);
	struct vrdma_resize_cq_resp resp = {};
	struct vrdma_resize_cq_cmd cmd = {};
	struct virtio_rdma_doorbell *db = NULL;
	struct virtio_rdma_cqe *ring = NULL;
	size_t ring_size = 0;
	uint32_t depth, unpolled, arm_seq = 0;
	int ret;

	pthread_spin_lock(&cq->lock);
	unpolled = vrdma_load_acquire(&cq->db->device_index) - cq->cons;
	if (cqe < 0 || (uint32_t)cqe < unpolled) {
		ret = EINVAL;
		goto out;
	}
	ret = vrdma_cq_depth(ctx, cqe, &depth);
	if (ret)
		goto out;

	ret = vrdma_alloc_ring(ctx, (size_t)depth * sizeof(struct virtio_rdma_cqe),
			       (void **)&ring, &ring_size);
	if (ret)
		goto out;
	db = vrdma_alloc_db(ctx);
	if (!db) {
		ret = ENOMEM;
		goto out;
	}
	if (cq->arm_seq != vrdma_load_relaxed(&cq->db->notified_sequence)) {
		arm_seq = 1;
		db->arm_flags = cq->db->arm_flags;
		db->arm_sequence = htole32(arm_seq);
	}

	cmd.drv.ring_addr = (uintptr_t)ring;
	cmd.drv.doorbell_addr = (uintptr_t)db;
	cmd.drv.depth = depth;
	ret = ibv_cmd_resize_cq(ibcq, depth, &cmd.ibv, sizeof(cmd), &resp.ibv, sizeof(resp));
	if (ret)
		goto out;

	/* The old ring and record are the device's no longer: swap, and free them below. */
	{
		struct virtio_rdma_doorbell *old_db = cq->db;
		struct virtio_rdma_cqe *old_ring = cq->ring;
		size_t old_size = cq->ring_size;

		cq->db = db;
		cq->ring = ring;
		cq->ring_size = ring_size;
		db = old_db;
		ring = old_ring;
		ring_size = old_size;
	}
	cq->depth = depth;
	cq->cons = 0;
	cq->arm_seq = arm_seq;
	ibcq->cqe = depth;
out:
	pthread_spin_unlock(&cq->lock);
	vrdma_free_db(ctx, db);
	vrdma_free_ring(ring, ring_size);
	return ret;
}

int vrdma_destroy_cq(struct ibv_cq *ibcq)
{
	struct vrdma_context *ctx = to_vctx(ibcq->context);
	struct vrdma_cq *cq = to_vcq(ibcq);
	int ret;

	ret = ibv_cmd_destroy_cq(ibcq);
	if (ret)
		return ret;
	vrdma_free_db(ctx, cq->db);
	vrdma_free_ring(cq->ring, cq->ring_size);
	pthread_spin_destroy(&cq->lock);
	free(cq);
	return 0;
}

static void vrdma_cqe_to_wc(const struct virtio_rdma_cqe *cqe, struct ibv_wc *wc)
{
	uint16_t flags = le16toh(cqe->wc_flags);

	wc->wr_id = le64toh(cqe->wr_id);
	wc->status = cqe->status;
	wc->opcode = cqe->opcode;
	wc->vendor_err = le32toh(cqe->vendor_err);
	wc->byte_len = le32toh(cqe->byte_len);
	/* Opaque bytes, big-endian as they travelled: copied, not converted. */
	memcpy(&wc->imm_data, &cqe->imm_data, sizeof(wc->imm_data));
	wc->qp_num = le32toh(cqe->qp_num);
	wc->src_qp = le32toh(cqe->src_qp);
	/* WC_F_SOLICITED is the device's own bit; only GRH and WITH_IMM are ibv_wc_flags. */
	wc->wc_flags = 0;
	if (flags & VIRTIO_RDMA_WC_F_GRH)
		wc->wc_flags |= IBV_WC_GRH;
	if (flags & VIRTIO_RDMA_WC_F_WITH_IMM)
		wc->wc_flags |= IBV_WC_WITH_IMM;
	wc->pkey_index = le16toh(cqe->pkey_index);
	wc->slid = 0;
	wc->sl = cqe->sl;
	wc->dlid_path_bits = 0;
}

int vrdma_poll_cq(struct ibv_cq *ibcq, int num_entries, struct ibv_wc *wc)
{
	struct vrdma_cq *cq = to_vcq(ibcq);
	uint32_t prod, avail;
	int n = 0;

	pthread_spin_lock(&cq->lock);
	prod = vrdma_load_acquire(&cq->db->device_index);
	avail = prod - cq->cons;
	if (avail > cq->depth) {
		/* The device never publishes more than a ring: the record is corrupt. */
		pthread_spin_unlock(&cq->lock);
		return -EIO;
	}
	while (n < num_entries && avail) {
		vrdma_cqe_to_wc(&cq->ring[cq->cons & (cq->depth - 1)], &wc[n]);
		cq->cons++;
		avail--;
		n++;
	}
	/* Release: our reads of these CQEs are done before the device may reuse the slots. */
	if (n)
		vrdma_store_release(&cq->db->driver_index, cq->cons);
	pthread_spin_unlock(&cq->lock);
	return n;
}

int vrdma_req_notify_cq(struct ibv_cq *ibcq, int solicited_only)
{
	struct vrdma_cq *cq = to_vcq(ibcq);

	pthread_spin_lock(&cq->lock);
	vrdma_store_relaxed(&cq->db->arm_flags, solicited_only ? VIRTIO_RDMA_CQ_ARM_SOLICITED :
								 VIRTIO_RDMA_CQ_ARM_NEXT);
	vrdma_store_release(&cq->db->arm_sequence, ++cq->arm_seq);
	/*
	 * Spec §12.3 race rule: the device publishes device_index, fences, then reads
	 * arm_sequence; we publish arm_sequence and fence. A CQE racing with this arm is either
	 * seen by the device as armed (event) or visible to the caller's next poll.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	pthread_spin_unlock(&cq->lock);
	return 0;
}
