// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * vrdma-verbs-check DEVICE GID_INDEX: the provider features the stock tools do not reach, on one
 * device, between QPs of this process (the device loops traffic to its own GIDs back). Each
 * check prints "VRDMA-TEST: PASS verbs-<name>" or "VRDMA-TEST: FAIL verbs-<name> (why)", the
 * testbed's result lines; the exit status is the number of failures.
 *
 * Covered: SEND/WRITE with immediate (bytes as sent, solicited bit hidden), inline data from
 * several unregistered buffers, RDMA READ, fence, both atomics, unsignaled WRs, work request
 * checks (bad_wr, EINVAL, a full ring's ENOMEM, posting in RESET), completion events for NEXT and
 * SOLICITED arms, CQ resize with unpolled CQEs, UD with the GRH and the "QP's own Q_Key" bit,
 * SRQ receive and limit, query_qp/query_srq, and that posting and polling make no system call.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/seccomp.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#define BUF_SIZE	65536
#define QKEY		0x11111111u

static int failures;
static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_mr *mr;
static uint8_t *buf;
static union ibv_gid gid;
static int gid_index;
static enum ibv_mtu mtu;

static void result(const char *name, int ok, const char *why)
{
	if (ok) {
		printf("VRDMA-TEST: PASS verbs-%s\n", name);
	} else {
		printf("VRDMA-TEST: FAIL verbs-%s (%s)\n", name, why);
		failures++;
	}
	fflush(stdout);
}

#define CHECK(name, cond)                                                      \
	do {                                                                   \
		int ok_ = (cond);                                              \
		result(name, ok_, #cond);                                      \
	} while (0)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Poll until n completions arrived or 5 s passed; returns how many. */
static int poll_n(struct ibv_cq *cq, struct ibv_wc *wc, int n)
{
	double end = now() + 5;
	int got = 0, r;

	while (got < n && now() < end) {
		r = ibv_poll_cq(cq, n - got, wc + got);
		if (r < 0)
			return -1;
		got += r;
	}
	return got;
}

/* Nothing more shows up within ms milliseconds. */
static int cq_quiet(struct ibv_cq *cq, int ms)
{
	struct ibv_wc wc;
	double end = now() + ms / 1000.0;

	while (now() < end)
		if (ibv_poll_cq(cq, 1, &wc))
			return 0;
	return 1;
}

struct pair {
	struct ibv_cq *scq, *rcq;
	struct ibv_qp *qp;
};

static struct ibv_qp *make_qp(enum ibv_qp_type type, struct ibv_cq *scq, struct ibv_cq *rcq,
			      struct ibv_srq *srq, uint32_t wr, uint32_t inl)
{
	struct ibv_qp_init_attr a = {
		.send_cq = scq, .recv_cq = rcq, .srq = srq, .qp_type = type,
		.cap = { .max_send_wr = wr, .max_recv_wr = wr, .max_send_sge = 4,
			 .max_recv_sge = 4, .max_inline_data = inl },
	};

	return ibv_create_qp(pd, &a);
}

static int to_init(struct ibv_qp *qp)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = 1, .pkey_index = 0 };
	int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;

	if (qp->qp_type == IBV_QPT_UD) {
		a.qkey = QKEY;
		mask |= IBV_QP_QKEY;
	} else {
		a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				    IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
		mask |= IBV_QP_ACCESS_FLAGS;
	}
	return ibv_modify_qp(qp, &a, mask);
}

static void fill_ah(struct ibv_ah_attr *ah)
{
	memset(ah, 0, sizeof(*ah));
	ah->is_global = 1;
	ah->grh.dgid = gid;
	ah->grh.sgid_index = gid_index;
	ah->grh.hop_limit = 64;
	ah->port_num = 1;
}

/* RC: connect qp to peer_qpn (RESET -> INIT -> RTR -> RTS); UD: to RTS. */
static int to_rts(struct ibv_qp *qp, uint32_t peer_qpn)
{
	struct ibv_qp_attr a = {};
	int ret;

	ret = to_init(qp);
	if (ret)
		return ret;
	a.qp_state = IBV_QPS_RTR;
	if (qp->qp_type == IBV_QPT_UD) {
		ret = ibv_modify_qp(qp, &a, IBV_QP_STATE);
		if (ret)
			return ret;
		a.qp_state = IBV_QPS_RTS;
		a.sq_psn = 1;
		return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN);
	}
	a.path_mtu = mtu;
	a.dest_qp_num = peer_qpn;
	a.rq_psn = 1;
	a.max_dest_rd_atomic = 4;
	a.min_rnr_timer = 1;
	fill_ah(&a.ah_attr);
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
			    IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (ret)
		return ret;
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = 1;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 4;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT |
			     IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC);
}

