// SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
/*
 * vrdma-peer-loss DEVICE GID_INDEX server PORT
 * vrdma-peer-loss DEVICE GID_INDEX client PORT SERVER_IPV4
 *
 * What an RC requester sees when the guest of its peer QP reboots in the middle of traffic.
 * The spec (docs/virtio-rdma.md §15.5, §14.1): requests to a QP that no longer exists are
 * dropped, the requester retransmits retry_cnt times, then completes the oldest WQE with
 * RETRY_EXC_ERR and enters ERR, which flushes every other WQE, and every one posted later,
 * with WR_FLUSH_ERR.
 *
 * The two sides connect an RC QP over a TCP socket (QPN, PSN, GID, buffer address and rkey, as
 * ibv_rc_pingpong does). The client streams RDMA WRITEs and SENDs, alternately, every WR signaled
 * and at most WINDOW outstanding; the server reposts its receives. After TRAFFIC successful
 * completions the client sends 'G', the server answers 'R' (about to be rebooted), the client
 * acknowledges with 'A', and only then does the server print REBOOT_MARKER: its script reboots the
 * guest on that line while the server still holds its QP. An error the client sees before it sent
 * 'A' therefore did not come from the reboot. Both sides wait for completion events, not spin: the
 * guests share two host cores with the daemon.
 *
 * Each check prints "VRDMA-TEST: PASS peer-loss-<name>" or "VRDMA-TEST: FAIL peer-loss-<name>
 * (why)"; the exit status is the number of failures (the server's, if it ends before the reboot).
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#define MSG_SIZE	1024
#define WINDOW		16		/* WRs the client keeps outstanding */
#define RQ_DEPTH	64		/* receives the server keeps posted */
#define BUF_SIZE	((WINDOW + RQ_DEPTH) * MSG_SIZE)	/* WRITE targets, then receive buffers */
#define CQ_DEPTH	256
#define TRAFFIC		200		/* successful completions before the reboot is asked for */
/* ACK timeout 4.096 us * 2^16 = 268 ms, 3 retries: a vanished peer is noticed after about 1 s,
 * while a daemon thread descheduled on a busy host for less than that costs only a resend. */
#define ACK_TIMEOUT	16
#define RETRY_CNT	3
#define SETUP_WAIT	300		/* seconds for the peer to connect, TRAFFIC and the reboot notice */
#define LOSS_WAIT	120		/* seconds from 'A' for the first error completion */
#define DRAIN_WAIT	60		/* seconds for the rest of the outstanding WRs and later posts */
#define REBOOT_MARKER	"holding the QP, reboot now"	/* the server's script reboots on it */
#define LATE_SEND_ID	(1ull << 62)	/* wr_ids of the WRs posted after the QP failed */
#define LATE_RECV_ID	(LATE_SEND_ID + 1)

struct endpoint {
	uint32_t qpn, psn, rkey;
	uint64_t addr;
	union ibv_gid gid;
};

/* struct endpoint as it travels: big-endian, no padding. */
struct wire {
	uint32_t qpn, psn, rkey;
	uint64_t addr;
	uint8_t gid[16];
} __attribute__((packed));

static int failures;
static int gid_index;
static struct ibv_context *ctx;
static struct ibv_comp_channel *channel;
static struct ibv_pd *pd;
static struct ibv_mr *mr;
static struct ibv_cq *cq;
static struct ibv_qp *qp;
static uint8_t *buf;
static enum ibv_mtu mtu;
static int sock = -1;

/* Prints a result line, with fmt saying why on a failure; returns 1 for a failure (so a setup
 * step can return it), else 0. */
static int __attribute__((format(printf, 3, 4)))
result(const char *name, int ok, const char *fmt, ...)
{
	va_list ap;

	printf("VRDMA-TEST: %s peer-loss-%s", ok ? "PASS" : "FAIL", name);
	if (!ok) {
		failures++;
		printf(" (");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf(")");
	}
	printf("\n");
	fflush(stdout);
	return !ok;
}

