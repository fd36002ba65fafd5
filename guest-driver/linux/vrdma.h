/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * virtio_rdma.ko: the guest driver of the vrdma paravirtual RDMA device (virtio device 42).
 *
 * This header is the driver's only internal interface: every structure shared between files and
 * every function one file offers the others, grouped under the file that defines it. The device
 * contract is abi/virtio_rdma.h, the contract with the rdma-core provider is
 * virtio_rdma_uverbs.h; both are included unchanged. The adapters to the kernel version's APIs
 * are in vrdma_compat.h, included at the end.
 */
#ifndef VRDMA_H
#define VRDMA_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/spinlock.h>
#include <linux/virtio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <rdma/ib_umem.h>
#include <rdma/ib_verbs.h>

#include "virtio_rdma.h"
#include "virtio_rdma_uverbs.h"

#define VRDMA_DRV_NAME		"virtio_rdma"
#define VRDMA_EVENT_BUFS	64	/* 16-byte buffers kept on the event queue */
#define VRDMA_MAX_VQS		1024	/* QEMU's VIRTIO_QUEUE_MAX */

/* Bits of vrdma_dev.flags. */
enum vrdma_dev_flag {
	VRDMA_F_DEAD,		/* the device stopped answering or asked for a reset */
	VRDMA_F_RESET_DONE,	/* ...and the driver has reset it: it touches no guest memory */
	VRDMA_F_REGISTERED,	/* the ib_device is registered */
};

/* Where a process notifies one doorbell queue (only with one queue per notify page). */
struct vrdma_notify_page {
	phys_addr_t page;	/* page-aligned physical address */
	u32 offset;		/* byte offset of the notify register in that page */
};

/* The device. */
struct vrdma_dev {
	struct ib_device ib;
	struct virtio_device *vdev;
	struct pci_dev *pdev;			/* the virtio-pci function */

	/* config space, read at probe (port_state also on config changes) */
	struct virtio_rdma_config cfg;
	u8 port_state;				/* VIRTIO_RDMA_PORT_* */
	struct virtio_rdma_rsp_query_device attr;
	struct virtio_rdma_rsp_query_port port;
	u16 pkey;

	/* virtqueues: 0 control, 1 event, 2.. doorbells */
	unsigned int nvqs;
	struct virtqueue **vqs;
	spinlock_t ctrl_lock;			/* control queue and ctrl_inflight */
	struct list_head ctrl_inflight;		/* commands the device holds */
	wait_queue_head_t ctrl_wait;		/* room on the control queue */
	spinlock_t event_lock;			/* event queue */
	struct virtio_rdma_event *event_bufs;	/* VRDMA_EVENT_BUFS of them */

	/* user-space notification (page-per-vq) */
	bool user_notify;
	struct vrdma_notify_page *notify;	/* per queue; only doorbell queues filled */
	bool dma_identity;			/* DMA addresses are guest-physical */

	/* objects the device names in events and CQEs */
	struct xarray cq_xa;			/* cq_handle -> vrdma_cq */
	struct xarray qp_xa;			/* qpn -> vrdma_qp */
	struct xarray srq_xa;			/* srq_handle -> vrdma_srq */

	unsigned long flags;			/* enum vrdma_dev_flag */
	struct work_struct reset_work;		/* dead: break and reset the device */
	struct work_struct config_work;		/* config change: re-read port_state */
	struct work_struct sw_comp_work;	/* dead: run handlers of software completions */

	/* the paired NIC (rtnl protects netdev) */
	struct net_device *netdev;
	bool netdev_follow;			/* the notifier acts on events */
	struct notifier_block netdev_nb;
	struct work_struct netdev_work;
};

static inline struct vrdma_dev *to_vdev(struct ib_device *ib)
{
	return container_of(ib, struct vrdma_dev, ib);
}

static inline bool vrdma_dead(struct vrdma_dev *dev)
{
	return test_bit(VRDMA_F_DEAD, &dev->flags);
}

/* Memory the device reads or writes: a kernel allocation or pinned user pages. */
struct vrdma_ring {
	size_t len;			/* bytes the device uses (from offset 0) */
	size_t size;			/* bytes (whole pages) */
	void *va;			/* kernel rings: vmap of pages */
	struct page **pages;		/* kernel rings */
	unsigned int npages;		/* kernel rings: entries of pages */
	struct ib_umem *umem;		/* user rings */
};

