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
#define VIRTIO_RDMA_VQ_DOORBELL_BASE	2	/* 2..n-1: doorbell queues, one per device worker */

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

/* Sizes are part of the ABI: a change here is a new ABI version. */
#define VIRTIO_RDMA_ASSERT_SIZE(type, size) \
	_Static_assert(sizeof(struct type) == (size), #type " must be " #size " bytes")
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_config, 128);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_hdr, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_resp_hdr, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_query_device, 136);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_cmd_query_port, 8);
VIRTIO_RDMA_ASSERT_SIZE(virtio_rdma_rsp_query_port, 32);

#endif /* VIRTIO_RDMA_H */
