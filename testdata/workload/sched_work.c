// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched_work MODE ARGS: known scheduler workloads for the sched probe's
 * tests (built by the tests with gcc -O2 -pthread).
 *
 *   pingpong N       two threads hand a byte back and forth over pipes N
 *                    times (each hand-off blocks: voluntary switches), then
 *                    both spin pinned to CPU 0 for 200 ms (preemptions:
 *                    involuntary switches)
 *   burn MS          three threads spin until each has had MS ms of CPU:
 *                    two pinned to CPU 0, which preempt each other at
 *                    ticks, and one on CPU 1 (CPU 0 when there is no
 *                    CPU 1); no wakeups while they spin
 *   runq MS CPU [batch]
 *                    pinned to CPU, alternates ~500 us of spinning with
 *                    100 us sleeps for MS ms; run next to a spinner on the
 *                    same CPU it waits on the run queue after every wakeup
 *                    and every preemption. With batch it runs as
 *                    SCHED_BATCH, whose wakeups never preempt the spinner
 *                    (the kernel then always updates the run-queue clock
 *                    at the switch-in that ends the wait)
 *   migrate N        moves itself between CPU 0 and CPU 1 N times with
 *                    sched_setaffinity (each move is one migration)
 *   spin MS CPU      spins pinned to CPU for MS ms and exits (the
 *                    competitor of runq; it does not stop itself)
 *
 * Every mode but spin prints its own counters as key=value lines, with
 * getrusage(RUSAGE_SELF)'s switch counts, then stops itself with SIGSTOP
 * with every thread still alive, so that the test can read /proc while
 * nothing moves; after SIGCONT it ends its threads and exits 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void spin_ms(double ms)
{
	double end = now_ms() + ms;

	while (now_ms() < end)
		;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		die("sched_setaffinity");
}

static void xwrite(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		die("write");
}

static char xread(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		die("read");
	return c;
}

/* Prints the counters, then stops until the test has read /proc. */
static void report_and_stop(const char *mode, long n)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		die("getrusage");
	printf("mode=%s\nn=%ld\nru_nvcsw=%ld\nru_nivcsw=%ld\n", mode, n, ru.ru_nvcsw, ru.ru_nivcsw);
	fflush(stdout);
	raise(SIGSTOP);
}

static int to_peer[2], from_peer[2];

/* The peer thread: answers 'p', spins on 's', exits on 'x'. */
static void *peer(void *arg)
{
	(void)arg;
	for (;;) {
		switch (xread(to_peer[0])) {
		case 'p':
			xwrite(from_peer[1], 'p');
			break;
		case 's':
			pin(0);
			spin_ms(200);
			xwrite(from_peer[1], 'd');
			break;
		case 'x':
			return NULL;
		}
	}
}

static int pingpong(long n)
{
	pthread_t t;

	if (pipe(to_peer) || pipe(from_peer))
		die("pipe");
	if (pthread_create(&t, NULL, peer, NULL))
		die("pthread_create");
	for (long i = 0; i < n; i++) {
		xwrite(to_peer[1], 'p');
		xread(from_peer[0]);
	}
	xwrite(to_peer[1], 's');
	pin(0);
	spin_ms(200);
	xread(from_peer[0]);
	report_and_stop("pingpong", n);
	xwrite(to_peer[1], 'x');
	pthread_join(t, NULL);
	return 0;
}

/* Spins until the calling thread has run for ms of CPU time. */
static void burn_cpu_ms(double ms)
{
	struct timespec ts;
	volatile unsigned long x = 0;

	do {
		for (int i = 0; i < 100000; i++)
			x++;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	} while (ts.tv_sec * 1e3 + ts.tv_nsec / 1e6 < ms);
}

static int done_pipe[2], quit_pipe[2];
static long burn_ms;

static void *burner(void *arg)
{
	pin((int)(long)arg);
	burn_cpu_ms(burn_ms);
	xwrite(done_pipe[1], 'd');
	xread(quit_pipe[0]); /* stay alive until the test has read /proc */
	return NULL;
}

static int burn(long ms)
{
	long cpus[2] = { 0, sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0 };
	pthread_t t[2];

	burn_ms = ms;
	if (pipe(done_pipe) || pipe(quit_pipe))
		die("pipe");
	pin(0);
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, burner, (void *)cpus[i]))
			die("pthread_create");
	burn_cpu_ms(ms);
	xread(done_pipe[0]);
	xread(done_pipe[0]);
	report_and_stop("burn", ms);
	xwrite(quit_pipe[1], 'x');
	xwrite(quit_pipe[1], 'x');
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	return 0;
}

static int runq(long ms, int cpu, int batch)
{
	struct timespec nap = { 0, 100 * 1000 };
	struct sched_param sp = { 0 };
	double end;
	long rounds = 0;

	if (batch && sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
		die("sched_setscheduler SCHED_BATCH");
	pin(cpu);
	end = now_ms() + ms;
	while (now_ms() < end) {
		spin_ms(0.5);
		nanosleep(&nap, NULL);
		rounds++;
	}
	report_and_stop("runq", rounds);
	return 0;
}

static int migrate(long n)
{
	pin(0);
	for (long i = 1; i <= n; i++) {
		pin(i % 2); /* not the CPU it runs on: the kernel moves it */
		spin_ms(0.05);
	}
	report_and_stop("migrate", n);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOFBF, 4096);
	if (argc == 3 && !strcmp(argv[1], "pingpong"))
		return pingpong(atol(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "burn"))
		return burn(atol(argv[2]));
	if ((argc == 4 || (argc == 5 && !strcmp(argv[4], "batch"))) && !strcmp(argv[1], "runq"))
		return runq(atol(argv[2]), atoi(argv[3]), argc == 5);
	if (argc == 3 && !strcmp(argv[1], "migrate"))
		return migrate(atol(argv[2]));
	if (argc == 4 && !strcmp(argv[1], "spin")) {
		pin(atoi(argv[3]));
		spin_ms(atol(argv[2]));
		return 0;
	}
	fprintf(stderr, "usage: %s pingpong N | burn MS | runq MS CPU [batch] | migrate N | spin MS CPU\n", argv[0]);
	return 2;
}
