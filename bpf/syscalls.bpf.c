// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * syscalls probe: per (process, syscall) calls, errors, total and log2
 * histogram of duration, from the sys_enter/sys_exit tracepoints.
 *
 * Hot path budget (per syscall): entry = one task-storage get + one clock
 * read; exit = one task-storage get + one clock read + one per-CPU hash
 * lookup (this CPU's entry of the node's storage, gen/syscalls.h) updated in
 * place. The target check happens once per thread. No atomics: the entry is
 * this CPU's and syscall tracepoints run BPF with preemption disabled.
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "gen/syscalls.h"
#include "telagent.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Syscall numbers outside the table's bound are folded into this one. */
#define SYSCALLS_NR_OTHER (SYSCALLS_NR_BOUND - 1)

struct inflight {
	__u64 start_ns;
	__u32 nr;
	__u32 _pad;
};

/* The entry timestamp lives with the thread, so a thread that sleeps in a
 * syscall and wakes on another CPU, or is interrupted, pairs correctly. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight SEC(".maps");

static __always_inline void on_enter(long id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct inflight *in;

	/*
	 * A thread has storage only once it was seen as a target, and targets
	 * stay targets while they live: the target lookup is paid once per
	 * thread, not once per syscall.
	 */
	in = bpf_task_storage_get(&inflight, task, 0, 0);
	if (!in) {
		if (!telagent_is_target(task->tgid))
			return;
		in = bpf_task_storage_get(&inflight, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!in)
			return;
	}
	in->nr = (id >= 0 && id < SYSCALLS_NR_OTHER) ? (__u32)id : SYSCALLS_NR_OTHER;
	in->start_ns = bpf_ktime_get_ns();
}

static __always_inline void on_exit(long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct syscalls_value *val;
	struct syscalls_key key;
	struct inflight *in;
	__u64 delta;

	in = bpf_task_storage_get(&inflight, task, 0, 0);
	if (!in || !in->start_ns)
		return;
	delta = bpf_ktime_get_ns() - in->start_ns;
	in->start_ns = 0;

	key.tgid = task->tgid;
	key.nr = in->nr;
	val = syscalls_slot(&key, task, NULL);
	if (!val)
		return;
	val->calls++;
	val->errors += (unsigned long)ret >= (unsigned long)-4095;
	val->duration_ns_sum += delta;
	val->duration_hist[telagent_hist_bucket(delta)]++;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	on_enter(id);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	on_exit(ret);
	return 0;
}

/* Fallbacks for kernels whose tp_btf attach fails; same logic. */
SEC("raw_tp/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	on_enter((long)ctx->args[1]);
	return 0;
}

SEC("raw_tp/sys_exit")
int raw_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	on_exit((long)ctx->args[1]);
	return 0;
}
