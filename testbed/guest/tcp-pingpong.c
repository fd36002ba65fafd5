/*
 * tcp-pingpong: the TCP baseline for the RDMA tools' numbers, between two guests.
 *
 *   tcp-pingpong [-p PORT] [-s SIZE] [-n ITERS] [-b]            server (one client, then exits)
 *   tcp-pingpong [-p PORT] [-s SIZE] [-n ITERS] [-b] SERVER     client
 *
 * Both sides take the same options, as ibv_rc_pingpong's do. Latency (default): ITERS round trips,
 * the client sends SIZE bytes and the server echoes them; the client checks every echo. Both print
 * ibv_rc_pingpong's two lines, so the same parser reads either:
 *
 *   N bytes in X seconds = Y Mbit/sec          (N = SIZE * ITERS * 2, both directions)
 *   ITERS iters in X seconds = Z usec/iter
 *
 * Bandwidth (-b): the client streams ITERS messages of SIZE bytes, the server reads them all and
 * answers one byte; both print "ITERS x SIZE bytes in X seconds = G Gb/sec" (G in 10^9 bit/s,
 * like perftest's --report_gbits). TCP_NODELAY on both sides. Exit status 0 only if every byte
 * arrived (and, for latency, came back unchanged).
 * Built on the host with `gcc -static -O2` and dropped into the test guests' initramfs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, 0);
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

static int recv_all(int fd, char *buf, size_t len)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The connected socket: accepts one client (server) or connects once (client; the caller
 * retries until the server listens). */
static int connect_peer(const char *server, int port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0) {
		perror("socket");
		return -1;
	}
	if (server) {
		if (inet_pton(AF_INET, server, &addr.sin_addr) != 1) {
			fprintf(stderr, "tcp-pingpong: bad IPv4 address %s\n", server);
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
			perror("connect");
			return -1;
		}
	} else {
		int lfd = fd;
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 1) < 0) {
			perror("bind/listen");
			return -1;
		}
		fd = accept(lfd, NULL, NULL);
		close(lfd);
		if (fd < 0) {
			perror("accept");
			return -1;
		}
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int latency(int fd, int is_client, char *buf, char *echo, size_t size, int iters)
{
	for (int i = 0; i < iters; i++) {
		if (is_client) {
			memset(buf, 'a' + i % 26, size);
			if (send_all(fd, buf, size) || recv_all(fd, echo, size))
				return -1;
			if (memcmp(buf, echo, size)) {
				fprintf(stderr, "tcp-pingpong: echo %d differs\n", i);
				return -1;
			}
		} else if (recv_all(fd, buf, size) || send_all(fd, buf, size)) {
			return -1;
		}
	}
	return 0;
}

static int bandwidth(int fd, int is_client, char *buf, size_t size, int iters)
{
	char ack = 'k';

	for (int i = 0; i < iters; i++)
		if (is_client ? send_all(fd, buf, size) : recv_all(fd, buf, size))
			return -1;
	return is_client ? recv_all(fd, &ack, 1) : send_all(fd, &ack, 1);
}

int main(int argc, char **argv)
{
	int port = 18515, iters = 1000, bw = 0, opt;
	size_t size = 4096;

	while ((opt = getopt(argc, argv, "p:s:n:b")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 's': size = strtoul(optarg, NULL, 0); break;
		case 'n': iters = atoi(optarg); break;
		case 'b': bw = 1; break;
		default:
			fprintf(stderr, "usage: %s [-p PORT] [-s SIZE] [-n ITERS] [-b] [SERVER]\n", argv[0]);
			return 2;
		}
	}
	const char *server = optind < argc ? argv[optind] : NULL;
	char *buf = malloc(size), *echo = malloc(size);
	if (!buf || !echo || size == 0 || iters <= 0) {
		fprintf(stderr, "tcp-pingpong: bad size or iteration count\n");
		return 2;
	}
	memset(buf, 0, size);
	int fd = connect_peer(server, port);
	if (fd < 0)
		return 1;

	double start = now();
	int rc = bw ? bandwidth(fd, server != NULL, buf, size, iters)
		    : latency(fd, server != NULL, buf, echo, size, iters);
	double secs = now() - start;
	if (rc) {
		fprintf(stderr, "tcp-pingpong: connection lost\n");
		return 1;
	}
	if (bw) {
		printf("%d x %zu bytes in %.2f seconds = %.3f Gb/sec\n", iters, size, secs,
		       (double)size * iters * 8 / secs / 1e9);
	} else {
		long long bytes = (long long)size * iters * 2;
		printf("%lld bytes in %.2f seconds = %.2f Mbit/sec\n", bytes, secs, bytes * 8 / secs / 1e6);
		printf("%d iters in %.2f seconds = %.2f usec/iter\n", iters, secs, secs * 1e6 / iters);
	}
	close(fd);
	return 0;
}