struct vrdma_db {
	struct virtio_rdma_doorbell *va;	/* kernel records only */
	phys_addr_t pa;
	struct ib_umem *umem;			/* user records: the pinned page */
};

/* A page list being built for one command (abi: struct virtio_rdma_page_list). */
struct vrdma_page_list {
	u32 npages;
	bool indirect;
	__le64 *l1;			/* direct array, or first level of an indirect list */
	__le64 **l2;			/* indirect: the second-level pages */
	u32 nl2;
};

struct vrdma_ucontext {
	struct ib_ucontext ibuc;
	u32 ctx_handle;
};

struct vrdma_pd {
	struct ib_pd ibpd;
	u32 handle;
	u32 ctx_handle;
};

struct vrdma_mr {
	struct ib_mr ibmr;
	struct ib_umem *umem;
};

struct vrdma_ah {
	struct ib_ah ibah;
	u32 handle;
};

struct vrdma_cq {
	struct ib_cq ibcq;
	u32 handle;
	u32 depth;
	bool user;
	spinlock_t lock;		/* poll, arm, software completions */
	struct mutex resize_mutex;
	bool resizing;			/* the device owns the ring: no polling */
	struct vrdma_ring ring;
	struct vrdma_db db;
	u32 cons;			/* kernel CQs: next CQE to poll */
	u32 arm_seq;			/* kernel CQs: last arm_sequence written */
	bool sw_notify;			/* dead: a software completion wants the handler */
};

/* One work queue of a QP or an SRQ. */
struct vrdma_wq {
	spinlock_t lock;		/* kernel queues: posting */
	u32 depth;
	u32 wqe_shift;
	u32 max_sge;
	u32 max_inline;
	u32 head;			/* kernel queues: next slot to post */
	struct vrdma_ring ring;
	struct vrdma_db db;
};

struct vrdma_qp {
	struct ib_qp ibqp;
	u32 qpn;
	u32 dbq;			/* doorbell virtqueue */
	bool user;
	bool has_rq;			/* false with an SRQ */
	bool sig_all;			/* IB_SIGNAL_ALL_WR */
	u8 state;			/* enum ib_qp_state, as last set */
	struct vrdma_wq sq;
	struct vrdma_wq rq;
};

struct vrdma_srq {
	struct ib_srq ibsrq;
	u32 handle;
	u32 dbq;
	bool user;
	struct vrdma_wq rq;
};

static inline struct vrdma_ucontext *to_vuctx(struct ib_ucontext *c)
{
	return container_of(c, struct vrdma_ucontext, ibuc);
}

static inline struct vrdma_pd *to_vpd(struct ib_pd *p)
{
	return container_of(p, struct vrdma_pd, ibpd);
}

static inline struct vrdma_mr *to_vmr(struct ib_mr *m)
{
	return container_of(m, struct vrdma_mr, ibmr);
}

static inline struct vrdma_ah *to_vah(struct ib_ah *a)
{
	return container_of(a, struct vrdma_ah, ibah);
}

static inline struct vrdma_cq *to_vcq(struct ib_cq *c)
{
	return container_of(c, struct vrdma_cq, ibcq);
}

static inline struct vrdma_qp *to_vqp(struct ib_qp *q)
{
	return container_of(q, struct vrdma_qp, ibqp);
}

static inline struct vrdma_srq *to_vsrq(struct ib_srq *s)
{
	return container_of(s, struct vrdma_srq, ibsrq);
}

/* The context handle objects of this udata belong to (0: the kernel). */
u32 vrdma_ctx_handle(struct ib_udata *udata);

/* vrdma_main.c */
extern unsigned int vrdma_cmd_timeout_ms;
void vrdma_mark_dead(struct vrdma_dev *dev, const char *why);
void vrdma_wait_reset(struct vrdma_dev *dev);
bool vrdma_dbq_valid(struct vrdma_dev *dev, u32 queue);
void vrdma_kick(struct vrdma_dev *dev, u32 queue);

/* vrdma_cmd.c */
int vrdma_exec(struct vrdma_dev *dev, u32 opcode, const void *req, size_t req_len,
	       void *rsp, size_t rsp_len, bool can_sleep);
int vrdma_exec_handle(struct vrdma_dev *dev, u32 opcode, u32 handle, bool can_sleep);
void vrdma_ctrl_done(struct virtqueue *vq);
void vrdma_ctrl_abort_all(struct vrdma_dev *dev);
void vrdma_ctrl_cleanup(struct vrdma_dev *dev);

