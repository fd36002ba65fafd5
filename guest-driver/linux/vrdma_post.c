// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The kernel data path: post_send, post_recv and post_srq_recv write WQEs into the rings and
 * publish them with the shadow-doorbell protocol of spec 12.1:
 *
 *   write the WQEs -> release-store driver_index -> full barrier -> read need_kick ->
 *   notify the doorbell virtqueue only if need_kick is set.
 *
 * A slot may be reused once the device's device_index has passed it (acquire load). The device
 * is not trusted with indices: one that claims more WQEs taken than posted makes the queue look
 * full. It is still trusted with a CQE's wr_id, which kernel users fill with a pointer.
 */
#include "vrdma.h"

static void *vrdma_slot(struct vrdma_wq *wq, u32 index)
{
	return wq->ring.va + ((size_t)(index & (wq->depth - 1)) << wq->wqe_shift);
}

/* Free slots of a kernel work queue. wq->lock held. */
static u32 vrdma_wq_room(struct vrdma_dev *dev, struct vrdma_wq *wq)
{
	/* Acquire: the device has finished reading the slots it reports as taken. */
	u32 taken = le32_to_cpu(virt_load_acquire(&wq->db.va->device_index));
	u32 used = wq->head - taken;

	if (used > wq->depth) {
		dev_warn_ratelimited(&dev->vdev->dev, "work queue: device index %u, driver index %u\n",
				     taken, wq->head);
		return 0;
	}
	return wq->depth - used;
}

static void vrdma_wq_publish(struct vrdma_dev *dev, struct vrdma_wq *wq, u32 dbq)
{
	/* Release: the WQEs are complete before the index that publishes them. */
	virt_store_release(&wq->db.va->driver_index, cpu_to_le32(wq->head));
	/* Full barrier: the index store before the need_kick load (spec 12.1). */
	virt_mb();
	if (READ_ONCE(wq->db.va->need_kick))
		vrdma_kick(dev, dbq);
}

/*
 * A dead device: 0 to go on posting normally (never), 1 if the caller should complete the
 * work requests in software (the device was reset), or -EIO.
 */
static int vrdma_post_dead(struct vrdma_dev *dev)
{
	if (!vrdma_dead(dev))
		return 0;
	return test_bit(VRDMA_F_RESET_DONE, &dev->flags) ? 1 : -EIO;
}

static int vrdma_send_opcode(const struct ib_send_wr *wr, enum ib_qp_type type, u8 *op)
{
	switch (wr->opcode) {
	case IB_WR_SEND:
		*op = VIRTIO_RDMA_WR_SEND;
		return 0;
	case IB_WR_SEND_WITH_IMM:
		*op = VIRTIO_RDMA_WR_SEND_WITH_IMM;
		return 0;
	default:
		break;
	}
	if (type != IB_QPT_RC)
		return -EINVAL;
	switch (wr->opcode) {
	case IB_WR_RDMA_WRITE:
		*op = VIRTIO_RDMA_WR_RDMA_WRITE;
		return 0;
	case IB_WR_RDMA_WRITE_WITH_IMM:
		*op = VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM;
		return 0;
	case IB_WR_RDMA_READ:
		*op = VIRTIO_RDMA_WR_RDMA_READ;
		return 0;
	case IB_WR_ATOMIC_CMP_AND_SWP:
		*op = VIRTIO_RDMA_WR_ATOMIC_CMP_AND_SWP;
		return 0;
	case IB_WR_ATOMIC_FETCH_AND_ADD:
		*op = VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD;
		return 0;
	default:
		return -EINVAL;
	}
}

static void vrdma_put_sges(struct virtio_rdma_sge *dst, const struct ib_sge *src, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		dst[i].addr = cpu_to_le64(src[i].addr);
		dst[i].length = cpu_to_le32(src[i].length);
		dst[i].lkey = cpu_to_le32(src[i].lkey);
	}
}

/* Inline data: kernel consumers pass kernel virtual addresses in the SGEs. */
static int vrdma_put_inline(struct vrdma_wq *wq, struct virtio_rdma_send_wqe *w,
			    const struct ib_send_wr *wr)
{
	u8 *dst = (u8 *)(w + 1);
	u32 total = 0;
	int i;

	for (i = 0; i < wr->num_sge; i++) {
		if (wr->sg_list[i].length > wq->max_inline - total)
			return -EINVAL;
		memcpy(dst + total, (void *)(uintptr_t)wr->sg_list[i].addr, wr->sg_list[i].length);
		total += wr->sg_list[i].length;
	}
	w->inline_length = cpu_to_le32(total);
	return 0;
}

