/* SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB */
/*
 * virtio_rdma provider: the uverbs commands as this provider sends them, each a core request or
 * response followed directly by the driver data of guest-driver/include/virtio_rdma_uverbs.h.
 * libibverbs takes everything past the core struct as the driver's udata; the asserts check that
 * there is no padding in between, so the kernel finds the driver data where it looks for it.
 */
#ifndef VRDMA_ABI_H
#define VRDMA_ABI_H

#include <assert.h>
#include <stddef.h>

#include <infiniband/kern-abi.h>

#include "virtio_rdma_uverbs.h"

#define VRDMA_CMD(_name, _core, _drv)							\
	struct _name {									\
		_core ibv;								\
		struct _drv drv;							\
	};										\
	static_assert(offsetof(struct _name, drv) == sizeof(_core), #_name " padding");	\
	static_assert(sizeof(struct _name) == sizeof(_core) + sizeof(struct _drv),	\
		      #_name " size")

VRDMA_CMD(vrdma_get_context_resp, struct ib_uverbs_get_context_resp,
	  virtio_rdma_alloc_ucontext_resp);
VRDMA_CMD(vrdma_create_cq_cmd, struct ibv_create_cq, virtio_rdma_create_cq_cmd);
VRDMA_CMD(vrdma_create_cq_resp, struct ib_uverbs_create_cq_resp, virtio_rdma_create_cq_resp);
VRDMA_CMD(vrdma_resize_cq_cmd, struct ibv_resize_cq, virtio_rdma_create_cq_cmd);
/* The header defines no resize response; room for the create response costs nothing. */
VRDMA_CMD(vrdma_resize_cq_resp, struct ib_uverbs_resize_cq_resp, virtio_rdma_create_cq_resp);
VRDMA_CMD(vrdma_create_qp_cmd, struct ibv_create_qp, virtio_rdma_create_qp_cmd);
VRDMA_CMD(vrdma_create_qp_resp, struct ib_uverbs_create_qp_resp, virtio_rdma_create_qp_resp);
VRDMA_CMD(vrdma_create_srq_cmd, struct ibv_create_srq, virtio_rdma_create_srq_cmd);
VRDMA_CMD(vrdma_create_srq_resp, struct ib_uverbs_create_srq_resp, virtio_rdma_create_srq_resp);
VRDMA_CMD(vrdma_create_ah_resp, struct ib_uverbs_create_ah_resp, virtio_rdma_create_ah_resp);

#endif /* VRDMA_ABI_H */
