// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/*
 * Floors of scheduler probes on the four tracepoints the sched probe uses
 * (tp_btf). Each set is loaded and attached alone (floor.go picks one):
 *
 *   floor_*  empty programs: tracepoint dispatch + one call into a BPF
 *            program per event. No eBPF scheduler probe can be cheaper.
 *   clock_*  the same, with one bpf_ktime_get_ns() per switch and per
 *            wakeup stored in a per-CPU array so the compiler must keep
 *            it: the floor of any design that times on-CPU slices and
 *            run-queue waits exactly (the migration hook needs no clock).
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* --- empty ------------------------------------------------------------ */

SEC("tp_btf/sched_switch")
int BPF_PROG(floor_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(floor_wakeup, struct task_struct *p)
{
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(floor_wakeup_new, struct task_struct *p)
{
	return 0;
}

SEC("tp_btf/sched_migrate_task")
int BPF_PROG(floor_migrate, struct task_struct *p, int dest_cpu)
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

SEC("tp_btf/sched_switch")
int BPF_PROG(clock_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	clock_store();
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(clock_wakeup, struct task_struct *p)
{
	clock_store();
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(clock_wakeup_new, struct task_struct *p)
{
	clock_store();
	return 0;
}
