// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * virtio_rdma provider: device matching, the user context, and the verbs that are plain kernel
 * commands (device and port queries, PD, MR, AH). Also the context's memory: page-aligned rings,
 * 128-byte doorbell records packed into pages, and the notify pages mapped from the uverbs fd.
 * CQs are in cq.c, QPs in qp.c, SRQs in srq.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vrdma.h"
#include "vrdma-abi.h"

/* ---- context memory ----------------------------------------------------------------------- */

int vrdma_alloc_ring(struct vrdma_context *ctx, size_t size, void **ring, size_t *ring_size)
{
	size_t len = align(size, ctx->page_size);
	void *p;
	int ret;

	ret = posix_memalign(&p, ctx->page_size, len);
	if (ret)
		return ret;
	memset(p, 0, len);
	/* The kernel pins these pages: keep them out of a child's copy-on-write. */
	ret = ibv_dontfork_range(p, len);
	if (ret) {
		free(p);
		return ret;
	}
	*ring = p;
	*ring_size = len;
	return 0;
}

void vrdma_free_ring(void *ring, size_t ring_size)
{
	if (!ring)
		return;
	ibv_dofork_range(ring, ring_size);
	free(ring);
}

struct virtio_rdma_doorbell *vrdma_alloc_db(struct vrdma_context *ctx)
{
	struct virtio_rdma_doorbell *db = NULL;
	struct vrdma_db_page *page;
	unsigned int n;

	pthread_mutex_lock(&ctx->lock);
	list_for_each(&ctx->db_pages, page, entry)
		if (page->free)
			goto found;

	page = calloc(1, sizeof(*page));
	if (!page)
		goto out;
	if (posix_memalign(&page->addr, ctx->page_size, ctx->page_size)) {
		free(page);
		goto out;
	}
	memset(page->addr, 0, ctx->page_size);
	if (ibv_dontfork_range(page->addr, ctx->page_size)) {
		free(page->addr);
		free(page);
		goto out;
	}
	page->free = ctx->db_per_page >= 64 ? ~0ULL : (1ULL << ctx->db_per_page) - 1;
	list_add_tail(&ctx->db_pages, &page->entry);

found:
	n = __builtin_ctzll(page->free);
	page->free &= ~(1ULL << n);
	db = (struct virtio_rdma_doorbell *)((uint8_t *)page->addr + n * VIRTIO_RDMA_DB_SIZE);
	/* Both lines zero: the driver line as every create requires, the device line until the
	 * device writes it. */
	memset(db, 0, sizeof(*db));
out:
	pthread_mutex_unlock(&ctx->lock);
	if (!db)
		errno = ENOMEM;
	return db;
}

void vrdma_free_db(struct vrdma_context *ctx, struct virtio_rdma_doorbell *db)
{
	struct vrdma_db_page *page;
	uintptr_t off;

	if (!db)
		return;
	pthread_mutex_lock(&ctx->lock);
	list_for_each(&ctx->db_pages, page, entry) {
		off = (uintptr_t)db - (uintptr_t)page->addr;
		if (off >= ctx->page_size)
			continue;
		page->free |= 1ULL << (off / VIRTIO_RDMA_DB_SIZE);
		if (page->free == (ctx->db_per_page >= 64 ? ~0ULL :
				   (1ULL << ctx->db_per_page) - 1)) {
			list_del(&page->entry);
			ibv_dofork_range(page->addr, ctx->page_size);
			free(page->addr);
			free(page);
		}
		break;
	}
	pthread_mutex_unlock(&ctx->lock);
}

/*
 * The notify address of a doorbell queue. Pages are mapped once per context and kept until the
 * context is freed: there are at most as many as the device has doorbell queues.
 */
