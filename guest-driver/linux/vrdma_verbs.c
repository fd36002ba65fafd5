// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The ib_device: attributes, port, P_Key and GID table, user contexts and their notify-page
 * mmap, PDs, MRs, AHs, and the ops table. CQs, QPs and SRQs are in their own files.
 *
 * Attributes come from QUERY_DEVICE/QUERY_PORT, issued once at probe: queries then never wait
 * on the device (sysfs reads them at any time, also while the device is dead).
 */
#include <linux/etherdevice.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <rdma/ib_cache.h>
#include <rdma/ib_mad.h>
#include <rdma/uverbs_ioctl.h>

#include "vrdma.h"

/* Access flags the device knows (same values as IB_ACCESS_*). */
#define VRDMA_ACCESS_MASK	(IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | \
				 IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC)

u32 vrdma_ctx_handle(struct ib_udata *udata)
{
	struct vrdma_ucontext *uc =
		rdma_udata_to_drv_context(udata, struct vrdma_ucontext, ibuc);

	return uc ? uc->ctx_handle : 0;
}

/*
 * The outcome of a destroy command: true if the device no longer uses the object (destroyed,
 * unknown to it, or the device was reset), so its memory may be freed. Otherwise the memory is
 * leaked on purpose: the device might still write it.
 */
static bool vrdma_gone(struct vrdma_dev *dev, int ret, const char *what, u32 handle)
{
	if (!ret || ret == -ENOENT)
		return true;
	if (vrdma_dead(dev)) {
		vrdma_wait_reset(dev);
		return true;
	}
	dev_warn(&dev->vdev->dev, "destroying %s %u failed (%d): its memory stays allocated\n",
		 what, handle, ret);
	return false;
}

/* ---- device, port, P_Key, GID ------------------------------------------------------------- */

static int vrdma_query_device(struct ib_device *ibdev, struct ib_device_attr *a,
			      struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibdev);
	const struct virtio_rdma_rsp_query_device *d = &dev->attr;
	u32 caps = le32_to_cpu(d->device_cap_flags);

	if (udata && (udata->inlen || udata->outlen))
		return -EINVAL;
	a->fw_ver = le64_to_cpu(d->fw_ver);
	a->sys_image_guid = cpu_to_be64(le64_to_cpu(d->sys_image_guid));
	a->max_mr_size = le64_to_cpu(d->max_mr_size);
	a->page_size_cap = le64_to_cpu(d->page_size_cap);
	a->vendor_id = le32_to_cpu(d->vendor_id);
	a->vendor_part_id = le32_to_cpu(d->vendor_part_id);
	a->hw_ver = le32_to_cpu(d->hw_ver);
	a->max_qp = le32_to_cpu(d->max_qp);
	a->max_qp_wr = le32_to_cpu(d->max_qp_wr);
	a->device_cap_flags = 0;
	if (caps & VIRTIO_RDMA_DEVICE_RC_RNR_NAK_GEN)
		a->device_cap_flags |= IB_DEVICE_RC_RNR_NAK_GEN;
	if (caps & VIRTIO_RDMA_DEVICE_SRQ_RESIZE)
		a->device_cap_flags |= IB_DEVICE_SRQ_RESIZE;
	if (caps & VIRTIO_RDMA_DEVICE_SHUTDOWN_PORT)
		a->device_cap_flags |= IB_DEVICE_SHUTDOWN_PORT;
	a->max_send_sge = le32_to_cpu(d->max_send_sge);
	a->max_recv_sge = le32_to_cpu(d->max_recv_sge);
	a->max_sge_rd = le32_to_cpu(d->max_sge_rd);
	a->max_cq = le32_to_cpu(d->max_cq);
	a->max_cqe = le32_to_cpu(d->max_cqe);
	a->max_mr = le32_to_cpu(d->max_mr);
	a->max_pd = le32_to_cpu(d->max_pd);
	a->max_qp_rd_atom = le32_to_cpu(d->max_qp_rd_atom);
	a->max_qp_init_rd_atom = le32_to_cpu(d->max_qp_init_rd_atom);
	a->max_srq = le32_to_cpu(d->max_srq);
	a->max_srq_wr = le32_to_cpu(d->max_srq_wr);
	a->max_srq_sge = le32_to_cpu(d->max_srq_sge);
	a->max_ah = le32_to_cpu(d->max_ah);
	switch (le32_to_cpu(d->atomic_cap)) {
	case VIRTIO_RDMA_ATOMIC_HCA:
		a->atomic_cap = IB_ATOMIC_HCA;
		break;
	case VIRTIO_RDMA_ATOMIC_GLOB:
		a->atomic_cap = IB_ATOMIC_GLOB;
		break;
	default:
		a->atomic_cap = IB_ATOMIC_NONE;
		break;
	}
	a->max_pkeys = le16_to_cpu(d->max_pkeys);
	a->local_ca_ack_delay = d->local_ca_ack_delay;
	return 0;
}

