// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * dio_loop DEV N: N O_DIRECT 4 KiB operations on the block device DEV,
 * alternately a write and a read, each at a pseudo-random 4 KiB-aligned
 * offset within the device, one at a time. Every operation is one block
 * request issued and completed, which is where block I/O probes add their
 * cost. It times only the loop with CLOCK_MONOTONIC and prints
 *
 *     ns_per_op=<float>
 *     cpu_ns_per_op=<float>
 *
 * The second is this process's CPU time (getrusage, user + system) over
 * the loop: the submission path, and the completion when it runs here.
 * Built by bench/blockbench with gcc -O2.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BS 4096

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

int main(int argc, char **argv)
{
	uint64_t size, blocks, x = 0x9e3779b97f4a7c15ULL;
	long long n, i;
	double t0, t1, c0, c1;
	char *buf;
	int fd;

	if (argc != 3 || (n = atoll(argv[2])) < 1) {
		fprintf(stderr, "usage: dio_loop DEV N\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) != 0) {
		perror(argv[1]);
		return 1;
	}
	blocks = size / BS;
	if (blocks == 0) {
		fprintf(stderr, "%s: smaller than %d bytes\n", argv[1], BS);
		return 1;
	}
	/* O_DIRECT needs an aligned buffer; mmap'ed memory is page aligned. */
	buf = mmap(NULL, BS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(buf, 0xa5, BS);
	c0 = cpu_ns();
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		off_t off;
		ssize_t r;

		/* xorshift64: cheap, and no two runs differ */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = (off_t)(x % blocks) * BS;
		r = (i & 1) ? pread(fd, buf, BS, off) : pwrite(fd, buf, BS, off);
		if (r != BS) {
			perror(i & 1 ? "pread" : "pwrite");
			return 1;
		}
	}
	t1 = now_ns();
	c1 = cpu_ns();
	printf("ns_per_op=%.1f\ncpu_ns_per_op=%.1f\n", (t1 - t0) / n, (c1 - c0) / n);
	return 0;
}
