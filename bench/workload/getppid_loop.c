// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * getppid_loop N: calls syscall(SYS_getppid) N times and prints the mean
 * cost of one call, measured with CLOCK_MONOTONIC around the loop only
 * (process start-up, dynamic linking and exit are not included):
 *
 *     ns_per_call=<float>
 *
 * getppid does almost nothing in the kernel, so the time per call is
 * dominated by the syscall entry/exit path, which is where syscall probes
 * add their cost. Built by bench/syscallbench with gcc -O2.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	char *end;
	long long n, i;
	double ns;

	if (argc != 2) {
		fprintf(stderr, "usage: %s N\n", argv[0]);
		return 2;
	}
	n = strtoll(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || n <= 0) {
		fprintf(stderr, "getppid_loop: N must be a positive integer, got %s\n", argv[1]);
		return 2;
	}

	if (clock_gettime(CLOCK_MONOTONIC, &t0) != 0) {
		perror("clock_gettime");
		return 1;
	}
	for (i = 0; i < n; i++)
		syscall(SYS_getppid);
	if (clock_gettime(CLOCK_MONOTONIC, &t1) != 0) {
		perror("clock_gettime");
		return 1;
	}

	ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
	printf("ns_per_call=%.3f\n", ns / (double)n);
	return 0;
}
