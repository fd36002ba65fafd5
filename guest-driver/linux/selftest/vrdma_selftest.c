// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * vrdma_selftest.ko: kernel-verbs self test of virtio_rdma.ko.
 *
 * An ib_client: for every ib_device named vrdma*, its add callback runs the tests on that
 * device (so they are done when insmod returns) and keeps everything it created until the
 * device or this module goes away; the remove callback destroys it all. That exercises the
 * driver's destroy paths both when this module is removed and when virtio_rdma is removed
 * underneath it.
 *
 * Loopback through the device's fabric: every destination is the device's own RoCE v2 GID made
 * from its IPv4 address. Results go to the kernel log as "vrdma-selftest: PASS <name>" or
 * "vrdma-selftest: FAIL <name>: <why>", then "vrdma-selftest: DONE <dev> pass=N fail=M".
 */
#define pr_fmt(fmt) "vrdma-selftest: " fmt

#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/etherdevice.h>
#include <linux/in.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <net/ipv6.h>
#include <rdma/ib_cache.h>
#include <rdma/ib_verbs.h>
#include <rdma/rdma_cm.h>

static bool run_cm = true;
module_param(run_cm, bool, 0444);
MODULE_PARM_DESC(run_cm, "Also connect with rdma_cm over the device's own address (default true)");

#define ST_TIMEOUT_MS	10000
#define ST_BUF_SIZE	(64 * 1024)
#define ST_QKEY		0x11111111
#define ST_MSG		256
#define ST_CM_PORT	20079	/* the rdma_cm loopback listens here */

/* Regions of the one DMA buffer. */
enum {
	OFF_SEND = 0x0000,
	OFF_RECV = 0x1000,
	OFF_WTGT = 0x2000,	/* RDMA WRITE target, also RDMA READ source */
	OFF_WSRC = 0x3000,
	OFF_RTGT = 0x4000,	/* RDMA READ target */
	OFF_ATOM = 0x5000,	/* atomic target (8 bytes) */
	OFF_ARES = 0x5040,	/* atomic result */
	OFF_UDRX = 0x6000,	/* UD receive: 40-byte GRH + payload */
	OFF_UDTX = 0x7000,
	OFF_SRQ = 0x8000,
};

static DEFINE_SPINLOCK(st_atomic_lock);	/* makes the non-sleepable AH test atomic */

struct st_dev {
	struct ib_device *dev;
	unsigned int pass, fail;

	struct ib_pd *pd;
	struct ib_mr *amr;		/* DMA MR with remote atomic access */
	struct ib_cq *scq, *rcq;
	struct ib_qp *rc[2];		/* connected to each other */
	struct ib_qp *ud;
	struct ib_ah *ah;
	struct ib_srq *srq;
	struct ib_qp *sq[2];		/* sq[1] receives through the SRQ */

	u8 *buf;
	u64 dma;

	int gid_index;
	union ib_gid gid;
	u8 mac[ETH_ALEN];

	struct completion comp;
	atomic_t comp_events;

	struct st_cm_side {
		struct st_dev *st;
		struct rdma_cm_id *id;	/* client: its id; server: the accepted connection */
		unsigned long seen;	/* bits of the rdma_cm events seen */
		wait_queue_head_t wq;
	} cm_cli, cm_srv;
};

static void st_result(struct st_dev *st, const char *name, bool ok, const char *why)
{
	if (ok) {
		st->pass++;
		pr_info("PASS %s\n", name);
	} else {
		st->fail++;
		pr_err("FAIL %s: %s\n", name, why);
	}
}

static void st_comp_handler(struct ib_cq *cq, void *ctx)
{
	struct st_dev *st = ctx;

	atomic_inc(&st->comp_events);
	complete(&st->comp);
}

/* Polls one completion, waiting up to ST_TIMEOUT_MS. */
static bool st_poll(struct ib_cq *cq, struct ib_wc *wc)
{
	unsigned long end = jiffies + msecs_to_jiffies(ST_TIMEOUT_MS);

	do {
		if (ib_poll_cq(cq, 1, wc) == 1)
			return true;
		usleep_range(50, 200);
	} while (time_before(jiffies, end));
	return false;
}

static bool st_poll_ok(struct ib_cq *cq, enum ib_wc_opcode op, struct ib_wc *wc)
{
	if (!st_poll(cq, wc)) {
		pr_err("no completion on CQ\n");
		return false;
	}
	if (wc->status != IB_WC_SUCCESS || wc->opcode != op) {
		pr_err("completion status %d (%s) opcode %d, wanted opcode %d\n", wc->status,
		       ib_wc_status_msg(wc->status), wc->opcode, op);
		return false;
	}
	return true;
}

static struct ib_sge st_sge(struct st_dev *st, unsigned int off, u32 len)
{
	struct ib_sge sge = {
		.addr = st->dma + off,
		.length = len,
		.lkey = st->pd->local_dma_lkey,
	};
	return sge;
}

static int st_post_recv(struct st_dev *st, struct ib_qp *qp, unsigned int off, u32 len, u64 id)
{
	struct ib_sge sge = st_sge(st, off, len);
	struct ib_recv_wr wr = { .wr_id = id, .sg_list = &sge, .num_sge = 1 };

	return ib_post_recv(qp, &wr, NULL);
}

static int st_post_send(struct st_dev *st, struct ib_qp *qp, enum ib_wr_opcode op,
			unsigned int off, u32 len, u64 id)
{
	struct ib_sge sge = st_sge(st, off, len);
	struct ib_send_wr wr = {
		.wr_id = id, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IB_SEND_SIGNALED,
	};

	return ib_post_send(qp, &wr, NULL);
}

