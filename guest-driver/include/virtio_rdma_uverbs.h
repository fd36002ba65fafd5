/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause */
/*
 * virtio-rdma: what the guest kernel driver (virtio_rdma.ko) and the rdma-core provider
 * (libvirtio_rdma) exchange through uverbs driver data. The device never sees these structs; what
 * the device sees is abi/virtio_rdma.h, which both sides also include.
 *
 * Kernel bypass: the provider allocates every ring and doorbell record in its own memory and
 * hands their user addresses to the kernel at create time; the kernel pins them, builds the page
 * lists and sends the create command. From then on the provider posts, polls and arms on that
 * memory alone, and notifies a doorbell queue by a 16-bit store to a page it mapped from the
 * uverbs file (only when the doorbell record's need_kick says so).
 *
 * Memory rules for every user address below (the kernel checks them and fails with EINVAL):
 *  - a ring starts on a page boundary and is exactly depth << wqe_shift bytes (depth * 64 for a
 *    CQ), rounded up to whole pages;
 *  - a doorbell record is 128 bytes, 64-byte aligned, within one page; several may share a page;
 *  - depth is a power of two; the kernel checks it against the device's limits.
 * All fields are in host (guest CPU) byte order; the structs have no implicit padding.
 */
#ifndef VIRTIO_RDMA_UVERBS_H
#define VIRTIO_RDMA_UVERBS_H

#include <linux/types.h>

/* Bumped on any incompatible change of this file; the provider refuses any other value. */
#define VIRTIO_RDMA_UVERBS_ABI_VERSION	1

/*
 * mmap() offsets on the uverbs command fd. A notify page is mapped write-only, length one page,
 * at offset (VIRTIO_RDMA_MMAP_NOTIFY + doorbell_queue) << page_shift. The kernel maps it only if
 * that page holds no other queue's notify address (QEMU: page-per-vq=on), and never for the
 * control or event queue.
 */
#define VIRTIO_RDMA_MMAP_NOTIFY		0x10000

/* alloc_ucontext: no request data. */
struct virtio_rdma_alloc_ucontext_resp {
	__u32 abi_version;		/* VIRTIO_RDMA_UVERBS_ABI_VERSION */
	__u32 device_abi_version;	/* the device's config abi_version */
	__u32 page_shift;		/* log2 of the guest page size */
	__u32 max_inline_data;		/* from the device config */
};

/*
 * How to notify the doorbell queue of a QP or SRQ: store the 16-bit value doorbell_queue at byte
 * notify_offset of the page mapped at mmap offset notify_mmap_offset.
 */
struct virtio_rdma_notify {
	__aligned_u64 notify_mmap_offset; /* mmap() offset (already shifted) */
	__u32 notify_offset;		/* byte offset of the notify address in that page */
	__u32 doorbell_queue;		/* the virtqueue index (the value to store) */
};

/* create_cq and resize_cq request. */
struct virtio_rdma_create_cq_cmd {
	__aligned_u64 ring_addr;	/* depth * 64 bytes of struct virtio_rdma_cqe */
	__aligned_u64 doorbell_addr;	/* struct virtio_rdma_doorbell */
	__u32 depth;			/* power of two, >= the cqe count asked for */
	__u32 reserved;			/* zero */
};

struct virtio_rdma_create_cq_resp {
	__u32 cq_handle;		/* the device's handle (diagnostics) */
	__u32 depth;			/* as requested */
};

/* A work queue's ring, as the provider laid it out. */
struct virtio_rdma_user_wq {
	__aligned_u64 ring_addr;	/* depth << wqe_shift bytes */
	__aligned_u64 doorbell_addr;	/* struct virtio_rdma_doorbell */
	__u32 depth;			/* power of two */
	__u32 wqe_shift;		/* 6..12; the slot holds the header plus max_sge SGEs or
					 * max_inline bytes */
};

/* create_qp request. With an SRQ, rq is all zero. */
struct virtio_rdma_create_qp_cmd {
	struct virtio_rdma_user_wq sq;
	struct virtio_rdma_user_wq rq;
};

struct virtio_rdma_create_qp_resp {
	struct virtio_rdma_notify notify; /* for both SQ and RQ */
	__u32 qpn;
	__u32 max_send_sge;		/* what the QP got (>= what was asked) */
	__u32 max_recv_sge;
	__u32 max_inline_data;
};

/* create_srq request. */
struct virtio_rdma_create_srq_cmd {
	struct virtio_rdma_user_wq rq;
};

struct virtio_rdma_create_srq_resp {
	struct virtio_rdma_notify notify;
	__u32 srq_handle;		/* the device's handle (diagnostics) */
	__u32 max_sge;
};

/* create_ah response: the handle a UD send WQE carries in its ah field. */
struct virtio_rdma_create_ah_resp {
	__u32 ah_handle;
	__u32 reserved;
};

/* The layouts are ABI: a change here is a new VIRTIO_RDMA_UVERBS_ABI_VERSION. */
_Static_assert(sizeof(struct virtio_rdma_alloc_ucontext_resp) == 16, "alloc_ucontext_resp");
_Static_assert(sizeof(struct virtio_rdma_notify) == 16, "notify");
_Static_assert(sizeof(struct virtio_rdma_create_cq_cmd) == 24, "create_cq_cmd");
_Static_assert(sizeof(struct virtio_rdma_create_cq_resp) == 8, "create_cq_resp");
_Static_assert(sizeof(struct virtio_rdma_user_wq) == 24, "user_wq");
_Static_assert(sizeof(struct virtio_rdma_create_qp_cmd) == 48, "create_qp_cmd");
_Static_assert(sizeof(struct virtio_rdma_create_qp_resp) == 32, "create_qp_resp");
_Static_assert(sizeof(struct virtio_rdma_create_srq_cmd) == 24, "create_srq_cmd");
_Static_assert(sizeof(struct virtio_rdma_create_srq_resp) == 24, "create_srq_resp");
_Static_assert(sizeof(struct virtio_rdma_create_ah_resp) == 8, "create_ah_resp");

#endif /* VIRTIO_RDMA_UVERBS_H */