static int post_recv(struct ibv_qp *qp, uint64_t id, void *addr, uint32_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = len, .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &sge, .num_sge = len ? 1 : 0 }, *bad;

	return ibv_post_recv(qp, &wr, &bad);
}

static int post_one(struct ibv_qp *qp, struct ibv_send_wr *wr)
{
	struct ibv_send_wr *bad;

	return ibv_post_send(qp, wr, &bad);
}

/* A, B: an RC pair; each with its own send and receive CQ. */
static struct pair A, B;

static int setup_rc(void)
{
	struct pair *p[2] = { &A, &B };
	int i;

	for (i = 0; i < 2; i++) {
		p[i]->scq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
		p[i]->rcq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
		if (!p[i]->scq || !p[i]->rcq)
			return -1;
		p[i]->qp = make_qp(IBV_QPT_RC, p[i]->scq, p[i]->rcq, NULL, 32, 64);
		if (!p[i]->qp)
			return -1;
	}
	if (to_rts(A.qp, B.qp->qp_num) || to_rts(B.qp, A.qp->qp_num))
		return -1;
	return 0;
}

static void check_imm(void)
{
	uint8_t *src = buf, *dst = buf + 4096;
	struct ibv_sge sge = { .addr = (uintptr_t)src, .length = 100, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND_WITH_IMM,
		.send_flags = IBV_SEND_SIGNALED | IBV_SEND_SOLICITED, .imm_data = htobe32(0x12345678),
	};
	struct ibv_wc wc[2];

	memset(src, 0xa5, 100);
	memset(dst, 0, 100);
	post_recv(B.qp, 7, dst, 4096);
	CHECK("send-imm-post", post_one(A.qp, &wr) == 0);
	CHECK("send-imm-sender-cqe", poll_n(A.scq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS &&
	      wc[0].opcode == IBV_WC_SEND && wc[0].wr_id == 1);
	CHECK("send-imm-receiver-cqe", poll_n(B.rcq, wc, 1) == 1 &&
	      wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_RECV &&
	      wc[0].wr_id == 7 && wc[0].byte_len == 100 && wc[0].qp_num == B.qp->qp_num);
	/* The bytes as sent, and only ibv flags (the device's solicited bit 8 is private). */
	CHECK("send-imm-data", wc[0].imm_data == htobe32(0x12345678) &&
	      wc[0].wc_flags == IBV_WC_WITH_IMM);
	CHECK("send-imm-payload", dst[0] == 0xa5 && dst[99] == 0xa5 && dst[100] == 0);

	/* RDMA WRITE with immediate: data at the target, a receive CQE without SGEs. */
	memset(dst, 0, 256);
	memset(src, 0x3c, 256);
	post_recv(B.qp, 8, NULL, 0);
	sge.length = 256;
	wr.wr_id = 2;
	wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.imm_data = htobe32(0xcafe0001);
	wr.wr.rdma.remote_addr = (uintptr_t)dst;
	wr.wr.rdma.rkey = mr->rkey;
	CHECK("write-imm-post", post_one(A.qp, &wr) == 0);
	CHECK("write-imm-sender-cqe", poll_n(A.scq, wc, 1) == 1 &&
	      wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_RDMA_WRITE);
	CHECK("write-imm-receiver-cqe", poll_n(B.rcq, wc, 1) == 1 &&
	      wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_RECV_RDMA_WITH_IMM &&
	      wc[0].wr_id == 8 && wc[0].imm_data == htobe32(0xcafe0001) &&
	      (wc[0].wc_flags & IBV_WC_WITH_IMM) && wc[0].byte_len == 256);
	CHECK("write-imm-data", dst[0] == 0x3c && dst[255] == 0x3c && dst[256] == 0);
}

static void check_inline(void)
{
	/* Three pieces from memory no MR covers: inline data needs no lkey. */
	static char p1[] = "inline-", p2[] = "data-", p3[] = "works";
	struct ibv_sge sge[3] = {
		{ .addr = (uintptr_t)p1, .length = 7, .lkey = 0xdead },
		{ .addr = (uintptr_t)p2, .length = 5, .lkey = 0xdead },
		{ .addr = (uintptr_t)p3, .length = 6, .lkey = 0xdead },
	};
	struct ibv_send_wr wr = {
		.wr_id = 3, .sg_list = sge, .num_sge = 3, .opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE,
	}, *bad;
	char *dst = (char *)buf + 8192;
	struct ibv_wc wc;
	uint8_t big[512];

	memset(dst, 0, 64);
	post_recv(B.qp, 9, dst, 64);
	CHECK("inline-post", ibv_post_send(A.qp, &wr, &bad) == 0);
	CHECK("inline-cqes", poll_n(A.scq, &wc, 1) == 1 && wc.status == IBV_WC_SUCCESS &&
	      poll_n(B.rcq, &wc, 1) == 1 && wc.status == IBV_WC_SUCCESS && wc.byte_len == 18);
	CHECK("inline-data", strcmp(dst, "inline-data-works") == 0);

	/* More inline bytes than the QP holds: refused before the ring is touched. */
	sge[0].addr = (uintptr_t)big;
	sge[0].length = sizeof(big);
	wr.num_sge = 1;
	bad = NULL;
	CHECK("inline-too-long-einval", ibv_post_send(A.qp, &wr, &bad) == EINVAL && bad == &wr);
}

static void check_read_fence_atomics(void)
{
	uint64_t *target = (uint64_t *)(buf + 12288), *result_buf = (uint64_t *)(buf + 12352);
	uint8_t *remote = buf + 16384, *local = buf + 20480;
	struct ibv_sge rsge = { .addr = (uintptr_t)local, .length = 512, .lkey = mr->lkey };
	struct ibv_sge asge = { .addr = (uintptr_t)result_buf, .length = 8, .lkey = mr->lkey };
	struct ibv_sge ssge = { .addr = (uintptr_t)buf, .length = 8, .lkey = mr->lkey };
	struct ibv_send_wr rd = {
		.wr_id = 10, .sg_list = &rsge, .num_sge = 1, .opcode = IBV_WR_RDMA_READ,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)remote, .rkey = mr->rkey },
	};
	struct ibv_send_wr snd = {
		.wr_id = 11, .sg_list = &ssge, .num_sge = 1, .opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED | IBV_SEND_FENCE,
	};
	struct ibv_send_wr cas = {
		.wr_id = 12, .sg_list = &asge, .num_sge = 1, .opcode = IBV_WR_ATOMIC_CMP_AND_SWP,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.atomic = { .remote_addr = (uintptr_t)target, .compare_add = 100, .swap = 200,
			       .rkey = mr->rkey },
	};
	struct ibv_wc wc[2];

	memset(remote, 0x77, 512);
	memset(local, 0, 512);
	rd.next = &snd;		/* READ, then a fenced SEND: completes after the READ */
	post_recv(B.qp, 12, buf + 24576, 64);
	CHECK("read-fence-post", post_one(A.qp, &rd) == 0);
	CHECK("read-fence-cqes", poll_n(A.scq, wc, 2) == 2 && wc[0].status == IBV_WC_SUCCESS &&
	      wc[0].opcode == IBV_WC_RDMA_READ && wc[0].wr_id == 10 && wc[0].byte_len == 512 &&
	      wc[1].status == IBV_WC_SUCCESS && wc[1].wr_id == 11);
	CHECK("read-data", local[0] == 0x77 && local[511] == 0x77);
	poll_n(B.rcq, wc, 1);

	*target = 100;
	*result_buf = 0;
	CHECK("cas-post", post_one(A.qp, &cas) == 0);
	CHECK("cas-swapped", poll_n(A.scq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS &&
	      wc[0].opcode == IBV_WC_COMP_SWAP && *result_buf == 100 && *target == 200);
	post_one(A.qp, &cas);	/* compare 100 fails now: returns 200, leaves 200 */
	CHECK("cas-not-swapped", poll_n(A.scq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS &&
	      *result_buf == 200 && *target == 200);
	cas.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
	cas.wr.atomic.compare_add = 5;
	CHECK("fetch-add", post_one(A.qp, &cas) == 0 && poll_n(A.scq, wc, 1) == 1 &&
	      wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_FETCH_ADD &&
	      *result_buf == 200 && *target == 205);

	/* An atomic's result goes to exactly one 8-byte SGE: checked at post time. */
	asge.length = 16;
	CHECK("atomic-bad-sge-einval", post_one(A.qp, &cas) == EINVAL);
}

static void check_unsignaled_and_list(void)
{
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = 64, .lkey = mr->lkey };
	struct ibv_sge many[8];
	struct ibv_send_wr w[4], *bad = NULL;
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr attr;
	struct ibv_wc wc[4];
	int i;

	for (i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].wr_id = 20 + i;
		w[i].sg_list = &sge;
		w[i].num_sge = 1;
		w[i].opcode = IBV_WR_RDMA_WRITE;
		w[i].wr.rdma.remote_addr = (uintptr_t)buf + 28672;
		w[i].wr.rdma.rkey = mr->rkey;
		w[i].next = i < 3 ? &w[i + 1] : NULL;
	}
	w[3].send_flags = IBV_SEND_SIGNALED;
	CHECK("unsignaled-post", ibv_post_send(A.qp, w, &bad) == 0);
	CHECK("unsignaled-one-cqe", poll_n(A.scq, wc, 1) == 1 && wc[0].wr_id == 23 &&
	      cq_quiet(A.scq, 200));

	/* A list whose third WR has more SGEs than the QP: the first two go, bad_wr is the third. */
	for (i = 0; i < 8; i++)
		many[i] = sge;
	w[0].send_flags = w[1].send_flags = IBV_SEND_SIGNALED;
	w[2].sg_list = many;
	if (ibv_query_qp(A.qp, &attr, IBV_QP_CAP, &init) || init.cap.max_send_sge >= 8) {
		result("too-many-sge-einval", 0, "query_qp");
		return;
	}
	w[2].num_sge = init.cap.max_send_sge + 1;
	bad = NULL;
	CHECK("too-many-sge-einval", ibv_post_send(A.qp, w, &bad) == EINVAL && bad == &w[2]);
	CHECK("list-prefix-posted", poll_n(A.scq, wc, 2) == 2 && wc[0].wr_id == 20 &&
	      wc[1].wr_id == 21 && cq_quiet(A.scq, 200));
}

