// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * memory probe: per-process minor and major page faults, and OOM kills per
 * victim cgroup.
 *
 * Faults are counted where the kernel itself accounts them: mm_account_fault()
 * raises the software perf events page-faults-min / page-faults-maj right
 * after incrementing task->min_flt / maj_flt (what /proc/<pid>/stat shows).
 * The agent opens one such event per online CPU (pid -1, sample_period 1) and
 * links one of the programs below to each, so every accounted fault runs the
 * program once, in the context of the faulting task. With sample_period 1 the
 * kernel never throttles the event (perf_swevent_overflow() only throttles
 * the second and later overflows of one batch), so nothing is sampled away.
 *
 * Hot path budget (per fault): one pid/tgid read, the target check, one
 * hash lookup (this CPU's storage entry) updated in place. No atomics: the entry is this CPU's
 * and perf-event programs run with preemption disabled.
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "gen/memory.h"
#include "gen/memory_oom.h"
#include "telagent.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";


/* Returns the faulting process's slot of this CPU, or NULL when it is not
 * observed. current is the faulting task: mm_account_fault() runs in it. */
static __always_inline struct memory_value *fault_slot(void)
{
	struct memory_key key = { .tgid = bpf_get_current_pid_tgid() >> 32 };

	if (!telagent_is_target(key.tgid))
		return NULL;
	return memory_slot(&key, bpf_get_current_task_btf(), NULL);
}

SEC("perf_event")
int page_fault_min(struct bpf_perf_event_data *ctx)
{
	struct memory_value *val = fault_slot();

	if (val)
		val->minor_faults++;
	return 0;
}

SEC("perf_event")
int page_fault_maj(struct bpf_perf_event_data *ctx)
{
	struct memory_value *val = fault_slot();

	if (val)
		val->major_faults++;
	return 0;
}

/*
 * One OOM victim. The victim is usually not current (the allocating task
 * triggers the kill), so its cgroup is read from the victim itself: its
 * cgroup v2 (dfl_cgrp), whose kernfs id is the id user space sees as the
 * inode number of the cgroup directory. Rare, so the slow path is fine.
 */
static __always_inline void on_mark_victim(struct task_struct *victim)
{
	struct memory_oom_key key;
	struct memory_oom_value *val;

	if (!telagent_is_target(BPF_CORE_READ(victim, tgid)))
		return;
	key.cgroup_id = BPF_CORE_READ(victim, cgroups, dfl_cgrp, kn, id);
	val = memory_oom_slot(&key, NULL, NULL);
	if (val)
		val->kills++;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(mark_victim, struct task_struct *task, uid_t uid)
{
	on_mark_victim(task);
	return 0;
}

/* Fallback for kernels whose tp_btf attach fails; same logic. */
SEC("raw_tp/mark_victim")
int raw_mark_victim(struct bpf_raw_tracepoint_args *ctx)
{
	on_mark_victim((struct task_struct *)ctx->args[0]);
	return 0;
}