static void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...)
{
	va_list ap;

	printf("VRDMA-PEER-LOSS: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int write_all(const void *p, size_t n)
{
	return send(sock, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static int read_all(void *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(sock, (char *)p + got, n - got);
		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

/* One control byte, or 0 when none came within ms milliseconds, -1 on EOF or error. */
static int read_byte(int ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	char c;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	return read(sock, &c, 1) == 1 ? c : -1;
}

static int exchange(const struct endpoint *self, struct endpoint *peer)
{
	struct wire w = {
		.qpn = htonl(self->qpn), .psn = htonl(self->psn), .rkey = htonl(self->rkey),
		.addr = htobe64(self->addr),
	};

	memcpy(w.gid, self->gid.raw, 16);
	if (write_all(&w, sizeof(w)) || read_all(&w, sizeof(w)))
		return -1;
	peer->qpn = ntohl(w.qpn);
	peer->psn = ntohl(w.psn);
	peer->rkey = ntohl(w.rkey);
	peer->addr = be64toh(w.addr);
	memcpy(peer->gid.raw, w.gid, 16);
	return 0;
}

/* Context, PD, MR, an event-driven CQ and an RC QP in INIT. */
static int setup(const char *device, struct endpoint *self)
{
	struct ibv_qp_init_attr init = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = WINDOW + 1, .max_recv_wr = RQ_DEPTH,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1, .pkey_index = 0,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
	};
	struct ibv_device **list;
	struct ibv_port_attr port;
	int i, n;

	list = ibv_get_device_list(&n);
	for (i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), device))
			ctx = ibv_open_device(list[i]);
	if (list)
		ibv_free_device_list(list);
	if (!ctx || ibv_query_port(ctx, 1, &port) || ibv_query_gid(ctx, 1, gid_index, &self->gid))
		return -1;
	mtu = port.active_mtu;
	buf = aligned_alloc(4096, BUF_SIZE);
	if (!buf)
		return -1;
	memset(buf, 0, BUF_SIZE);
	channel = ibv_create_comp_channel(ctx);
	pd = ibv_alloc_pd(ctx);
	if (!channel || !pd)
		return -1;
	mr = ibv_reg_mr(pd, buf, BUF_SIZE, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	cq = ibv_create_cq(ctx, CQ_DEPTH, NULL, channel, 0);
	if (!mr || !cq || ibv_req_notify_cq(cq, 0))
		return -1;
	init.send_cq = init.recv_cq = cq;
	qp = ibv_create_qp(pd, &init);
	if (!qp || ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				 IBV_QP_ACCESS_FLAGS))
		return -1;
	self->qpn = qp->qp_num;
	self->psn = lrand48() & 0xffffff;
	self->rkey = mr->rkey;
	self->addr = (uintptr_t)buf;
	return 0;
}

/* INIT -> RTR -> RTS towards the peer. */
static int connect_qp(const struct endpoint *self, const struct endpoint *peer)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_RTR, .path_mtu = mtu, .dest_qp_num = peer->qpn,
		.rq_psn = peer->psn, .max_dest_rd_atomic = 1, .min_rnr_timer = 1,
		.ah_attr = { .is_global = 1, .port_num = 1,
			     .grh = { .dgid = peer->gid, .sgid_index = gid_index, .hop_limit = 64 } },
	};

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
			  IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		return -1;
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = self->psn;
	a.timeout = ACK_TIMEOUT;
	a.retry_cnt = RETRY_CNT;
	a.rnr_retry = 7;	/* a slow receiver is not what is tested: RNR retries forever */
	a.max_rd_atomic = 1;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT |
			     IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC);
}

/*
 * Waits up to ms for a completion event or a byte on the socket (whichever comes first), and
 * re-arms the CQ after an event. The caller polls the CQ after this anyway, so a missed event
 * costs time, not a result.
 */
static void wait_event(int ms)
{
	struct pollfd p[2] = { { .fd = channel->fd, .events = POLLIN },
			       { .fd = sock, .events = POLLIN } };
	struct ibv_cq *ev_cq;
	void *ev_ctx;

	if (poll(p, sock >= 0 ? 2 : 1, ms) > 0 && p[0].revents & POLLIN &&
	    !ibv_get_cq_event(channel, &ev_cq, &ev_ctx)) {
		ibv_ack_cq_events(ev_cq, 1);
		ibv_req_notify_cq(cq, 0);
	}
}

static int post_recv(uint64_t id, void *addr)
{
	struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = MSG_SIZE, .lkey = mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &sge, .num_sge = 1 }, *bad;

	return ibv_post_recv(qp, &wr, &bad);
}

/* ---- server: posts receives, answers the control bytes, holds its QP until the reboot ---- */

