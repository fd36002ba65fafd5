/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause */
/*
 * virtio-rdma: every byte the guest driver and the device exchange.
 *
 * This header is the contract. The device (vhost-user-rdma), the Linux driver and the rdma-core
 * provider all include it unchanged; docs/virtio-rdma.md is the prose form of it. All fields are
 * little-endian, naturally aligned, with explicit padding; every struct's size is asserted below.
 * Direction marks: R = device reads (driver writes), W = device writes (driver reads).
 *
 * Virtio device ID 42 is reserved for "RDMA device" in the virtio specification (v1.2 onwards),
 * which has no device section for it yet. This header defines vrdma's use of it; it is
 * provisional until a device section is accepted by the virtio TC.
 */
#ifndef VIRTIO_RDMA_H
#define VIRTIO_RDMA_H

#include <linux/types.h>

#define VIRTIO_ID_RDMA			42
#define VIRTIO_RDMA_ABI_VERSION		1

/* ---------------------------------------------------------------------------------------------
 * Virtqueues. Not one per QP or CQ: work and completion rings live in guest memory (see the
 * command set), so the queue count does not limit how many QPs a device has.
 */
#define VIRTIO_RDMA_VQ_CONTROL		0	/* commands: R request, W response */
#define VIRTIO_RDMA_VQ_EVENT		1	/* W: completion and async events */
#define VIRTIO_RDMA_VQ_DOORBELL_BASE	2	/* 2..n-1: doorbell queues; a kick on one means
						 * "look at the rings assigned to it" (create
						 * responses name the queue) and carries no buffers */

/* ---------------------------------------------------------------------------------------------
 * Config space (R for the driver, W by the device only). 128 bytes; the driver reads it once at
 * probe and again on a config-change interrupt (port state).
 */
#define VIRTIO_RDMA_PORT_DOWN		1	/* values of port_state: IB port states */
#define VIRTIO_RDMA_PORT_ACTIVE		4

struct virtio_rdma_config {
	__le32 abi_version;		/* 0x00 VIRTIO_RDMA_ABI_VERSION */
	__le32 phys_port_cnt;		/* 0x04 ports; this version has exactly 1 */
	__le64 node_guid;		/* 0x08 never zero */
	__le64 sys_image_guid;		/* 0x10 */
	__le64 max_mr_size;		/* 0x18 bytes */
	__le64 page_size_cap;		/* 0x20 bit n set: pages of 2^n bytes accepted in MR page lists */
	__le32 max_qp;			/* 0x28 */
	__le32 max_qp_wr;		/* 0x2c work requests per send or receive queue */
	__le32 max_sge;			/* 0x30 scatter/gather entries per work request */
	__le32 max_cq;			/* 0x34 */
	__le32 max_cqe;			/* 0x38 entries per CQ */
	__le32 max_mr;			/* 0x3c */
	__le32 max_pd;			/* 0x40 */
	__le32 max_srq;			/* 0x44 */
	__le32 max_srq_wr;		/* 0x48 */
	__le32 max_ah;			/* 0x4c */
	__le32 max_qp_rd_atom;		/* 0x50 outstanding RDMA READ/atomic as responder */
	__le32 max_inline_data;		/* 0x54 bytes of inline send data per WQE */
	__u8   mac[6];			/* 0x58 MAC of the paired virtio-net NIC (RoCE), zero if none */
	__u8   port_state;		/* 0x5e VIRTIO_RDMA_PORT_* */
	__u8   active_mtu;		/* 0x5f IB MTU enum: 1=256 .. 5=4096 */
	__le16 gid_tbl_len;		/* 0x60 */
	__le16 pkey_tbl_len;		/* 0x62 */
	__le32 reserved0;		/* 0x64 */
	__u8   reserved[24];		/* 0x68 zero; room for later fields */
};

/* ---------------------------------------------------------------------------------------------
 * Control queue. A command is one descriptor chain: device-readable buffers holding
 * virtio_rdma_cmd_hdr + the opcode's request, then device-writable buffers receiving
 * virtio_rdma_resp_hdr + the opcode's response. The device writes the response (when status is
 * OK) and sets the used length to the bytes it wrote. Commands complete in order.
 */