/* vrdma_event.c */
int vrdma_event_init(struct vrdma_dev *dev);
void vrdma_event_done(struct virtqueue *vq);
void vrdma_event_cleanup(struct vrdma_dev *dev);
void vrdma_port_event(struct vrdma_dev *dev, u8 new_state);

/* vrdma_netdev.c */
int vrdma_netdev_init(struct vrdma_dev *dev);
void vrdma_netdev_start(struct vrdma_dev *dev);
void vrdma_netdev_cleanup(struct vrdma_dev *dev);

/* vrdma_mem.c */
int vrdma_ring_alloc(struct vrdma_ring *ring, size_t bytes);
int vrdma_ring_pin(struct vrdma_dev *dev, struct vrdma_ring *ring, u64 addr, size_t bytes);
void vrdma_ring_free(struct vrdma_ring *ring);
int vrdma_ring_page_list(struct vrdma_ring *ring, struct vrdma_page_list *pl);
int vrdma_db_alloc(struct vrdma_db *db);
int vrdma_db_pin(struct vrdma_dev *dev, struct vrdma_db *db, u64 addr);
void vrdma_db_free(struct vrdma_db *db);
int vrdma_umem_page_list(struct ib_umem *umem, u64 iova, u64 length, struct vrdma_page_list *pl);
void vrdma_pl_desc(const struct vrdma_page_list *pl, struct virtio_rdma_page_list *desc);
void vrdma_pl_free(struct vrdma_page_list *pl);
int vrdma_mem_init(void);
void vrdma_mem_exit(void);

/* vrdma_verbs.c */
void vrdma_ib_setup(struct vrdma_dev *dev);
int vrdma_register(struct vrdma_dev *dev);
void vrdma_unregister(struct vrdma_dev *dev);
void vrdma_fill_av(struct virtio_rdma_av *av, const struct rdma_ah_attr *ah);

/* vrdma_cq.c */
int vrdma_create_cq(struct ib_cq *ibcq, const struct ib_cq_init_attr *attr,
		    struct ib_udata *udata);
int vrdma_resize_cq(struct ib_cq *ibcq, int cqe, struct ib_udata *udata);
int vrdma_destroy_cq(struct ib_cq *ibcq, struct ib_udata *udata);
int vrdma_poll_cq(struct ib_cq *ibcq, int num_entries, struct ib_wc *wc);
int vrdma_req_notify_cq(struct ib_cq *ibcq, enum ib_cq_notify_flags flags);
void vrdma_cq_sw_complete(struct vrdma_cq *cq, u64 wr_id, u32 qpn, u8 opcode);
void vrdma_sw_comp_work(struct work_struct *work);

/* vrdma_qp.c */
int vrdma_create_qp(struct ib_qp *ibqp, struct ib_qp_init_attr *init, struct ib_udata *udata);
int vrdma_modify_qp(struct ib_qp *ibqp, struct ib_qp_attr *attr, int mask,
		    struct ib_udata *udata);
int vrdma_query_qp(struct ib_qp *ibqp, struct ib_qp_attr *attr, int mask,
		   struct ib_qp_init_attr *init);
int vrdma_destroy_qp(struct ib_qp *ibqp, struct ib_udata *udata);
int vrdma_create_srq(struct ib_srq *ibsrq, struct ib_srq_init_attr *init,
		     struct ib_udata *udata);
int vrdma_modify_srq(struct ib_srq *ibsrq, struct ib_srq_attr *attr,
		     enum ib_srq_attr_mask mask, struct ib_udata *udata);
int vrdma_query_srq(struct ib_srq *ibsrq, struct ib_srq_attr *attr);
int vrdma_destroy_srq(struct ib_srq *ibsrq, struct ib_udata *udata);
void vrdma_wq_destroy(struct vrdma_wq *wq);
void vrdma_fill_notify(struct vrdma_dev *dev, u32 queue, struct virtio_rdma_notify *n);

/* vrdma_post.c */
int vrdma_post_send(struct ib_qp *ibqp, const struct ib_send_wr *wr,
		    const struct ib_send_wr **bad_wr);
int vrdma_post_recv(struct ib_qp *ibqp, const struct ib_recv_wr *wr,
		    const struct ib_recv_wr **bad_wr);
int vrdma_post_srq_recv(struct ib_srq *ibsrq, const struct ib_recv_wr *wr,
			const struct ib_recv_wr **bad_wr);

#include "vrdma_compat.h"

#endif /* VRDMA_H */
