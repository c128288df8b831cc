/*
 * Page-fault workload for the memory probe's tests.
 *
 *   faults minor N      touch N fresh anonymous pages (one minor fault each)
 *   faults major FILE   map FILE, report how many of its pages are resident
 *                       ("resident R of P" on stdout), then read one byte
 *                       of every page (one major fault each when the page
 *                       cache does not hold it)
 *   faults oom          allocate and touch memory until killed
 *
 * minor and major stop themselves (SIGSTOP) just before exiting, so the
 * test can read /proc/<pid>/stat while the process still exists and has
 * made every fault it will make; SIGCONT lets it exit 0.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static int minor(long n)
{
	long page = sysconf(_SC_PAGESIZE);
	volatile char *p;

	p = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	/* One fault per page: no transparent huge page may serve 512 at once. */
	if (madvise((void *)p, n * page, MADV_NOHUGEPAGE))
		die("madvise");
	for (long i = 0; i < n; i++)
		p[i * page] = 1;
	return 0;
}

static int major(const char *path)
{
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;
	unsigned char *vec;
	volatile char *p;
	long pages, resident = 0;
	unsigned sum = 0;
	char line[64];
	int fd, len;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		die("open");
	pages = (st.st_size + page - 1) / page;
	p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	/* No readahead: every page is read, and faulted, on its own. */
	if (madvise((void *)p, st.st_size, MADV_RANDOM))
		die("madvise");
	vec = malloc(pages);
	if (!vec || mincore((void *)p, st.st_size, vec))
		die("mincore");
	for (long i = 0; i < pages; i++)
		resident += vec[i] & 1;
	len = snprintf(line, sizeof(line), "resident %ld of %ld\n", resident, pages);
	if (write(1, line, len) != len)
		die("write");
	for (long i = 0; i < pages; i++)
		sum += p[i * page];
	return sum == 0xffffffff; /* keep the reads */
}

static int oom(void)
{
	const size_t chunk = 1 << 20;

	for (;;) {
		char *p = malloc(chunk);

		if (p)
			memset(p, 1, chunk);
	}
}

int main(int argc, char **argv)
{
	int rc;

	if (argc == 3 && !strcmp(argv[1], "minor"))
		rc = minor(atol(argv[2]));
	else if (argc == 3 && !strcmp(argv[1], "major"))
		rc = major(argv[2]);
	else if (argc == 2 && !strcmp(argv[1], "oom"))
		return oom();
	else {
		fprintf(stderr, "usage: faults minor N | major FILE | oom\n");
		return 2;
	}
	raise(SIGSTOP);
	return rc;
}