/* A QP in INIT keeps its send WQEs (spec §14.1): depth + 1 posts find the ring full. */
static void check_ring_full(void)
{
	struct ibv_cq *cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	struct ibv_qp *qp = cq ? make_qp(IBV_QPT_RC, cq, cq, NULL, 4, 0) : NULL;
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = 8, .lkey = mr->lkey };
	struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND };
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr attr;
	int i, ret = 0;

	if (!qp) {
		result("ring-full", 0, "create_qp");
		return;
	}
	CHECK("post-recv-in-reset-einval", post_recv(qp, 1, buf, 8) == EINVAL);
	CHECK("post-send-in-reset-einval", post_one(qp, &wr) == EINVAL);
	CHECK("query-qp", ibv_query_qp(qp, &attr, IBV_QP_STATE | IBV_QP_CAP, &init) == 0 &&
	      attr.qp_state == IBV_QPS_RESET && init.cap.max_send_wr == 4);
	to_init(qp);
	for (i = 0; i < 4 && !ret; i++)
		ret = post_one(qp, &wr);
	CHECK("ring-takes-depth", ret == 0);
	CHECK("ring-full-enomem", post_one(qp, &wr) == ENOMEM);
	ibv_destroy_qp(qp);
	ibv_destroy_cq(cq);
}