enum virtio_rdma_opcode {
	VIRTIO_RDMA_CMD_QUERY_DEVICE	= 1,
	VIRTIO_RDMA_CMD_QUERY_PORT	= 2,
	VIRTIO_RDMA_CMD_QUERY_PKEY	= 3,
	VIRTIO_RDMA_CMD_ADD_GID		= 4,
	VIRTIO_RDMA_CMD_DEL_GID		= 5,
	VIRTIO_RDMA_CMD_CREATE_UCONTEXT	= 6,
	VIRTIO_RDMA_CMD_DESTROY_UCONTEXT = 7,
	VIRTIO_RDMA_CMD_ALLOC_PD	= 8,
	VIRTIO_RDMA_CMD_DEALLOC_PD	= 9,
	VIRTIO_RDMA_CMD_REG_MR		= 10,
	VIRTIO_RDMA_CMD_DEREG_MR	= 11,
	VIRTIO_RDMA_CMD_CREATE_CQ	= 12,
	VIRTIO_RDMA_CMD_RESIZE_CQ	= 13,
	VIRTIO_RDMA_CMD_DESTROY_CQ	= 14,
	VIRTIO_RDMA_CMD_CREATE_QP	= 15,
	VIRTIO_RDMA_CMD_MODIFY_QP	= 16,
	VIRTIO_RDMA_CMD_QUERY_QP	= 17,
	VIRTIO_RDMA_CMD_DESTROY_QP	= 18,
	VIRTIO_RDMA_CMD_CREATE_SRQ	= 19,
	VIRTIO_RDMA_CMD_MODIFY_SRQ	= 20,
	VIRTIO_RDMA_CMD_QUERY_SRQ	= 21,
	VIRTIO_RDMA_CMD_DESTROY_SRQ	= 22,
	VIRTIO_RDMA_CMD_CREATE_AH	= 23,
	VIRTIO_RDMA_CMD_DESTROY_AH	= 24,
};

/* Command status (virtio_rdma_resp_hdr.status). The driver maps each to one errno. */
enum virtio_rdma_status {
	VIRTIO_RDMA_S_OK		= 0,
	VIRTIO_RDMA_S_UNSUPPORTED	= 1,	/* unknown or unimplemented opcode: EOPNOTSUPP */
	VIRTIO_RDMA_S_INVALID		= 2,	/* malformed command or argument: EINVAL */
	VIRTIO_RDMA_S_NO_RESOURCES	= 3,	/* a quota or table is full: ENOMEM */
	VIRTIO_RDMA_S_BAD_HANDLE	= 4,	/* no such object (or not this context's): ENOENT */
	VIRTIO_RDMA_S_BUSY		= 5,	/* object still in use: EBUSY */
	VIRTIO_RDMA_S_BAD_STATE		= 6,	/* illegal state transition: EINVAL */
	VIRTIO_RDMA_S_ACCESS		= 7,	/* access flags or range not allowed: EACCES */
	VIRTIO_RDMA_S_PROVIDER		= 8,	/* the host provider failed: EIO */
	VIRTIO_RDMA_S_FAULT		= 9,	/* a guest address is outside guest RAM: EFAULT */
};

struct virtio_rdma_cmd_hdr {
	__le32 opcode;			/* R enum virtio_rdma_opcode */
	__le32 reserved;		/* R zero */
};

struct virtio_rdma_resp_hdr {
	__le32 status;			/* W enum virtio_rdma_status */
	__le32 reserved;		/* W zero */
};

/* Device capability flags (virtio_rdma_rsp_query_device.device_cap_flags). */
#define VIRTIO_RDMA_DEVICE_RC_RNR_NAK_GEN	(1u << 0)
#define VIRTIO_RDMA_DEVICE_SRQ_RESIZE		(1u << 1)
#define VIRTIO_RDMA_DEVICE_SHUTDOWN_PORT	(1u << 2)

/* Atomic capability (virtio_rdma_rsp_query_device.atomic_cap): IB values. */
#define VIRTIO_RDMA_ATOMIC_NONE		0
#define VIRTIO_RDMA_ATOMIC_HCA		1	/* atomic between QPs of this device */
#define VIRTIO_RDMA_ATOMIC_GLOB		2	/* atomic with CPU and all devices */

/* QUERY_DEVICE: no request body. */
struct virtio_rdma_rsp_query_device {
	__le64 fw_ver;			/* W */
	__le64 node_guid;		/* W */
	__le64 sys_image_guid;		/* W */
	__le64 max_mr_size;		/* W */
	__le64 page_size_cap;		/* W */
	__le32 vendor_id;		/* W */
	__le32 vendor_part_id;		/* W */
	__le32 hw_ver;			/* W */
	__le32 max_qp;			/* W */
	__le32 max_qp_wr;		/* W */
	__le32 device_cap_flags;	/* W VIRTIO_RDMA_DEVICE_* */
	__le32 max_send_sge;		/* W */
	__le32 max_recv_sge;		/* W */
	__le32 max_sge_rd;		/* W */
	__le32 max_cq;			/* W */
	__le32 max_cqe;			/* W */
	__le32 max_mr;			/* W */
	__le32 max_pd;			/* W */
	__le32 max_qp_rd_atom;		/* W */
	__le32 max_qp_init_rd_atom;	/* W */
	__le32 max_srq;			/* W */
	__le32 max_srq_wr;		/* W */
	__le32 max_srq_sge;		/* W */
	__le32 max_ah;			/* W */
	__le32 max_inline_data;		/* W */
	__le32 atomic_cap;		/* W VIRTIO_RDMA_ATOMIC_* */
	__le16 max_pkeys;		/* W */
	__u8   local_ca_ack_delay;	/* W */
	__u8   phys_port_cnt;		/* W */
	__le32 reserved[2];		/* W zero */
};