/* ---- setup -------------------------------------------------------------------------------- */

/* The RoCE v2 GID made from an IPv4 address, and the MAC of its netdev. */
static bool st_find_gid(struct st_dev *st)
{
	const struct ib_gid_attr *attr;
	struct net_device *ndev;
	int i;

	for (i = 0; i < st->dev->port_data[1].immutable.gid_tbl_len; i++) {
		attr = rdma_get_gid_attr(st->dev, 1, i);
		if (IS_ERR(attr))
			continue;
		if (attr->gid_type == IB_GID_TYPE_ROCE_UDP_ENCAP &&
		    ipv6_addr_v4mapped((struct in6_addr *)attr->gid.raw)) {
			st->gid_index = i;
			st->gid = attr->gid;
			rcu_read_lock();
			ndev = rdma_read_gid_attr_ndev_rcu(attr);
			if (!IS_ERR(ndev))
				ether_addr_copy(st->mac, ndev->dev_addr);
			rcu_read_unlock();
			rdma_put_gid_attr(attr);
			return true;
		}
		rdma_put_gid_attr(attr);
	}
	return false;
}

static void st_fill_ah(struct st_dev *st, struct rdma_ah_attr *ah)
{
	memset(ah, 0, sizeof(*ah));
	ah->type = rdma_ah_find_type(st->dev, 1);
	rdma_ah_set_port_num(ah, 1);
	rdma_ah_set_grh(ah, &st->gid, 0, st->gid_index, 64, 0);
	ether_addr_copy(ah->roce.dmac, st->mac);
}

static struct ib_qp *st_create_qp(struct st_dev *st, enum ib_qp_type type, struct ib_srq *srq)
{
	struct ib_qp_init_attr init = {
		.qp_type = type,
		.send_cq = st->scq,
		.recv_cq = st->rcq,
		.srq = srq,
		.sq_sig_type = IB_SIGNAL_REQ_WR,
		.cap = {
			.max_send_wr = 16,
			.max_recv_wr = srq ? 0 : 16,
			.max_send_sge = 2,
			.max_recv_sge = srq ? 0 : 2,
			.max_inline_data = type == IB_QPT_RC ? 64 : 0,
		},
	};

	return ib_create_qp(st->pd, &init);
}

static int st_connect(struct st_dev *st, struct ib_qp *qp, struct ib_qp *peer)
{
	struct ib_qp_attr attr = {};
	int ret;

	attr.qp_state = IB_QPS_INIT;
	attr.pkey_index = 0;
	attr.port_num = 1;
	attr.qp_access_flags = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE |
			       IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC;
	ret = ib_modify_qp(qp, &attr, IB_QP_STATE | IB_QP_PKEY_INDEX | IB_QP_PORT |
			   IB_QP_ACCESS_FLAGS);
	if (ret)
		return ret;

	memset(&attr, 0, sizeof(attr));
	attr.qp_state = IB_QPS_RTR;
	attr.path_mtu = IB_MTU_1024;
	attr.dest_qp_num = peer->qp_num;
	attr.rq_psn = 0x100 + (qp->qp_num & 0xff);
	attr.max_dest_rd_atomic = 4;
	attr.min_rnr_timer = 1;
	st_fill_ah(st, &attr.ah_attr);
	ret = ib_modify_qp(qp, &attr, IB_QP_STATE | IB_QP_AV | IB_QP_PATH_MTU | IB_QP_DEST_QPN |
			   IB_QP_RQ_PSN | IB_QP_MAX_DEST_RD_ATOMIC | IB_QP_MIN_RNR_TIMER);
	if (ret)
		return ret;

	memset(&attr, 0, sizeof(attr));
	attr.qp_state = IB_QPS_RTS;
	attr.sq_psn = 0x100 + (peer->qp_num & 0xff);
	attr.timeout = 14;
	attr.retry_cnt = 7;
	attr.rnr_retry = 7;
	attr.max_rd_atomic = 4;
	return ib_modify_qp(qp, &attr, IB_QP_STATE | IB_QP_SQ_PSN | IB_QP_TIMEOUT |
			    IB_QP_RETRY_CNT | IB_QP_RNR_RETRY | IB_QP_MAX_QP_RD_ATOMIC);
}

static int st_ud_ready(struct ib_qp *qp)
{
	struct ib_qp_attr attr = {};
	int ret;

	attr.qp_state = IB_QPS_INIT;
	attr.pkey_index = 0;
	attr.port_num = 1;
	attr.qkey = ST_QKEY;
	ret = ib_modify_qp(qp, &attr, IB_QP_STATE | IB_QP_PKEY_INDEX | IB_QP_PORT | IB_QP_QKEY);
	if (ret)
		return ret;
	attr.qp_state = IB_QPS_RTR;
	ret = ib_modify_qp(qp, &attr, IB_QP_STATE);
	if (ret)
		return ret;
	attr.qp_state = IB_QPS_RTS;
	attr.sq_psn = 0;
	return ib_modify_qp(qp, &attr, IB_QP_STATE | IB_QP_SQ_PSN);
}

/*
 * ib_alloc_pd's DMA MR allows remote read and write only; atomics need one with
 * IB_ACCESS_REMOTE_ATOMIC, which kernel verbs have no call for: ask the driver directly.
 */
static void st_atomic_mr(struct st_dev *st)
{
	struct ib_mr *mr;

	mr = st->dev->ops.get_dma_mr(st->pd, IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_READ |
				     IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC);
	if (IS_ERR(mr)) {
		st_result(st, "dma-mr-atomic", false, "get_dma_mr failed");
		return;
	}
	mr->device = st->dev;
	mr->pd = st->pd;
	mr->type = IB_MR_TYPE_DMA;
	st->amr = mr;
	st_result(st, "dma-mr-atomic", mr->lkey && mr->rkey, "DMA MR without keys");
}

