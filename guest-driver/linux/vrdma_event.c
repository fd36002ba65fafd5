// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The event virtqueue (spec section 13): 16-byte device-writable buffers, one event each.
 * Completion events go to the CQ's comp_handler, affiliated events to the QP's, SRQ's or CQ's
 * event_handler, port events to ib_core. Objects are found by the handle the device minted; an
 * unknown handle is ignored (the object may have been destroyed while the event was in flight),
 * an impossible one is logged. Handlers run under the xarray lock, so once a destroy has erased
 * an object no handler of it runs any more.
 */
#include <linux/slab.h>

#include "vrdma.h"

static int vrdma_event_post(struct vrdma_dev *dev, struct virtio_rdma_event *buf)
{
	struct scatterlist sg;

	sg_init_one(&sg, buf, sizeof(*buf));
	return virtqueue_add_inbuf(dev->vqs[VIRTIO_RDMA_VQ_EVENT], &sg, 1, buf, GFP_ATOMIC);
}

int vrdma_event_init(struct vrdma_dev *dev)
{
	unsigned int i, n;
	int ret;

	n = min_t(unsigned int, VRDMA_EVENT_BUFS,
		  virtqueue_get_vring_size(dev->vqs[VIRTIO_RDMA_VQ_EVENT]));
	dev->event_bufs = kcalloc(VRDMA_EVENT_BUFS, sizeof(*dev->event_bufs), GFP_KERNEL);
	if (!dev->event_bufs)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		ret = vrdma_event_post(dev, &dev->event_bufs[i]);
		if (ret) {
			vrdma_event_cleanup(dev);
			return ret;
		}
	}
	return 0;
}

/* After the device reset: take back the buffers and free them. */
void vrdma_event_cleanup(struct vrdma_dev *dev)
{
	while (virtqueue_detach_unused_buf(dev->vqs[VIRTIO_RDMA_VQ_EVENT]))
		;
	kfree(dev->event_bufs);
	dev->event_bufs = NULL;
}

static bool vrdma_may_dispatch(struct vrdma_dev *dev)
{
	return test_bit(VRDMA_F_REGISTERED, &dev->flags);
}

/* A port state change, from the event queue or the config space. */
void vrdma_port_event(struct vrdma_dev *dev, u8 new_state)
{
	struct ib_event ev = { .device = &dev->ib, .element.port_num = 1 };
	u8 old = xchg(&dev->port_state, new_state);

	if (old == new_state || !vrdma_may_dispatch(dev))
		return;
	ev.event = new_state == VIRTIO_RDMA_PORT_ACTIVE ? IB_EVENT_PORT_ACTIVE : IB_EVENT_PORT_ERR;
	ib_dispatch_event(&ev);
}

static void vrdma_cq_event(struct vrdma_dev *dev, u32 handle, bool error)
{
	struct ib_event ev = { .device = &dev->ib, .event = IB_EVENT_CQ_ERR };
	struct vrdma_cq *cq;
	unsigned long flags;

	xa_lock_irqsave(&dev->cq_xa, flags);
	cq = xa_load(&dev->cq_xa, handle);
	if (cq) {
		if (!error) {
			if (cq->ibcq.comp_handler)
				cq->ibcq.comp_handler(&cq->ibcq, cq->ibcq.cq_context);
		} else if (cq->ibcq.event_handler) {
			ev.element.cq = &cq->ibcq;
			cq->ibcq.event_handler(&ev, cq->ibcq.cq_context);
		}
	}
	xa_unlock_irqrestore(&dev->cq_xa, flags);
}

static void vrdma_qp_event(struct vrdma_dev *dev, u32 qpn, enum ib_event_type type)
{
	struct ib_event ev = { .device = &dev->ib, .event = type };
	struct vrdma_qp *qp;
	unsigned long flags;

	xa_lock_irqsave(&dev->qp_xa, flags);
	qp = xa_load(&dev->qp_xa, qpn);
	if (qp) {
		if (type == IB_EVENT_QP_FATAL || type == IB_EVENT_QP_REQ_ERR ||
		    type == IB_EVENT_QP_ACCESS_ERR)
			WRITE_ONCE(qp->state, IB_QPS_ERR);
		if (qp->ibqp.event_handler) {
			ev.element.qp = &qp->ibqp;
			qp->ibqp.event_handler(&ev, qp->ibqp.qp_context);
		}
	}
	xa_unlock_irqrestore(&dev->qp_xa, flags);
}