/* Port capability flags: IB port_cap_flags values the device reports. */
#define VIRTIO_RDMA_PORT_CAP_CM_SUP		(1u << 16)
#define VIRTIO_RDMA_PORT_CAP_IP_BASED_GIDS	(1u << 26)

/* Link layer (virtio_rdma_rsp_query_port.link_layer). */
#define VIRTIO_RDMA_LINK_LAYER_ETHERNET	2

/* QUERY_PORT: which port. */
struct virtio_rdma_cmd_query_port {
	__le32 port;			/* R 1-based port number */
	__le32 reserved;		/* R zero */
};

struct virtio_rdma_rsp_query_port {
	__le32 port_cap_flags;		/* W VIRTIO_RDMA_PORT_CAP_* */
	__le32 max_msg_sz;		/* W bytes */
	__le32 gid_tbl_len;		/* W */
	__le16 pkey_tbl_len;		/* W */
	__u8   state;			/* W VIRTIO_RDMA_PORT_* */
	__u8   max_mtu;			/* W IB MTU enum */
	__u8   active_mtu;		/* W IB MTU enum */
	__u8   phys_state;		/* W 5 = LinkUp, 3 = Disabled */
	__u8   active_width;		/* W IB width enum */
	__u8   active_speed;		/* W IB speed enum */
	__u8   link_layer;		/* W VIRTIO_RDMA_LINK_LAYER_* */
	__u8   reserved[11];		/* W zero */
};


/* ---------------------------------------------------------------------------------------------
 * Guest memory descriptions.
 *
 * A page list is an array of __le64 guest-physical page addresses, each aligned to the page size
 * (4096 in this version), the array itself contiguous in guest RAM and 8-byte aligned. With
 * VIRTIO_RDMA_PL_INDIRECT the array instead lists pages that each hold 512 such entries (the last
 * one partly used), so one indirect entry covers 2 MiB and a 1 GiB region needs a 4 KiB first-level array.
 * The device reads a page list once, at the command, and keeps what it learnt; the driver may free
 * the list when the command completes.
 */
#define VIRTIO_RDMA_PAGE_SHIFT		12
#define VIRTIO_RDMA_PAGE_SIZE		(1u << VIRTIO_RDMA_PAGE_SHIFT)
#define VIRTIO_RDMA_PL_INDIRECT		(1u << 0)	/* page_list_flags: two-level list */

struct virtio_rdma_page_list {
	__le64 gpa;			/* R guest-physical address of the (first-level) array */
	__le32 npages;			/* R pages described (entries in the second level if indirect) */
	__le32 flags;			/* R VIRTIO_RDMA_PL_* */
};

/* ---------------------------------------------------------------------------------------------
 * Doorbell records: one per send queue, receive queue, shared receive queue and completion queue,
 * 128 bytes, 64-byte aligned, in guest RAM (the driver chooses where; many may share a page). The
 * first cache line is written only by the driver, the second only by the device, so neither side
 * takes the other's line for writing. Indices are free-running 32-bit counters; a ring slot is
 * index & (depth - 1).
 *
 * Work queues (SQ, RQ, SRQ): driver_index is the producer (WQEs posted), device_index the consumer
 * (WQEs the device has taken; their slots may be reused). After publishing WQEs (a release store of
 * driver_index), the driver issues a full barrier and reads need_kick; if it is non-zero it kicks
 * the doorbell virtqueue the create response named. The device clears need_kick while it polls and
 * sets it, then re-reads driver_index after a full barrier, before it sleeps, so no post waits for a
 * kick that is not sent.
 *
 * Completion queues: device_index is the producer (CQEs written; each CQE is complete before the
 * release store that counts it), driver_index the consumer (CQEs polled; slots the device may
 * reuse). To arm, the driver writes arm_flags and then increments arm_sequence (release). The CQ is
 * armed while arm_sequence != notified_sequence; the device fires one completion event for the
 * first CQE that matches the arm (any CQE for NEXT; a solicited or error CQE for SOLICITED), copying
 * arm_sequence to notified_sequence. If a CQE would overwrite an unpolled one, the device drops it,
 * sets VIRTIO_RDMA_CQ_OVERFLOW in cq_status and sends a CQ error event: the CQ is then in error.
 */
#define VIRTIO_RDMA_DB_SIZE		128
#define VIRTIO_RDMA_CQ_ARM_NEXT		1	/* arm_flags: event on the next completion */
#define VIRTIO_RDMA_CQ_ARM_SOLICITED	2	/* arm_flags: event on a solicited or error one */
#define VIRTIO_RDMA_CQ_OVERFLOW		(1u << 0)	/* cq_status: a completion was lost */

