// SPDX-License-Identifier: Apache-2.0
/*
 * rawsys: a workload whose every system call is known. Built freestanding
 * (no libc: -nostdlib -static), so between its first instruction and
 * exit_group (which never returns, so no sys_exit) it makes exactly the
 * calls its arguments ask for and nothing else. Tests use it as the oracle.
 *
 *   rawsys getppid N     N x getppid
 *   rawsys close N       N x close(-1)          (each fails with EBADF)
 *   rawsys sleep N MS    N x nanosleep(MS ms)
 *   rawsys mix N         N x each of 8 different syscalls (8N calls)
 *   rawsys exit CODE     no call; exit status CODE
 *   rawsys tcp N         one loopback listener, then N connections to it, each
 *                        accepted, one byte each way, both ends closed
 * Exit status 0, or 2 on bad arguments. x86-64 only.
 */
#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_socket 41
#define SYS_connect 42
#define SYS_accept 43
#define SYS_bind 49
#define SYS_listen 50
#define SYS_getsockname 51
#define SYS_nanosleep 35
#define SYS_getpid 39
#define SYS_exit_group 231
#define SYS_getuid 102
#define SYS_getgid 104
#define SYS_geteuid 107
#define SYS_getegid 108
#define SYS_getppid 110
#define SYS_getpgrp 111

struct timespec_k { long sec, nsec; };
struct sockaddr_in_k { unsigned short family, port; unsigned int addr; unsigned long zero; };

static long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}

static __attribute__((noreturn)) void quit(int code)
{
	sys3(SYS_exit_group, code, 0, 0);
	for (;;) {
	}
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static long num(const char *s)
{
	long v = 0;
	if (!*s)
		quit(2);
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			quit(2);
		v = v * 10 + (*s - '0');
	}
	return v;
}

__attribute__((used)) void cmain(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	long i, n;

	if (argc < 3)
		quit(2);
	n = num(argv[2]);
	if (streq(argv[1], "getppid")) {
		for (i = 0; i < n; i++)
			sys3(SYS_getppid, 0, 0, 0);
	} else if (streq(argv[1], "close")) {
		for (i = 0; i < n; i++)
			sys3(SYS_close, -1, 0, 0);
	} else if (streq(argv[1], "sleep") && argc > 3) {
		struct timespec_k ts = { 0, num(argv[3]) * 1000000L };
		for (i = 0; i < n; i++)
			sys3(SYS_nanosleep, (long)&ts, 0, 0);
	} else if (streq(argv[1], "mix")) {
		static const long calls[] = { SYS_getppid, SYS_getpid, SYS_getuid, SYS_getgid,
					      SYS_geteuid, SYS_getegid, SYS_getpgrp, SYS_close };
		for (i = 0; i < n; i++)
			for (unsigned j = 0; j < sizeof(calls) / sizeof(calls[0]); j++)
				sys3(calls[j], calls[j] == SYS_close ? -1 : 0, 0, 0);
	} else if (streq(argv[1], "tcp")) {
		/* 127.0.0.1, port 0: the kernel picks one, getsockname says which. */
		struct sockaddr_in_k sa = { 2, 0, 0x0100007f, 0 };
		long len = sizeof(sa), lfd, cfd, afd;
		char b = 'x';

		lfd = sys3(SYS_socket, 2, 1, 0);
		if (lfd < 0 || sys3(SYS_bind, lfd, (long)&sa, sizeof(sa)) < 0 ||
		    sys3(SYS_listen, lfd, 16, 0) < 0 || sys3(SYS_getsockname, lfd, (long)&sa, (long)&len) < 0)
			quit(1);
		for (i = 0; i < n; i++) {
			cfd = sys3(SYS_socket, 2, 1, 0);
			if (cfd < 0 || sys3(SYS_connect, cfd, (long)&sa, sizeof(sa)) < 0)
				quit(1);
			afd = sys3(SYS_accept, lfd, 0, 0);
			if (afd < 0 || sys3(SYS_write, cfd, (long)&b, 1) != 1 || sys3(SYS_read, afd, (long)&b, 1) != 1 ||
			    sys3(SYS_write, afd, (long)&b, 1) != 1 || sys3(SYS_read, cfd, (long)&b, 1) != 1)
				quit(1);
			sys3(SYS_close, cfd, 0, 0);
			sys3(SYS_close, afd, 0, 0);
		}
		sys3(SYS_close, lfd, 0, 0);
	} else if (streq(argv[1], "exit")) {
		quit((int)n);
	} else {
		quit(2);
	}
	quit(0);
}

__asm__(".globl _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call cmain\n"
	"	hlt\n");
