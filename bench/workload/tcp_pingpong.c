// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcp_pingpong N [CPU]: one TCP connection over loopback (127.0.0.1, a fresh
 * ephemeral port), TCP_NODELAY on both ends; a client thread sends one
 * byte and the server thread sends it back, N times. Every round trip is
 * two segments sent and two received, each with its tcp_probe event, plus
 * the ACKs the stack sends; a TCP probe adds its cost there. It times only
 * the loop (connection set-up and teardown are not included) with
 * CLOCK_MONOTONIC and prints
 *
 *     ns_per_roundtrip=<float>
 *     cpu_ns_per_roundtrip=<float>
 *
 * The second is the CPU time of both threads (getrusage, user + system)
 * over the loop; loopback delivers in the sender's context, so it holds
 * the receive path too. With CPU given, both threads are pinned to it:
 * one of them is always runnable, so the CPU never idles during the loop
 * and the time of waking an idle CPU (large and erratic on VMs) stays out
 * of the numbers. Built by bench/tcpbench with gcc -O2 -pthread.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long n;
static int lfd;

static double cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0) {
		perror("getrusage");
		exit(1);
	}
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		perror("TCP_NODELAY");
		exit(1);
	}
}

static void *server(void *arg)
{
	char c;
	int fd;

	(void)arg;
	fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		perror("accept");
		exit(1);
	}
	nodelay(fd);
	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r == 0)
			break;
		if (r != 1 || write(fd, &c, 1) != 1) {
			perror("server");
			exit(1);
		}
	}
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	double t0, t1, c0, c1;
	pthread_t th;
	long long i;
	char c = 'x';
	int fd;

	if (argc < 2 || argc > 3 || (n = atoll(argv[1])) < 1) {
		fprintf(stderr, "usage: tcp_pingpong N [CPU]\n");
		return 2;
	}
	if (argc == 3) {
		/* before the server thread exists, which inherits it */
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(atoi(argv[2]), &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0) {
			perror("sched_setaffinity");
			return 1;
		}
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 1) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
		perror("listen");
		return 1;
	}
	if (pthread_create(&th, NULL, server, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("connect");
		return 1;
	}
	nodelay(fd);
	c0 = cpu_ns();
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) {
			perror("client");
			return 1;
		}
	}
	t1 = now_ns();
	c1 = cpu_ns();
	close(fd);
	pthread_join(th, NULL);
	close(lfd);
	printf("ns_per_roundtrip=%.1f\ncpu_ns_per_roundtrip=%.1f\n", (t1 - t0) / n, (c1 - c0) / n);
	return 0;
}
