// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pingpong N [CPU]: two threads hand one byte back and forth over a pair
 * of pipes N times and the mean cost of one round trip is printed,
 * measured with CLOCK_MONOTONIC around the loop only (thread start-up and
 * exit are not included):
 *
 *     ns_per_roundtrip=<float>
 *     cpu_ns_per_roundtrip=<float>
 *
 * The second is the CPU time both threads used (getrusage, user + system)
 * over the same loop: the cost of the hand-offs themselves, without the
 * time other processes held the CPU, so it is steadier on a busy machine.
 *
 * Both threads are pinned to one CPU (default 0), so every hand-off is a
 * context switch: per round trip two wakeups and two switches, which is
 * where scheduler probes add their cost. Built by bench/schedbench with
 * gcc -O2 -pthread.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static long long n;
static int cpu;

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

static int pin(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *peer(void *arg)
{
	char c;

	(void)arg;
	if (pin() != 0) {
		fprintf(stderr, "pingpong: cannot pin to CPU %d\n", cpu);
		exit(1);
	}
	for (long long i = 0; i < n; i++) {
		if (read(ping[0], &c, 1) != 1 || write(pong[1], &c, 1) != 1) {
			perror("pingpong: peer");
			exit(1);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	pthread_t t;
	char c = 'x', *end;
	double ns, cpu0, cpu1;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s N [CPU]\n", argv[0]);
		return 2;
	}
	n = strtoll(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || n < 2) {
		fprintf(stderr, "pingpong: N must be an integer >= 2 (one round trip warms up), got %s\n", argv[1]);
		return 2;
	}
	if (argc == 3)
		cpu = atoi(argv[2]);
	if (pipe(ping) != 0 || pipe(pong) != 0) {
		perror("pipe");
		return 1;
	}
	if (pin() != 0) {
		fprintf(stderr, "pingpong: cannot pin to CPU %d\n", cpu);
		return 1;
	}
	if (pthread_create(&t, NULL, peer, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	/* One warm-up round trip: the peer is running and pinned. */
	if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) {
		perror("pingpong");
		return 1;
	}
	cpu0 = cpu_ns();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long long i = 1; i < n; i++) {
		if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) {
			perror("pingpong");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(t, NULL); /* the peer's last hand-off is then accounted */
	cpu1 = cpu_ns();

	ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
	printf("ns_per_roundtrip=%.3f\n", ns / (double)(n - 1));
	printf("cpu_ns_per_roundtrip=%.3f\n", (cpu1 - cpu0) / (double)(n - 1));
	return 0;
}