struct virtio_rdma_doorbell {
	/* driver-written cache line */
	__le32 driver_index;		/* R producer (work queues) or consumer (CQ) */
	__le32 arm_sequence;		/* R CQ: incremented to arm */
	__le32 arm_flags;		/* R CQ: VIRTIO_RDMA_CQ_ARM_* for the current arm */
	__le32 reserved0[13];		/* R zero */
	/* device-written cache line */
	__le32 device_index;		/* W consumer (work queues) or producer (CQ) */
	__le32 need_kick;		/* W work queues: non-zero = kick after posting */
	__le32 notified_sequence;	/* W CQ: arm_sequence of the last event sent */
	__le32 cq_status;		/* W CQ: VIRTIO_RDMA_CQ_* */
	__le32 reserved1[12];		/* W zero */
};

/* ---------------------------------------------------------------------------------------------
 * Rings. A ring is depth slots of 2^wqe_shift (work queues) or 64 (CQ) bytes, laid out in order
 * over the pages of its page list; a slot never crosses a page (slot sizes are powers of two of at
 * most a page). depth is a power of two. Work queue entries start with a fixed header followed by
 * num_sge scatter/gather entries, or by inline data.
 */
struct virtio_rdma_sge {
	__le64 addr;			/* R IOVA within the MR named by lkey */
	__le32 length;			/* R bytes */
	__le32 lkey;			/* R */
};

/* Send work request opcodes: the ibv_wr_opcode values. */
#define VIRTIO_RDMA_WR_RDMA_WRITE		0
#define VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM	1
#define VIRTIO_RDMA_WR_SEND			2
#define VIRTIO_RDMA_WR_SEND_WITH_IMM		3
#define VIRTIO_RDMA_WR_RDMA_READ		4
#define VIRTIO_RDMA_WR_ATOMIC_CMP_AND_SWP	5
#define VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD	6

/* Send work request flags: the ibv_send_flags values. */
#define VIRTIO_RDMA_SEND_FENCE		(1u << 0)	/* wait for earlier READ/atomic to complete */
#define VIRTIO_RDMA_SEND_SIGNALED	(1u << 1)	/* write a CQE on success */
#define VIRTIO_RDMA_SEND_SOLICITED	(1u << 2)	/* the responder's CQE is solicited */
#define VIRTIO_RDMA_SEND_INLINE		(1u << 3)	/* data follows the header, not SGEs */

struct virtio_rdma_send_wqe {
	__le64 wr_id;			/* R returned in the CQE */
	__u8   opcode;			/* R VIRTIO_RDMA_WR_* */
	__u8   reserved;		/* R zero */
	__le16 send_flags;		/* R VIRTIO_RDMA_SEND_* */
	__le32 num_sge;			/* R SGEs after the header (0 with INLINE) */
	__le32 imm_data;		/* R immediate data, as the wire carries it (big-endian) */
	__le32 inline_length;		/* R bytes of inline data after the header (INLINE) */
	__le64 remote_addr;		/* R RDMA and atomics: responder IOVA (8-aligned for atomics) */
	__le64 compare_add;		/* R CMP_AND_SWP: compare; FETCH_AND_ADD: addend */
	__le64 swap;			/* R CMP_AND_SWP: swap */
	__le32 rkey;			/* R RDMA and atomics */
	__le32 ah;			/* R UD: address handle */
	__le32 remote_qpn;		/* R UD: destination QP */
	__le32 remote_qkey;		/* R UD: Q_Key (high bit set: use the QP's own) */
};

struct virtio_rdma_recv_wqe {
	__le64 wr_id;			/* R returned in the CQE */
	__le32 num_sge;			/* R SGEs after the header */
	__le32 reserved;		/* R zero */
};

/* Completion status: the ibv_wc_status values. */
#define VIRTIO_RDMA_WC_SUCCESS		0
#define VIRTIO_RDMA_WC_LOC_LEN_ERR	1
#define VIRTIO_RDMA_WC_LOC_QP_OP_ERR	2
#define VIRTIO_RDMA_WC_LOC_PROT_ERR	4
#define VIRTIO_RDMA_WC_WR_FLUSH_ERR	5
#define VIRTIO_RDMA_WC_BAD_RESP_ERR	7
#define VIRTIO_RDMA_WC_LOC_ACCESS_ERR	8
#define VIRTIO_RDMA_WC_REM_INV_REQ_ERR	9
#define VIRTIO_RDMA_WC_REM_ACCESS_ERR	10
#define VIRTIO_RDMA_WC_REM_OP_ERR	11
#define VIRTIO_RDMA_WC_RETRY_EXC_ERR	12
#define VIRTIO_RDMA_WC_RNR_RETRY_EXC_ERR 13
#define VIRTIO_RDMA_WC_GENERAL_ERR	21