static u8 vrdma_mtu(u8 mtu)
{
	return mtu >= IB_MTU_256 && mtu <= IB_MTU_4096 ? mtu : IB_MTU_1024;
}

static int vrdma_query_port(struct ib_device *ibdev, u32 port, struct ib_port_attr *pa)
{
	struct vrdma_dev *dev = to_vdev(ibdev);
	const struct virtio_rdma_rsp_query_port *p = &dev->port;
	bool up = READ_ONCE(dev->port_state) == VIRTIO_RDMA_PORT_ACTIVE && !vrdma_dead(dev);

	if (port != 1)
		return -EINVAL;
	pa->state = up ? IB_PORT_ACTIVE : IB_PORT_DOWN;
	pa->phys_state = up ? IB_PORT_PHYS_STATE_LINK_UP : IB_PORT_PHYS_STATE_DISABLED;
	pa->max_mtu = vrdma_mtu(p->max_mtu);
	pa->active_mtu = vrdma_mtu(p->active_mtu);
	pa->gid_tbl_len = le32_to_cpu(p->gid_tbl_len);
	pa->port_cap_flags = le32_to_cpu(p->port_cap_flags);
	pa->max_msg_sz = le32_to_cpu(p->max_msg_sz);
	pa->pkey_tbl_len = le16_to_cpu(p->pkey_tbl_len);
	pa->active_width = p->active_width;
	pa->active_speed = p->active_speed;
	pa->lid = 0;
	pa->sm_lid = 0;
	pa->lmc = 0;
	return 0;
}

static int vrdma_get_port_immutable(struct ib_device *ibdev, u32 port,
				    struct ib_port_immutable *im)
{
	struct ib_port_attr attr = {};
	int ret;

	ret = ib_query_port(ibdev, port, &attr);
	if (ret)
		return ret;
	im->pkey_tbl_len = attr.pkey_tbl_len;
	im->gid_tbl_len = attr.gid_tbl_len;
	/*
	 * RoCE v1 and v2 GIDs, with MAD and CM: the device has a GSI QP (QP1, spec section on QP
	 * types), so ib_mad opens the port and ib_cm/rdma_cm can connect. No SMI (RoCE has no QP0).
	 */
	im->core_cap_flags = RDMA_CORE_PORT_IBA_ROCE | RDMA_CORE_PORT_IBA_ROCE_UDP_ENCAP;
	im->max_mad_size = IB_MGMT_MAD_SIZE;
	return 0;
}

static enum rdma_link_layer vrdma_get_link_layer(struct ib_device *ibdev, u32 port)
{
	return IB_LINK_LAYER_ETHERNET;
}

static int vrdma_query_pkey(struct ib_device *ibdev, u32 port, u16 index, u16 *pkey)
{
	struct vrdma_dev *dev = to_vdev(ibdev);
	struct virtio_rdma_cmd_query_pkey req = {
		.port = cpu_to_le32(port),
		.index = cpu_to_le32(index),
	};
	struct virtio_rdma_rsp_query_pkey rsp;
	int ret;

	if (port != 1 || index >= le16_to_cpu(dev->port.pkey_tbl_len))
		return -EINVAL;
	if (index == 0) {
		*pkey = dev->pkey;
		return 0;
	}
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_QUERY_PKEY, &req, sizeof(req), &rsp, sizeof(rsp),
			 true);
	if (!ret)
		*pkey = le16_to_cpu(rsp.pkey);
	return ret;
}

static void vrdma_get_fw_str(struct ib_device *ibdev, char *str)
{
	snprintf(str, IB_FW_VERSION_NAME_MAX, "%llu",
		 le64_to_cpu(to_vdev(ibdev)->attr.fw_ver));
}

