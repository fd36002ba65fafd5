/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * virtio_rdma provider: private types and the ring helpers shared by the verbs files.
 *
 * The rings and doorbell records are ordinary process memory that the kernel pins at create time
 * (guest-driver/include/virtio_rdma_uverbs.h); the device is another CPU looking at that memory,
 * so the orderings below are C11 acquire/release plus one full fence, as docs/virtio-rdma.md §12
 * prescribes. Nothing here makes a system call.
 */
#ifndef VRDMA_H
#define VRDMA_H

#include <endian.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <infiniband/driver.h>
#include <ccan/list.h>
#include <util/mmio.h>
#include <util/util.h>

#include "virtio_rdma.h"
#include "virtio_rdma_uverbs.h"

#define VRDMA_MIN_WQE_SHIFT	6	/* work queue slots of 64 bytes ... */
#define VRDMA_MAX_WQE_SHIFT	12	/* ... to 4096: a slot never crosses a page */

struct vrdma_device {
	struct verbs_device ibv_dev;
};

/* A page cut into 128-byte doorbell records; bit n of free set = record n is unused. */
struct vrdma_db_page {
	struct list_node entry;
	void *addr;
	uint64_t free;
};

/* A notify page mapped from the uverbs fd, shared by every queue that names it. */
struct vrdma_notify_map {
	struct list_node entry;
	uint64_t mmap_offset;
	void *addr;
};

struct vrdma_context {
	struct verbs_context ibv_ctx;
	size_t page_size;
	/* Device limits, read once at open: what create_* checks before asking the kernel. */
	uint32_t max_qp_wr;
	uint32_t max_sge;
	uint32_t max_cqe;
	uint32_t max_srq_wr;
	uint32_t max_srq_sge;
	uint32_t max_inline_data;
	pthread_mutex_t lock;		/* db_pages, notify_maps */
	struct list_head db_pages;
	unsigned int db_per_page;
	struct list_head notify_maps;
};

struct vrdma_cq {
	struct ibv_cq ibv_cq;
	pthread_spinlock_t lock;	/* poll, arm and resize */
	struct virtio_rdma_cqe *ring;
	size_t ring_size;
	struct virtio_rdma_doorbell *db;
	uint32_t depth;
	uint32_t cons;			/* CQEs polled: the doorbell's driver_index */
	uint32_t arm_seq;		/* last arm_sequence written */
};

/* One send, receive or shared receive queue: a ring of 2^wqe_shift-byte slots. */
struct vrdma_wq {
	pthread_spinlock_t lock;	/* posting */
	void *ring;
	size_t ring_size;
	struct virtio_rdma_doorbell *db;
	uint32_t depth;
	uint32_t wqe_shift;
	uint32_t max_sge;
	uint32_t max_inline;		/* send queues only */
	uint32_t prod;			/* WQEs posted: the doorbell's driver_index */
	void *notify;			/* where to store the doorbell queue number */
	uint16_t notify_queue;
};

struct vrdma_qp {
	struct ibv_qp ibv_qp;
	struct vrdma_wq sq;
	struct vrdma_wq rq;		/* unused (ring NULL) with an SRQ */
	bool has_srq;
};

struct vrdma_srq {
	struct ibv_srq ibv_srq;
	struct vrdma_wq rq;
};

struct vrdma_ah {
	struct ibv_ah ibv_ah;
	uint32_t handle;		/* the device's AH handle, for UD send WQEs */
};

static inline struct vrdma_context *to_vctx(struct ibv_context *ibctx)
{
	return container_of(ibctx, struct vrdma_context, ibv_ctx.context);
}

static inline struct vrdma_device *to_vdev(struct ibv_device *ibdev)
{
	return container_of(ibdev, struct vrdma_device, ibv_dev.device);
}

static inline struct vrdma_cq *to_vcq(struct ibv_cq *ibcq)
{
	return container_of(ibcq, struct vrdma_cq, ibv_cq);
}

static inline struct vrdma_qp *to_vqp(struct ibv_qp *ibqp)
{
	return container_of(ibqp, struct vrdma_qp, ibv_qp);
}

static inline struct vrdma_srq *to_vsrq(struct ibv_srq *ibsrq)
{
	return container_of(ibsrq, struct vrdma_srq, ibv_srq);
}

static inline struct vrdma_ah *to_vah(struct ibv_ah *ibah)
{
	return container_of(ibah, struct vrdma_ah, ibv_ah);
}

/*
 * Doorbell record fields are single aligned 32-bit words that the device reads and writes
 * concurrently (spec §11.1), hence atomics. Little-endian conversion is a no-op on the hosts
 * this runs on but keeps the ABI explicit.
 */