/* Completion opcodes: the ibv_wc_opcode values. */
#define VIRTIO_RDMA_WC_SEND		0
#define VIRTIO_RDMA_WC_RDMA_WRITE	1
#define VIRTIO_RDMA_WC_RDMA_READ	2
#define VIRTIO_RDMA_WC_COMP_SWAP	3
#define VIRTIO_RDMA_WC_FETCH_ADD	4
#define VIRTIO_RDMA_WC_RECV		128
#define VIRTIO_RDMA_WC_RECV_RDMA_WITH_IMM 129

/* Completion flags: the ibv_wc_flags values. */
#define VIRTIO_RDMA_WC_F_GRH		(1u << 0)	/* UD: a GRH fills the first 40 bytes */
#define VIRTIO_RDMA_WC_F_WITH_IMM	(1u << 1)
#define VIRTIO_RDMA_WC_F_SOLICITED	(1u << 8)	/* device-private: solicited event bit */

/* How a UD datagram travelled (virtio_rdma_cqe.network_hdr_type), which says how to read the
 * 40-byte GRH area. Not the rdma_network_type values: 0 stays "not UD / unknown". */
#define VIRTIO_RDMA_NETWORK_ROCE_V1	2	/* a GRH */
#define VIRTIO_RDMA_NETWORK_IPV4	3	/* RoCE v2: 20 zero bytes, then the IPv4 header */
#define VIRTIO_RDMA_NETWORK_IPV6	4	/* RoCE v2: the IPv6 header */

struct virtio_rdma_cqe {
	__le64 wr_id;			/* W the work request's wr_id */
	__u8   status;			/* W VIRTIO_RDMA_WC_* status */
	__u8   opcode;			/* W VIRTIO_RDMA_WC_* opcode (valid when status is SUCCESS) */
	__le16 wc_flags;		/* W VIRTIO_RDMA_WC_F_* */
	__le32 vendor_err;		/* W device detail for an error status, else zero */
	__le32 byte_len;		/* W bytes received (receives, READ, atomics) */
	__le32 imm_data;		/* W with WC_F_WITH_IMM, big-endian as sent */
	__le32 qp_num;			/* W the local QP */
	__le32 src_qp;			/* W UD: the sender's QP */
	__le16 pkey_index;		/* W */
	__u8   sl;			/* W */
	__u8   network_hdr_type;	/* W UD: VIRTIO_RDMA_NETWORK_* */
	__u8   smac[6];			/* W UD: the sender's MAC */
	__le16 vlan_id;			/* W UD: 0xffff if none */
	__le32 reserved[5];		/* W zero */
};

/* ---------------------------------------------------------------------------------------------
 * Resource commands. Handles and keys are chosen by the device: non-zero, unique per device for the
 * device's life (a destroyed handle is not reused until its counter wraps: 2^24 allocations, 2^23
 * for QPNs), and unrelated to
 * any host object. A ucontext owns what is created with it; destroying the context (or a device
 * reset) destroys all of it. Context 0 is the kernel's and always exists.
 */

/* CREATE_UCONTEXT: no request body. */
struct virtio_rdma_rsp_create_ucontext {
	__le32 ctx_handle;		/* W */
	__le32 reserved;		/* W zero */
};

/* Requests that name one object: DESTROY_UCONTEXT (ctx), DEALLOC_PD (pd), DEREG_MR (lkey),
 * DESTROY_CQ (cq), QUERY_QP and DESTROY_QP (qpn), QUERY_SRQ and DESTROY_SRQ (srq), DESTROY_AH (ah). */
struct virtio_rdma_cmd_handle {
	__le32 handle;			/* R */
	__le32 reserved;		/* R zero */
};

/* ALLOC_PD */
struct virtio_rdma_cmd_alloc_pd {
	__le32 ctx_handle;		/* R owning context (0: kernel) */
	__le32 reserved;		/* R zero */
};

struct virtio_rdma_rsp_alloc_pd {
	__le32 pd_handle;		/* W */
	__le32 reserved;		/* W zero */
};

/* Access flags: the ibv_access_flags values. */
#define VIRTIO_RDMA_ACCESS_LOCAL_WRITE		(1u << 0)
#define VIRTIO_RDMA_ACCESS_REMOTE_WRITE		(1u << 1)
#define VIRTIO_RDMA_ACCESS_REMOTE_READ		(1u << 2)
#define VIRTIO_RDMA_ACCESS_REMOTE_ATOMIC	(1u << 3)

