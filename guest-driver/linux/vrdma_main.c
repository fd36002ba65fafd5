// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * virtio_rdma.ko: probe and remove, virtqueues, the notify pages of the parent PCI function, and
 * the device's life cycle (alive -> dead -> reset). Verbs live in vrdma_verbs.c and the object
 * files; this file knows the transport.
 *
 * Life cycle:
 *   probe:  config (abi_version) -> PCI capabilities -> virtqueues -> event buffers ->
 *           DRIVER_OK -> QUERY_DEVICE/PORT/PKEY -> paired netdev -> ib_register_device
 *   dead:   a command timed out or the device set NEEDS_RESET: every command fails with -EIO,
 *           IB_EVENT_DEVICE_FATAL is dispatched, and a work item breaks and resets the device so
 *           it stops touching guest memory; destroy paths then free memory without commands.
 *   remove: netdev notifier off -> ib_unregister_device (destroys every object) -> virtio
 *           reset -> reclaim buffers -> delete virtqueues.
 */
#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "vrdma.h"

unsigned int vrdma_cmd_timeout_ms = 30000;
module_param_named(cmd_timeout_ms, vrdma_cmd_timeout_ms, uint, 0644);
MODULE_PARM_DESC(cmd_timeout_ms,
		 "Milliseconds a control command may take before the device is declared dead (default 30000)");

bool vrdma_dbq_valid(struct vrdma_dev *dev, u32 queue)
{
	return queue >= VIRTIO_RDMA_VQ_DOORBELL_BASE && queue < dev->nvqs;
}

/* Notify a doorbell queue; its suppression flags are ignored (only need_kick counts). */
void vrdma_kick(struct vrdma_dev *dev, u32 queue)
{
	virtqueue_notify(dev->vqs[queue]);
}

static void vrdma_reset_work(struct work_struct *work)
{
	struct vrdma_dev *dev = container_of(work, struct vrdma_dev, reset_work);

	/* No callbacks and no new buffers from here on, then no device access to guest memory. */
	virtio_break_device(dev->vdev);
	virtio_synchronize_cbs(dev->vdev);
	virtio_reset_device(dev->vdev);
	set_bit(VRDMA_F_RESET_DONE, &dev->flags);
	vrdma_ctrl_abort_all(dev);
	dev_info(&dev->vdev->dev, "device reset after failure; rebind the driver to use it again\n");
}

/**
 * vrdma_mark_dead - stop using a device that no longer answers
 * @dev: the device
 * @why: for the log
 *
 * Any context. Idempotent.
 */
void vrdma_mark_dead(struct vrdma_dev *dev, const char *why)
{
	struct ib_event ev = {
		.device = &dev->ib,
		.event = IB_EVENT_DEVICE_FATAL,
		.element.port_num = 1,
	};
	unsigned long flags;
	bool was;

	spin_lock_irqsave(&dev->ctrl_lock, flags);
	was = test_and_set_bit(VRDMA_F_DEAD, &dev->flags);
	spin_unlock_irqrestore(&dev->ctrl_lock, flags);
	if (was)
		return;
	dev_err(&dev->vdev->dev, "device failed (%s): all further commands fail with EIO\n", why);
	vrdma_ctrl_abort_all(dev);
	if (test_bit(VRDMA_F_REGISTERED, &dev->flags))
		ib_dispatch_event(&ev);
	schedule_work(&dev->reset_work);
}

/* A dead device is reset before memory it used is freed. Sleeps. */
void vrdma_wait_reset(struct vrdma_dev *dev)
{
	if (vrdma_dead(dev))
		flush_work(&dev->reset_work);
}

static void vrdma_config_work(struct work_struct *work)
{
	struct vrdma_dev *dev = container_of(work, struct vrdma_dev, config_work);
	struct virtio_device *vdev = dev->vdev;
	u8 state;

	if (vdev->config->get_status(vdev) & VIRTIO_CONFIG_S_NEEDS_RESET) {
		vrdma_mark_dead(dev, "device set NEEDS_RESET");
		return;
	}
	state = virtio_cread8(vdev, offsetof(struct virtio_rdma_config, port_state));
	vrdma_port_event(dev, state);
}

static void vrdma_config_changed(struct virtio_device *vdev)
{
	struct vrdma_dev *dev = vdev->priv;

	/* Called with the config spinlock held: the work re-reads the config. */
	schedule_work(&dev->config_work);
}

/* ---- PCI capabilities: queue count and notify pages ------------------------------------- */

struct vrdma_pci_cap {
	u8 bar;
	u32 offset;
	u32 length;
	int pos;
};