static int serve(const char *device, int port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct endpoint self, peer;
	struct ibv_wc wc[16];
	uint64_t next_id = 1;	/* the client's SENDs carry their odd wr_ids */
	long received = 0;
	int listener, one = 1, announced = 0, bad = 0, i, n, c;
	struct pollfd p;

	if (setup(device, &self))
		return result("server-setup", 0, "verbs setup: %s", strerror(errno));
	for (i = 0; i < RQ_DEPTH; i++)
		if (post_recv(i, buf + (WINDOW + i) * MSG_SIZE))
			return result("server-setup", 0, "post_recv: %s", strerror(errno));
	listener = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) || listen(listener, 1))
		return result("server-setup", 0, "listen on %d: %s", port, strerror(errno));
	p = (struct pollfd){ .fd = listener, .events = POLLIN };
	if (poll(&p, 1, SETUP_WAIT * 1000) <= 0 || (sock = accept(listener, NULL, NULL)) < 0)
		return result("server-setup", 0, "no client within %d s", SETUP_WAIT);
	close(listener);
	if (exchange(&self, &peer) || connect_qp(&self, &peer) || write_all("S", 1))
		return result("server-setup", 0, "connect: %s", strerror(errno));
	result("server-setup", 1, "connected");

	for (;;) {
		while ((n = ibv_poll_cq(cq, 16, wc)) > 0) {
			for (i = 0; i < n; i++) {
				uint64_t id;

				memcpy(&id, buf + (WINDOW + wc[i].wr_id) * MSG_SIZE, sizeof(id));
				if (wc[i].status != IBV_WC_SUCCESS || wc[i].byte_len != MSG_SIZE ||
				    id != next_id) {
					if (!bad++)
						note("receive %ld: %s, %u bytes, id %llu (expected %llu)",
						     received, ibv_wc_status_str(wc[i].status),
						     wc[i].byte_len, (unsigned long long)id,
						     (unsigned long long)next_id);
				}
				next_id += 2;
				received++;
				if (post_recv(wc[i].wr_id, buf + (WINDOW + wc[i].wr_id) * MSG_SIZE))
					bad++;
			}
		}
		c = read_byte(0);
		if (c == 'G') {
			if (write_all("R", 1))
				c = -1;
		} else if (c == 'A' && !announced) {
			announced = 1;
			result("server-traffic", received > 0 && !bad,
			       "%ld receives, %d bad", received, bad);
			note("%s", REBOOT_MARKER);
		}
		if (c < 0) {
			/* Only a failed client closes the socket: a rebooted server never gets here. */
			result("server-held-until-reboot", 0, "the client closed the connection");
			return failures;
		}
		wait_event(1000);
	}
}

/* ---- client: streams WRs until the peer is gone, then checks what completed ---- */

struct stream {
	uint64_t posted, completed;	/* wr_ids 0 .. posted - 1, completed in order */
	long ok, flushed, others;	/* completions by status */
	long first_error;		/* wr_id of the first error completion, or -1 */
	int first_status;
	int out_of_order;		/* completions with an unexpected wr_id or qp_num */
	int error_before_notice;	/* the first error came before 'A' was sent */
	int post_failed;
};

static int post_stream(struct stream *s, const struct endpoint *peer)
{
	uint64_t id = s->posted;
	uint8_t *msg = buf + (id % WINDOW) * MSG_SIZE;
	struct ibv_sge sge = { .addr = (uintptr_t)msg, .length = MSG_SIZE, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = id, .sg_list = &sge, .num_sge = 1, .send_flags = IBV_SEND_SIGNALED,
		.opcode = id & 1 ? IBV_WR_SEND : IBV_WR_RDMA_WRITE,
		.wr.rdma = { .remote_addr = peer->addr + (id % WINDOW) * MSG_SIZE, .rkey = peer->rkey },
	}, *bad;

	memcpy(msg, &id, sizeof(id));
	if (ibv_post_send(qp, &wr, &bad)) {
		note("post_send of wr %llu: %s", (unsigned long long)id, strerror(errno));
		s->post_failed = 1;
		return -1;
	}
	s->posted++;
	return 0;
}

