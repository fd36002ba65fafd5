// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Completion queues: create, resize, destroy, and for kernel CQs poll and arm (spec 10.4, 11.3,
 * 12.3). The ring and the doorbell record are the driver's memory: the provider's for user CQs,
 * ours for kernel CQs. The device produces CQEs (device_index), we consume them (driver_index).
 *
 * A dead device no longer completes anything. Once it is reset, kernel work requests posted to
 * it are completed here in software with IB_WC_WR_FLUSH_ERR, so ib_drain_qp() and friends
 * still return.
 */
#include <linux/etherdevice.h>
#include <linux/log2.h>
#include <linux/slab.h>

#include "vrdma.h"

#define VRDMA_CQE_SHIFT	6	/* 64-byte CQEs */

static u32 vrdma_max_cqe(struct vrdma_dev *dev)
{
	return le32_to_cpu(dev->attr.max_cqe);
}

/* The ring and record of a CQ of @depth CQEs: the provider's (pinned) or new kernel memory. */
static int vrdma_cq_mem(struct vrdma_dev *dev, struct vrdma_ring *ring, struct vrdma_db *db,
			u32 depth, const struct virtio_rdma_create_cq_cmd *ucmd)
{
	int ret;

	if (ucmd) {
		ret = vrdma_ring_pin(dev, ring, ucmd->ring_addr, (size_t)depth << VRDMA_CQE_SHIFT);
		if (ret)
			return ret;
		ret = vrdma_db_pin(dev, db, ucmd->doorbell_addr);
	} else {
		ret = vrdma_ring_alloc(ring, (size_t)depth << VRDMA_CQE_SHIFT);
		if (ret)
			return ret;
		ret = vrdma_db_alloc(db);
	}
	if (ret)
		vrdma_ring_free(ring);
	return ret;
}

/* The user's create_cq/resize_cq request, checked against the header's rules. */
static int vrdma_cq_ucmd(struct vrdma_dev *dev, struct ib_udata *udata, int cqe,
			 struct virtio_rdma_create_cq_cmd *ucmd)
{
	if (udata->inlen < sizeof(*ucmd))
		return -EINVAL;
	if (ib_copy_from_udata(ucmd, udata, sizeof(*ucmd)))
		return -EFAULT;
	if (ucmd->reserved || !is_power_of_2(ucmd->depth) || ucmd->depth < cqe ||
	    ucmd->depth > vrdma_max_cqe(dev))
		return -EINVAL;
	return 0;
}

static int vrdma_cq_depth(struct vrdma_dev *dev, int cqe, u32 *depth)
{
	if (cqe < 1 || cqe > vrdma_max_cqe(dev))
		return -EINVAL;
	*depth = roundup_pow_of_two(cqe);
	return *depth <= vrdma_max_cqe(dev) ? 0 : -EINVAL;
}

/* The create and resize response: the CQ's handle and its ring's depth. */
static int vrdma_cq_copy_resp(struct ib_udata *udata, u32 handle, u32 depth)
{
	struct virtio_rdma_create_cq_resp uresp = {
		.cq_handle = handle,
		.depth = depth,
	};

	return ib_copy_to_udata(udata, &uresp, min(udata->outlen, sizeof(uresp)));
}

