// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Queue pairs and shared receive queues: create, modify, query, destroy (spec 10.5, 10.6, 14).
 *
 * Each work queue (SQ, RQ, SRQ) is a ring of 2^wqe_shift-byte slots plus a doorbell record. For
 * user objects the provider laid them out and the kernel checks and pins them; for kernel
 * objects the layout is chosen here. Posting is in vrdma_post.c.
 *
 * The QP state machine is the device's: MODIFY_QP is forwarded and the device refuses illegal
 * transitions. The driver only remembers the last state set, so kernel posts to a RESET QP are
 * refused and a dead device can still move QPs to ERR or RESET (for ib_drain_qp).
 */
#include <linux/log2.h>
#include <linux/slab.h>
#include <linux/string.h>

#include <rdma/ib_mad.h>

#include "vrdma.h"

#define VRDMA_SEND_HDR	sizeof(struct virtio_rdma_send_wqe)	/* 64 */
#define VRDMA_RECV_HDR	sizeof(struct virtio_rdma_recv_wqe)	/* 16 */
#define VRDMA_SGE_SIZE	sizeof(struct virtio_rdma_sge)		/* 16 */
#define VRDMA_MIN_SHIFT	6
#define VRDMA_MAX_SHIFT	12

/* The mask bits are the ib_qp_attr_mask values; the device takes them unchanged. */
#define VRDMA_QP_MASK	(IB_QP_STATE | IB_QP_CUR_STATE | IB_QP_EN_SQD_ASYNC_NOTIFY | \
			 IB_QP_ACCESS_FLAGS | IB_QP_PKEY_INDEX | IB_QP_PORT | IB_QP_QKEY | \
			 IB_QP_AV | IB_QP_PATH_MTU | IB_QP_TIMEOUT | IB_QP_RETRY_CNT | \
			 IB_QP_RNR_RETRY | IB_QP_RQ_PSN | IB_QP_MAX_QP_RD_ATOMIC | \
			 IB_QP_ALT_PATH | IB_QP_MIN_RNR_TIMER | IB_QP_SQ_PSN | \
			 IB_QP_MAX_DEST_RD_ATOMIC | IB_QP_PATH_MIG_STATE | IB_QP_CAP | \
			 IB_QP_DEST_QPN | IB_QP_RATE_LIMIT)

static_assert(IB_QP_STATE == VIRTIO_RDMA_QP_STATE);
static_assert(IB_QP_AV == VIRTIO_RDMA_QP_AV);
static_assert(IB_QP_CAP == VIRTIO_RDMA_QP_CAP);
static_assert(IB_QP_DEST_QPN == VIRTIO_RDMA_QP_DEST_QPN);
static_assert(IB_QP_RATE_LIMIT == VIRTIO_RDMA_QP_RATE_LIMIT);
static_assert(IB_QPT_RC == VIRTIO_RDMA_QPT_RC && IB_QPT_UD == VIRTIO_RDMA_QPT_UD);
static_assert(IB_QPT_GSI == VIRTIO_RDMA_QPT_GSI && IB_QP1_QKEY == VIRTIO_RDMA_GSI_QKEY);
static_assert(IB_QPS_ERR == VIRTIO_RDMA_QPS_ERR);

void vrdma_fill_notify(struct vrdma_dev *dev, u32 queue, struct virtio_rdma_notify *n)
{
	n->notify_mmap_offset = (u64)(VIRTIO_RDMA_MMAP_NOTIFY + queue) << PAGE_SHIFT;
	n->notify_offset = dev->notify[queue].offset;
	n->doorbell_queue = queue;
}

/*
 * Lays out one work queue: @want_* are what the consumer asked for, @hdr the WQE header size.
 * A user queue's depth and slot size come from @uwq (checked); a kernel queue's are chosen.
 * The slot then decides what the queue gets (at least what was asked).
 */