/* Completions a failed test left behind must not confuse the next one. */
static void st_drain(struct st_dev *st)
{
	struct ib_wc wc;

	while (st->scq && ib_poll_cq(st->scq, 1, &wc) == 1)
		pr_info("left-over completion wr_id %llu status %d\n", wc.wr_id, wc.status);
	while (st->rcq && ib_poll_cq(st->rcq, 1, &wc) == 1)
		pr_info("left-over completion wr_id %llu status %d\n", wc.wr_id, wc.status);
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void st_fill(struct st_dev *st, unsigned int off, u32 len, u8 seed)
{
	u32 i;

	for (i = 0; i < len; i++)
		st->buf[off + i] = (u8)(seed + i * 7);
}

static void st_sync(struct st_dev *st)
{
	ib_dma_sync_single_for_cpu(st->dev, st->dma, ST_BUF_SIZE, DMA_BIDIRECTIONAL);
}

static void st_send_recv(struct st_dev *st, const char *name)
{
	struct ib_wc wc;
	bool ok;

	st_fill(st, OFF_SEND, ST_MSG, 0x11);
	memset(st->buf + OFF_RECV, 0, ST_MSG);
	ok = !st_post_recv(st, st->rc[1], OFF_RECV, ST_MSG, 1) &&
	     !st_post_send(st, st->rc[0], IB_WR_SEND, OFF_SEND, ST_MSG, 2) &&
	     st_poll_ok(st->scq, IB_WC_SEND, &wc) && wc.wr_id == 2 && wc.qp == st->rc[0] &&
	     st_poll_ok(st->rcq, IB_WC_RECV, &wc) && wc.wr_id == 1 && wc.qp == st->rc[1] &&
	     wc.byte_len == ST_MSG;
	st_sync(st);
	ok = ok && !memcmp(st->buf + OFF_SEND, st->buf + OFF_RECV, ST_MSG);
	st_result(st, name, ok, "SEND did not arrive intact");
}

static void st_send_imm_inline(struct st_dev *st)
{
	struct ib_sge sge = {
		.addr = (uintptr_t)(st->buf + OFF_SEND),	/* inline: a kernel address */
		.length = 48,
	};
	struct ib_send_wr wr = {
		.wr_id = 3, .sg_list = &sge, .num_sge = 1, .opcode = IB_WR_SEND_WITH_IMM,
		.send_flags = IB_SEND_SIGNALED | IB_SEND_INLINE,
		.ex.imm_data = cpu_to_be32(0xfeedc0de),
	};
	struct ib_wc wc;
	bool ok;

	st_fill(st, OFF_SEND, 48, 0x5a);
	memset(st->buf + OFF_RECV, 0, ST_MSG);
	ok = !st_post_recv(st, st->rc[1], OFF_RECV, ST_MSG, 4) &&
	     !ib_post_send(st->rc[0], &wr, NULL) &&
	     st_poll_ok(st->scq, IB_WC_SEND, &wc) &&
	     st_poll_ok(st->rcq, IB_WC_RECV, &wc) && wc.byte_len == 48 &&
	     (wc.wc_flags & IB_WC_WITH_IMM) && wc.ex.imm_data == cpu_to_be32(0xfeedc0de);
	st_sync(st);
	ok = ok && !memcmp(st->buf + OFF_SEND, st->buf + OFF_RECV, 48);
	st_result(st, "send-inline-imm", ok, "inline SEND with immediate failed");
}

static void st_rdma_write(struct st_dev *st)
{
	struct ib_sge sge = st_sge(st, OFF_WSRC, 1024);
	struct ib_rdma_wr wr = {
		.wr = {
			.wr_id = 5, .sg_list = &sge, .num_sge = 1, .opcode = IB_WR_RDMA_WRITE,
			.send_flags = IB_SEND_SIGNALED,
		},
		.remote_addr = st->dma + OFF_WTGT,
		.rkey = st->pd->unsafe_global_rkey,
	};
	struct ib_wc wc;
	bool ok;

	st_fill(st, OFF_WSRC, 1024, 0x33);
	memset(st->buf + OFF_WTGT, 0, 1024);
	ok = !ib_post_send(st->rc[0], &wr.wr, NULL) && st_poll_ok(st->scq, IB_WC_RDMA_WRITE, &wc);
	st_sync(st);
	ok = ok && !memcmp(st->buf + OFF_WSRC, st->buf + OFF_WTGT, 1024);
	st_result(st, "rdma-write", ok, "RDMA WRITE data wrong");
}

static void st_rdma_read(struct st_dev *st)
{
	struct ib_sge sge = st_sge(st, OFF_RTGT, 1024);
	struct ib_rdma_wr wr = {
		.wr = {
			.wr_id = 6, .sg_list = &sge, .num_sge = 1, .opcode = IB_WR_RDMA_READ,
			.send_flags = IB_SEND_SIGNALED,
		},
		.remote_addr = st->dma + OFF_WTGT,
		.rkey = st->pd->unsafe_global_rkey,
	};
	struct ib_wc wc;
	bool ok;

	st_fill(st, OFF_WTGT, 1024, 0x77);
	memset(st->buf + OFF_RTGT, 0, 1024);
	ok = !ib_post_send(st->rc[0], &wr.wr, NULL) && st_poll_ok(st->scq, IB_WC_RDMA_READ, &wc) &&
	     wc.byte_len == 1024;
	st_sync(st);
	ok = ok && !memcmp(st->buf + OFF_WTGT, st->buf + OFF_RTGT, 1024);
	st_result(st, "rdma-read", ok, "RDMA READ data wrong");
}

static void st_atomics(struct st_dev *st)
{
	struct ib_sge sge = st_sge(st, OFF_ARES, 8);
	struct ib_atomic_wr wr = {
		.wr = {
			.wr_id = 7, .sg_list = &sge, .num_sge = 1,
			.opcode = IB_WR_ATOMIC_FETCH_AND_ADD, .send_flags = IB_SEND_SIGNALED,
		},
		.remote_addr = st->dma + OFF_ATOM,
		.compare_add = 5,
		.rkey = st->amr->rkey,
	};
	u64 *target = (u64 *)(st->buf + OFF_ATOM), *result = (u64 *)(st->buf + OFF_ARES);
	struct ib_wc wc;
	bool ok;

	if (!st->amr) {
		st_result(st, "atomic-fetch-add", false, "no DMA MR with remote atomic access");
		return;
	}
	*target = 0x1000;
	*result = 0;
	ok = !ib_post_send(st->rc[0], &wr.wr, NULL) && st_poll_ok(st->scq, IB_WC_FETCH_ADD, &wc);
	st_sync(st);
	ok = ok && *result == 0x1000 && *target == 0x1005;
	st_result(st, "atomic-fetch-add", ok, "FETCH_AND_ADD result wrong");

	wr.wr.opcode = IB_WR_ATOMIC_CMP_AND_SWP;
	wr.compare_add = 0x1005;
	wr.swap = 0x4242;
	*result = 0;
	ok = !ib_post_send(st->rc[0], &wr.wr, NULL) && st_poll_ok(st->scq, IB_WC_COMP_SWAP, &wc);
	st_sync(st);
	ok = ok && *result == 0x1005 && *target == 0x4242;
	st_result(st, "atomic-cmp-swap", ok, "CMP_AND_SWP result wrong");
}

static void st_notify(struct st_dev *st)
{
	struct ib_wc wc;
	bool ok;
	int missed;

	reinit_completion(&st->comp);
	missed = ib_req_notify_cq(st->rcq, IB_CQ_NEXT_COMP | IB_CQ_REPORT_MISSED_EVENTS);
	ok = missed == 0 &&
	     !st_post_recv(st, st->rc[1], OFF_RECV, ST_MSG, 8) &&
	     !st_post_send(st, st->rc[0], IB_WR_SEND, OFF_SEND, 64, 9) &&
	     wait_for_completion_timeout(&st->comp, msecs_to_jiffies(ST_TIMEOUT_MS)) &&
	     st_poll_ok(st->rcq, IB_WC_RECV, &wc) && st_poll_ok(st->scq, IB_WC_SEND, &wc);
	st_result(st, "req-notify-comp-handler", ok, "no completion event after arming the CQ");

	/* Solicited-only arm: an unsolicited SEND must not fire it, a solicited one must. */
	reinit_completion(&st->comp);
	missed = ib_req_notify_cq(st->rcq, IB_CQ_SOLICITED | IB_CQ_REPORT_MISSED_EVENTS);
	ok = missed == 0 &&
	     !st_post_recv(st, st->rc[1], OFF_RECV, ST_MSG, 10) &&
	     !st_post_send(st, st->rc[0], IB_WR_SEND, OFF_SEND, 64, 11) &&
	     st_poll_ok(st->rcq, IB_WC_RECV, &wc) && st_poll_ok(st->scq, IB_WC_SEND, &wc) &&
	     !try_wait_for_completion(&st->comp);
	if (ok) {
		struct ib_sge sge = st_sge(st, OFF_SEND, 64);
		struct ib_send_wr wr = {
			.wr_id = 12, .sg_list = &sge, .num_sge = 1, .opcode = IB_WR_SEND,
			.send_flags = IB_SEND_SIGNALED | IB_SEND_SOLICITED,
		};

		ok = !st_post_recv(st, st->rc[1], OFF_RECV, ST_MSG, 13) &&
		     !ib_post_send(st->rc[0], &wr, NULL) &&
		     wait_for_completion_timeout(&st->comp, msecs_to_jiffies(ST_TIMEOUT_MS)) &&
		     st_poll_ok(st->rcq, IB_WC_RECV, &wc) && st_poll_ok(st->scq, IB_WC_SEND, &wc);
	}
	st_result(st, "req-notify-solicited", ok, "solicited arm misbehaved");
}

static void st_ud(struct st_dev *st)
{
	struct rdma_ah_attr ah_attr;
	struct ib_ah *ah_atomic;
	struct ib_sge sge;
	struct ib_ud_wr wr = {};
	struct ib_wc wc;
	bool ok;

	st->ud = st_create_qp(st, IB_QPT_UD, NULL);
	ok = !IS_ERR(st->ud) && !st_ud_ready(st->ud);
	if (IS_ERR(st->ud))
		st->ud = NULL;
	st_result(st, "ud-qp-create", ok, "UD QP create/modify failed");
	if (!ok)
		return;

	st_fill_ah(st, &ah_attr);
	st->ah = rdma_create_ah(st->pd, &ah_attr, RDMA_CREATE_AH_SLEEPABLE);
	if (IS_ERR(st->ah)) {
		st_result(st, "ah-create", false, "rdma_create_ah failed");
		st->ah = NULL;
		return;
	}
	st_result(st, "ah-create", true, "");

	/* Without RDMA_CREATE_AH_SLEEPABLE the driver must not sleep: create under a spinlock. */
	spin_lock(&st_atomic_lock);
	ah_atomic = rdma_create_ah(st->pd, &ah_attr, 0);
	if (!IS_ERR(ah_atomic))
		rdma_destroy_ah(ah_atomic, 0);
	spin_unlock(&st_atomic_lock);
	st_result(st, "ah-create-destroy-atomic", !IS_ERR(ah_atomic), "atomic AH failed");

	st_fill(st, OFF_UDTX, 64, 0x99);
	memset(st->buf + OFF_UDRX, 0, 40 + ST_MSG);
	sge = st_sge(st, OFF_UDTX, 64);
	wr.wr.wr_id = 20;
	wr.wr.sg_list = &sge;
	wr.wr.num_sge = 1;
	wr.wr.opcode = IB_WR_SEND;
	wr.wr.send_flags = IB_SEND_SIGNALED;
	wr.ah = st->ah;
	wr.remote_qpn = st->ud->qp_num;
	wr.remote_qkey = ST_QKEY;
	ok = !st_post_recv(st, st->ud, OFF_UDRX, 40 + ST_MSG, 21) &&
	     !ib_post_send(st->ud, &wr.wr, NULL) &&
	     st_poll_ok(st->scq, IB_WC_SEND, &wc) &&
	     st_poll_ok(st->rcq, IB_WC_RECV, &wc) && wc.byte_len == 40 + 64 &&
	     (wc.wc_flags & IB_WC_GRH) && wc.src_qp == st->ud->qp_num &&
	     (wc.wc_flags & IB_WC_WITH_NETWORK_HDR_TYPE) &&
	     wc.network_hdr_type == RDMA_NETWORK_IPV4;
	st_sync(st);
	ok = ok && !memcmp(st->buf + OFF_UDTX, st->buf + OFF_UDRX + 40, 64);
	st_result(st, "ud-send-self", ok, "UD SEND to itself failed");
}

static void st_srq(struct st_dev *st)
{
	struct ib_srq_init_attr init = {
		.attr = { .max_wr = 16, .max_sge = 1 },
		.srq_type = IB_SRQT_BASIC,
	};
	struct ib_sge sge = st_sge(st, OFF_SRQ, ST_MSG);
	struct ib_recv_wr rwr = { .wr_id = 30, .sg_list = &sge, .num_sge = 1 };
	struct ib_srq_attr attr;
	struct ib_wc wc;
	bool ok;

	st->srq = ib_create_srq(st->pd, &init);
	if (IS_ERR(st->srq)) {
		st->srq = NULL;
		st_result(st, "srq-recv", false, "ib_create_srq failed");
		return;
	}
	st->sq[0] = st_create_qp(st, IB_QPT_RC, NULL);
	st->sq[1] = st_create_qp(st, IB_QPT_RC, st->srq);
	if (IS_ERR(st->sq[0]) || IS_ERR(st->sq[1])) {
		if (IS_ERR(st->sq[0]))
			st->sq[0] = NULL;
		if (IS_ERR(st->sq[1]))
			st->sq[1] = NULL;
		st_result(st, "srq-recv", false, "QP with SRQ: create failed");
		return;
	}
	st_fill(st, OFF_SEND, ST_MSG, 0x44);
	memset(st->buf + OFF_SRQ, 0, ST_MSG);
	ok = !st_connect(st, st->sq[0], st->sq[1]) && !st_connect(st, st->sq[1], st->sq[0]) &&
	     !ib_post_srq_recv(st->srq, &rwr, NULL) &&
	     !st_post_send(st, st->sq[0], IB_WR_SEND, OFF_SEND, ST_MSG, 31) &&
	     st_poll_ok(st->scq, IB_WC_SEND, &wc) &&
	     st_poll_ok(st->rcq, IB_WC_RECV, &wc) && wc.wr_id == 30 && wc.qp == st->sq[1];
	st_sync(st);
	ok = ok && !memcmp(st->buf + OFF_SEND, st->buf + OFF_SRQ, ST_MSG);
	st_result(st, "srq-recv", ok, "SEND through the SRQ failed");

	ok = !ib_query_srq(st->srq, &attr) && attr.max_wr >= 16 && attr.max_sge >= 1;
	attr.srq_limit = 4;
	ok = ok && !ib_modify_srq(st->srq, &attr, IB_SRQ_LIMIT);
	st_result(st, "srq-query-modify", ok, "SRQ query/modify failed");
}

/*
 * Many rounds of batched SEND/RECV with two SGEs each: the SQ, RQ and CQ indices wrap around
 * their rings several times.
 */
static void st_wrap(struct st_dev *st)
{
	const unsigned int batch = 8, rounds = 40, half = 100;
	struct ib_sge ssge[2], rsge[2];
	struct ib_send_wr swr = { .sg_list = ssge, .num_sge = 2, .opcode = IB_WR_SEND,
				  .send_flags = IB_SEND_SIGNALED };
	struct ib_recv_wr rwr = { .sg_list = rsge, .num_sge = 2 };
	unsigned int r, i, got;
	struct ib_wc wc;
	bool ok = true;

	ssge[0] = st_sge(st, OFF_SEND, half);
	ssge[1] = st_sge(st, OFF_SEND + 0x800, half);
	rsge[0] = st_sge(st, OFF_RECV, half);
	rsge[1] = st_sge(st, OFF_RECV + 0x800, half);
	for (r = 0; r < rounds && ok; r++) {
		st_fill(st, OFF_SEND, half, r);
		st_fill(st, OFF_SEND + 0x800, half, r + 1);
		for (i = 0; i < batch && ok; i++) {
			rwr.wr_id = 1000 + r * batch + i;
			ok = !ib_post_recv(st->rc[1], &rwr, NULL);
		}
		for (i = 0; i < batch && ok; i++) {
			swr.wr_id = 5000 + r * batch + i;
			ok = !ib_post_send(st->rc[0], &swr, NULL);
		}
		for (got = 0; got < batch && ok; got++)
			ok = st_poll_ok(st->scq, IB_WC_SEND, &wc) &&
			     wc.wr_id == 5000 + r * batch + got;
		for (got = 0; got < batch && ok; got++)
			ok = st_poll_ok(st->rcq, IB_WC_RECV, &wc) &&
			     wc.wr_id == 1000 + r * batch + got && wc.byte_len == 2 * half;
		st_sync(st);
		ok = ok && !memcmp(st->buf + OFF_SEND, st->buf + OFF_RECV, half) &&
		     !memcmp(st->buf + OFF_SEND + 0x800, st->buf + OFF_RECV + 0x800, half);
	}
	st_result(st, "ring-wraparound-2sge", ok, "batched SEND/RECV went wrong");
}

static void st_resize(struct st_dev *st)
{
	bool ok = !ib_resize_cq(st->scq, 200) && st->scq->cqe >= 200;

	st_result(st, "resize-cq", ok, "ib_resize_cq failed");
	if (ok)
		st_send_recv(st, "send-recv-after-resize");
}

static void st_query(struct st_dev *st)
{
	struct ib_qp_init_attr init;
	struct ib_qp_attr attr;
	bool ok;

	ok = !ib_query_qp(st->rc[0], &attr, IB_QP_STATE | IB_QP_DEST_QPN | IB_QP_AV, &init) &&
	     attr.qp_state == IB_QPS_RTS && attr.dest_qp_num == st->rc[1]->qp_num &&
	     attr.cap.max_send_wr >= 16 && init.qp_type == IB_QPT_RC &&
	     !memcmp(rdma_ah_read_grh(&attr.ah_attr)->dgid.raw, st->gid.raw, 16);
	st_result(st, "query-qp", ok, "ib_query_qp answer wrong");
}

/* A bad lkey: an error CQE, and the QP in ERR (the pair is not used afterwards). */
static void st_error_cqe(struct st_dev *st)
{
	struct ib_sge sge = st_sge(st, OFF_SEND, 64);
	struct ib_send_wr wr = {
		.wr_id = 40, .sg_list = &sge, .num_sge = 1, .opcode = IB_WR_SEND,
		.send_flags = IB_SEND_SIGNALED,
	};
	struct ib_qp_init_attr init;
	struct ib_qp_attr attr;
	struct ib_wc wc;
	bool ok;

	sge.lkey = 0x00abcdef;
	ok = !ib_post_send(st->sq[0], &wr, NULL) && st_poll(st->scq, &wc) &&
	     wc.status == IB_WC_LOC_PROT_ERR && wc.wr_id == 40 &&
	     !ib_query_qp(st->sq[0], &attr, IB_QP_STATE, &init) && attr.qp_state == IB_QPS_ERR;
	st_result(st, "bad-lkey-error-cqe", ok, "no LOC_PROT_ERR completion / QP not in ERR");
}

static struct ib_qp_init_attr st_cm_qp_init(struct st_dev *st)
{
	struct ib_qp_init_attr init = {
		.qp_type = IB_QPT_RC,
		.send_cq = st->scq,
		.recv_cq = st->rcq,
		.sq_sig_type = IB_SIGNAL_REQ_WR,
		.cap = { .max_send_wr = 8, .max_recv_wr = 8, .max_send_sge = 1, .max_recv_sge = 1 },
	};

	return init;
}

/* The passive side of a connection request: a QP on the new id, then accept. */
static int st_cm_accept(struct st_cm_side *s, struct rdma_cm_id *id)
{
	struct ib_qp_init_attr init = st_cm_qp_init(s->st);
	struct rdma_conn_param param = {
		.responder_resources = 1, .initiator_depth = 1, .rnr_retry_count = 7,
	};
	int ret;

	ret = rdma_create_qp(id, s->st->pd, &init);
	if (ret) {
		pr_err("rdma_create_qp (passive): %d\n", ret);
		return ret;
	}
	ret = rdma_accept(id, &param);
	if (ret) {
		pr_err("rdma_accept: %d\n", ret);
		rdma_destroy_qp(id);
	}
	return ret;
}

static int st_cm_handler(struct rdma_cm_id *id, struct rdma_cm_event *ev)
{
	struct st_cm_side *s = id->context;
	int ret = 0;

	if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
		/* One connection only; a non-zero return makes rdma_cm destroy the new id. */
		ret = s->id ? -EBUSY : st_cm_accept(s, id);
		if (!ret)
			s->id = id;
	}
	pr_info("rdma_cm %s event %d (%s) status %d\n", s == &s->st->cm_srv ? "server" : "client",
		ev->event, rdma_event_msg(ev->event), ev->status);
	if (ev->event < BITS_PER_LONG)
		set_bit(ev->event, &s->seen);
	wake_up(&s->wq);
	return ret;
}