static int wait_event(struct ibv_comp_channel *ch, struct ibv_cq *cq, int ms)
{
	struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
	struct ibv_cq *ev_cq;
	void *ev_ctx;

	if (poll(&pfd, 1, ms) != 1)
		return 0;
	if (ibv_get_cq_event(ch, &ev_cq, &ev_ctx))
		return 0;
	ibv_ack_cq_events(ev_cq, 1);
	return ev_cq == cq;
}

/* Events: NEXT fires on any CQE, SOLICITED only on a solicited one. */
static void check_events(void)
{
	struct ibv_comp_channel *ch = ibv_create_comp_channel(ctx);
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = 16, .lkey = mr->lkey };
	struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND };
	struct ibv_cq *scq, *rcq;
	struct ibv_qp *s, *r;
	struct ibv_wc wc;

	if (!ch) {
		result("events", 0, "create_comp_channel");
		return;
	}
	scq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	rcq = ibv_create_cq(ctx, 16, NULL, ch, 0);
	s = make_qp(IBV_QPT_RC, scq, scq, NULL, 16, 0);
	r = make_qp(IBV_QPT_RC, rcq, rcq, NULL, 16, 0);
	if (!s || !r || to_rts(s, r->qp_num) || to_rts(r, s->qp_num)) {
		result("events", 0, "setup");
		return;
	}
	post_recv(r, 1, buf + 32768, 64);
	post_recv(r, 2, buf + 32768, 64);
	post_recv(r, 3, buf + 32768, 64);

	CHECK("arm-next", ibv_req_notify_cq(rcq, 0) == 0);
	post_one(s, &wr);
	CHECK("event-next", wait_event(ch, rcq, 3000));
	CHECK("event-next-cqe", poll_n(rcq, &wc, 1) == 1 && wc.status == IBV_WC_SUCCESS);

	CHECK("arm-solicited", ibv_req_notify_cq(rcq, 1) == 0);
	post_one(s, &wr);
	CHECK("no-event-unsolicited", !wait_event(ch, rcq, 500));
	wr.send_flags = IBV_SEND_SOLICITED;
	post_one(s, &wr);
	CHECK("event-solicited", wait_event(ch, rcq, 3000));
	CHECK("event-solicited-cqes", poll_n(rcq, &wc, 1) == 1 && poll_n(rcq, &wc, 1) == 1 &&
	      wc.status == IBV_WC_SUCCESS && !(wc.wc_flags & ~IBV_WC_WITH_IMM));

	ibv_destroy_qp(s);
	ibv_destroy_qp(r);
	ibv_destroy_cq(scq);
	ibv_destroy_cq(rcq);
	ibv_destroy_comp_channel(ch);
}