static int vrdma_wq_setup(struct vrdma_dev *dev, struct vrdma_wq *wq, u32 want_wr, u32 want_sge,
			  u32 want_inline, u32 hdr, u32 max_depth,
			  const struct virtio_rdma_user_wq *uwq)
{
	u32 dev_sge = le32_to_cpu(dev->cfg.max_sge);
	u32 dev_inline = hdr == VRDMA_SEND_HDR ? le32_to_cpu(dev->cfg.max_inline_data) : 0;
	u32 need, slot;
	int ret;

	memset(wq, 0, sizeof(*wq));
	spin_lock_init(&wq->lock);
	if (want_wr > max_depth || want_sge > dev_sge || want_inline > dev_inline)
		return -EINVAL;
	need = hdr + max(VRDMA_SGE_SIZE * max(want_sge, 1u), want_inline);
	if (uwq) {
		if (!is_power_of_2(uwq->depth) || uwq->depth < max(want_wr, 1u) ||
		    uwq->depth > max_depth || uwq->wqe_shift < VRDMA_MIN_SHIFT ||
		    uwq->wqe_shift > VRDMA_MAX_SHIFT)
			return -EINVAL;
		wq->depth = uwq->depth;
		wq->wqe_shift = uwq->wqe_shift;
	} else {
		wq->depth = roundup_pow_of_two(max(want_wr, 1u));
		wq->wqe_shift = max_t(u32, VRDMA_MIN_SHIFT, order_base_2(need));
		if (wq->depth > max_depth || wq->wqe_shift > VRDMA_MAX_SHIFT)
			return -EINVAL;
	}
	slot = 1u << wq->wqe_shift;
	if (need > slot)
		return -EINVAL;
	wq->max_sge = min(dev_sge, (slot - hdr) / (u32)VRDMA_SGE_SIZE);
	wq->max_inline = min(dev_inline, slot - hdr);

	if (uwq) {
		ret = vrdma_ring_pin(dev, &wq->ring, uwq->ring_addr,
				     (size_t)wq->depth << wq->wqe_shift);
		if (ret)
			return ret;
		ret = vrdma_db_pin(dev, &wq->db, uwq->doorbell_addr);
	} else {
		ret = vrdma_ring_alloc(&wq->ring, (size_t)wq->depth << wq->wqe_shift);
		if (ret)
			return ret;
		ret = vrdma_db_alloc(&wq->db);
	}
	if (ret)
		vrdma_ring_free(&wq->ring);
	return ret;
}

void vrdma_wq_destroy(struct vrdma_wq *wq)
{
	vrdma_db_free(&wq->db);
	vrdma_ring_free(&wq->ring);
}

static int vrdma_wq_desc(struct vrdma_wq *wq, struct virtio_rdma_wq_desc *d,
			 struct vrdma_page_list *pl, bool send)
{
	int ret = vrdma_ring_page_list(&wq->ring, pl);

	if (ret)
		return ret;
	d->depth = cpu_to_le32(wq->depth);
	d->max_sge = cpu_to_le32(wq->max_sge);
	d->max_inline = cpu_to_le32(send ? wq->max_inline : 0);
	d->wqe_shift = cpu_to_le32(wq->wqe_shift);
	d->doorbell_gpa = cpu_to_le64(wq->db.pa);
	vrdma_pl_desc(pl, &d->ring);
	return 0;
}

/* After a failed create: free the queues' memory if the device is known not to use it. */
static void vrdma_wqs_release(struct vrdma_dev *dev, struct vrdma_wq *a, struct vrdma_wq *b,
			      bool device_may_use)
{
	if (device_may_use && !vrdma_dead(dev)) {
		dev_warn(&dev->vdev->dev, "a failed create left memory with the device\n");
		return;
	}
	vrdma_wait_reset(dev);
	vrdma_wq_destroy(a);
	if (b)
		vrdma_wq_destroy(b);
}

/* ---- queue pairs ------------------------------------------------------------------------- */

