// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The state every probe shares (the maps of telagent.h, created once by the
 * agent from this object and handed to each probe), and target following: a
 * child process of a target becomes a target in the kernel at fork, before
 * it runs, so no early syscall is missed and no user space round trip is
 * needed. A target's entry goes when its thread group dies, so the bounded
 * set never fills with dead processes.
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "telagent.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Children that could not be added because the set was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} target_drops SEC(".maps");

static __always_inline void follow_fork(__u32 parent_tgid, __u32 child_pid, __u32 child_tgid)
{
	__u8 one = 1, *found;
	__u32 slot = 0;
	__u64 *drops;

	if (child_pid != child_tgid) /* a new thread, already covered by its tgid */
		return;
	found = bpf_map_lookup_elem(&targets, &parent_tgid);
	if (!found)
		return;
	if (bpf_map_update_elem(&targets, &child_tgid, &one, BPF_ANY) == 0)
		return;
	drops = bpf_map_lookup_elem(&target_drops, &slot);
	if (drops)
		*drops += 1;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(follow_fork_btf, struct task_struct *parent, struct task_struct *child)
{
	follow_fork(parent->tgid, child->pid, child->tgid);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(forget_exit_btf, struct task_struct *task, bool group_dead)
{
	__u32 tgid = task->tgid;

	if (group_dead)
		bpf_map_delete_elem(&targets, &tgid);
	return 0;
}