int vrdma_create_cq(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
		    struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibcq->device);
	struct vrdma_cq *cq = to_vcq(ibcq);
	struct virtio_rdma_create_cq_cmd ucmd;
	struct virtio_rdma_cmd_create_cq req = {};
	struct virtio_rdma_rsp_create_cq rsp;
	struct vrdma_page_list pl;
	u32 depth;
	int ret, ret2;

	if (attr->flags)
		return -EOPNOTSUPP;
	if (attr->cqe < 1 || attr->cqe > vrdma_max_cqe(dev))
		return -EINVAL;
	spin_lock_init(&cq->lock);
	mutex_init(&cq->resize_mutex);
	cq->user = udata;
	if (udata) {
		ret = vrdma_cq_ucmd(dev, udata, attr->cqe, &ucmd);
		if (ret)
			return ret;
		depth = ucmd.depth;
	} else {
		ret = vrdma_cq_depth(dev, attr->cqe, &depth);
		if (ret)
			return ret;
	}
	ret = vrdma_cq_mem(dev, &cq->ring, &cq->db, depth, udata ? &ucmd : NULL);
	if (ret)
		return ret;
	ret = vrdma_ring_page_list(&cq->ring, &pl);
	if (ret)
		goto err_mem;
	req.ctx_handle = cpu_to_le32(vrdma_ctx_handle(udata));
	req.depth = cpu_to_le32(depth);
	req.doorbell_gpa = cpu_to_le64(cq->db.pa);
	vrdma_pl_desc(&pl, &req.ring);
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_CREATE_CQ, &req, sizeof(req), &rsp, sizeof(rsp),
			 true);
	vrdma_pl_free(&pl);
	if (ret)
		goto err_mem;
	cq->handle = le32_to_cpu(rsp.cq_handle);
	cq->depth = depth;
	ibcq->cqe = depth;
	if (!cq->handle || xa_insert_irq(&dev->cq_xa, cq->handle, cq, GFP_KERNEL)) {
		dev_warn_ratelimited(&dev->vdev->dev, "device returned a bad CQ handle %u\n",
				     cq->handle);
		ret = -EIO;
		goto err_destroy;
	}
	if (udata) {
		ret = vrdma_cq_copy_resp(udata, cq->handle, depth);
		if (ret) {
			xa_erase_irq(&dev->cq_xa, cq->handle);
			goto err_destroy;
		}
	}
	return 0;

err_destroy:
	ret2 = vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_CQ, cq->handle, true);
	if (ret2 && ret2 != -ENOENT && !vrdma_dead(dev))
		return ret;	/* the device may still use the memory: keep it */
err_mem:
	vrdma_wait_reset(dev);
	vrdma_db_free(&cq->db);
	vrdma_ring_free(&cq->ring);
	return ret;
}

int vrdma_destroy_cq(struct ib_cq *ibcq, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibcq->device);
	struct vrdma_cq *cq = to_vcq(ibcq);
	int ret;

	/* After this no completion or error handler of the CQ runs. */
	xa_erase_irq(&dev->cq_xa, cq->handle);
	ret = vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_CQ, cq->handle, true);
	if (!ret || ret == -ENOENT || vrdma_dead(dev)) {
		vrdma_wait_reset(dev);
		vrdma_db_free(&cq->db);
		vrdma_ring_free(&cq->ring);
	} else {
		dev_warn(&dev->vdev->dev, "destroying CQ %u failed (%d): its memory stays allocated\n",
			 cq->handle, ret);
	}
	return 0;
}