/* Takes what the CQ holds into s; returns how many. */
static int reap(struct stream *s, int notice_sent)
{
	struct ibv_wc wc[16];
	int n, i, total = 0;

	while ((n = ibv_poll_cq(cq, 16, wc)) > 0) {
		for (i = 0; i < n; i++) {
			if (wc[i].wr_id != s->completed || wc[i].qp_num != qp->qp_num) {
				if (!s->out_of_order++)
					note("completion %llu has wr_id %llu, qp_num %u (QP %u)",
					     (unsigned long long)s->completed,
					     (unsigned long long)wc[i].wr_id, wc[i].qp_num, qp->qp_num);
			}
			if (wc[i].status == IBV_WC_SUCCESS && s->first_error < 0)
				s->ok++;
			else if (s->first_error < 0) {
				s->first_error = wc[i].wr_id;
				s->first_status = wc[i].status;
				s->error_before_notice = !notice_sent;
			} else if (wc[i].status == IBV_WC_WR_FLUSH_ERR)
				s->flushed++;
			else {
				if (!s->others++)
					note("completion %llu after the first error: %s",
					     (unsigned long long)wc[i].wr_id,
					     ibv_wc_status_str(wc[i].status));
			}
			s->completed++;
		}
		total += n;
	}
	if (n < 0)
		note("ibv_poll_cq: %d", n);
	return total;
}

/* Nothing more shows up within ms milliseconds: no completion came twice. */
static int cq_quiet(int ms)
{
	struct ibv_wc wc;
	double end = now() + ms / 1000.0;

	while (now() < end) {
		if (ibv_poll_cq(cq, 1, &wc)) {
			note("extra completion: wr_id %llu, %s", (unsigned long long)wc.wr_id,
			     ibv_wc_status_str(wc.status));
			return 0;
		}
		wait_event(100);
	}
	return 1;
}

/* One send and one receive posted to the failed QP: both flushed, in any order. */
static void check_late_posts(const struct endpoint *peer)
{
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = MSG_SIZE, .lkey = mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = LATE_SEND_ID, .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = peer->addr, .rkey = peer->rkey },
	}, *bad;
	int send_status = -1, recv_status = -1, got = 0, n;
	double end = now() + DRAIN_WAIT;
	struct ibv_wc wc;

	if (ibv_post_send(qp, &wr, &bad) || post_recv(LATE_RECV_ID, buf + MSG_SIZE)) {
		result("post-after-error-flushed", 0, "post: %s", strerror(errno));
		return;
	}
	while (got < 2 && now() < end) {
		n = ibv_poll_cq(cq, 1, &wc);
		if (n == 1) {
			got++;
			if (wc.wr_id == LATE_SEND_ID)
				send_status = wc.status;
			else if (wc.wr_id == LATE_RECV_ID)
				recv_status = wc.status;
		} else if (n == 0) {
			wait_event(100);
		} else {
			break;
		}
	}
	result("post-after-error-flushed", got == 2 && send_status == IBV_WC_WR_FLUSH_ERR &&
	       recv_status == IBV_WC_WR_FLUSH_ERR,
	       "%d completions in %d s; send: %s, receive: %s", got, DRAIN_WAIT,
	       send_status < 0 ? "none" : ibv_wc_status_str(send_status),
	       recv_status < 0 ? "none" : ibv_wc_status_str(recv_status));
}

static void check_destroy(void)
{
	int q = ibv_destroy_qp(qp), c = ibv_destroy_cq(cq), ch = ibv_destroy_comp_channel(channel);
	int m = ibv_dereg_mr(mr), p = ibv_dealloc_pd(pd), x = ibv_close_device(ctx);

	result("destroy", !q && !c && !ch && !m && !p && !x,
	       "destroy_qp %d, destroy_cq %d, destroy_comp_channel %d, dereg_mr %d, dealloc_pd %d, "
	       "close_device %d", q, c, ch, m, p, x);
}