void *vrdma_get_notify(struct vrdma_context *ctx, const struct virtio_rdma_notify *n)
{
	struct vrdma_notify_map *map;
	void *addr = NULL;

	if ((size_t)n->notify_offset + sizeof(uint16_t) > ctx->page_size ||
	    n->notify_offset % sizeof(uint16_t) || n->doorbell_queue > UINT16_MAX) {
		verbs_err(&ctx->ibv_ctx, "virtio_rdma: bad notify location (offset %u, queue %u)\n",
			  n->notify_offset, n->doorbell_queue);
		errno = EPROTO;
		return NULL;
	}

	pthread_mutex_lock(&ctx->lock);
	list_for_each(&ctx->notify_maps, map, entry)
		if (map->mmap_offset == n->notify_mmap_offset)
			goto found;

	map = calloc(1, sizeof(*map));
	if (!map)
		goto out;
	map->mmap_offset = n->notify_mmap_offset;
	map->addr = mmap(NULL, ctx->page_size, PROT_WRITE, MAP_SHARED,
			 ctx->ibv_ctx.context.cmd_fd, n->notify_mmap_offset);
	if (map->addr == MAP_FAILED) {
		int err = errno;

		verbs_err(&ctx->ibv_ctx,
			  "virtio_rdma: cannot map the notify page of doorbell queue %u: %s "
			  "(does the device have page-per-vq=on?)\n",
			  n->doorbell_queue, strerror(err));
		free(map);
		errno = err;
		goto out;
	}
	list_add_tail(&ctx->notify_maps, &map->entry);
found:
	addr = (uint8_t *)map->addr + n->notify_offset;
out:
	pthread_mutex_unlock(&ctx->lock);
	return addr;
}

/* ---- device and port -------------------------------------------------------------------- */

static int vrdma_query_device(struct ibv_context *ibctx,
			      const struct ibv_query_device_ex_input *input,
			      struct ibv_device_attr_ex *attr, size_t attr_size)
{
	struct ib_uverbs_ex_query_device_resp resp;
	size_t resp_size = sizeof(resp);
	uint64_t fw;
	int ret;

	ret = ibv_cmd_query_device_any(ibctx, input, attr, attr_size, &resp, &resp_size);
	if (ret)
		return ret;

	fw = resp.base.fw_ver;
	snprintf(attr->orig_attr.fw_ver, sizeof(attr->orig_attr.fw_ver), "%u.%u.%u",
		 (unsigned int)(fw >> 32) & 0xffff, (unsigned int)(fw >> 16) & 0xffff,
		 (unsigned int)fw & 0xffff);
	return 0;
}

static int vrdma_query_port(struct ibv_context *ibctx, uint8_t port, struct ibv_port_attr *attr)
{
	struct ibv_query_port cmd;

	return ibv_cmd_query_port(ibctx, port, attr, &cmd, sizeof(cmd));
}

/* ---- PD, MR, AH ----------------------------------------------------------------------------- */

static struct ibv_pd *vrdma_alloc_pd(struct ibv_context *ibctx)
{
	struct ib_uverbs_alloc_pd_resp resp;
	struct ibv_alloc_pd cmd;
	struct ibv_pd *pd;
	int ret;

	pd = calloc(1, sizeof(*pd));
	if (!pd)
		return NULL;
	ret = ibv_cmd_alloc_pd(ibctx, pd, &cmd, sizeof(cmd), &resp, sizeof(resp));
	if (ret) {
		free(pd);
		errno = ret;
		return NULL;
	}
	return pd;
}

static int vrdma_dealloc_pd(struct ibv_pd *pd)
{
	int ret;

	ret = ibv_cmd_dealloc_pd(pd);
	if (!ret)
		free(pd);
	return ret;
}

static struct ibv_mr *vrdma_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
				   uint64_t hca_va, int access)
{
	struct ib_uverbs_reg_mr_resp resp;
	struct ibv_reg_mr cmd;
	struct verbs_mr *vmr;
	int ret;

	vmr = calloc(1, sizeof(*vmr));
	if (!vmr)
		return NULL;
	ret = ibv_cmd_reg_mr(pd, addr, length, hca_va, access, vmr, &cmd, sizeof(cmd),
			     &resp, sizeof(resp));
	if (ret) {
		free(vmr);
		errno = ret;
		return NULL;
	}
	return &vmr->ibv_mr;
}