int vrdma_create_qp(struct ib_qp *ibqp, struct ib_qp_init_attr *init, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibqp->device);
	struct vrdma_qp *qp = to_vqp(ibqp);
	u32 max_wr = le32_to_cpu(dev->cfg.max_qp_wr);
	struct virtio_rdma_create_qp_cmd ucmd;
	struct virtio_rdma_cmd_create_qp req = {};
	struct virtio_rdma_rsp_create_qp rsp;
	struct vrdma_page_list spl = {}, rpl = {};
	bool leaked = false;
	int ret, ret2;

	switch (init->qp_type) {
	case IB_QPT_RC:
	case IB_QPT_UD:
		break;
	case IB_QPT_GSI:
		/* QP1 is the kernel's (ib_mad's): the device refuses it in a user context. */
		if (udata)
			return -EOPNOTSUPP;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (init->create_flags)
		return -EOPNOTSUPP;
	if (!init->send_cq || !init->recv_cq)
		return -EINVAL;
	qp->user = udata;
	qp->has_rq = !init->srq;
	qp->sig_all = init->sq_sig_type == IB_SIGNAL_ALL_WR;
	qp->state = IB_QPS_RESET;
	if (udata) {
		if (udata->inlen < sizeof(ucmd))
			return -EINVAL;
		if (ib_copy_from_udata(&ucmd, udata, sizeof(ucmd)))
			return -EFAULT;
		if (init->srq && memchr_inv(&ucmd.rq, 0, sizeof(ucmd.rq)))
			return -EINVAL;
	}
	ret = vrdma_wq_setup(dev, &qp->sq, init->cap.max_send_wr, init->cap.max_send_sge,
			     init->cap.max_inline_data, VRDMA_SEND_HDR, max_wr,
			     udata ? &ucmd.sq : NULL);
	if (ret)
		return ret;
	if (qp->has_rq) {
		ret = vrdma_wq_setup(dev, &qp->rq, init->cap.max_recv_wr, init->cap.max_recv_sge, 0,
				     VRDMA_RECV_HDR, max_wr, udata ? &ucmd.rq : NULL);
		if (ret) {
			vrdma_wq_destroy(&qp->sq);
			return ret;
		}
	}

	ret = vrdma_wq_desc(&qp->sq, &req.sq, &spl, true);
	if (!ret && qp->has_rq)
		ret = vrdma_wq_desc(&qp->rq, &req.rq, &rpl, false);
	if (ret)
		goto err_mem;
	req.ctx_handle = cpu_to_le32(vrdma_ctx_handle(udata));
	req.pd_handle = cpu_to_le32(to_vpd(ibqp->pd)->handle);
	req.send_cq = cpu_to_le32(to_vcq(init->send_cq)->handle);
	req.recv_cq = cpu_to_le32(to_vcq(init->recv_cq)->handle);
	req.srq_handle = cpu_to_le32(init->srq ? to_vsrq(init->srq)->handle : 0);
	req.qp_type = init->qp_type;
	req.sq_sig_all = qp->sig_all;
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_CREATE_QP, &req, sizeof(req), &rsp, sizeof(rsp),
			 true);
	vrdma_pl_free(&spl);
	vrdma_pl_free(&rpl);
	if (ret)
		goto err_mem;

	qp->qpn = le32_to_cpu(rsp.qpn);
	qp->dbq = le32_to_cpu(rsp.doorbell_queue);
	if ((init->qp_type == IB_QPT_GSI ? qp->qpn != VIRTIO_RDMA_GSI_QPN :
	     qp->qpn < 2 || qp->qpn > 0xffffff) || !vrdma_dbq_valid(dev, qp->dbq) ||
	    xa_insert_irq(&dev->qp_xa, qp->qpn, qp, GFP_KERNEL)) {
		dev_warn_ratelimited(&dev->vdev->dev, "device returned QPN %u, doorbell queue %u\n",
				     qp->qpn, qp->dbq);
		ret = -EIO;
		goto err_destroy;
	}
	ibqp->qp_num = qp->qpn;
	init->cap.max_send_wr = qp->sq.depth;
	init->cap.max_send_sge = qp->sq.max_sge;
	init->cap.max_inline_data = qp->sq.max_inline;
	init->cap.max_recv_wr = qp->has_rq ? qp->rq.depth : 0;
	init->cap.max_recv_sge = qp->has_rq ? qp->rq.max_sge : 0;

	if (udata) {
		struct virtio_rdma_create_qp_resp uresp = {
			.qpn = qp->qpn,
			.max_send_sge = qp->sq.max_sge,
			.max_recv_sge = init->cap.max_recv_sge,
			.max_inline_data = qp->sq.max_inline,
		};

		vrdma_fill_notify(dev, qp->dbq, &uresp.notify);
		ret = ib_copy_to_udata(udata, &uresp, min(udata->outlen, sizeof(uresp)));
		if (ret) {
			xa_erase_irq(&dev->qp_xa, qp->qpn);
			goto err_destroy;
		}
	}
	return 0;

err_destroy:
	ret2 = vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_QP, qp->qpn, true);
	leaked = ret2 && ret2 != -ENOENT;
err_mem:
	vrdma_pl_free(&spl);
	vrdma_pl_free(&rpl);
	vrdma_wqs_release(dev, &qp->sq, qp->has_rq ? &qp->rq : NULL, leaked);
	return ret;
}

