// Workload of the uprobe probe's tests and bench: calls a function exactly
// as often as its arguments say, after a line on stdin (so the test attaches
// first; bench mode starts at once), and prints what it measured itself, the
// test's oracle.
//
//   cfunc work N EVERY   work() N times, sleeping 10 ms in every EVERY-th
//                        (i % EVERY == 0); prints "<total ns around the calls>
//                        <sleeps> <slow>", slow the calls that took 2^23 ns
//                        (8.39 ms) or more by this clock
//   cfunc rec N DEPTH    rec(DEPTH) N times: N*(DEPTH+1) nested calls
//   cfunc atoi N         libc's atoi N times (a real call into libc)
//   cfunc bench N        empty() N times; prints "ns_per_call=<float>"
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

volatile int sink;

__attribute__((noinline, noipa)) void work(int sleep)
{
	if (sleep) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	sink++;
}

__attribute__((noinline, noipa)) int rec(int depth)
{
	if (depth <= 0)
		return sink;
	volatile int r = rec(depth - 1); /* volatile: no tail-recursion elimination */

	return r + 1;
}

__attribute__((noinline, noipa)) void empty(void)
{
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	char line[16];
	long n, i, arg = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: cfunc work|rec|atoi|bench N [ARG]\n");
		return 2;
	}
	n = atol(argv[2]);
	if (argc > 3)
		arg = atol(argv[3]);
	/* The bench runs under the agent's -- COMMAND, which holds it already. */
	if (strcmp(argv[1], "bench") && !fgets(line, sizeof(line), stdin))
		return 3;
	if (!strcmp(argv[1], "work")) {
		unsigned long long total = 0;
		long sleeps = 0, slow = 0;

		for (i = 0; i < n; i++) {
			int s = arg > 0 && i % arg == 0;
			unsigned long long t0 = now_ns(), d;

			work(s);
			d = now_ns() - t0;
			total += d;
			sleeps += s;
			slow += d >= 1ULL << 23;
		}
		printf("%llu %ld %ld\n", total, sleeps, slow);
	} else if (!strcmp(argv[1], "rec")) {
		for (i = 0; i < n; i++)
			sink += rec((int)arg);
		printf("%d\n", sink);
	} else if (!strcmp(argv[1], "atoi")) {
		/* Through a pointer: at -O2 glibc's header inlines atoi as strtol. */
		int (*volatile fp)(const char *) = atoi;

		for (i = 0; i < n; i++)
			sink += fp(argv[2]);
		printf("%d\n", sink);
	} else if (!strcmp(argv[1], "bench")) {
		unsigned long long t0 = now_ns();

		for (i = 0; i < n; i++)
			empty();
		printf("ns_per_call=%.2f\n", (double)(now_ns() - t0) / (double)n);
	} else {
		return 2;
	}
	return 0;
}