static int vrdma_add_gid(const struct ib_gid_attr *attr, void **context)
{
	struct vrdma_dev *dev = to_vdev(attr->device);
	struct virtio_rdma_cmd_gid req = {
		.port = cpu_to_le32(attr->port_num),
		.index = cpu_to_le32(attr->index),
	};
	struct net_device *ndev;

	switch (attr->gid_type) {
	case IB_GID_TYPE_ROCE:
		req.type = cpu_to_le32(VIRTIO_RDMA_GID_ROCE_V1);
		break;
	case IB_GID_TYPE_ROCE_UDP_ENCAP:
		req.type = cpu_to_le32(VIRTIO_RDMA_GID_ROCE_V2);
		break;
	default:
		return -EINVAL;
	}
	memcpy(req.gid, attr->gid.raw, sizeof(req.gid));
	rcu_read_lock();
	ndev = rdma_read_gid_attr_ndev_rcu(attr);
	if (!IS_ERR(ndev))
		ether_addr_copy(req.mac, ndev->dev_addr);
	rcu_read_unlock();
	if (vrdma_dead(dev))
		return 0;
	return vrdma_exec(dev, VIRTIO_RDMA_CMD_ADD_GID, &req, sizeof(req), NULL, 0, true);
}

static int vrdma_del_gid(const struct ib_gid_attr *attr, void **context)
{
	struct vrdma_dev *dev = to_vdev(attr->device);
	struct virtio_rdma_cmd_gid req = {
		.port = cpu_to_le32(attr->port_num),
		.index = cpu_to_le32(attr->index),
	};
	int ret;

	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_DEL_GID, &req, sizeof(req), NULL, 0, true);
	return vrdma_dead(dev) ? 0 : ret;
}

/* ---- user contexts and the notify pages ---------------------------------------------------- */

static int vrdma_alloc_ucontext(struct ib_ucontext *ibuc, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibuc->device);
	struct vrdma_ucontext *uc = to_vuctx(ibuc);
	struct virtio_rdma_alloc_ucontext_resp resp = {
		.abi_version = VIRTIO_RDMA_UVERBS_ABI_VERSION,
		.device_abi_version = le32_to_cpu(dev->cfg.abi_version),
		.page_shift = PAGE_SHIFT,
		.max_inline_data = le32_to_cpu(dev->cfg.max_inline_data),
	};
	struct virtio_rdma_rsp_create_ucontext rsp;
	int ret;

	if (!dev->user_notify) {
		dev_warn_ratelimited(&dev->vdev->dev,
				     "user-space verbs need a notify page per queue: set page-per-vq=on on the vhost-user-rdma-pci device\n");
		return -EOPNOTSUPP;
	}
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_CREATE_UCONTEXT, NULL, 0, &rsp, sizeof(rsp), true);
	if (ret)
		return ret;
	uc->ctx_handle = le32_to_cpu(rsp.ctx_handle);
	if (!uc->ctx_handle) {
		dev_warn_ratelimited(&dev->vdev->dev, "device returned context handle 0\n");
		return -EIO;
	}
	ret = ib_copy_to_udata(udata, &resp, min(udata->outlen, sizeof(resp)));
	if (ret) {
		vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_UCONTEXT, uc->ctx_handle, true);
		return ret;
	}
	return 0;
}

static void vrdma_dealloc_ucontext(struct ib_ucontext *ibuc)
{
	struct vrdma_dev *dev = to_vdev(ibuc->device);

	vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_UCONTEXT, to_vuctx(ibuc)->ctx_handle, true);
}

/* Nothing to do: ib_core zaps rdma_user_mmap_io mappings and destroys the objects. */
static void vrdma_disassociate_ucontext(struct ib_ucontext *ibuc)
{
}

/*
 * mmap offset (VIRTIO_RDMA_MMAP_NOTIFY + queue) << PAGE_SHIFT maps the notify page of doorbell
 * queue @queue: one page, shared, never executable, uncached.
 */
static int vrdma_mmap(struct ib_ucontext *ibuc, struct vm_area_struct *vma)
{
	struct vrdma_dev *dev = to_vdev(ibuc->device);
	unsigned long pgoff = vma->vm_pgoff;
	u32 queue;

	if (pgoff < VIRTIO_RDMA_MMAP_NOTIFY || pgoff - VIRTIO_RDMA_MMAP_NOTIFY >= VRDMA_MAX_VQS)
		return -EINVAL;
	queue = pgoff - VIRTIO_RDMA_MMAP_NOTIFY;
	if (!dev->user_notify || !vrdma_dbq_valid(dev, queue))
		return -EINVAL;
	if (vma->vm_end - vma->vm_start != PAGE_SIZE)
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	vrdma_vm_flags_clear(vma, VM_MAYEXEC);
	return rdma_user_mmap_io(ibuc, vma, PHYS_PFN(dev->notify[queue].page), PAGE_SIZE,
				 pgprot_noncached(vma->vm_page_prot), NULL);
}