#define ST_CM_ERRORS	(BIT(RDMA_CM_EVENT_ADDR_ERROR) | BIT(RDMA_CM_EVENT_ROUTE_ERROR) | \
			 BIT(RDMA_CM_EVENT_CONNECT_ERROR) | BIT(RDMA_CM_EVENT_UNREACHABLE) | \
			 BIT(RDMA_CM_EVENT_REJECTED))

/* Waits for event @want on one side (or an error event); true if it came. */
static bool st_cm_wait(struct st_cm_side *s, enum rdma_cm_event_type want)
{
	wait_event_timeout(s->wq, READ_ONCE(s->seen) & (BIT(want) | ST_CM_ERRORS),
			   msecs_to_jiffies(ST_TIMEOUT_MS));
	if (!test_bit(want, &s->seen)) {
		pr_err("rdma_cm %s: no event %d (events seen %#lx)\n",
		       s == &s->st->cm_srv ? "server" : "client", want, READ_ONCE(s->seen));
		return false;
	}
	return true;
}

/* A SEND from the active to the passive side of the rdma_cm connection. */
static bool st_cm_send_recv(struct st_dev *st)
{
	struct ib_wc wc;

	st_fill(st, OFF_SEND, ST_MSG, 0x5a);
	memset(st->buf + OFF_RECV, 0, ST_MSG);
	if (st_post_recv(st, st->cm_srv.id->qp, OFF_RECV, ST_MSG, 70) ||
	    st_post_send(st, st->cm_cli.id->qp, IB_WR_SEND, OFF_SEND, ST_MSG, 71))
		return false;
	if (!st_poll_ok(st->scq, IB_WC_SEND, &wc) || wc.wr_id != 71 ||
	    !st_poll_ok(st->rcq, IB_WC_RECV, &wc) || wc.wr_id != 70 || wc.byte_len != ST_MSG)
		return false;
	st_sync(st);
	return !memcmp(st->buf + OFF_SEND, st->buf + OFF_RECV, ST_MSG);
}