static int vrdma_build_send(struct vrdma_qp *qp, const struct ib_send_wr *wr,
			    struct virtio_rdma_send_wqe *w)
{
	u16 flags = 0;
	u8 op;
	int ret;

	ret = vrdma_send_opcode(wr, qp->ibqp.qp_type, &op);
	if (ret)
		return ret;
	memset(w, 0, sizeof(*w));
	w->wr_id = cpu_to_le64(wr->wr_id);
	w->opcode = op;
	if (wr->send_flags & IB_SEND_FENCE)
		flags |= VIRTIO_RDMA_SEND_FENCE;
	if (wr->send_flags & IB_SEND_SIGNALED)
		flags |= VIRTIO_RDMA_SEND_SIGNALED;
	if (wr->send_flags & IB_SEND_SOLICITED)
		flags |= VIRTIO_RDMA_SEND_SOLICITED;
	if (op == VIRTIO_RDMA_WR_SEND_WITH_IMM || op == VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM)
		w->imm_data = (__force __le32)wr->ex.imm_data;

	switch (op) {
	case VIRTIO_RDMA_WR_RDMA_WRITE:
	case VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM:
	case VIRTIO_RDMA_WR_RDMA_READ:
		w->remote_addr = cpu_to_le64(rdma_wr(wr)->remote_addr);
		w->rkey = cpu_to_le32(rdma_wr(wr)->rkey);
		break;
	case VIRTIO_RDMA_WR_ATOMIC_CMP_AND_SWP:
	case VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD:
		w->remote_addr = cpu_to_le64(atomic_wr(wr)->remote_addr);
		w->compare_add = cpu_to_le64(atomic_wr(wr)->compare_add);
		w->swap = cpu_to_le64(atomic_wr(wr)->swap);
		w->rkey = cpu_to_le32(atomic_wr(wr)->rkey);
		break;
	default:
		break;
	}
	if (qp->ibqp.qp_type == IB_QPT_UD || qp->ibqp.qp_type == IB_QPT_GSI) {
		/* remote_qkey with the high bit (IB_QP_SET_QKEY) means the QP's own: as is. */
		if (!ud_wr(wr)->ah)
			return -EINVAL;
		w->ah = cpu_to_le32(to_vah(ud_wr(wr)->ah)->handle);
		w->remote_qpn = cpu_to_le32(ud_wr(wr)->remote_qpn);
		w->remote_qkey = cpu_to_le32(ud_wr(wr)->remote_qkey);
	}

	if ((wr->send_flags & IB_SEND_INLINE) && wr->num_sge) {
		if (op == VIRTIO_RDMA_WR_RDMA_READ || op == VIRTIO_RDMA_WR_ATOMIC_CMP_AND_SWP ||
		    op == VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD)
			return -EINVAL;
		flags |= VIRTIO_RDMA_SEND_INLINE;
		ret = vrdma_put_inline(&qp->sq, w, wr);
		if (ret)
			return ret;
	} else {
		if (wr->num_sge < 0 || wr->num_sge > qp->sq.max_sge)
			return -EINVAL;
		vrdma_put_sges((struct virtio_rdma_sge *)(w + 1), wr->sg_list, wr->num_sge);
		w->num_sge = cpu_to_le32(wr->num_sge);
	}
	w->send_flags = cpu_to_le16(flags);
	return 0;
}

static u8 vrdma_flush_opcode(const struct ib_send_wr *wr)
{
	switch (wr->opcode) {
	case IB_WR_RDMA_WRITE:
	case IB_WR_RDMA_WRITE_WITH_IMM:
		return VIRTIO_RDMA_WC_RDMA_WRITE;
	case IB_WR_RDMA_READ:
		return VIRTIO_RDMA_WC_RDMA_READ;
	case IB_WR_ATOMIC_CMP_AND_SWP:
		return VIRTIO_RDMA_WC_COMP_SWAP;
	case IB_WR_ATOMIC_FETCH_AND_ADD:
		return VIRTIO_RDMA_WC_FETCH_ADD;
	default:
		return VIRTIO_RDMA_WC_SEND;
	}
}