int vrdma_modify_qp(struct ib_qp *ibqp, struct ib_qp_attr *attr, int mask,
		    struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibqp->device);
	struct vrdma_qp *qp = to_vqp(ibqp);
	struct virtio_rdma_qp_attr a = {};
	int ret;

	if (mask & ~VRDMA_QP_MASK)
		return -EOPNOTSUPP;
	if (vrdma_dead(dev)) {
		/* Nothing runs any more: errors and resets are true already. */
		if ((mask & IB_QP_STATE) &&
		    (attr->qp_state == IB_QPS_ERR || attr->qp_state == IB_QPS_RESET)) {
			WRITE_ONCE(qp->state, attr->qp_state);
			return 0;
		}
		return -EIO;
	}
	a.qpn = cpu_to_le32(qp->qpn);
	a.attr_mask = cpu_to_le32(mask);
	a.qp_state = attr->qp_state;
	a.cur_qp_state = attr->cur_qp_state;
	a.path_mtu = attr->path_mtu;
	a.path_mig_state = attr->path_mig_state;
	a.qkey = cpu_to_le32(attr->qkey);
	a.rq_psn = cpu_to_le32(attr->rq_psn);
	a.sq_psn = cpu_to_le32(attr->sq_psn);
	a.dest_qp_num = cpu_to_le32(attr->dest_qp_num);
	a.qp_access_flags = cpu_to_le32(attr->qp_access_flags &
					(IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE |
					 IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC));
	a.pkey_index = cpu_to_le16(attr->pkey_index);
	a.alt_pkey_index = cpu_to_le16(attr->alt_pkey_index);
	a.en_sqd_async_notify = attr->en_sqd_async_notify;
	a.max_rd_atomic = attr->max_rd_atomic;
	a.max_dest_rd_atomic = attr->max_dest_rd_atomic;
	a.min_rnr_timer = attr->min_rnr_timer;
	a.port_num = attr->port_num;
	a.timeout = attr->timeout;
	a.retry_cnt = attr->retry_cnt;
	a.rnr_retry = attr->rnr_retry;
	a.alt_port_num = attr->alt_port_num;
	a.alt_timeout = attr->alt_timeout;
	a.rate_limit = cpu_to_le32(attr->rate_limit);
	if (mask & IB_QP_AV)
		vrdma_fill_av(&a.ah_attr, &attr->ah_attr);
	if (mask & IB_QP_ALT_PATH)
		vrdma_fill_av(&a.alt_ah_attr, &attr->alt_ah_attr);
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_MODIFY_QP, &a, sizeof(a), NULL, 0, true);
	if (!ret && (mask & IB_QP_STATE))
		WRITE_ONCE(qp->state, attr->qp_state);
	return ret;
}

static void vrdma_av_to_ah(struct vrdma_dev *dev, const struct virtio_rdma_av *av,
			   struct rdma_ah_attr *ah)
{
	union ib_gid dgid;

	memset(ah, 0, sizeof(*ah));
	ah->type = RDMA_AH_ATTR_TYPE_ROCE;
	memcpy(dgid.raw, av->dgid, sizeof(dgid.raw));
	rdma_ah_set_grh(ah, &dgid, le32_to_cpu(av->flow_label) & 0xfffff, av->sgid_index,
			av->hop_limit, av->traffic_class);
	rdma_ah_set_sl(ah, av->sl);
	rdma_ah_set_port_num(ah, 1);
	rdma_ah_set_static_rate(ah, av->static_rate);
	memcpy(ah->roce.dmac, av->dmac, ETH_ALEN);
}