/* Resize a CQ that holds unpolled CQEs: they come out of the new ring, in order. */
static void check_resize(void)
{
	struct ibv_cq *cq = ibv_create_cq(ctx, 4, NULL, NULL, 0);
	struct ibv_cq *rcq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	struct ibv_qp *s = cq ? make_qp(IBV_QPT_RC, cq, cq, NULL, 16, 0) : NULL;
	struct ibv_qp *r = rcq ? make_qp(IBV_QPT_RC, rcq, rcq, NULL, 16, 0) : NULL;
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = 8, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)buf + 36864, .rkey = mr->rkey },
	};
	struct timespec settle = { 0, 500000000 };
	struct ibv_wc wc[8];
	int i;

	if (!s || !r || to_rts(s, r->qp_num) || to_rts(r, s->qp_num)) {
		result("resize", 0, "setup");
		return;
	}
	CHECK("cq-depth-pow2", cq->cqe == 4);
	for (i = 0; i < 3; i++) {
		wr.wr_id = 100 + i;
		post_one(s, &wr);
	}
	nanosleep(&settle, NULL);	/* the three CQEs are written, not polled */
	CHECK("resize-below-unpolled-einval", ibv_resize_cq(cq, 2) == EINVAL);
	CHECK("resize", ibv_resize_cq(cq, 60) == 0 && cq->cqe == 64);
	CHECK("resize-kept-cqes", poll_n(cq, wc, 3) == 3 && wc[0].wr_id == 100 &&
	      wc[1].wr_id == 101 && wc[2].wr_id == 102);
	for (i = 0; i < 6; i++) {
		wr.wr_id = 200 + i;
		post_one(s, &wr);
	}
	CHECK("resize-new-ring", poll_n(cq, wc, 6) == 6 && wc[5].wr_id == 205 &&
	      wc[5].status == IBV_WC_SUCCESS);
	ibv_destroy_qp(s);
	ibv_destroy_qp(r);
	ibv_destroy_cq(cq);
	ibv_destroy_cq(rcq);
}