int vrdma_resize_cq(struct ib_cq *ibcq, int cqe, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibcq->device);
	struct vrdma_cq *cq = to_vcq(ibcq);
	struct virtio_rdma_create_cq_cmd ucmd;
	struct virtio_rdma_cmd_resize_cq req = {};
	struct virtio_rdma_rsp_create_cq rsp;
	struct vrdma_page_list pl;
	struct vrdma_ring ring, old_ring;
	struct vrdma_db db, old_db;
	unsigned long flags;
	u32 depth, seq = 0;
	bool missed = false;
	int ret;

	if (udata) {
		ret = vrdma_cq_ucmd(dev, udata, cqe, &ucmd);
		depth = ucmd.depth;
	} else {
		ret = vrdma_cq_depth(dev, cqe, &depth);
	}
	if (ret)
		return ret;

	mutex_lock(&cq->resize_mutex);
	ret = vrdma_cq_mem(dev, &ring, &db, depth, udata ? &ucmd : NULL);
	if (ret)
		goto out;
	ret = vrdma_ring_page_list(&ring, &pl);
	if (ret)
		goto err_mem;
	if (udata) {
		/* Before the command: once the device uses the new ring, resize cannot fail. */
		ret = vrdma_cq_copy_resp(udata, cq->handle, depth);
		if (ret) {
			vrdma_pl_free(&pl);
			goto err_mem;
		}
	}

	spin_lock_irqsave(&cq->lock, flags);
	if (!cq->user) {
		/* Keep a pending arm: pre-arm the new record (the device starts it unarmed). */
		if (READ_ONCE(cq->db.va->arm_sequence) != READ_ONCE(cq->db.va->notified_sequence)) {
			seq = 1;
			WRITE_ONCE(db.va->arm_flags, READ_ONCE(cq->db.va->arm_flags));
			WRITE_ONCE(db.va->arm_sequence, cpu_to_le32(seq));
		}
	}
	cq->resizing = true;
	spin_unlock_irqrestore(&cq->lock, flags);

	req.cq_handle = cpu_to_le32(cq->handle);
	req.depth = cpu_to_le32(depth);
	req.doorbell_gpa = cpu_to_le64(db.pa);
	vrdma_pl_desc(&pl, &req.ring);
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_RESIZE_CQ, &req, sizeof(req), &rsp, sizeof(rsp),
			 true);
	vrdma_pl_free(&pl);

	spin_lock_irqsave(&cq->lock, flags);
	cq->resizing = false;
	if (!ret && !cq->user && !seq &&
	    READ_ONCE(cq->db.va->arm_sequence) != READ_ONCE(cq->db.va->notified_sequence)) {
		/*
		 * Armed during the command, on the old record the device no longer reads: carry
		 * the arm over, and report a CQE that may already have landed unseen (which
		 * REPORT_MISSED_EVENTS could not while resizing) by calling the handler here.
		 */
		seq = 1;
		WRITE_ONCE(db.va->arm_flags, READ_ONCE(cq->db.va->arm_flags));
		/* Release: arm_flags is written before the device can see the arm. */
		virt_store_release(&db.va->arm_sequence, cpu_to_le32(seq));
		/* Full barrier between the arm and the device_index load (spec 12.3). */
		virt_mb();
		missed = le32_to_cpu(READ_ONCE(db.va->device_index)) != 0;
	}
	if (!ret) {
		old_ring = cq->ring;
		old_db = cq->db;
		cq->ring = ring;
		cq->db = db;
		cq->depth = depth;
		cq->cons = 0;
		cq->arm_seq = seq;
		ibcq->cqe = depth;
	}
	spin_unlock_irqrestore(&cq->lock, flags);
	if (ret)
		goto err_mem;
	if (missed && ibcq->comp_handler)
		ibcq->comp_handler(ibcq, ibcq->cq_context);

	vrdma_db_free(&old_db);
	vrdma_ring_free(&old_ring);
	goto out;

err_mem:
	vrdma_wait_reset(dev);
	vrdma_db_free(&db);
	vrdma_ring_free(&ring);
out:
	mutex_unlock(&cq->resize_mutex);
	return ret;
}

/* ---- kernel CQs: poll and arm -------------------------------------------------------------- */

static enum ib_wc_opcode vrdma_wc_opcode(u8 op, bool *ok)
{
	*ok = true;
	switch (op) {
	case VIRTIO_RDMA_WC_SEND:
		return IB_WC_SEND;
	case VIRTIO_RDMA_WC_RDMA_WRITE:
		return IB_WC_RDMA_WRITE;
	case VIRTIO_RDMA_WC_RDMA_READ:
		return IB_WC_RDMA_READ;
	case VIRTIO_RDMA_WC_COMP_SWAP:
		return IB_WC_COMP_SWAP;
	case VIRTIO_RDMA_WC_FETCH_ADD:
		return IB_WC_FETCH_ADD;
	case VIRTIO_RDMA_WC_RECV:
		return IB_WC_RECV;
	case VIRTIO_RDMA_WC_RECV_RDMA_WITH_IMM:
		return IB_WC_RECV_RDMA_WITH_IMM;
	default:
		*ok = false;
		return IB_WC_SEND;
	}
}

static u8 vrdma_network_type(u8 hdr_type)
{
	switch (hdr_type) {
	case VIRTIO_RDMA_NETWORK_ROCE_V1:
		return RDMA_NETWORK_ROCE_V1;
	case VIRTIO_RDMA_NETWORK_IPV4:
		return RDMA_NETWORK_IPV4;
	case VIRTIO_RDMA_NETWORK_IPV6:
		return RDMA_NETWORK_IPV6;
	default:
		return RDMA_NETWORK_IB;
	}
}