/* ---- protection domains ------------------------------------------------------------------ */

static int vrdma_alloc_pd(struct ib_pd *ibpd, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibpd->device);
	struct vrdma_pd *pd = to_vpd(ibpd);
	struct virtio_rdma_cmd_alloc_pd req = {
		.ctx_handle = cpu_to_le32(vrdma_ctx_handle(udata)),
	};
	struct virtio_rdma_rsp_alloc_pd rsp;
	int ret;

	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_ALLOC_PD, &req, sizeof(req), &rsp, sizeof(rsp),
			 true);
	if (ret)
		return ret;
	pd->handle = le32_to_cpu(rsp.pd_handle);
	pd->ctx_handle = le32_to_cpu(req.ctx_handle);
	if (!pd->handle)
		return -EIO;
	return 0;
}

static int vrdma_dealloc_pd(struct ib_pd *ibpd, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibpd->device);
	struct vrdma_pd *pd = to_vpd(ibpd);
	int ret;

	ret = vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DEALLOC_PD, pd->handle, true);
	vrdma_gone(dev, ret, "PD", pd->handle);
	return 0;
}

/* ---- memory regions ----------------------------------------------------------------------- */

static struct ib_mr *vrdma_reg(struct vrdma_dev *dev, struct vrdma_mr *mr,
			       struct virtio_rdma_cmd_reg_mr *req)
{
	struct virtio_rdma_rsp_reg_mr rsp;
	int ret;

	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_REG_MR, req, sizeof(*req), &rsp, sizeof(rsp), true);
	if (ret)
		return ERR_PTR(ret);
	mr->ibmr.lkey = le32_to_cpu(rsp.lkey);
	mr->ibmr.rkey = le32_to_cpu(rsp.rkey);
	if (!mr->ibmr.lkey) {
		dev_warn_ratelimited(&dev->vdev->dev, "device returned lkey 0\n");
		return ERR_PTR(-EIO);
	}
	return &mr->ibmr;
}

/* All of guest RAM, IOVA = guest-physical address = DMA address: the kernel's lkey. */
static struct ib_mr *vrdma_get_dma_mr(struct ib_pd *ibpd, int access)
{
	struct vrdma_dev *dev = to_vdev(ibpd->device);
	struct virtio_rdma_cmd_reg_mr req = {
		.pd_handle = cpu_to_le32(to_vpd(ibpd)->handle),
		.access = cpu_to_le32(access & VRDMA_ACCESS_MASK),
		.flags = cpu_to_le32(VIRTIO_RDMA_MR_DMA),
	};
	struct vrdma_mr *mr;
	struct ib_mr *ret;

	if (!dev->dma_identity)
		return ERR_PTR(-EOPNOTSUPP);
	mr = kzalloc(sizeof(*mr), GFP_KERNEL);
	if (!mr)
		return ERR_PTR(-ENOMEM);
	ret = vrdma_reg(dev, mr, &req);
	if (IS_ERR(ret))
		kfree(mr);
	return ret;
}

