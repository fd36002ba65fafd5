// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Guest memory the device uses: rings, doorbell records and page lists (spec section 8).
 *
 * The device has no VIRTIO_F_ACCESS_PLATFORM: every address it is given is guest-physical.
 * Kernel rings are pages of our own, mapped contiguously with vmap; user rings and records are
 * the provider's pages, pinned with ib_umem_get. Page lists always count 4 KiB device pages.
 */
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "vrdma.h"

#define VRDMA_PL_PER_PAGE	(VIRTIO_RDMA_PAGE_SIZE / sizeof(__le64))	/* 512 */
#define VRDMA_SUBPAGES		(PAGE_SIZE / VIRTIO_RDMA_PAGE_SIZE)

static struct kmem_cache *vrdma_db_cache;

int vrdma_mem_init(void)
{
	BUILD_BUG_ON(PAGE_SIZE < VIRTIO_RDMA_PAGE_SIZE);
	/* 128 bytes aligned to 128: 64-byte aligned and never across a page. */
	vrdma_db_cache = kmem_cache_create("vrdma_doorbell", VIRTIO_RDMA_DB_SIZE,
					   VIRTIO_RDMA_DB_SIZE, 0, NULL);
	return vrdma_db_cache ? 0 : -ENOMEM;
}

void vrdma_mem_exit(void)
{
	kmem_cache_destroy(vrdma_db_cache);
}

/* ---- page lists ---------------------------------------------------------------------------- */

static int vrdma_pl_alloc(struct vrdma_page_list *pl, u32 npages)
{
	u32 i;

	memset(pl, 0, sizeof(*pl));
	pl->npages = npages;
	if (npages <= VRDMA_PL_PER_PAGE) {
		pl->l1 = kcalloc(max_t(u32, npages, 1), sizeof(__le64), GFP_KERNEL);
		return pl->l1 ? 0 : -ENOMEM;
	}
	pl->indirect = true;
	pl->nl2 = DIV_ROUND_UP(npages, VRDMA_PL_PER_PAGE);
	pl->l1 = kcalloc(pl->nl2, sizeof(__le64), GFP_KERNEL | __GFP_NOWARN);
	pl->l2 = kcalloc(pl->nl2, sizeof(*pl->l2), GFP_KERNEL | __GFP_NOWARN);
	if (!pl->l1 || !pl->l2)
		goto err;
	for (i = 0; i < pl->nl2; i++) {
		pl->l2[i] = (__le64 *)get_zeroed_page(GFP_KERNEL);
		if (!pl->l2[i])
			goto err;
		pl->l1[i] = cpu_to_le64(virt_to_phys(pl->l2[i]));
	}
	return 0;
err:
	vrdma_pl_free(pl);
	return -ENOMEM;
}

static void vrdma_pl_set(struct vrdma_page_list *pl, u32 i, phys_addr_t pa)
{
	if (pl->indirect)
		pl->l2[i / VRDMA_PL_PER_PAGE][i % VRDMA_PL_PER_PAGE] = cpu_to_le64(pa);
	else
		pl->l1[i] = cpu_to_le64(pa);
}

void vrdma_pl_free(struct vrdma_page_list *pl)
{
	u32 i;

	if (pl->l2) {
		for (i = 0; i < pl->nl2; i++)
			free_page((unsigned long)pl->l2[i]);
		kfree(pl->l2);
	}
	kfree(pl->l1);
	memset(pl, 0, sizeof(*pl));
}

void vrdma_pl_desc(const struct vrdma_page_list *pl, struct virtio_rdma_page_list *desc)
{
	desc->gpa = cpu_to_le64(virt_to_phys(pl->l1));
	desc->npages = cpu_to_le32(pl->npages);
	desc->flags = cpu_to_le32(pl->indirect ? VIRTIO_RDMA_PL_INDIRECT : 0);
}

/* The 4 KiB pages of a umem, skipping @skip leading ones, until the list is full. */
static int vrdma_pl_fill_umem(struct vrdma_page_list *pl, struct ib_umem *umem, unsigned int skip)
{
	struct sg_page_iter it;
	unsigned int j;
	u32 i = 0;

	for_each_sgtable_page(&umem->sgt_append.sgt, &it, 0) {
		phys_addr_t pa = page_to_phys(sg_page_iter_page(&it));

		for (j = 0; j < VRDMA_SUBPAGES; j++) {
			if (skip) {
				skip--;
				continue;
			}
			if (i == pl->npages)
				return 0;
			vrdma_pl_set(pl, i++, pa + j * VIRTIO_RDMA_PAGE_SIZE);
		}
	}
	return i == pl->npages ? 0 : -EINVAL;
}

/* The page list of an MR: the pages spanning [iova, iova + length), as the device counts them. */
int vrdma_umem_page_list(struct ib_umem *umem, u64 iova, u64 length, struct vrdma_page_list *pl)
{
	u64 n = ((iova & (VIRTIO_RDMA_PAGE_SIZE - 1)) + length + VIRTIO_RDMA_PAGE_SIZE - 1) >>
		VIRTIO_RDMA_PAGE_SHIFT;
	int ret;

	if (n > U32_MAX)
		return -EINVAL;
	ret = vrdma_pl_alloc(pl, n);
	if (ret)
		return ret;
	ret = vrdma_pl_fill_umem(pl, umem, (umem->address & ~PAGE_MASK) >> VIRTIO_RDMA_PAGE_SHIFT);
	if (ret)
		vrdma_pl_free(pl);
	return ret;
}

