/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The kernel APIs that differ between the kernels the driver is built for (Debian bookworm's
 * 6.1, the test bed's, and 6.12 LTS): every LINUX_VERSION_CODE test of the driver is here.
 * Included at the end of vrdma.h, so the adapters can call the driver's own functions.
 */
#ifndef VRDMA_COMPAT_H
#define VRDMA_COMPAT_H

#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <linux/virtio_config.h>
#include <rdma/uverbs_ioctl.h>

/*
 * Building against kernel @major.@minor or later. (The constant on the left keeps checkpatch's
 * CONSTANT_COMPARISON, which takes LINUX_VERSION_CODE for a constant, quiet.)
 */
#define VRDMA_KERNEL_SINCE(major, minor) (KERNEL_VERSION(major, minor, 0) <= LINUX_VERSION_CODE)

/* 6.3 made vma->vm_flags read-only: changes go through vm_flags_clear(). */
static inline void vrdma_vm_flags_clear(struct vm_area_struct *vma, vm_flags_t flags)
{
#if VRDMA_KERNEL_SINCE(6, 3)
	vm_flags_clear(vma, flags);
#else
	vma->vm_flags &= ~flags;
#endif
}

/*
 * virtio_find_vqs() without an IRQ affinity. 6.11 takes one struct virtqueue_info per queue
 * instead of parallel callback and name arrays.
 */
static inline int vrdma_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
				 struct virtqueue *vqs[], vq_callback_t *callbacks[],
				 const char * const names[])
{
#if VRDMA_KERNEL_SINCE(6, 11)
	struct virtqueue_info *info;
	unsigned int i;
	int ret;

	info = kcalloc(nvqs, sizeof(*info), GFP_KERNEL);
	if (!info)
		return -ENOMEM;
	for (i = 0; i < nvqs; i++) {
		info[i].name = names[i];
		info[i].callback = callbacks[i];
	}
	ret = virtio_find_vqs(vdev, nvqs, vqs, info, NULL);
	kfree(info);
	return ret;
#else
	return virtio_find_vqs(vdev, nvqs, vqs, callbacks, names, NULL);
#endif
}

/*
 * The create_cq op. 6.11 passes the caller's uverbs_attr_bundle (NULL for a kernel CQ) instead
 * of its udata; vrdma_create_cq() takes the udata.
 */
#if VRDMA_KERNEL_SINCE(6, 11)
static inline int vrdma_create_cq_op(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
				     struct uverbs_attr_bundle *attrs)
{
	return vrdma_create_cq(ibcq, attr, attrs ? &attrs->driver_udata : NULL);
}
#else
static inline int vrdma_create_cq_op(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
				     struct ib_udata *udata)
{
	return vrdma_create_cq(ibcq, attr, udata);
}
#endif

#endif /* VRDMA_COMPAT_H */