int vrdma_query_qp(struct ib_qp *ibqp, struct ib_qp_attr *attr, int mask,
		   struct ib_qp_init_attr *init)
{
	struct vrdma_dev *dev = to_vdev(ibqp->device);
	struct vrdma_qp *qp = to_vqp(ibqp);
	struct virtio_rdma_cmd_handle req = { .handle = cpu_to_le32(qp->qpn) };
	struct virtio_rdma_qp_attr a;
	u32 amask;
	int ret;

	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_QUERY_QP, &req, sizeof(req), &a, sizeof(a), true);
	if (ret)
		return ret;
	if (le32_to_cpu(a.qpn) != qp->qpn || a.qp_state > IB_QPS_ERR) {
		dev_warn_ratelimited(&dev->vdev->dev, "QUERY_QP %u: bad answer\n", qp->qpn);
		return -EIO;
	}
	amask = le32_to_cpu(a.attr_mask);
	memset(attr, 0, sizeof(*attr));
	attr->qp_state = a.qp_state;
	attr->cur_qp_state = a.qp_state;
	attr->path_mtu = a.path_mtu;
	attr->path_mig_state = a.path_mig_state;
	attr->qkey = le32_to_cpu(a.qkey);
	attr->rq_psn = le32_to_cpu(a.rq_psn) & 0xffffff;
	attr->sq_psn = le32_to_cpu(a.sq_psn) & 0xffffff;
	attr->dest_qp_num = le32_to_cpu(a.dest_qp_num) & 0xffffff;
	attr->qp_access_flags = le32_to_cpu(a.qp_access_flags);
	attr->pkey_index = le16_to_cpu(a.pkey_index);
	attr->alt_pkey_index = le16_to_cpu(a.alt_pkey_index);
	attr->en_sqd_async_notify = a.en_sqd_async_notify;
	attr->sq_draining = a.sq_draining;
	attr->max_rd_atomic = a.max_rd_atomic;
	attr->max_dest_rd_atomic = a.max_dest_rd_atomic;
	attr->min_rnr_timer = a.min_rnr_timer;
	attr->port_num = a.port_num;
	attr->timeout = a.timeout;
	attr->retry_cnt = a.retry_cnt;
	attr->rnr_retry = a.rnr_retry;
	attr->alt_port_num = a.alt_port_num;
	attr->alt_timeout = a.alt_timeout;
	attr->rate_limit = le32_to_cpu(a.rate_limit);
	if (amask & IB_QP_AV)
		vrdma_av_to_ah(dev, &a.ah_attr, &attr->ah_attr);
	attr->cap.max_send_wr = le32_to_cpu(a.max_send_wr);
	attr->cap.max_recv_wr = le32_to_cpu(a.max_recv_wr);
	attr->cap.max_send_sge = le32_to_cpu(a.max_send_sge);
	attr->cap.max_recv_sge = le32_to_cpu(a.max_recv_sge);
	attr->cap.max_inline_data = le32_to_cpu(a.max_inline_data);

	memset(init, 0, sizeof(*init));
	init->qp_type = ibqp->qp_type;
	init->send_cq = ibqp->send_cq;
	init->recv_cq = ibqp->recv_cq;
	init->srq = ibqp->srq;
	init->sq_sig_type = qp->sig_all ? IB_SIGNAL_ALL_WR : IB_SIGNAL_REQ_WR;
	init->cap = attr->cap;
	init->port_num = 1;
	return 0;
}

int vrdma_destroy_qp(struct ib_qp *ibqp, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibqp->device);
	struct vrdma_qp *qp = to_vqp(ibqp);
	int ret;

	/* After this no event handler of the QP runs and its CQEs are dropped. */
	xa_erase_irq(&dev->qp_xa, qp->qpn);
	/* A poll that found the QP before the erase holds a CQ lock: wait until it is done. */
	spin_lock_irq(&to_vcq(ibqp->send_cq)->lock);
	spin_unlock_irq(&to_vcq(ibqp->send_cq)->lock);
	spin_lock_irq(&to_vcq(ibqp->recv_cq)->lock);
	spin_unlock_irq(&to_vcq(ibqp->recv_cq)->lock);
	ret = vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_QP, qp->qpn, true);
	if (!ret || ret == -ENOENT || vrdma_dead(dev)) {
		vrdma_wait_reset(dev);
		vrdma_wq_destroy(&qp->sq);
		if (qp->has_rq)
			vrdma_wq_destroy(&qp->rq);
	} else {
		dev_warn(&dev->vdev->dev, "destroying QP %u failed (%d): its memory stays allocated\n",
			 qp->qpn, ret);
	}
	return 0;
}

/* ---- shared receive queues --------------------------------------------------------------- */