static int vrdma_find_cap(struct pci_dev *pdev, u8 type, struct vrdma_pci_cap *cap)
{
	int pos;

	for (pos = pci_find_capability(pdev, PCI_CAP_ID_VNDR); pos > 0;
	     pos = pci_find_next_capability(pdev, pos, PCI_CAP_ID_VNDR)) {
		u8 cfg_type, bar;

		pci_read_config_byte(pdev, pos + offsetof(struct virtio_pci_cap, cfg_type),
				     &cfg_type);
		pci_read_config_byte(pdev, pos + offsetof(struct virtio_pci_cap, bar), &bar);
		if (cfg_type != type || bar >= PCI_STD_NUM_BARS ||
		    !(pci_resource_flags(pdev, bar) & IORESOURCE_MEM))
			continue;
		cap->bar = bar;
		cap->pos = pos;
		pci_read_config_dword(pdev, pos + offsetof(struct virtio_pci_cap, offset),
				      &cap->offset);
		pci_read_config_dword(pdev, pos + offsetof(struct virtio_pci_cap, length),
				      &cap->length);
		if ((u64)cap->offset + cap->length > pci_resource_len(pdev, bar))
			return -EINVAL;
		return 0;
	}
	return -ENOENT;
}

/*
 * A doorbell queue's notify register may be mapped into a process only if its page lies inside
 * the notify region and holds no other queue's register.
 */
static void vrdma_setup_notify(struct vrdma_dev *dev, const struct vrdma_pci_cap *ncap, u32 mult,
			       const u16 *offs)
{
	struct pci_dev *pdev = dev->pdev;
	u64 region = pci_resource_start(pdev, ncap->bar) + ncap->offset;
	u64 region_end = region + ncap->length;
	unsigned int q, other;

	dev->user_notify = false;
	if (mult < PAGE_SIZE) {
		dev_warn(&dev->vdev->dev,
			 "notify_off_multiplier %u < page size: user-space verbs disabled, set page-per-vq=on on the vhost-user-rdma-pci device\n",
			 mult);
		return;
	}
	for (q = VIRTIO_RDMA_VQ_DOORBELL_BASE; q < dev->nvqs; q++) {
		u64 addr = region + (u64)offs[q] * mult;
		u64 page = addr & PAGE_MASK;

		if (page < region || page + PAGE_SIZE > region_end || addr + 2 > region_end) {
			dev_warn(&dev->vdev->dev,
				 "queue %u: notify page outside the notify region: user-space verbs disabled\n",
				 q);
			return;
		}
		for (other = 0; other < dev->nvqs; other++) {
			if (other != q && offs[other] == offs[q]) {
				dev_warn(&dev->vdev->dev,
					 "queues %u and %u share a notify page: user-space verbs disabled\n",
					 q, other);
				return;
			}
		}
		dev->notify[q].page = page;
		dev->notify[q].offset = addr - page;
	}
	dev->user_notify = true;
}

static int vrdma_pci_setup(struct vrdma_dev *dev)
{
	struct pci_dev *pdev = dev->pdev;
	struct virtio_pci_common_cfg __iomem *cc;
	struct vrdma_pci_cap ccap, ncap;
	u16 *offs = NULL;
	u32 mult;
	unsigned int q;
	int ret;

	ret = vrdma_find_cap(pdev, VIRTIO_PCI_CAP_COMMON_CFG, &ccap);
	if (ret || ccap.length < sizeof(*cc)) {
		dev_err(&dev->vdev->dev, "no usable virtio common configuration capability\n");
		return -ENODEV;
	}
	ret = vrdma_find_cap(pdev, VIRTIO_PCI_CAP_NOTIFY_CFG, &ncap);
	if (ret) {
		dev_err(&dev->vdev->dev, "no usable virtio notify capability\n");
		return -ENODEV;
	}
	pci_read_config_dword(pdev, ncap.pos + offsetof(struct virtio_pci_notify_cap,
							notify_off_multiplier), &mult);

	cc = pci_iomap_range(pdev, ccap.bar, ccap.offset, sizeof(*cc));
	if (!cc)
		return -ENOMEM;
	dev->nvqs = ioread16(&cc->num_queues);
	if (dev->nvqs < VIRTIO_RDMA_VQ_DOORBELL_BASE + 1 || dev->nvqs > VRDMA_MAX_VQS) {
		dev_err(&dev->vdev->dev, "%u virtqueues: need 3 to %u\n", dev->nvqs, VRDMA_MAX_VQS);
		ret = -ENODEV;
		goto out;
	}
	offs = kcalloc(dev->nvqs, sizeof(*offs), GFP_KERNEL);
	dev->notify = kcalloc(dev->nvqs, sizeof(*dev->notify), GFP_KERNEL);
	if (!offs || !dev->notify) {
		ret = -ENOMEM;
		goto out;
	}
	/* Probe context, before the queues exist: nobody else selects a queue now. */
	for (q = 0; q < dev->nvqs; q++) {
		iowrite16(q, &cc->queue_select);
		offs[q] = ioread16(&cc->queue_notify_off);
	}
	vrdma_setup_notify(dev, &ncap, mult, offs);
	ret = 0;
out:
	kfree(offs);
	pci_iounmap(pdev, cc);
	return ret;
}