static int vrdma_dereg_mr(struct verbs_mr *vmr)
{
	int ret;

	ret = ibv_cmd_dereg_mr(vmr);
	if (!ret)
		free(vmr);
	return ret;
}

static struct ibv_ah *vrdma_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *attr)
{
	struct vrdma_create_ah_resp resp = {};
	struct vrdma_ah *ah;
	int ret;

	ah = calloc(1, sizeof(*ah));
	if (!ah)
		return NULL;
	ret = ibv_cmd_create_ah(pd, &ah->ibv_ah, attr, &resp.ibv, sizeof(resp));
	if (ret) {
		free(ah);
		errno = ret;
		return NULL;
	}
	ah->handle = resp.drv.ah_handle;
	return &ah->ibv_ah;
}

static int vrdma_destroy_ah(struct ibv_ah *ibah)
{
	int ret;

	ret = ibv_cmd_destroy_ah(ibah);
	if (!ret)
		free(to_vah(ibah));
	return ret;
}

/* ---- context ------------------------------------------------------------------------------ */

static void vrdma_free_context(struct ibv_context *ibctx);

static const struct verbs_context_ops vrdma_ctx_ops = {
	.alloc_pd = vrdma_alloc_pd,
	.create_ah = vrdma_create_ah,
	.create_cq = vrdma_create_cq,
	.create_qp = vrdma_create_qp,
	.create_srq = vrdma_create_srq,
	.dealloc_pd = vrdma_dealloc_pd,
	.dereg_mr = vrdma_dereg_mr,
	.destroy_ah = vrdma_destroy_ah,
	.destroy_cq = vrdma_destroy_cq,
	.destroy_qp = vrdma_destroy_qp,
	.destroy_srq = vrdma_destroy_srq,
	.free_context = vrdma_free_context,
	.modify_qp = vrdma_modify_qp,
	.modify_srq = vrdma_modify_srq,
	.poll_cq = vrdma_poll_cq,
	.post_recv = vrdma_post_recv,
	.post_send = vrdma_post_send,
	.post_srq_recv = vrdma_post_srq_recv,
	.query_device_ex = vrdma_query_device,
	.query_port = vrdma_query_port,
	.query_qp = vrdma_query_qp,
	.query_srq = vrdma_query_srq,
	.reg_mr = vrdma_reg_mr,
	.req_notify_cq = vrdma_req_notify_cq,
	.resize_cq = vrdma_resize_cq,
};

/* The limits create_* checks locally, so a request the device cannot take fails before any
 * memory is allocated for it. */
static int vrdma_read_limits(struct vrdma_context *ctx)
{
	struct ib_uverbs_ex_query_device_resp resp;
	size_t resp_size = sizeof(resp);
	struct ibv_device_attr_ex attr = {};
	int ret;

	ret = ibv_cmd_query_device_any(&ctx->ibv_ctx.context, NULL, &attr, sizeof(attr),
				       &resp, &resp_size);
	if (ret)
		return ret;
	ctx->max_qp_wr = attr.orig_attr.max_qp_wr;
	ctx->max_sge = attr.orig_attr.max_sge;
	ctx->max_cqe = attr.orig_attr.max_cqe;
	ctx->max_srq_wr = attr.orig_attr.max_srq_wr;
	ctx->max_srq_sge = attr.orig_attr.max_srq_sge;
	return 0;
}

