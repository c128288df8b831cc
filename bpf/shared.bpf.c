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

/*
 * The same for kernels whose sched_process_exit passes only the task
 * (group_dead came later; Debian's 6.1 and 6.12 lack it): there do_exit has
 * already decremented signal->live when the tracepoint fires, so zero means
 * the thread group is dead. Threads exiting together may all see zero;
 * deleting twice is harmless. The agent loads this one in forget_exit_btf's
 * place when the kernel's tracepoint has one argument.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(forget_exit_task, struct task_struct *task)
{
	__u32 tgid = task->tgid;

	if (BPF_CORE_READ(task, signal, live.counter) == 0)
		bpf_map_delete_elem(&targets, &tgid);
	return 0;
}

/*
 * Target selection at exec (--exe, --comm, --cgroup): a process whose new
 * program is one of the selected files (by device and inode, so renames,
 * hard links and symlinks all match), whose new command name is selected,
 * or whose cgroup v2 is a selected cgroup or below one, becomes a target
 * before its first instruction. Attached only when selectors are given;
 * tracepoint programs run in attach order, so the probes' exec handlers,
 * attached later, already see the new target.
 */
struct telagent_exe_id {
	__u64 ino;
	__u32 dev; /* the kernel's dev_t: major << 20 | minor */
	__u32 _pad;
};

struct telagent_comm {
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct telagent_exe_id);
	__type(value, __u8);
} match_exe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct telagent_comm);
	__type(value, __u8);
} match_comm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u8);
} match_cgroup SEC(".maps");

/* Execs that matched but could not be added because the set was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} match_drops SEC(".maps");

#define TELAGENT_CGROUP_DEPTH 16

static __always_inline bool exe_matches(struct file *f)
{
	struct telagent_exe_id id = {};
	struct inode *inode;

	if (!f)
		return false;
	inode = BPF_CORE_READ(f, f_inode);
	id.ino = BPF_CORE_READ(inode, i_ino);
	id.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	return bpf_map_lookup_elem(&match_exe, &id) != NULL;
}

static __always_inline bool cgroup_matches(struct task_struct *p)
{
	struct cgroup *cgrp = BPF_CORE_READ(p, cgroups, dfl_cgrp), *anc;
	int level = BPF_CORE_READ(cgrp, level);
	__u64 id;

	/* The cgroup itself and every ancestor below the root. */
	for (int i = TELAGENT_CGROUP_DEPTH - 1; i >= 0; i--) {
		if (i > level)
			continue;
		anc = NULL;
		bpf_core_read(&anc, sizeof(anc), &cgrp->ancestors[i]);
		if (!anc)
			continue;
		id = BPF_CORE_READ(anc, kn, id);
		if (bpf_map_lookup_elem(&match_cgroup, &id))
			return true;
	}
	return false;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(match_exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct telagent_comm comm = {};
	__u32 tgid = p->tgid, slot = 0;
	__u8 one = 1;
	__u64 *drops;

	if (bpf_map_lookup_elem(&targets, &tgid))
		return 0; /* already one: nothing to decide */
	bpf_get_current_comm(comm.comm, sizeof(comm.comm));
	/* mm->exe_file is the program now running (/proc/<pid>/exe); a
	 * binfmt_misc program with the O flag is bprm->executable. A #! script's
	 * own file is released before this tracepoint (the agent refuses --exe
	 * of a script at start). */
	if (!exe_matches(BPF_CORE_READ(p, mm, exe_file)) && !exe_matches(BPF_CORE_READ(bprm, executable)) &&
	    !bpf_map_lookup_elem(&match_comm, &comm) && !cgroup_matches(p))
		return 0;
	if (bpf_map_update_elem(&targets, &tgid, &one, BPF_ANY) == 0)
		return 0;
	drops = bpf_map_lookup_elem(&match_drops, &slot);
	if (drops)
		*drops += 1;
	return 0;
}