static struct ib_mr *vrdma_reg_user_mr(struct ib_pd *ibpd, u64 start, u64 length, u64 virt_addr,
				       int access, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibpd->device);
	struct virtio_rdma_cmd_reg_mr req = {
		.pd_handle = cpu_to_le32(to_vpd(ibpd)->handle),
		.access = cpu_to_le32(access & VRDMA_ACCESS_MASK),
		.iova = cpu_to_le64(virt_addr),
		.length = cpu_to_le64(length),
	};
	struct vrdma_page_list pl;
	struct vrdma_mr *mr;
	struct ib_mr *ret;
	int err;

	if (access & (IB_ACCESS_MW_BIND | IB_ZERO_BASED | IB_ACCESS_ON_DEMAND))
		return ERR_PTR(-EOPNOTSUPP);
	/* The device places the first byte at offset (iova & 4095) of the first page. */
	if ((start ^ virt_addr) & ~PAGE_MASK)
		return ERR_PTR(-EINVAL);
	if (!length || length > le64_to_cpu(dev->attr.max_mr_size))
		return ERR_PTR(-EINVAL);
	mr = kzalloc(sizeof(*mr), GFP_KERNEL);
	if (!mr)
		return ERR_PTR(-ENOMEM);
	mr->umem = ib_umem_get(ibpd->device, start, length, access);
	if (IS_ERR(mr->umem)) {
		ret = ERR_CAST(mr->umem);
		goto err_free;
	}
	err = vrdma_umem_page_list(mr->umem, virt_addr, length, &pl);
	if (err) {
		ret = ERR_PTR(err);
		goto err_umem;
	}
	vrdma_pl_desc(&pl, &req.pages);
	ret = vrdma_reg(dev, mr, &req);
	vrdma_pl_free(&pl);
	if (IS_ERR(ret))
		goto err_umem;
	return ret;

err_umem:
	ib_umem_release(mr->umem);
err_free:
	kfree(mr);
	return ret;
}

static int vrdma_dereg_mr(struct ib_mr *ibmr, struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibmr->device);
	struct vrdma_mr *mr = to_vmr(ibmr);
	int ret;

	ret = vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DEREG_MR, ibmr->lkey, true);
	if (vrdma_gone(dev, ret, "MR", ibmr->lkey)) {
		if (mr->umem)
			ib_umem_release(mr->umem);
		kfree(mr);
	}
	return 0;
}

/* ---- address handles --------------------------------------------------------------------- */

void vrdma_fill_av(struct virtio_rdma_av *av, const struct rdma_ah_attr *ah)
{
	const struct ib_global_route *grh = rdma_ah_read_grh(ah);

	memset(av, 0, sizeof(*av));
	memcpy(av->dgid, grh->dgid.raw, sizeof(av->dgid));
	av->flow_label = cpu_to_le32(grh->flow_label);
	av->sgid_index = grh->sgid_index;
	av->hop_limit = grh->hop_limit;
	av->traffic_class = grh->traffic_class;
	av->sl = rdma_ah_get_sl(ah);
	if (ah->type == RDMA_AH_ATTR_TYPE_ROCE)
		ether_addr_copy(av->dmac, ah->roce.dmac);
	av->port_num = rdma_ah_get_port_num(ah);
	av->static_rate = rdma_ah_get_static_rate(ah);
}

static int vrdma_create_ah(struct ib_ah *ibah, struct rdma_ah_init_attr *init,
			   struct ib_udata *udata)
{
	struct vrdma_dev *dev = to_vdev(ibah->device);
	struct vrdma_ah *ah = to_vah(ibah);
	struct virtio_rdma_cmd_create_ah req = {
		.pd_handle = cpu_to_le32(to_vpd(ibah->pd)->handle),
	};
	struct virtio_rdma_rsp_create_ah rsp;
	bool sleep = init->flags & RDMA_CREATE_AH_SLEEPABLE;
	int ret;

	/* RoCE is routed by GID: an AH without a GRH has no destination. */
	if (!(rdma_ah_get_ah_flags(init->ah_attr) & IB_AH_GRH))
		return -EINVAL;
	vrdma_fill_av(&req.av, init->ah_attr);
	ret = vrdma_exec(dev, VIRTIO_RDMA_CMD_CREATE_AH, &req, sizeof(req), &rsp, sizeof(rsp),
			 sleep);
	if (ret)
		return ret;
	ah->handle = le32_to_cpu(rsp.ah_handle);
	if (!ah->handle)
		return -EIO;
	if (udata) {
		struct virtio_rdma_create_ah_resp uresp = { .ah_handle = ah->handle };

		ret = ib_copy_to_udata(udata, &uresp, min(udata->outlen, sizeof(uresp)));
		if (ret) {
			vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_AH, ah->handle, sleep);
			return ret;
		}
	}
	return 0;
}

static int vrdma_destroy_ah(struct ib_ah *ibah, u32 flags)
{
	struct vrdma_dev *dev = to_vdev(ibah->device);

	/* The device keeps no guest memory of an AH: nothing to wait for. */
	vrdma_exec_handle(dev, VIRTIO_RDMA_CMD_DESTROY_AH, to_vah(ibah)->handle,
			  flags & RDMA_DESTROY_AH_SLEEPABLE);
	return 0;
}