/*
 * rdma_cm over this device, to its own IPv4 address: resolve address and route, then a
 * listener and an active id connect through QP1 (ib_mad, ib_cm), a SEND crosses the
 * connection, and a disconnect reaches both sides.
 */
static void st_rdma_cm(struct st_dev *st)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(ST_CM_PORT) };
	struct rdma_conn_param param = {
		.responder_resources = 1, .initiator_depth = 1, .retry_count = 7,
		.rnr_retry_count = 7,
	};
	struct st_cm_side *cli = &st->cm_cli, *srv = &st->cm_srv;
	struct rdma_cm_id *lid = NULL, *cid;
	struct ib_qp_init_attr init;
	bool ok, cli_qp = false;
	int ret;

	cli->st = st;
	srv->st = st;
	init_waitqueue_head(&cli->wq);
	init_waitqueue_head(&srv->wq);
	memcpy(&dst.sin_addr.s_addr, st->gid.raw + 12, 4);
	cid = rdma_create_id(&init_net, st_cm_handler, cli, RDMA_PS_TCP, IB_QPT_RC);
	if (IS_ERR(cid)) {
		st_result(st, "rdma-cm-resolve", false, "rdma_create_id failed");
		return;
	}
	cli->id = cid;
	ok = !rdma_resolve_addr(cid, NULL, (struct sockaddr *)&dst, ST_TIMEOUT_MS) &&
	     st_cm_wait(cli, RDMA_CM_EVENT_ADDR_RESOLVED) && cid->device == st->dev &&
	     !rdma_resolve_route(cid, ST_TIMEOUT_MS) &&
	     st_cm_wait(cli, RDMA_CM_EVENT_ROUTE_RESOLVED);
	st_result(st, "rdma-cm-resolve", ok, "rdma_cm address/route resolution failed");
	if (!ok)
		goto out;

	lid = rdma_create_id(&init_net, st_cm_handler, srv, RDMA_PS_TCP, IB_QPT_RC);
	if (IS_ERR(lid)) {
		lid = NULL;
		st_result(st, "rdma-cm-listen", false, "rdma_create_id failed");
		goto out;
	}
	ret = rdma_bind_addr(lid, (struct sockaddr *)&dst);
	if (!ret)
		ret = rdma_listen(lid, 1);
	st_result(st, "rdma-cm-listen", !ret && lid->device == st->dev,
		  "rdma_bind_addr/rdma_listen failed or bound elsewhere");
	if (ret)
		goto out;

	init = st_cm_qp_init(st);
	ret = rdma_create_qp(cid, st->pd, &init);
	cli_qp = !ret;
	if (!ret)
		ret = rdma_connect(cid, &param);
	if (ret)
		pr_err("rdma_create_qp/rdma_connect: %d\n", ret);
	ok = !ret && st_cm_wait(cli, RDMA_CM_EVENT_ESTABLISHED) &&
	     st_cm_wait(srv, RDMA_CM_EVENT_ESTABLISHED) && srv->id;
	st_result(st, "rdma-cm-connect", ok, "no ESTABLISHED on both sides");
	if (!ok)
		goto out;
	pr_info("rdma_cm connected: QP %u -> QP %u\n", cid->qp->qp_num, srv->id->qp->qp_num);

	st_result(st, "rdma-cm-send-recv", st_cm_send_recv(st), "SEND over the connection failed");
	st_drain(st);

	/* DREQ; the passive side answers with its own rdma_disconnect (DREP). */
	ok = !rdma_disconnect(cid) && st_cm_wait(srv, RDMA_CM_EVENT_DISCONNECTED) &&
	     !rdma_disconnect(srv->id) && st_cm_wait(cli, RDMA_CM_EVENT_DISCONNECTED);
	st_result(st, "rdma-cm-disconnect", ok, "no DISCONNECTED on both sides");