/* REG_MR flags. */
#define VIRTIO_RDMA_MR_DMA		(1u << 0)	/* all of guest RAM, IOVA = guest-physical; no
						 * page list (the kernel's DMA MR) */

/* REG_MR. The region is [iova, iova + length); its first byte is at offset (iova & 4095) in the
 * first page of the list, and npages must be exactly the pages that span it. */
struct virtio_rdma_cmd_reg_mr {
	__le32 pd_handle;		/* R */
	__le32 access;			/* R VIRTIO_RDMA_ACCESS_* */
	__le64 iova;			/* R first byte's IOVA */
	__le64 length;			/* R bytes; at most max_mr_size */
	__le32 flags;			/* R VIRTIO_RDMA_MR_* */
	__le32 reserved;		/* R zero */
	struct virtio_rdma_page_list pages; /* R (unused with VIRTIO_RDMA_MR_DMA) */
};

struct virtio_rdma_rsp_reg_mr {
	__le32 lkey;			/* W */
	__le32 rkey;			/* W zero unless a remote access flag was given */
};

/* CREATE_CQ. The ring is depth CQEs over the page list (depth * 64 bytes). */
struct virtio_rdma_cmd_create_cq {
	__le32 ctx_handle;		/* R */
	__le32 depth;			/* R CQEs, a power of two, at most max_cqe */
	__le64 doorbell_gpa;		/* R struct virtio_rdma_doorbell, 64-byte aligned */
	struct virtio_rdma_page_list ring; /* R */
};

struct virtio_rdma_rsp_create_cq {
	__le32 cq_handle;		/* W */
	__le32 depth;			/* W */
};

/* RESIZE_CQ. The device copies the unpolled CQEs to the start of the new ring; afterwards both
 * indices count from there (driver_index = 0, device_index = CQEs copied). The driver must not poll
 * the CQ while the command runs, and rewrites driver_index to 0 in the new doorbell record. */
struct virtio_rdma_cmd_resize_cq {
	__le32 cq_handle;		/* R */
	__le32 depth;			/* R new depth, a power of two, >= the unpolled CQEs */
	__le64 doorbell_gpa;		/* R the new doorbell record */
	struct virtio_rdma_page_list ring; /* R the new ring */
};

/* A work queue's ring as CREATE_QP and CREATE_SRQ describe it. */
struct virtio_rdma_wq_desc {
	__le32 depth;			/* R slots, a power of two, at most max_qp_wr / max_srq_wr */
	__le32 max_sge;			/* R SGEs per WQE, at most max_sge */
	__le32 max_inline;		/* R SQ: inline bytes per WQE, at most max_inline_data */
	__le32 wqe_shift;		/* R log2 of the slot size: header + max(max_sge * 16,
					 *   max_inline) must fit, 6 <= wqe_shift <= 12 */
	__le64 doorbell_gpa;		/* R struct virtio_rdma_doorbell, 64-byte aligned */
	struct virtio_rdma_page_list ring; /* R depth << wqe_shift bytes */
};

/* QP types: the ib_qp_type values. GSI is QP1, the kernel's (context 0) datagram QP for
 * management datagrams (connection management on RoCE); at most one per device, always QPN 1. */
#define VIRTIO_RDMA_QPT_GSI		1
#define VIRTIO_RDMA_QPT_RC		2
#define VIRTIO_RDMA_QPT_UD		4
#define VIRTIO_RDMA_GSI_QPN		1
#define VIRTIO_RDMA_GSI_QKEY		0x80010000u	/* the Q_Key of every GSI QP */

/* CREATE_QP. With an SRQ the receive queue is unused (its desc must be zero). */
struct virtio_rdma_cmd_create_qp {
	__le32 ctx_handle;		/* R */
	__le32 pd_handle;		/* R */
	__le32 send_cq;			/* R */
	__le32 recv_cq;			/* R */
	__le32 srq_handle;		/* R 0: none */
	__u8   qp_type;			/* R VIRTIO_RDMA_QPT_* */
	__u8   sq_sig_all;		/* R 1: every send WQE completes with a CQE */
	__le16 reserved;		/* R zero */
	struct virtio_rdma_wq_desc sq;	/* R */
	struct virtio_rdma_wq_desc rq;	/* R */
};

struct virtio_rdma_rsp_create_qp {
	__le32 qpn;			/* W 24-bit QP number (never 0 or 1) */
	__le32 doorbell_queue;		/* W the virtqueue index to kick for this QP */
};

/* QP states: the ib_qp_state values. */
#define VIRTIO_RDMA_QPS_RESET		0
#define VIRTIO_RDMA_QPS_INIT		1
#define VIRTIO_RDMA_QPS_RTR		2
#define VIRTIO_RDMA_QPS_RTS		3
#define VIRTIO_RDMA_QPS_SQD		4
#define VIRTIO_RDMA_QPS_SQE		5
#define VIRTIO_RDMA_QPS_ERR		6

/* MODIFY_QP attribute mask: the ib_qp_attr_mask values. */
#define VIRTIO_RDMA_QP_STATE		(1u << 0)
#define VIRTIO_RDMA_QP_CUR_STATE	(1u << 1)
#define VIRTIO_RDMA_QP_EN_SQD_ASYNC_NOTIFY (1u << 2)
#define VIRTIO_RDMA_QP_ACCESS_FLAGS	(1u << 3)
#define VIRTIO_RDMA_QP_PKEY_INDEX	(1u << 4)
#define VIRTIO_RDMA_QP_PORT		(1u << 5)
#define VIRTIO_RDMA_QP_QKEY		(1u << 6)
#define VIRTIO_RDMA_QP_AV		(1u << 7)
#define VIRTIO_RDMA_QP_PATH_MTU		(1u << 8)
#define VIRTIO_RDMA_QP_TIMEOUT		(1u << 9)
#define VIRTIO_RDMA_QP_RETRY_CNT	(1u << 10)
#define VIRTIO_RDMA_QP_RNR_RETRY	(1u << 11)
#define VIRTIO_RDMA_QP_RQ_PSN		(1u << 12)
#define VIRTIO_RDMA_QP_MAX_QP_RD_ATOMIC	(1u << 13)
#define VIRTIO_RDMA_QP_ALT_PATH		(1u << 14)
#define VIRTIO_RDMA_QP_MIN_RNR_TIMER	(1u << 15)
#define VIRTIO_RDMA_QP_SQ_PSN		(1u << 16)
#define VIRTIO_RDMA_QP_MAX_DEST_RD_ATOMIC (1u << 17)
#define VIRTIO_RDMA_QP_PATH_MIG_STATE	(1u << 18)
#define VIRTIO_RDMA_QP_CAP		(1u << 19)
#define VIRTIO_RDMA_QP_DEST_QPN		(1u << 20)
#define VIRTIO_RDMA_QP_RATE_LIMIT	(1u << 25)

/* An address vector (RoCE: routed by GID). */
struct virtio_rdma_av {
	__u8   dgid[16];		/* R destination GID */
	__le32 flow_label;		/* R */
	__u8   sgid_index;		/* R index into the port's GID table */
	__u8   hop_limit;		/* R */
	__u8   traffic_class;		/* R */
	__u8   sl;			/* R service level */
	__u8   dmac[6];			/* R destination MAC (RoCE) */
	__u8   port_num;		/* R 1 */
	__u8   static_rate;		/* R IB rate enum */
	__le32 reserved[2];		/* R zero */
};

/* MODIFY_QP request and QUERY_QP response: every attribute of ibv_modify_qp. */
struct virtio_rdma_qp_attr {
	__le32 qpn;			/* R MODIFY_QP: the QP; W QUERY_QP: the QP */
	__le32 attr_mask;		/* R VIRTIO_RDMA_QP_* attributes to change; W all valid */
	__u8   qp_state;		/* VIRTIO_RDMA_QPS_* */
	__u8   cur_qp_state;
	__u8   path_mtu;		/* IB MTU enum 1..5 */
	__u8   path_mig_state;
	__le32 qkey;
	__le32 rq_psn;			/* 24 bits */
	__le32 sq_psn;			/* 24 bits */
	__le32 dest_qp_num;		/* 24 bits */
	__le32 qp_access_flags;		/* VIRTIO_RDMA_ACCESS_* the responder allows */
	__le16 pkey_index;
	__le16 alt_pkey_index;
	__u8   en_sqd_async_notify;
	__u8   sq_draining;		/* W QUERY_QP */
	__u8   max_rd_atomic;		/* outstanding READ/atomic as requester */
	__u8   max_dest_rd_atomic;	/* as responder */
	__u8   min_rnr_timer;		/* IB RNR timer enum 0..31 */
	__u8   port_num;
	__u8   timeout;			/* 4.096 us * 2^timeout, 0 = infinite */
	__u8   retry_cnt;		/* 0..7 */
	__u8   rnr_retry;		/* 0..7, 7 = infinite */
	__u8   alt_port_num;
	__u8   alt_timeout;
	__u8   reserved0;
	__le32 rate_limit;		/* kbps, 0 = unlimited */
	__le32 max_send_wr;		/* W QUERY_QP: capabilities */
	__le32 max_recv_wr;
	__le32 max_send_sge;
	__le32 max_recv_sge;
	__le32 max_inline_data;
	__le32 reserved1[2];
	struct virtio_rdma_av ah_attr;
	struct virtio_rdma_av alt_ah_attr;
};

/* CREATE_SRQ */
struct virtio_rdma_cmd_create_srq {
	__le32 ctx_handle;		/* R */
	__le32 pd_handle;		/* R */
	__le32 srq_limit;		/* R limit event threshold, 0 = not armed */
	__le32 reserved;		/* R zero */
	struct virtio_rdma_wq_desc rq;	/* R max_inline must be 0 */
};

struct virtio_rdma_rsp_create_srq {
	__le32 srq_handle;		/* W */
	__le32 doorbell_queue;		/* W the virtqueue index to kick for this SRQ */
};

/* MODIFY_SRQ attribute mask: the ib_srq_attr_mask values. Resizing is not supported. */
#define VIRTIO_RDMA_SRQ_MAX_WR		(1u << 0)
#define VIRTIO_RDMA_SRQ_LIMIT		(1u << 1)

/* MODIFY_SRQ request and QUERY_SRQ response. */
struct virtio_rdma_srq_attr {
	__le32 srq_handle;		/* R */
	__le32 attr_mask;		/* R VIRTIO_RDMA_SRQ_* (MODIFY_SRQ) */
	__le32 max_wr;			/* W */
	__le32 max_sge;			/* W */
	__le32 srq_limit;		/* R/W */
	__le32 reserved;		/* zero */
};

/* CREATE_AH */
struct virtio_rdma_cmd_create_ah {
	__le32 pd_handle;		/* R */
	__le32 reserved;		/* R zero */
	struct virtio_rdma_av av;	/* R */
};

struct virtio_rdma_rsp_create_ah {
	__le32 ah_handle;		/* W */
	__le32 reserved;		/* W zero */
};

/* QUERY_PKEY */
struct virtio_rdma_cmd_query_pkey {
	__le32 port;			/* R 1 */
	__le32 index;			/* R < pkey_tbl_len */
};

struct virtio_rdma_rsp_query_pkey {
	__le16 pkey;			/* W 0xffff: the default full-member key */
	__le16 reserved[3];		/* W zero */
};

/* GID types (ADD_GID). */
#define VIRTIO_RDMA_GID_ROCE_V1		0
#define VIRTIO_RDMA_GID_ROCE_V2		1

/* ADD_GID and DEL_GID (DEL_GID ignores gid, type and mac). The device routes traffic by GID: the
 * GID table says which addresses this port answers to. */
struct virtio_rdma_cmd_gid {
	__le32 port;			/* R 1 */
	__le32 index;			/* R < gid_tbl_len */
	__u8   gid[16];			/* R */
	__le32 type;			/* R VIRTIO_RDMA_GID_* */
	__u8   mac[6];			/* R the MAC the GID belongs to */
	__le16 reserved;		/* R zero */
};

/* ---------------------------------------------------------------------------------------------
 * Event queue. The driver keeps device-writable buffers of 16 bytes on virtqueue 1; the device
 * fills one per event and interrupts. Completion events name the CQ; the others are IB affiliated
 * and unaffiliated async events. If no buffer is available the device keeps events (one per CQ
 * and per object and type) until the driver adds buffers.
 */
#define VIRTIO_RDMA_EV_CQ_COMPLETION	0	/* handle: CQ that has a completion matching its arm */
#define VIRTIO_RDMA_EV_CQ_ERR		1	/* handle: CQ overflowed */
#define VIRTIO_RDMA_EV_QP_FATAL		2	/* handle: QPN; a local work queue error */
#define VIRTIO_RDMA_EV_QP_REQ_ERR	3	/* handle: QPN; invalid request as responder */
#define VIRTIO_RDMA_EV_QP_ACCESS_ERR	4	/* handle: QPN; remote access error as responder */
#define VIRTIO_RDMA_EV_COMM_EST		5	/* handle: QPN */
#define VIRTIO_RDMA_EV_SQ_DRAINED	6	/* handle: QPN */
#define VIRTIO_RDMA_EV_QP_LAST_WQE_REACHED 7	/* handle: QPN (SRQ QP in error) */
#define VIRTIO_RDMA_EV_SRQ_LIMIT_REACHED 8	/* handle: SRQ */
#define VIRTIO_RDMA_EV_PORT_ACTIVE	9	/* handle: port */
#define VIRTIO_RDMA_EV_PORT_ERR		10	/* handle: port */
#define VIRTIO_RDMA_EV_GID_CHANGE	11	/* handle: port */

struct virtio_rdma_event {
	__le32 type;			/* W VIRTIO_RDMA_EV_* */
	__le32 handle;			/* W */
	__le32 detail;			/* W vendor detail, e.g. the CQE status that caused it */
	__le32 reserved;		/* W zero */
};

/* Sizes are part of the ABI: a change here is a new ABI version. */
#define VIRTIO_RDMA_ASSERT_SIZE(type, size) \
	_Static_assert(sizeof(struct type) == (size), #type " must be " #size " bytes")
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_config, 128);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_hdr, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_resp_hdr, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_query_device, 136);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_query_port, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_query_port, 32);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_page_list, 16);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_doorbell, 128);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_sge, 16);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_send_wqe, 64);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_recv_wqe, 16);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cqe, 64);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_create_ucontext, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_handle, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_alloc_pd, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_alloc_pd, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_reg_mr, 48);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_reg_mr, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_create_cq, 32);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_create_cq, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_resize_cq, 32);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_wq_desc, 40);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_create_qp, 104);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_create_qp, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_av, 40);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_qp_attr, 160);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_create_srq, 56);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_create_srq, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_srq_attr, 24);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_create_ah, 48);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_create_ah, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_query_pkey, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_query_pkey, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_gid, 36);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_event, 16);

#endif /* VIRTIO_RDMA_H */