static inline uint32_t vrdma_load_acquire(const __le32 *p)
{
	return le32toh(atomic_load_explicit((_Atomic(uint32_t) *)p, memory_order_acquire));
}

static inline uint32_t vrdma_load_relaxed(const __le32 *p)
{
	return le32toh(atomic_load_explicit((_Atomic(uint32_t) *)p, memory_order_relaxed));
}

static inline void vrdma_store_release(__le32 *p, uint32_t v)
{
	atomic_store_explicit((_Atomic(uint32_t) *)p, htole32(v), memory_order_release);
}

static inline void vrdma_store_relaxed(__le32 *p, uint32_t v)
{
	atomic_store_explicit((_Atomic(uint32_t) *)p, htole32(v), memory_order_relaxed);
}

static inline void *vrdma_wq_slot(struct vrdma_wq *wq, uint32_t index)
{
	return (uint8_t *)wq->ring + ((size_t)(index & (wq->depth - 1)) << wq->wqe_shift);
}

/*
 * Publish the WQEs written up to wq->prod (spec §12.1): release-store driver_index, full
 * barrier (our store before the device's need_kick load, its store before our load), then
 * notify only if the device asked for it. The notify is one 16-bit store to the mapped page.
 */
static inline void vrdma_wq_publish(struct vrdma_wq *wq)
{
	vrdma_store_release(&wq->db->driver_index, wq->prod);
	atomic_thread_fence(memory_order_seq_cst);
	if (vrdma_load_relaxed(&wq->db->need_kick))
		mmio_write16_le(wq->notify, htole16(wq->notify_queue));
}

/* Rings, doorbell records and notify pages of a context (verbs.c). */
int vrdma_alloc_ring(struct vrdma_context *ctx, size_t size, void **ring, size_t *ring_size);
void vrdma_free_ring(void *ring, size_t ring_size);
struct virtio_rdma_doorbell *vrdma_alloc_db(struct vrdma_context *ctx);
void vrdma_free_db(struct vrdma_context *ctx, struct virtio_rdma_doorbell *db);
void *vrdma_get_notify(struct vrdma_context *ctx, const struct virtio_rdma_notify *n);

/* cq.c */
struct ibv_cq *vrdma_create_cq(struct ibv_context *ibctx, int cqe,
			       struct ibv_comp_channel *channel, int comp_vector);
int vrdma_resize_cq(struct ibv_cq *ibcq, int cqe);
int vrdma_destroy_cq(struct ibv_cq *ibcq);
int vrdma_poll_cq(struct ibv_cq *ibcq, int num_entries, struct ibv_wc *wc);
int vrdma_req_notify_cq(struct ibv_cq *ibcq, int solicited_only);

/* qp.c */
struct ibv_qp *vrdma_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr);
int vrdma_query_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *attr, int attr_mask,
		   struct ibv_qp_init_attr *init_attr);
int vrdma_modify_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *attr, int attr_mask);
int vrdma_destroy_qp(struct ibv_qp *ibqp);
int vrdma_post_send(struct ibv_qp *ibqp, struct ibv_send_wr *wr, struct ibv_send_wr **bad_wr);
int vrdma_post_recv(struct ibv_qp *ibqp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad_wr);

/* srq.c */
struct ibv_srq *vrdma_create_srq(struct ibv_pd *pd, struct ibv_srq_init_attr *attr);
int vrdma_modify_srq(struct ibv_srq *ibsrq, struct ibv_srq_attr *attr, int attr_mask);
int vrdma_query_srq(struct ibv_srq *ibsrq, struct ibv_srq_attr *attr);
int vrdma_destroy_srq(struct ibv_srq *ibsrq);
int vrdma_post_srq_recv(struct ibv_srq *ibsrq, struct ibv_recv_wr *wr,
			struct ibv_recv_wr **bad_wr);

/* Work queue helpers of qp.c, shared with srq.c. */
int vrdma_wq_depth(uint32_t wanted, uint32_t max, uint32_t *depth);
uint32_t vrdma_recv_wqe_shift(uint32_t max_sge);
int vrdma_wq_alloc(struct vrdma_context *ctx, struct vrdma_wq *wq, uint32_t depth,
		   uint32_t shift, struct virtio_rdma_user_wq *desc);
void vrdma_wq_free(struct vrdma_context *ctx, struct vrdma_wq *wq);
int vrdma_post_recv_wq(struct vrdma_wq *wq, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad_wr);

#endif /* VRDMA_H */