out:
	st_drain(st);
	/* The listener first: no new connection may appear while the others go. */
	if (lid)
		rdma_destroy_id(lid);
	if (srv->id) {
		rdma_destroy_qp(srv->id);
		rdma_destroy_id(srv->id);
		srv->id = NULL;
	}
	if (cli_qp)
		rdma_destroy_qp(cid);
	rdma_destroy_id(cid);
	cli->id = NULL;
	st_drain(st);
}

/* ---- the client --------------------------------------------------------------------------- */

static void st_teardown(struct st_dev *st)
{
	int i;

	if (st->ud)
		ib_destroy_qp(st->ud);
	for (i = 0; i < 2; i++) {
		if (st->rc[i])
			ib_destroy_qp(st->rc[i]);
		if (st->sq[i])
			ib_destroy_qp(st->sq[i]);
	}
	if (st->srq)
		ib_destroy_srq(st->srq);
	if (st->ah)
		rdma_destroy_ah(st->ah, RDMA_DESTROY_AH_SLEEPABLE);
	if (st->amr)
		st->dev->ops.dereg_mr(st->amr, NULL);
	if (st->scq)
		ib_destroy_cq(st->scq);
	if (st->rcq)
		ib_destroy_cq(st->rcq);
	if (st->dma)
		ib_dma_unmap_single(st->dev, st->dma, ST_BUF_SIZE, DMA_BIDIRECTIONAL);
	if (st->pd)
		ib_dealloc_pd(st->pd);
	kfree(st->buf);
	kfree(st);
}