/* One CQE into one ib_wc. False: the CQE names no QP of this CQ and is dropped. */
static bool vrdma_cqe_to_wc(struct vrdma_dev *dev, struct vrdma_cq *cq,
			    const struct virtio_rdma_cqe *cqe, struct ib_wc *wc)
{
	u32 qpn = le32_to_cpu(cqe->qp_num);
	u16 flags = le16_to_cpu(cqe->wc_flags);
	struct vrdma_qp *qp;
	bool ok;

	qp = xa_load(&dev->qp_xa, qpn);
	if (!qp || (qp->ibqp.send_cq != &cq->ibcq && qp->ibqp.recv_cq != &cq->ibcq)) {
		dev_warn_ratelimited(&dev->vdev->dev, "CQ %u: CQE for unknown QP %u dropped\n",
				     cq->handle, qpn);
		return false;
	}
	memset(wc, 0, sizeof(*wc));
	wc->wr_id = le64_to_cpu(cqe->wr_id);
	wc->status = cqe->status <= IB_WC_GENERAL_ERR ? cqe->status : IB_WC_GENERAL_ERR;
	wc->opcode = vrdma_wc_opcode(cqe->opcode, &ok);
	if (!ok && wc->status == IB_WC_SUCCESS)
		wc->status = IB_WC_GENERAL_ERR;
	wc->vendor_err = le32_to_cpu(cqe->vendor_err);
	wc->qp = &qp->ibqp;
	wc->port_num = 1;
	if (wc->status != IB_WC_SUCCESS)
		return true;
	wc->byte_len = le32_to_cpu(cqe->byte_len);
	wc->src_qp = le32_to_cpu(cqe->src_qp) & 0xffffff;
	wc->pkey_index = le16_to_cpu(cqe->pkey_index);
	wc->sl = cqe->sl;
	/* WC_F_SOLICITED is device-private and never reported. */
	if (flags & VIRTIO_RDMA_WC_F_GRH)
		wc->wc_flags |= IB_WC_GRH;
	if (flags & VIRTIO_RDMA_WC_F_WITH_IMM) {
		wc->wc_flags |= IB_WC_WITH_IMM;
		wc->ex.imm_data = (__force __be32)cqe->imm_data;
	}
	if ((qp->ibqp.qp_type == IB_QPT_UD || qp->ibqp.qp_type == IB_QPT_GSI) &&
	    (wc->opcode & IB_WC_RECV)) {
		ether_addr_copy(wc->smac, cqe->smac);
		wc->wc_flags |= IB_WC_WITH_SMAC;
		wc->network_hdr_type = vrdma_network_type(cqe->network_hdr_type);
		if (wc->network_hdr_type != RDMA_NETWORK_IB)
			wc->wc_flags |= IB_WC_WITH_NETWORK_HDR_TYPE;
		if (le16_to_cpu(cqe->vlan_id) < 0x1000) {
			wc->vlan_id = le16_to_cpu(cqe->vlan_id);
			wc->wc_flags |= IB_WC_WITH_VLAN;
		}
	}
	return true;
}

int vrdma_poll_cq(struct ib_cq *ibcq, int num_entries, struct ib_wc *wc)
{
	struct vrdma_dev *dev = to_vdev(ibcq->device);
	struct vrdma_cq *cq = to_vcq(ibcq);
	struct virtio_rdma_cqe cqe;
	unsigned long flags;
	u32 prod, avail;
	int n = 0;

	if (cq->user)
		return -EINVAL;
	spin_lock_irqsave(&cq->lock, flags);
	if (cq->resizing)
		goto out;
	/* Acquire: the CQEs counted by device_index are complete before we read them. */
	prod = le32_to_cpu(virt_load_acquire(&cq->db.va->device_index));
	avail = prod - cq->cons;
	if (avail > cq->depth) {
		dev_warn_ratelimited(&dev->vdev->dev, "CQ %u: device index %u, driver index %u\n",
				     cq->handle, prod, cq->cons);
		goto out;
	}
	while (n < num_entries && avail) {
		/* One copy of the CQE: the device cannot change it after the checks. */
		memcpy(&cqe, cq->ring.va +
		       ((size_t)(cq->cons & (cq->depth - 1)) << VRDMA_CQE_SHIFT), sizeof(cqe));
		cq->cons++;
		avail--;
		if (vrdma_cqe_to_wc(dev, cq, &cqe, &wc[n]))
			n++;
	}
	/* Release: the slots are the device's again only after we read them. */
	virt_store_release(&cq->db.va->driver_index, cpu_to_le32(cq->cons));
out:
	spin_unlock_irqrestore(&cq->lock, flags);
	return n;
}