/* UD: AH, GRH in front of the payload, and remote_qkey's bit 31 (use the sender QP's Q_Key). */
static void check_ud(void)
{
	struct ibv_cq *cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	struct ibv_qp *s = cq ? make_qp(IBV_QPT_UD, cq, cq, NULL, 16, 0) : NULL;
	struct ibv_qp *r = cq ? make_qp(IBV_QPT_UD, cq, cq, NULL, 16, 0) : NULL;
	uint8_t *rbuf = buf + 40960;
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = 100, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = 50, .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND_WITH_IMM,
		.send_flags = IBV_SEND_SIGNALED, .imm_data = htobe32(77),
	};
	struct ibv_ah_attr aa;
	struct ibv_ah *ah;
	struct ibv_wc wc[2];
	int n, rx = -1;

	if (!s || !r || to_rts(s, 0) || to_rts(r, 0)) {
		result("ud", 0, "setup");
		return;
	}
	fill_ah(&aa);
	ah = ibv_create_ah(pd, &aa);
	CHECK("ud-create-ah", ah != NULL);
	if (!ah)
		return;
	wr.wr.ud.ah = ah;
	wr.wr.ud.remote_qpn = r->qp_num;
	wr.wr.ud.remote_qkey = 0x80000000;	/* the QP's own, which is the receiver's */
	memset(buf, 0x42, 100);
	memset(rbuf, 0, 256);
	post_recv(r, 51, rbuf, 256);
	CHECK("ud-post", post_one(s, &wr) == 0);
	n = poll_n(cq, wc, 2);
	if (n == 2)
		rx = wc[0].opcode == IBV_WC_RECV ? 0 : 1;
	CHECK("ud-cqes", n == 2 && wc[!rx].status == IBV_WC_SUCCESS && wc[rx].status == IBV_WC_SUCCESS);
	if (rx < 0)
		return;
	CHECK("ud-recv-fields", wc[rx].byte_len == 40 + 100 && wc[rx].src_qp == s->qp_num &&
	      (wc[rx].wc_flags & IBV_WC_GRH) && (wc[rx].wc_flags & IBV_WC_WITH_IMM) &&
	      wc[rx].imm_data == htobe32(77));
	CHECK("ud-payload-after-grh", rbuf[40] == 0x42 && rbuf[139] == 0x42 && rbuf[140] == 0);
	/* RoCE v2 over IPv4: bytes 20..39 are the IPv4 header, addresses from the GIDs. */
	if (gid.raw[10] == 0xff && gid.raw[11] == 0xff)
		CHECK("ud-grh-ipv4", (rbuf[20] >> 4) == 4 && rbuf[29] == 17 &&
		      !memcmp(rbuf + 32, gid.raw + 12, 4) && !memcmp(rbuf + 36, gid.raw + 12, 4));

	/* A wrong Q_Key: dropped silently. */
	wr.wr.ud.remote_qkey = QKEY + 1;
	post_recv(r, 52, rbuf, 256);
	post_one(s, &wr);
	CHECK("ud-wrong-qkey-dropped", poll_n(cq, wc, 1) == 1 && wc[0].wr_id == 50 &&
	      cq_quiet(cq, 300));
	wr.opcode = IBV_WR_RDMA_WRITE;
	CHECK("ud-write-einval", post_one(s, &wr) == EINVAL);
	ibv_destroy_qp(s);
	ibv_destroy_qp(r);
	ibv_destroy_ah(ah);
	ibv_destroy_cq(cq);
}

static void check_srq(void)
{
	struct ibv_srq_init_attr sa = { .attr = { .max_wr = 10, .max_sge = 2 } };
	struct ibv_srq *srq = ibv_create_srq(pd, &sa);
	struct ibv_cq *cq = ibv_create_cq(ctx, 32, NULL, NULL, 0);
	struct ibv_qp *s = cq ? make_qp(IBV_QPT_RC, cq, cq, NULL, 16, 0) : NULL;
	struct ibv_qp *r = cq && srq ? make_qp(IBV_QPT_RC, cq, cq, srq, 16, 0) : NULL;
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = 32, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED,
	};
	struct ibv_recv_wr rw = { .sg_list = &sge, .num_sge = 1 }, *bad;
	struct ibv_srq_attr attr;
	struct ibv_async_event ev;
	struct pollfd pfd = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_wc wc[2];
	int i, n, got_limit = 0;
	double end;

	CHECK("srq-create", srq && sa.attr.max_wr == 16);
	if (!srq || !s || !r || to_rts(s, r->qp_num) || to_rts(r, s->qp_num)) {
		result("srq", 0, "setup");
		return;
	}
	CHECK("srq-qp-post-recv-einval", post_recv(r, 1, buf, 8) == EINVAL);
	for (i = 0; i < 4; i++) {
		rw.wr_id = 300 + i;
		ibv_post_srq_recv(srq, &rw, &bad);
	}
	attr.srq_limit = 3;
	CHECK("srq-modify-limit", ibv_modify_srq(srq, &attr, IBV_SRQ_LIMIT) == 0);
	CHECK("srq-query", ibv_query_srq(srq, &attr) == 0 && attr.srq_limit == 3 &&
	      attr.max_wr == 16);
	wr.wr_id = 60;
	post_one(s, &wr);
	n = poll_n(cq, wc, 2);
	CHECK("srq-recv", n == 2 && ((wc[0].wr_id == 300 && wc[0].qp_num == r->qp_num) ||
				    (wc[1].wr_id == 300 && wc[1].qp_num == r->qp_num)));
	post_one(s, &wr);	/* 2 left < limit 3: SRQ_LIMIT_REACHED */
	poll_n(cq, wc, 2);
	end = now() + 3;
	while (!got_limit && now() < end && poll(&pfd, 1, 500) == 1 &&
	       ibv_get_async_event(ctx, &ev) == 0) {
		got_limit = ev.event_type == IBV_EVENT_SRQ_LIMIT_REACHED && ev.element.srq == srq;
		ibv_ack_async_event(&ev);
	}
	CHECK("srq-limit-event", got_limit);
	ibv_destroy_qp(s);
	ibv_destroy_qp(r);
	ibv_destroy_srq(srq);
	ibv_destroy_cq(cq);
}

