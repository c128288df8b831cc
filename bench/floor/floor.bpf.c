// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/*
 * Floors of eBPF syscall probes on the sys_enter/sys_exit BTF tracepoints.
 * Each pair is loaded and attached alone (floor.go picks one pair); they
 * build on each other, so the difference between two of them is the cost
 * of what the larger one adds:
 *
 *   floor_sys_*          empty programs: tracepoint dispatch + one call into
 *                        a BPF program. No eBPF syscall probe can be cheaper.
 *   clock_sys_*          one bpf_ktime_get_ns() on each side, stored in a
 *                        per-CPU array so the compiler must keep it: the
 *                        floor of any design that times every syscall exactly.
 *   clock_storage_sys_*  the entry time kept per thread in task storage and
 *                        the delta summed on exit: the floor of exact
 *                        per-thread timing, with no aggregation at all.
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* --- empty ------------------------------------------------------------ */

SEC("tp_btf/sys_enter")
int BPF_PROG(floor_sys_enter, struct pt_regs *regs, long id)
{
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(floor_sys_exit, struct pt_regs *regs, long ret)
{
	return 0;
}

/* --- clock ------------------------------------------------------------ */

/* The last clock read on each CPU: a sink that makes the read observable. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} clock_sink SEC(".maps");

static __always_inline void clock_store(void)
{
	__u32 slot = 0;
	__u64 *v = bpf_map_lookup_elem(&clock_sink, &slot);

	if (v)
		*v = bpf_ktime_get_ns();
}

SEC("tp_btf/sys_enter")
int BPF_PROG(clock_sys_enter, struct pt_regs *regs, long id)
{
	clock_store();
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(clock_sys_exit, struct pt_regs *regs, long ret)
{
	clock_store();
	return 0;
}

/* --- clock_storage ---------------------------------------------------- */

/* Entry time of the thread's current syscall. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} clock_start SEC(".maps");

/* Sum of the syscall durations seen on each CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} clock_storage_sum SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(clock_storage_sys_enter, struct pt_regs *regs, long id)
{
	__u64 *start;

	start = bpf_task_storage_get(&clock_start, bpf_get_current_task_btf(), 0,
				     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (start)
		*start = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(clock_storage_sys_exit, struct pt_regs *regs, long ret)
{
	__u32 slot = 0;
	__u64 *start, *sum;

	start = bpf_task_storage_get(&clock_start, bpf_get_current_task_btf(), 0, 0);
	if (!start)
		return 0;
	sum = bpf_map_lookup_elem(&clock_storage_sum, &slot);
	if (sum)
		*sum += bpf_ktime_get_ns() - *start;
	return 0;
}
