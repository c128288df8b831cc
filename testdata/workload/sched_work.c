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
 *   contend MS BUSY SLEEPERS
 *                    CPU contention for MS ms: BUSY unpinned spinning
 *                    threads, SLEEPERS threads that sleep 50 us..3 ms and
 *                    spin 20..200 us in turn (timer wakeups), and SLEEPERS
 *                    worker threads each woken through a pipe by a waker
 *                    thread every 0.2..2 ms, as a kworker is by its queuer
 *                    (wakeups from another task, often preempting). It
 *                    stops itself once its threads have started, and again
 *                    at the end, so /proc and the probe can be read while
 *                    none of its threads is running or waiting
 *   wakee            a kworker-like thread: SCHED_FIFO 1, each 'w' read
 *                    from stdin wakes it, it writes 'a' to stdout and
 *                    spins until it can read 'g', then blocks in read()
 *                    again; ends at 'x' or end of input
 *
 * Every mode but spin prints its own counters as key=value lines, with
 * getrusage(RUSAGE_SELF)'s switch counts, then stops itself with SIGSTOP
 * with every thread still alive, so that the test can read /proc while
 * nothing moves; after SIGCONT it ends its threads and exits 0.
 */
#define _GNU_SOURCE
#include <fcntl.h>
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

static volatile int contend_quit;
static double contend_end;

/* A small per-thread pseudo-random sequence (no shared state). */
static unsigned int next_rand(unsigned int *x)
{
	*x = *x * 1103515245u + 12345u;
	return *x >> 8;
}

static void nap_us(unsigned int us)
{
	struct timespec ts = { 0, us * 1000L };

	nanosleep(&ts, NULL);
}

static void *contend_spinner(void *arg)
{
	(void)arg;
	while (!contend_quit)
		spin_ms(1);
	return NULL;
}

static void *contend_sleeper(void *arg)
{
	unsigned int x = (unsigned int)(long)arg;

	while (!contend_quit) {
		nap_us(50 + next_rand(&x) % 2950);
		spin_ms((20 + next_rand(&x) % 180) / 1e3);
	}
	return NULL;
}

/* Reads a byte, spins a little, until 'x'. */
static void *contend_worker(void *arg)
{
	int fd = (int)(long)arg;

	while (xread(fd) != 'x')
		spin_ms(0.03);
	return NULL;
}

/* Wakes its worker every 0.2..2 ms until the end, then tells it to end
 * (after the stop: the worker must still be alive when /proc is read). */
static void *contend_waker(void *arg)
{
	int fd = (int)(long)arg;
	unsigned int x = (unsigned int)fd;

	while (now_ms() < contend_end) {
		nap_us(200 + next_rand(&x) % 1800);
		xwrite(fd, 'w');
	}
	while (!contend_quit)
		nap_us(1000);
	xwrite(fd, 'x');
	return NULL;
}

static int contend(long ms, int busy, int sleepers)
{
	int n = busy + 3 * sleepers;
	pthread_t *t = calloc(n, sizeof(*t));
	int k = 0;

	if (!t)
		die("calloc");
	for (int i = 0; i < busy; i++)
		if (pthread_create(&t[k++], NULL, contend_spinner, NULL))
			die("pthread_create");
	for (int i = 0; i < sleepers; i++) {
		int p[2];

		if (pipe(p))
			die("pipe");
		if (pthread_create(&t[k++], NULL, contend_sleeper, (void *)(long)(i + 1)) ||
		    pthread_create(&t[k++], NULL, contend_worker, (void *)(long)p[0]) ||
		    pthread_create(&t[k++], NULL, contend_waker, (void *)(long)p[1]))
			die("pthread_create");
	}
	/* The wakers read contend_end only after the stop. */
	contend_end = now_ms() + 1e9;
	raise(SIGSTOP);
	contend_end = now_ms() + ms;
	while (now_ms() < contend_end)
		nap_us(10000);
	report_and_stop("contend", n);
	contend_quit = 1;
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	free(t);
	return 0;
}

static int wakee(void)
{
	struct sched_param sp = { .sched_priority = 1 };
	char c;

	if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
		die("sched_setscheduler SCHED_FIFO");
	for (;;) {
		if (read(0, &c, 1) != 1 || c == 'x')
			return 0;
		if (c != 'w')
			continue;
		xwrite(1, 'a');
		if (fcntl(0, F_SETFL, O_NONBLOCK) != 0)
			die("fcntl");
		for (ssize_t r = 0; r != 1 || c != 'g';)
			if ((r = read(0, &c, 1)) == 0)
				return 0; /* end of input */
		if (fcntl(0, F_SETFL, 0) != 0)
			die("fcntl");
	}
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
	if (argc == 5 && !strcmp(argv[1], "contend"))
		return contend(atol(argv[2]), atoi(argv[3]), atoi(argv[4]));
	if (argc == 2 && !strcmp(argv[1], "wakee"))
		return wakee();
	if (argc == 4 && !strcmp(argv[1], "spin")) {
		pin(atoi(argv[3]));
		spin_ms(atol(argv[2]));
		return 0;
	}
	fprintf(stderr, "usage: %s pingpong N | burn MS | runq MS CPU [batch] | migrate N | spin MS CPU | contend MS BUSY SLEEPERS | wakee\n", argv[0]);
	return 2;
}