static void vrdma_srq_event(struct vrdma_dev *dev, u32 handle)
{
	struct ib_event ev = { .device = &dev->ib, .event = IB_EVENT_SRQ_LIMIT_REACHED };
	struct vrdma_srq *srq;
	unsigned long flags;

	xa_lock_irqsave(&dev->srq_xa, flags);
	srq = xa_load(&dev->srq_xa, handle);
	if (srq && srq->ibsrq.event_handler) {
		ev.element.srq = &srq->ibsrq;
		srq->ibsrq.event_handler(&ev, srq->ibsrq.srq_context);
	}
	xa_unlock_irqrestore(&dev->srq_xa, flags);
}

static void vrdma_handle_event(struct vrdma_dev *dev, const struct virtio_rdma_event *e)
{
	u32 type = le32_to_cpu(e->type);
	u32 handle = le32_to_cpu(e->handle);
	struct ib_event ev = { .device = &dev->ib, .element.port_num = 1 };

	switch (type) {
	case VIRTIO_RDMA_EV_CQ_COMPLETION:
		vrdma_cq_event(dev, handle, false);
		return;
	case VIRTIO_RDMA_EV_CQ_ERR:
		vrdma_cq_event(dev, handle, true);
		return;
	case VIRTIO_RDMA_EV_QP_FATAL:
		vrdma_qp_event(dev, handle, IB_EVENT_QP_FATAL);
		return;
	case VIRTIO_RDMA_EV_QP_REQ_ERR:
		vrdma_qp_event(dev, handle, IB_EVENT_QP_REQ_ERR);
		return;
	case VIRTIO_RDMA_EV_QP_ACCESS_ERR:
		vrdma_qp_event(dev, handle, IB_EVENT_QP_ACCESS_ERR);
		return;
	case VIRTIO_RDMA_EV_COMM_EST:
		vrdma_qp_event(dev, handle, IB_EVENT_COMM_EST);
		return;
	case VIRTIO_RDMA_EV_SQ_DRAINED:
		vrdma_qp_event(dev, handle, IB_EVENT_SQ_DRAINED);
		return;
	case VIRTIO_RDMA_EV_QP_LAST_WQE_REACHED:
		vrdma_qp_event(dev, handle, IB_EVENT_QP_LAST_WQE_REACHED);
		return;
	case VIRTIO_RDMA_EV_SRQ_LIMIT_REACHED:
		vrdma_srq_event(dev, handle);
		return;
	case VIRTIO_RDMA_EV_PORT_ACTIVE:
	case VIRTIO_RDMA_EV_PORT_ERR:
		if (handle != 1)
			break;
		vrdma_port_event(dev, type == VIRTIO_RDMA_EV_PORT_ACTIVE ?
				 VIRTIO_RDMA_PORT_ACTIVE : VIRTIO_RDMA_PORT_DOWN);
		return;
	case VIRTIO_RDMA_EV_GID_CHANGE:
		if (handle != 1)
			break;
		if (vrdma_may_dispatch(dev)) {
			ev.event = IB_EVENT_GID_CHANGE;
			ib_dispatch_event(&ev);
		}
		return;
	default:
		break;
	}
	dev_warn_ratelimited(&dev->vdev->dev, "ignoring event type %u handle %u\n", type, handle);
}

void vrdma_event_done(struct virtqueue *vq)
{
	struct vrdma_dev *dev = vq->vdev->priv;
	struct virtio_rdma_event *buf, e;
	unsigned long flags;
	unsigned int len;
	bool repost = false;

	spin_lock_irqsave(&dev->event_lock, flags);
	do {
		virtqueue_disable_cb(vq);
		while ((buf = virtqueue_get_buf(vq, &len))) {
			/* One copy: the device cannot change what was checked. */
			memcpy(&e, buf, sizeof(e));
			if (len >= sizeof(e))
				vrdma_handle_event(dev, &e);
			else if (len)
				dev_warn_ratelimited(&dev->vdev->dev, "event of %u bytes\n", len);
			memset(buf, 0, sizeof(*buf));
			if (!vrdma_event_post(dev, buf))
				repost = true;
		}
	} while (!virtqueue_enable_cb(vq));
	if (repost)
		virtqueue_kick(vq);
	spin_unlock_irqrestore(&dev->event_lock, flags);
}
