// SPDX-License-Identifier: Apache-2.0
/*
 * forkbomb: a bounded burst of short-lived processes whose every system call
 * is known. Built freestanding like rawsys (-nostdlib -static), so:
 *
 *   forkbomb N K [P]   N children, at most P (default 64) alive at once;
 *                      each child makes K getppid calls and exits;
 *                      the parent makes N fork and N wait4 calls.
 *
 * Counted calls (exit_group never returns, so it has no sys_exit):
 * N*K getppid + N fork + N wait4. Exit status 0, 1 if a fork or a child
 * failed, 2 on bad arguments. x86-64 only.
 */
#define SYS_wait4 61
#define SYS_fork 57
#define SYS_exit_group 231
#define SYS_getppid 110

static long sys4(long nr, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return ret;
}

static __attribute__((noreturn)) void quit(int code)
{
	sys4(SYS_exit_group, code, 0, 0, 0);
	for (;;) {
	}
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
	long n, k, par = 64, alive = 0, i, j, pid;
	int status, failed = 0;

	if (argc < 3)
		quit(2);
	n = num(argv[1]);
	k = num(argv[2]);
	if (argc > 3)
		par = num(argv[3]);
	if (par < 1)
		quit(2);
	for (i = 0; i < n; i++) {
		if (alive == par) {
			if (sys4(SYS_wait4, -1, (long)&status, 0, 0) > 0 && status != 0)
				failed = 1;
			alive--;
		}
		pid = sys4(SYS_fork, 0, 0, 0, 0);
		if (pid == 0) {
			for (j = 0; j < k; j++)
				sys4(SYS_getppid, 0, 0, 0, 0);
			quit(0);
		}
		if (pid < 0) {
			failed = 1;
			break;
		}
		alive++;
	}
	while (alive > 0) {
		if (sys4(SYS_wait4, -1, (long)&status, 0, 0) > 0 && status != 0)
			failed = 1;
		alive--;
	}
	quit(failed);
}

__asm__(".globl _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call cmain\n"
	"	hlt\n");