static void st_run(struct st_dev *st)
{
	struct ib_cq_init_attr cq_attr = { .cqe = 64 };
	bool ok;
	int i;

	st->pd = ib_alloc_pd(st->dev, IB_PD_UNSAFE_GLOBAL_RKEY);
	if (IS_ERR(st->pd)) {
		st->pd = NULL;
		st_result(st, "pd-dma-mr", false, "ib_alloc_pd failed");
		return;
	}
	st_result(st, "pd-dma-mr", st->pd->local_dma_lkey && st->pd->unsafe_global_rkey,
		  "no DMA MR keys");
	ok = st_find_gid(st);
	st_result(st, "gid-roce-v2-ipv4", ok, "no RoCE v2 GID of an IPv4 address");
	if (!ok)
		return;

	st->buf = kzalloc(ST_BUF_SIZE, GFP_KERNEL);
	if (!st->buf)
		return;
	st->dma = ib_dma_map_single(st->dev, st->buf, ST_BUF_SIZE, DMA_BIDIRECTIONAL);
	if (ib_dma_mapping_error(st->dev, st->dma)) {
		st->dma = 0;
		st_result(st, "dma-map", false, "ib_dma_map_single failed");
		return;
	}

	st->scq = ib_create_cq(st->dev, st_comp_handler, NULL, st, &cq_attr);
	st->rcq = ib_create_cq(st->dev, st_comp_handler, NULL, st, &cq_attr);
	ok = !IS_ERR(st->scq) && !IS_ERR(st->rcq);
	if (IS_ERR(st->scq))
		st->scq = NULL;
	if (IS_ERR(st->rcq))
		st->rcq = NULL;
	st_result(st, "cq-create", ok, "ib_create_cq failed");
	if (!ok)
		return;

	for (i = 0; i < 2; i++) {
		st->rc[i] = st_create_qp(st, IB_QPT_RC, NULL);
		if (IS_ERR(st->rc[i])) {
			st->rc[i] = NULL;
			st_result(st, "rc-connect", false, "ib_create_qp failed");
			return;
		}
	}
	ok = !st_connect(st, st->rc[0], st->rc[1]) && !st_connect(st, st->rc[1], st->rc[0]);
	st_result(st, "rc-connect", ok, "RC QPs did not reach RTS");
	if (!ok)
		return;
	pr_info("RC QPs %u <-> %u over GID index %d (%pI6)\n", st->rc[0]->qp_num,
		st->rc[1]->qp_num, st->gid_index, st->gid.raw);

	st_atomic_mr(st);
	st_query(st);
	st_send_recv(st, "send-recv");
	st_drain(st);
	st_send_imm_inline(st);
	st_drain(st);
	st_rdma_write(st);
	st_drain(st);
	st_rdma_read(st);
	st_drain(st);
	st_atomics(st);
	st_drain(st);
	st_notify(st);
	st_drain(st);
	st_ud(st);
	st_drain(st);
	st_srq(st);
	st_drain(st);
	st_wrap(st);
	st_drain(st);
	st_resize(st);
	st_drain(st);
	if (st->sq[0])
		st_error_cqe(st);
	st_drain(st);
	if (run_cm)
		st_rdma_cm(st);
}