int vrdma_post_send(struct ib_qp *ibqp, const struct ib_send_wr *wr,
		    const struct ib_send_wr **bad_wr)
{
	struct vrdma_dev *dev = to_vdev(ibqp->device);
	struct vrdma_qp *qp = to_vqp(ibqp);
	struct vrdma_wq *wq = &qp->sq;
	unsigned long flags;
	u32 room, posted = 0;
	int ret = 0;

	if (qp->user || READ_ONCE(qp->state) == IB_QPS_RESET) {
		*bad_wr = wr;
		return -EINVAL;
	}
	ret = vrdma_post_dead(dev);
	if (ret) {
		if (ret < 0) {
			*bad_wr = wr;
			return ret;
		}
		for (; wr; wr = wr->next)
			vrdma_cq_sw_complete(to_vcq(ibqp->send_cq), wr->wr_id, qp->qpn,
					     vrdma_flush_opcode(wr));
		return 0;
	}

	spin_lock_irqsave(&wq->lock, flags);
	room = vrdma_wq_room(dev, wq);
	for (; wr; wr = wr->next) {
		if (!room) {
			ret = -ENOMEM;
			break;
		}
		ret = vrdma_build_send(qp, wr, vrdma_slot(wq, wq->head));
		if (ret)
			break;
		wq->head++;
		room--;
		posted++;
	}
	if (posted)
		vrdma_wq_publish(dev, wq, qp->dbq);
	spin_unlock_irqrestore(&wq->lock, flags);
	if (ret)
		*bad_wr = wr;
	return ret;
}

/* Receive WQEs for an RQ or an SRQ. */
static int vrdma_post_rq(struct vrdma_dev *dev, struct vrdma_wq *wq, u32 dbq,
			 const struct ib_recv_wr *wr, const struct ib_recv_wr **bad_wr)
{
	struct virtio_rdma_recv_wqe *w;
	unsigned long flags;
	u32 room, posted = 0;
	int ret = 0;

	spin_lock_irqsave(&wq->lock, flags);
	room = vrdma_wq_room(dev, wq);
	for (; wr; wr = wr->next) {
		if (!room) {
			ret = -ENOMEM;
			break;
		}
		if (wr->num_sge < 0 || wr->num_sge > wq->max_sge) {
			ret = -EINVAL;
			break;
		}
		w = vrdma_slot(wq, wq->head);
		memset(w, 0, sizeof(*w));
		w->wr_id = cpu_to_le64(wr->wr_id);
		w->num_sge = cpu_to_le32(wr->num_sge);
		vrdma_put_sges((struct virtio_rdma_sge *)(w + 1), wr->sg_list, wr->num_sge);
		wq->head++;
		room--;
		posted++;
	}
	if (posted)
		vrdma_wq_publish(dev, wq, dbq);
	spin_unlock_irqrestore(&wq->lock, flags);
	if (ret)
		*bad_wr = wr;
	return ret;
}

int vrdma_post_recv(struct ib_qp *ibqp, const struct ib_recv_wr *wr,
		    const struct ib_recv_wr **bad_wr)
{
	struct vrdma_dev *dev = to_vdev(ibqp->device);
	struct vrdma_qp *qp = to_vqp(ibqp);
	int ret;

	if (qp->user || !qp->has_rq || READ_ONCE(qp->state) == IB_QPS_RESET) {
		*bad_wr = wr;
		return -EINVAL;
	}
	ret = vrdma_post_dead(dev);
	if (ret) {
		if (ret < 0) {
			*bad_wr = wr;
			return ret;
		}
		for (; wr; wr = wr->next)
			vrdma_cq_sw_complete(to_vcq(ibqp->recv_cq), wr->wr_id, qp->qpn,
					     VIRTIO_RDMA_WC_RECV);
		return 0;
	}
	return vrdma_post_rq(dev, &qp->rq, qp->dbq, wr, bad_wr);
}

int vrdma_post_srq_recv(struct ib_srq *ibsrq, const struct ib_recv_wr *wr,
			const struct ib_recv_wr **bad_wr)
{
	struct vrdma_dev *dev = to_vdev(ibsrq->device);
	struct vrdma_srq *srq = to_vsrq(ibsrq);

	if (srq->user) {
		*bad_wr = wr;
		return -EINVAL;
	}
	if (vrdma_dead(dev)) {
		*bad_wr = wr;
		return -EIO;
	}
	return vrdma_post_rq(dev, &srq->rq, srq->dbq, wr, bad_wr);
}
