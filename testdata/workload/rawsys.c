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
 * Exit status 0, or 2 on bad arguments. x86-64 only.
 */
#define SYS_close 3
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