int vrdma_req_notify_cq(struct ib_cq *ibcq, enum ib_cq_notify_flags flags)
{
	struct vrdma_cq *cq = to_vcq(ibcq);
	unsigned long irqflags;
	u32 arm = (flags & IB_CQ_SOLICITED_MASK) == IB_CQ_SOLICITED ?
		  VIRTIO_RDMA_CQ_ARM_SOLICITED : VIRTIO_RDMA_CQ_ARM_NEXT;
	int ret = 0;

	if (cq->user)
		return -EINVAL;
	spin_lock_irqsave(&cq->lock, irqflags);
	WRITE_ONCE(cq->db.va->arm_flags, cpu_to_le32(arm));
	cq->arm_seq++;
	/* Release: arm_flags is written before the device can see the new arm_sequence. */
	virt_store_release(&cq->db.va->arm_sequence, cpu_to_le32(cq->arm_seq));
	/*
	 * Full barrier between the arm store and the device_index load: a CQE racing with the
	 * arm either fires the event or is seen here (spec 12.3).
	 */
	virt_mb();
	if ((flags & IB_CQ_REPORT_MISSED_EVENTS) && !cq->resizing &&
	    le32_to_cpu(READ_ONCE(cq->db.va->device_index)) != cq->cons)
		ret = 1;
	spin_unlock_irqrestore(&cq->lock, irqflags);
	return ret;
}

/* ---- software completions of a reset device ----------------------------------------------- */

/*
 * Writes a flush CQE as the device would have, and fires the arm. Only after the reset: the
 * device no longer writes this ring.
 */
void vrdma_cq_sw_complete(struct vrdma_cq *cq, u64 wr_id, u32 qpn, u8 opcode)
{
	struct vrdma_dev *dev = to_vdev(cq->ibcq.device);
	struct virtio_rdma_doorbell *db = cq->db.va;
	struct virtio_rdma_cqe *cqe;
	unsigned long flags;
	bool notify = false;
	u32 prod;

	spin_lock_irqsave(&cq->lock, flags);
	prod = le32_to_cpu(READ_ONCE(db->device_index));
	if (prod - cq->cons < cq->depth) {
		cqe = cq->ring.va + ((size_t)(prod & (cq->depth - 1)) << VRDMA_CQE_SHIFT);
		memset(cqe, 0, sizeof(*cqe));
		cqe->wr_id = cpu_to_le64(wr_id);
		cqe->status = IB_WC_WR_FLUSH_ERR;
		cqe->opcode = opcode;
		cqe->qp_num = cpu_to_le32(qpn);
		/* Release: the CQE is complete before the index that counts it. */
		virt_store_release(&db->device_index, cpu_to_le32(prod + 1));
	}
	if (READ_ONCE(db->arm_sequence) != READ_ONCE(db->notified_sequence)) {
		WRITE_ONCE(db->notified_sequence, READ_ONCE(db->arm_sequence));
		cq->sw_notify = true;
		notify = true;
	}
	spin_unlock_irqrestore(&cq->lock, flags);
	if (notify)
		schedule_work(&dev->sw_comp_work);
}

/* Runs the completion handlers software completions asked for (not from the poster's stack). */
void vrdma_sw_comp_work(struct work_struct *work)
{
	struct vrdma_dev *dev = container_of(work, struct vrdma_dev, sw_comp_work);
	struct vrdma_cq *cq;
	unsigned long index;
	bool notify;

	xa_lock_irq(&dev->cq_xa);
	xa_for_each(&dev->cq_xa, index, cq) {
		spin_lock(&cq->lock);
		notify = cq->sw_notify;
		cq->sw_notify = false;
		spin_unlock(&cq->lock);
		if (notify && cq->ibcq.comp_handler)
			cq->ibcq.comp_handler(&cq->ibcq, cq->ibcq.cq_context);
	}
	xa_unlock_irq(&dev->cq_xa);
}