/* The DMA MR's IOVA is the guest-physical address: kernel verbs need 1:1 DMA mappings. */
static void vrdma_check_dma(struct vrdma_dev *dev)
{
	struct device *dma = &dev->pdev->dev;
	struct page *page = alloc_page(GFP_KERNEL);
	dma_addr_t addr;

	dev->dma_identity = false;
	if (!page)
		return;
	addr = dma_map_page(dma, page, 0, PAGE_SIZE, DMA_BIDIRECTIONAL);
	if (!dma_mapping_error(dma, addr)) {
		dev->dma_identity = addr == page_to_phys(page);
		dma_unmap_page(dma, addr, PAGE_SIZE, DMA_BIDIRECTIONAL);
	}
	__free_page(page);
	if (!dev->dma_identity)
		dev_warn(&dev->vdev->dev,
			 "DMA addresses are not guest-physical (IOMMU?): kernel verbs disabled\n");
}

/* ---- virtqueues ----------------------------------------------------------------------------- */

static int vrdma_init_vqs(struct vrdma_dev *dev)
{
	vq_callback_t **callbacks;
	const char **names;
	unsigned int i;
	int ret = -ENOMEM;

	dev->vqs = kcalloc(dev->nvqs, sizeof(*dev->vqs), GFP_KERNEL);
	callbacks = kcalloc(dev->nvqs, sizeof(*callbacks), GFP_KERNEL);
	names = kcalloc(dev->nvqs, sizeof(*names), GFP_KERNEL);
	if (!dev->vqs || !callbacks || !names)
		goto out;
	/* Doorbell queues: no callback (so no MSI-X vector) and never a buffer. */
	for (i = 0; i < dev->nvqs; i++)
		names[i] = "doorbell";
	names[VIRTIO_RDMA_VQ_CONTROL] = "control";
	names[VIRTIO_RDMA_VQ_EVENT] = "event";
	callbacks[VIRTIO_RDMA_VQ_CONTROL] = vrdma_ctrl_done;
	callbacks[VIRTIO_RDMA_VQ_EVENT] = vrdma_event_done;
	ret = vrdma_find_vqs(dev->vdev, dev->nvqs, dev->vqs, callbacks, names);
out:
	kfree(callbacks);
	kfree(names);
	return ret;
}

static int vrdma_query_device(struct vrdma_dev *dev)
{
	struct virtio_rdma_cmd_query_port qport = { .port = cpu_to_le32(1) };
	struct virtio_rdma_cmd_query_pkey qpkey = { .port = cpu_to_le32(1) };
	struct virtio_rdma_rsp_query_pkey pkey;
	int ret;

	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_QUERY_DEVICE, NULL, 0, &dev->attr,
			 sizeof(dev->attr), true);
	if (ret)
		return ret;
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_QUERY_PORT, &qport, sizeof(qport), &dev->port,
			 sizeof(dev->port), true);
	if (ret)
		return ret;
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_QUERY_PKEY, &qpkey, sizeof(qpkey), &pkey,
			 sizeof(pkey), true);
	if (ret)
		return ret;
	dev->pkey = le16_to_cpu(pkey.pkey);
	if (dev->attr.phys_port_cnt != 1 || !le32_to_cpu(dev->port.gid_tbl_len) ||
	    !le16_to_cpu(dev->port.pkey_tbl_len)) {
		dev_err(&dev->vdev->dev, "unexpected QUERY_DEVICE/QUERY_PORT answer\n");
		return -EIO;
	}
	return 0;
}