static int run_client(const char *device, int port, const char *server)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct stream s = { .first_error = -1 };
	struct endpoint self, peer;
	struct ibv_qp_init_attr init;
	struct ibv_qp_attr attr;
	double end, t_start, t_error = 0;	/* t_start: the traffic's, then the notice's */
	int go_sent = 0, notice_sent = 0, c;
	long ok_at_notice = 0;

	if (inet_pton(AF_INET, server, &addr.sin_addr) != 1)
		return result("setup", 0, "bad address %s", server);
	if (setup(device, &self))
		return result("setup", 0, "verbs setup: %s", strerror(errno));
	/* The server may still be booting or setting up: retry the connection. */
	end = now() + SETUP_WAIT;
	for (;;) {
		sock = socket(AF_INET, SOCK_STREAM, 0);
		if (!connect(sock, (struct sockaddr *)&addr, sizeof(addr)))
			break;
		close(sock);
		sock = -1;
		if (now() > end)
			return result("setup", 0, "no server at %s:%d", server, port);
		sleep(1);
	}
	if (exchange(&self, &peer) || connect_qp(&self, &peer) || read_byte(SETUP_WAIT * 1000) != 'S')
		return result("setup", 0, "connect: %s", strerror(errno));
	result("setup", 1, "connected");
	note("QP %u -> server QP %u, ACK timeout %d, retry_cnt %d, %d WRs outstanding",
	     self.qpn, peer.qpn, ACK_TIMEOUT, RETRY_CNT, WINDOW);

	/* Stream until the first error completion; the deadline moves once the reboot is near. */
	t_start = now();
	end = t_start + SETUP_WAIT;
	while (s.first_error < 0 && !s.post_failed && now() < end) {
		while (s.posted - s.completed < WINDOW && !post_stream(&s, &peer))
			;
		if (!reap(&s, notice_sent))
			wait_event(1000);
		if (!go_sent && s.ok >= TRAFFIC) {
			go_sent = !write_all("G", 1);
			note("%ld WRs completed: asking the server's guest to reboot", s.ok);
		}
		c = sock >= 0 ? read_byte(0) : 0;
		if (c == 'R' && !notice_sent) {
			notice_sent = !write_all("A", 1);
			t_start = now();
			ok_at_notice = s.ok;
			end = t_start + LOSS_WAIT;
		} else if (c < 0) {
			close(sock);	/* the server process ended: nothing more to hear */
			sock = -1;
		}
	}
	if (s.first_error >= 0)
		t_error = now();
	/* What was outstanding at the error, and what was posted before it showed: all complete. */
	end = now() + DRAIN_WAIT;
	while (s.completed < s.posted && now() < end)
		if (!reap(&s, notice_sent))
			wait_event(100);

	if (notice_sent)
		note("%ld WRs succeeded before the reboot notice, %ld after it", ok_at_notice,
		     s.ok - ok_at_notice);
	else
		note("%ld WRs succeeded, no reboot notice", s.ok);
	if (s.first_error >= 0)
		note("first error at wr %ld: %s, %.0f ms after %s", s.first_error,
		     ibv_wc_status_str(s.first_status), (t_error - t_start) * 1000,
		     notice_sent ? "the notice" : "the traffic began");
	note("%ld flushed after it; %llu posted, %llu completed", s.flushed,
	     (unsigned long long)s.posted, (unsigned long long)s.completed);
	result("traffic", go_sent && !s.post_failed, "%ld successful completions, wanted %d%s",
	       s.ok, TRAFFIC, s.post_failed ? ", a post failed" : "");
	result("reboot-notice-before-error", notice_sent && s.first_error >= 0 && !s.error_before_notice,
	       "%s", !notice_sent ? "no reboot notice from the server" :
	       s.first_error < 0 ? "no error after it" : "the first error came before it");
	result("first-error-retry-exc-err", s.first_error >= 0 &&
	       s.first_status == IBV_WC_RETRY_EXC_ERR, "%s",
	       s.first_error < 0 ? "no error completion" : ibv_wc_status_str(s.first_status));
	result("later-wrs-flushed", s.first_error >= 0 && s.flushed > 0 && !s.others,
	       "%ld WR_FLUSH_ERR, %ld other statuses after the first error", s.flushed, s.others);
	result("completions-exact", s.posted == s.completed && !s.out_of_order && cq_quiet(1000),
	       "%llu posted, %llu completed, %d out of order or extra",
	       (unsigned long long)s.posted, (unsigned long long)s.completed, s.out_of_order);
	memset(&attr, 0, sizeof(attr));
	c = ibv_query_qp(qp, &attr, IBV_QP_STATE, &init);
	result("qp-state-err", !c && attr.qp_state == IBV_QPS_ERR,
	       "query_qp %d, state %d", c, attr.qp_state);
	check_late_posts(&peer);
	check_destroy();
	return failures;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	srand48(getpid() ^ time(NULL));
	if (argc == 5 && !strcmp(argv[3], "server")) {
		gid_index = atoi(argv[2]);
		return serve(argv[1], atoi(argv[4]));
	}
	if (argc == 6 && !strcmp(argv[3], "client")) {
		gid_index = atoi(argv[2]);
		return run_client(argv[1], atoi(argv[4]), argv[5]);
	}
	fprintf(stderr, "usage: %s DEVICE GID_INDEX server PORT\n"
		"       %s DEVICE GID_INDEX client PORT SERVER_IPV4\n", argv[0], argv[0]);
	return 2;
}