static struct verbs_context *vrdma_alloc_context(struct ibv_device *ibdev, int cmd_fd,
						 void *private_data)
{
	struct vrdma_get_context_resp resp = {};
	struct vrdma_context *ctx;
	struct ibv_get_context cmd;
	long sys_page = sysconf(_SC_PAGESIZE);
	int ret;

	ctx = verbs_init_and_alloc_context(ibdev, cmd_fd, ctx, ibv_ctx, RDMA_DRIVER_UNKNOWN);
	if (!ctx)
		return NULL;
	list_head_init(&ctx->db_pages);
	list_head_init(&ctx->notify_maps);
	pthread_mutex_init(&ctx->lock, NULL);

	ret = ibv_cmd_get_context(&ctx->ibv_ctx, &cmd, sizeof(cmd), NULL, &resp.ibv,
				  sizeof(resp));
	if (ret)
		goto err;

	if (resp.drv.abi_version != VIRTIO_RDMA_UVERBS_ABI_VERSION ||
	    resp.drv.device_abi_version != VIRTIO_RDMA_ABI_VERSION) {
		verbs_err(&ctx->ibv_ctx,
			  "virtio_rdma: kernel driver ABI %u / device ABI %u, provider supports %u / %u\n",
			  resp.drv.abi_version, resp.drv.device_abi_version,
			  VIRTIO_RDMA_UVERBS_ABI_VERSION, VIRTIO_RDMA_ABI_VERSION);
		ret = EPROTO;
		goto err;
	}
	if (resp.drv.page_shift < 12 || resp.drv.page_shift > 30 ||
	    (1L << resp.drv.page_shift) != sys_page) {
		verbs_err(&ctx->ibv_ctx, "virtio_rdma: kernel page shift %u, process page size %ld\n",
			  resp.drv.page_shift, sys_page);
		ret = EPROTO;
		goto err;
	}
	ctx->page_size = (size_t)1 << resp.drv.page_shift;
	ctx->db_per_page = ctx->page_size / VIRTIO_RDMA_DB_SIZE;
	ctx->max_inline_data = resp.drv.max_inline_data;

	verbs_set_ops(&ctx->ibv_ctx, &vrdma_ctx_ops);

	ret = vrdma_read_limits(ctx);
	if (ret)
		goto err;
	return &ctx->ibv_ctx;

err:
	pthread_mutex_destroy(&ctx->lock);
	verbs_uninit_context(&ctx->ibv_ctx);
	free(ctx);
	errno = ret;
	return NULL;
}

static void vrdma_free_context(struct ibv_context *ibctx)
{
	struct vrdma_context *ctx = to_vctx(ibctx);
	struct vrdma_notify_map *map, *next_map;
	struct vrdma_db_page *page, *next_page;

	list_for_each_safe(&ctx->notify_maps, map, next_map, entry) {
		munmap(map->addr, ctx->page_size);
		free(map);
	}
	/* Left only if the application leaked objects; the kernel has unpinned them by now. */
	list_for_each_safe(&ctx->db_pages, page, next_page, entry) {
		ibv_dofork_range(page->addr, ctx->page_size);
		free(page->addr);
		free(page);
	}
	pthread_mutex_destroy(&ctx->lock);
	verbs_uninit_context(&ctx->ibv_ctx);
	free(ctx);
}

/* ---- device ------------------------------------------------------------------------------- */

/*
 * The ib device's parent is the virtio device (id 42 = 0x2a, any vendor). The name match is the
 * fallback libibverbs uses when a device has no modalias.
 */
static const struct verbs_match_ent vrdma_match_table[] = {
	VERBS_MODALIAS_MATCH("virtio:d0000002Av*", NULL),
	VERBS_NAME_MATCH("vrdma", NULL),
	{},
};

static struct verbs_device *vrdma_device_alloc(struct verbs_sysfs_dev *sysfs_dev)
{
	struct vrdma_device *dev;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	return &dev->ibv_dev;
}

static void vrdma_uninit_device(struct verbs_device *verbs_device)
{
	free(to_vdev(&verbs_device->device));
}

static const struct verbs_device_ops vrdma_dev_ops = {
	.name = "virtio_rdma",
	/* The uverbs ABI number in sysfs is whatever the kernel driver registered (0 when it sets
	 * none); the real check is the abi_version of the alloc_ucontext response. */
	.match_min_abi_version = 0,
	.match_max_abi_version = INT_MAX,
	.match_table = vrdma_match_table,
	.alloc_device = vrdma_device_alloc,
	.uninit_device = vrdma_uninit_device,
	.alloc_context = vrdma_alloc_context,
};
PROVIDER_DRIVER(virtio_rdma, vrdma_dev_ops);