static struct ib_client st_client;

static int st_add(struct ib_device *dev)
{
	struct st_dev *st;

	if (strncmp(dev_name(&dev->dev), "vrdma", 5))
		return -EOPNOTSUPP;
	st = kzalloc(sizeof(*st), GFP_KERNEL);
	if (!st)
		return -ENOMEM;
	st->dev = dev;
	init_completion(&st->comp);
	pr_info("testing %s\n", dev_name(&dev->dev));
	st_run(st);
	pr_info("DONE %s pass=%u fail=%u\n", dev_name(&dev->dev), st->pass, st->fail);
	/* Everything stays until the device or this module goes away. */
	ib_set_client_data(dev, &st_client, st);
	return 0;
}

static void st_remove(struct ib_device *dev, void *data)
{
	struct st_dev *st = data;

	if (!st)
		return;
	pr_info("releasing %s\n", dev_name(&dev->dev));
	st_teardown(st);
}

static struct ib_client st_client = {
	.name = "vrdma_selftest",
	.add = st_add,
	.remove = st_remove,
};

static int __init st_init(void)
{
	return ib_register_client(&st_client);
}

static void __exit st_exit(void)
{
	ib_unregister_client(&st_client);
}

module_init(st_init);
module_exit(st_exit);

MODULE_DESCRIPTION("Kernel-verbs self test of virtio_rdma");
MODULE_LICENSE("Dual BSD/GPL");