/*
 * Kernel bypass: a thread in seccomp strict mode (only read, write, exit and sigreturn; any other
 * system call kills the process) runs SEND/receive round trips between A and B: post_send,
 * post_recv, poll_cq and the notify stores. It leaves with a raw exit, which strict mode allows.
 */
#define BYPASS_ROUNDS 500

static volatile int bypass_done;

static void *bypass_thread(void *arg)
{
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = 64, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED,
	}, *bad;
	struct ibv_sge rsge = { .addr = (uintptr_t)buf + 45056, .length = 64, .lkey = mr->lkey };
	struct ibv_recv_wr rwr = { .sg_list = &rsge, .num_sge = 1 }, *rbad;
	struct ibv_wc wc;
	long spins;
	int i, n = 0;

	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT))
		syscall(SYS_exit, 0);
	for (i = 0; i < BYPASS_ROUNDS; i++) {
		if (ibv_post_recv(B.qp, &rwr, &rbad) || ibv_post_send(A.qp, &wr, &bad))
			break;
		for (spins = 0; spins < 200000000L && !ibv_poll_cq(A.scq, 1, &wc); spins++)
			;
		if (wc.status != IBV_WC_SUCCESS)
			break;
		for (spins = 0; spins < 200000000L && !ibv_poll_cq(B.rcq, 1, &wc); spins++)
			;
		if (wc.status != IBV_WC_SUCCESS)
			break;
		n++;
	}
	bypass_done = n;
	syscall(SYS_exit, 0);
	return NULL;
}

static void check_bypass(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, bypass_thread, NULL)) {
		result("no-syscalls", 0, "pthread_create");
		return;
	}
	pthread_join(t, NULL);
	CHECK("no-syscalls", bypass_done == BYPASS_ROUNDS);
}

int main(int argc, char **argv)
{
	struct ibv_device **list;
	struct ibv_port_attr port;
	int i, n;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DEVICE GID_INDEX\n", argv[0]);
		return 2;
	}
	gid_index = atoi(argv[2]);
	list = ibv_get_device_list(&n);
	for (i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), argv[1]))
			ctx = ibv_open_device(list[i]);
	if (!ctx || ibv_query_port(ctx, 1, &port) || ibv_query_gid(ctx, 1, gid_index, &gid)) {
		result("open", 0, argv[1]);
		return 1;
	}
	mtu = port.active_mtu;
	pd = ibv_alloc_pd(ctx);
	buf = aligned_alloc(4096, BUF_SIZE);
	mr = pd && buf ? ibv_reg_mr(pd, buf, BUF_SIZE, IBV_ACCESS_LOCAL_WRITE |
				    IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
				    IBV_ACCESS_REMOTE_ATOMIC) : NULL;
	if (!mr || setup_rc()) {
		result("setup", 0, strerror(errno));
		return 1;
	}
	check_imm();
	check_inline();
	check_read_fence_atomics();
	check_unsignaled_and_list();
	check_ring_full();
	check_events();
	check_resize();
	check_ud();
	check_srq();
	check_bypass();		/* last: a system call in it kills the process */
	return failures;
}