/* ---- registration ------------------------------------------------------------------------ */

static const struct ib_device_ops vrdma_dev_ops = {
	.owner = THIS_MODULE,
	.driver_id = RDMA_DRIVER_UNKNOWN,
	.uverbs_abi_ver = VIRTIO_RDMA_UVERBS_ABI_VERSION,
	.uverbs_no_driver_id_binding = 1,

	.add_gid = vrdma_add_gid,
	.alloc_pd = vrdma_alloc_pd,
	.alloc_ucontext = vrdma_alloc_ucontext,
	.create_ah = vrdma_create_ah,
	.create_cq = vrdma_create_cq_op,
	.create_qp = vrdma_create_qp,
	.create_srq = vrdma_create_srq,
	.create_user_ah = vrdma_create_ah,
	.dealloc_pd = vrdma_dealloc_pd,
	.dealloc_ucontext = vrdma_dealloc_ucontext,
	.del_gid = vrdma_del_gid,
	.dereg_mr = vrdma_dereg_mr,
	.destroy_ah = vrdma_destroy_ah,
	.destroy_cq = vrdma_destroy_cq,
	.destroy_qp = vrdma_destroy_qp,
	.destroy_srq = vrdma_destroy_srq,
	.disassociate_ucontext = vrdma_disassociate_ucontext,
	.get_dev_fw_str = vrdma_get_fw_str,
	.get_dma_mr = vrdma_get_dma_mr,
	.get_link_layer = vrdma_get_link_layer,
	.get_port_immutable = vrdma_get_port_immutable,
	.mmap = vrdma_mmap,
	.modify_qp = vrdma_modify_qp,
	.modify_srq = vrdma_modify_srq,
	.poll_cq = vrdma_poll_cq,
	.post_recv = vrdma_post_recv,
	.post_send = vrdma_post_send,
	.post_srq_recv = vrdma_post_srq_recv,
	.query_device = vrdma_query_device,
	.query_pkey = vrdma_query_pkey,
	.query_port = vrdma_query_port,
	.query_qp = vrdma_query_qp,
	.query_srq = vrdma_query_srq,
	.reg_user_mr = vrdma_reg_user_mr,
	.req_notify_cq = vrdma_req_notify_cq,
	.resize_cq = vrdma_resize_cq,

	INIT_RDMA_OBJ_SIZE(ib_ah, vrdma_ah, ibah),
	INIT_RDMA_OBJ_SIZE(ib_cq, vrdma_cq, ibcq),
	INIT_RDMA_OBJ_SIZE(ib_pd, vrdma_pd, ibpd),
	INIT_RDMA_OBJ_SIZE(ib_qp, vrdma_qp, ibqp),
	INIT_RDMA_OBJ_SIZE(ib_srq, vrdma_srq, ibsrq),
	INIT_RDMA_OBJ_SIZE(ib_ucontext, vrdma_ucontext, ibuc),
};

/* Probe, before anything refers to the port (ib_device_set_netdev needs phys_port_cnt). */
void vrdma_ib_setup(struct vrdma_dev *dev)
{
	struct ib_device *ib = &dev->ib;

	ib->node_type = RDMA_NODE_IB_CA;
	ib->phys_port_cnt = 1;
	ib->num_comp_vectors = 1;
	ib->node_guid = cpu_to_be64(le64_to_cpu(dev->cfg.node_guid));
	ib->dev.parent = &dev->vdev->dev;
	strscpy(ib->node_desc, "virtio-rdma", sizeof(ib->node_desc));
	ib_set_device_ops(ib, &vrdma_dev_ops);
}

int vrdma_register(struct vrdma_dev *dev)
{
	struct ib_device *ib = &dev->ib;
	int ret;

	/* DMA through the PCI function: without an IOMMU its DMA addresses are guest-physical. */
	ret = ib_register_device(ib, "vrdma%d", &dev->pdev->dev);
	if (ret) {
		dev_err(&dev->vdev->dev, "ib_register_device: %d\n", ret);
		return ret;
	}
	set_bit(VRDMA_F_REGISTERED, &dev->flags);
	return 0;
}

void vrdma_unregister(struct vrdma_dev *dev)
{
	/* From here on no event reaches ib_core (its event work could outlive the device). */
	if (test_and_clear_bit(VRDMA_F_REGISTERED, &dev->flags))
		ib_unregister_device(&dev->ib);
}