/* ---- rings --------------------------------------------------------------------------------- */

int vrdma_ring_alloc(struct vrdma_ring *ring, size_t bytes)
{
	unsigned int i, n = DIV_ROUND_UP(bytes, PAGE_SIZE);

	memset(ring, 0, sizeof(*ring));
	ring->pages = kvcalloc(n, sizeof(*ring->pages), GFP_KERNEL);
	if (!ring->pages)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		ring->pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!ring->pages[i])
			goto err;
		ring->npages = i + 1;
	}
	ring->va = vmap(ring->pages, n, VM_MAP, PAGE_KERNEL);
	if (!ring->va)
		goto err;
	ring->size = (size_t)n * PAGE_SIZE;
	ring->len = bytes;
	return 0;
err:
	vrdma_ring_free(ring);
	return -ENOMEM;
}

/* A user ring: page-aligned, @bytes rounded up to whole pages, pinned writable. */
int vrdma_ring_pin(struct vrdma_dev *dev, struct vrdma_ring *ring, u64 addr, size_t bytes)
{
	struct ib_umem *umem;

	memset(ring, 0, sizeof(*ring));
	if (!addr || (addr & ~PAGE_MASK) || !bytes)
		return -EINVAL;
	umem = ib_umem_get(&dev->ib, addr, PAGE_ALIGN(bytes), IB_ACCESS_LOCAL_WRITE);
	if (IS_ERR(umem))
		return PTR_ERR(umem);
	ring->umem = umem;
	ring->size = PAGE_ALIGN(bytes);
	ring->len = bytes;
	return 0;
}

void vrdma_ring_free(struct vrdma_ring *ring)
{
	unsigned int i;

	if (ring->umem) {
		ib_umem_release(ring->umem);
	} else if (ring->pages) {
		if (ring->va)
			vunmap(ring->va);
		for (i = 0; i < ring->npages; i++)
			__free_page(ring->pages[i]);
		kvfree(ring->pages);
	}
	memset(ring, 0, sizeof(*ring));
}

/* The page list of a whole ring (from offset 0 of its first page). */
int vrdma_ring_page_list(struct vrdma_ring *ring, struct vrdma_page_list *pl)
{
	u32 i, j, n = DIV_ROUND_UP(ring->len, VIRTIO_RDMA_PAGE_SIZE);
	int ret;

	ret = vrdma_pl_alloc(pl, n);
	if (ret)
		return ret;
	if (ring->umem) {
		ret = vrdma_pl_fill_umem(pl, ring->umem, 0);
		if (ret)
			vrdma_pl_free(pl);
		return ret;
	}
	for (i = 0; i < ring->npages; i++)
		for (j = 0; j < VRDMA_SUBPAGES && i * VRDMA_SUBPAGES + j < n; j++)
			vrdma_pl_set(pl, i * VRDMA_SUBPAGES + j,
				     page_to_phys(ring->pages[i]) + j * VIRTIO_RDMA_PAGE_SIZE);
	return 0;
}

/* ---- doorbell records ---------------------------------------------------------------------- */

int vrdma_db_alloc(struct vrdma_db *db)
{
	memset(db, 0, sizeof(*db));
	db->va = kmem_cache_zalloc(vrdma_db_cache, GFP_KERNEL);
	if (!db->va)
		return -ENOMEM;
	db->pa = virt_to_phys(db->va);
	return 0;
}

/* A user record: 64-byte aligned, all 128 bytes within one page; pins that page. */
int vrdma_db_pin(struct vrdma_dev *dev, struct vrdma_db *db, u64 addr)
{
	struct sg_page_iter it;
	struct ib_umem *umem;
	u64 off = addr & ~PAGE_MASK;

	memset(db, 0, sizeof(*db));
	if (!addr || (addr & 63) ||
	    (addr & (VIRTIO_RDMA_PAGE_SIZE - 1)) + VIRTIO_RDMA_DB_SIZE > VIRTIO_RDMA_PAGE_SIZE)
		return -EINVAL;
	umem = ib_umem_get(&dev->ib, addr & PAGE_MASK, PAGE_SIZE, IB_ACCESS_LOCAL_WRITE);
	if (IS_ERR(umem))
		return PTR_ERR(umem);
	db->umem = umem;
	for_each_sgtable_page(&umem->sgt_append.sgt, &it, 0) {
		db->pa = page_to_phys(sg_page_iter_page(&it)) + off;
		return 0;
	}
	vrdma_db_free(db);
	return -EFAULT;
}

void vrdma_db_free(struct vrdma_db *db)
{
	if (db->umem)
		ib_umem_release(db->umem);
	else if (db->va)
		kmem_cache_free(vrdma_db_cache, db->va);
	memset(db, 0, sizeof(*db));
}