static int vrdma_probe(struct virtio_device *vdev)
{
	struct vrdma_dev *dev;
	int ret;

	if (!vdev->dev.parent || !dev_is_pci(vdev->dev.parent)) {
		dev_err(&vdev->dev, "vrdma needs the virtio-pci transport\n");
		return -ENODEV;
	}
	dev = ib_alloc_device(vrdma_dev, ib);
	if (!dev)
		return -ENOMEM;
	vdev->priv = dev;
	dev->vdev = vdev;
	dev->pdev = to_pci_dev(vdev->dev.parent);
	spin_lock_init(&dev->ctrl_lock);
	spin_lock_init(&dev->event_lock);
	INIT_LIST_HEAD(&dev->ctrl_inflight);
	init_waitqueue_head(&dev->ctrl_wait);
	xa_init_flags(&dev->cq_xa, XA_FLAGS_LOCK_IRQ);
	xa_init_flags(&dev->qp_xa, XA_FLAGS_LOCK_IRQ);
	xa_init_flags(&dev->srq_xa, XA_FLAGS_LOCK_IRQ);
	INIT_WORK(&dev->reset_work, vrdma_reset_work);
	INIT_WORK(&dev->config_work, vrdma_config_work);
	INIT_WORK(&dev->sw_comp_work, vrdma_sw_comp_work);

	virtio_cread_bytes(vdev, 0, &dev->cfg, sizeof(dev->cfg));
	if (le32_to_cpu(dev->cfg.abi_version) != VIRTIO_RDMA_ABI_VERSION ||
	    le32_to_cpu(dev->cfg.phys_port_cnt) != 1) {
		dev_err(&vdev->dev, "device ABI version %u with %u ports: this driver implements version %u with 1 port\n",
			le32_to_cpu(dev->cfg.abi_version), le32_to_cpu(dev->cfg.phys_port_cnt),
			VIRTIO_RDMA_ABI_VERSION);
		ret = -ENODEV;
		goto err_free;
	}
	dev->port_state = dev->cfg.port_state;

	ret = vrdma_pci_setup(dev);
	if (ret)
		goto err_free;
	ret = vrdma_init_vqs(dev);
	if (ret)
		goto err_free;
	ret = vrdma_event_init(dev);
	if (ret)
		goto err_vqs;
	virtio_device_ready(vdev);
	virtqueue_kick(dev->vqs[VIRTIO_RDMA_VQ_EVENT]);

	ret = vrdma_query_device(dev);
	if (ret)
		goto err_reset;
	vrdma_check_dma(dev);
	vrdma_ib_setup(dev);
	ret = vrdma_netdev_init(dev);
	if (ret)
		goto err_reset;
	ret = vrdma_register(dev);
	if (ret)
		goto err_netdev;
	vrdma_netdev_start(dev);
	dev_info(&vdev->dev, "%s: %u virtqueues, user-space verbs %s, paired with %s\n",
		 dev_name(&dev->ib.dev), dev->nvqs, dev->user_notify ? "on" : "off",
		 dev->netdev ? netdev_name(dev->netdev) : "no netdev yet");
	return 0;

err_netdev:
	vrdma_netdev_cleanup(dev);
err_reset:
	cancel_work_sync(&dev->config_work);
	flush_work(&dev->reset_work);
	virtio_reset_device(vdev);
	vrdma_ctrl_cleanup(dev);
	vrdma_event_cleanup(dev);
err_vqs:
	vdev->config->del_vqs(vdev);
err_free:
	kfree(dev->vqs);
	kfree(dev->notify);
	ib_dealloc_device(&dev->ib);
	vdev->priv = NULL;
	return ret;
}

static void vrdma_remove(struct virtio_device *vdev)
{
	struct vrdma_dev *dev = vdev->priv;

	cancel_work_sync(&dev->config_work);
	vrdma_netdev_cleanup(dev);
	/* Destroys every user and kernel object through the normal destroy paths. */
	vrdma_unregister(dev);
	flush_work(&dev->reset_work);
	virtio_reset_device(vdev);
	set_bit(VRDMA_F_RESET_DONE, &dev->flags);
	cancel_work_sync(&dev->sw_comp_work);
	vrdma_ctrl_cleanup(dev);
	vrdma_event_cleanup(dev);
	vdev->config->del_vqs(vdev);
	WARN_ON(!xa_empty(&dev->cq_xa) || !xa_empty(&dev->qp_xa) || !xa_empty(&dev->srq_xa));
	xa_destroy(&dev->cq_xa);
	xa_destroy(&dev->qp_xa);
	xa_destroy(&dev->srq_xa);
	kfree(dev->vqs);
	kfree(dev->notify);
	vdev->priv = NULL;
	ib_dealloc_device(&dev->ib);
}

static const struct virtio_device_id vrdma_id_table[] = {
	{ VIRTIO_ID_RDMA, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, vrdma_id_table);

static struct virtio_driver vrdma_driver = {
	.driver.name = VRDMA_DRV_NAME,
	.driver.owner = THIS_MODULE,
	.id_table = vrdma_id_table,
	.probe = vrdma_probe,
	.remove = vrdma_remove,
	.config_changed = vrdma_config_changed,
};

static int __init vrdma_init(void)
{
	int ret;

	ret = vrdma_mem_init();
	if (ret)
		return ret;
	ret = register_virtio_driver(&vrdma_driver);
	if (ret)
		vrdma_mem_exit();
	return ret;
}

static void __exit vrdma_exit(void)
{
	unregister_virtio_driver(&vrdma_driver);
	vrdma_mem_exit();
}

module_init(vrdma_init);
module_exit(vrdma_exit);

MODULE_DESCRIPTION("virtio-rdma (vrdma) paravirtual RDMA device driver");
MODULE_LICENSE("Dual BSD/GPL");