int vrdma_create_srq(struct ib_srq *ibsrq, struct ib_srq_init_attr *init, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibsrq->device);
	struct vrdma_srq *srq = to_vsrq(ibsrq);
	struct virtio_rdma_create_srq_cmd ucmd;
	struct virtio_rdma_cmd_create_srq req = {};
	struct virtio_rdma_rsp_create_srq rsp;
	struct vrdma_page_list pl = {};
	bool leaked = false;
	int ret, ret2;

	if (init->srq_type != IB_SRQT_BASIC)
		return -EOPNOTSUPP;
	srq->user = udata;
	if (udata) {
		if (udata->inlen < sizeof(ucmd))
			return -EINVAL;
		if (ib_copy_from_udata(&ucmd, udata, sizeof(ucmd)))
			return -EFAULT;
	}
	ret = vrdma_wq_setup(dev, &srq->rq, init->attr.max_wr, init->attr.max_sge, 0,
			     VRDMA_RECV_HDR, le32_to_cpu(dev->cfg.max_srq_wr),
			     udata ? &ucmd.rq : NULL);
	if (ret)
		return ret;
	if (init->attr.srq_limit > srq->rq.depth) {
		ret = -EINVAL;
		goto err_mem;
	}
	ret = vrdma_wq_desc(&srq->rq, &req.rq, &pl, false);
	if (ret)
		goto err_mem;
	req.ctx_handle = cpu_to_le32(vrdma_ctx_handle(udata));
	req.pd_handle = cpu_to_le32(to_vpd(ibsrq->pd)->handle);
	req.srq_limit = cpu_to_le32(init->attr.srq_limit);
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_CREATE_SRQ, &req, sizeof(req), &rsp, sizeof(rsp),
			 true);
	vrdma_pl_free(&pl);
	if (ret)
		goto err_mem;
	srq->handle = le32_to_cpu(rsp.srq_handle);
	srq->dbq = le32_to_cpu(rsp.doorbell_queue);
	if (!srq->handle || !vrdma_dbq_valid(dev, srq->dbq) ||
	    xa_insert_irq(&dev->srq_xa, srq->handle, srq, GFP_KERNEL)) {
		dev_warn_ratelimited(&dev->vdev->dev, "device returned SRQ %u, doorbell queue %u\n",
				     srq->handle, srq->dbq);
		ret = -EIO;
		goto err_destroy;
	}
	init->attr.max_wr = srq->rq.depth;
	init->attr.max_sge = srq->rq.max_sge;
	if (udata) {
		struct virtio_rdma_create_srq_resp uresp = {
			.srq_handle = srq->handle,
			.max_sge = srq->rq.max_sge,
		};

		vrdma_fill_notify(dev, srq->dbq, &uresp.notify);
		ret = ib_copy_to_udata(udata, &uresp, min(udata->outlen, sizeof(uresp)));
		if (ret) {
			xa_erase_irq(&dev->srq_xa, srq->handle);
			goto err_destroy;
		}
	}
	return 0;

err_destroy:
	ret2 = vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_SRQ, srq->handle, true);
	leaked = ret2 && ret2 != -ENOENT;
err_mem:
	vrdma_pl_free(&pl);
	vrdma_wqs_release(dev, &srq->rq, NULL, leaked);
	return ret;
}

int vrdma_modify_srq(struct ib_srq *ibsrq, struct ib_srq_attr *attr, enum ib_srq_attr_mask mask,
		     struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibsrq->device);
	struct vrdma_srq *srq = to_vsrq(ibsrq);
	struct virtio_rdma_srq_attr a = {
		.srq_handle = cpu_to_le32(srq->handle),
	};

	/* SRQs cannot be resized (QUERY_DEVICE has no SRQ_RESIZE). */
	if (mask & ~IB_SRQ_LIMIT)
		return -EINVAL;
	a.attr_mask = cpu_to_le32(VIRTIO_RDMA_SRQ_LIMIT);
	a.srq_limit = cpu_to_le32(attr->srq_limit);
	return vrdma_exec(dev, VIRTIO_RDMA_CMD_MODIFY_SRQ, &a, sizeof(a), NULL, 0, true);
}

int vrdma_query_srq(struct ib_srq *ibsrq, struct ib_srq_attr *attr)
{
	struct vrdma_dev *dev = to_vdev(ibsrq->device);
	struct vrdma_srq *srq = to_vsrq(ibsrq);
	struct virtio_rdma_cmd_handle req = { .handle = cpu_to_le32(srq->handle) };
	struct virtio_rdma_srq_attr a;
	int ret;

	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_QUERY_SRQ, &req, sizeof(req), &a, sizeof(a), true);
	if (ret)
		return ret;
	attr->max_wr = le32_to_cpu(a.max_wr);
	attr->max_sge = le32_to_cpu(a.max_sge);
	attr->srq_limit = le32_to_cpu(a.srq_limit);
	return 0;
}

int vrdma_destroy_srq(struct ib_srq *ibsrq, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibsrq->device);
	struct vrdma_srq *srq = to_vsrq(ibsrq);
	int ret;

	xa_erase_irq(&dev->srq_xa, srq->handle);
	ret = vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_SRQ, srq->handle, true);
	if (!ret || ret == -ENOENT || vrdma_dead(dev)) {
		vrdma_wait_reset(dev);
		vrdma_wq_destroy(&srq->rq);
	} else {
		dev_warn(&dev->vdev->dev, "destroying SRQ %u failed (%d): its memory stays allocated\n",
			 srq->handle, ret);
	}
	return 0;
}
