// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * process probe: process lifecycle events (exec, fork, exit) and OOM kills,
 * delivered to the agent through one BPF ring buffer per NUMA node.
 *
 * Every record is fixed-size per type, strings are bounded and NUL-padded;
 * the agent's decoder checks the size and every length before it trusts a
 * byte. Events are rare next to syscalls, so this object spends a few map
 * lookups per event freely; what it must never do is block or lose an event
 * without counting it: a failed reservation is counted per node and CPU.
 *
 * The ring of a node is found in an ARRAY_OF_MAPS by the node of the CPU the
 * event happens on (bpf_get_numa_node_id), so a record is written into
 * memory local to that node and read by an agent thread pinned to it. Tests
 * with a fake topology set cpu_node_from_map and fill cpu_node instead.
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "telagent.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PROCESS_PATH_MAX 256  /* bytes of executable path components */
#define PROCESS_ARGS_MAX 512  /* bytes of NUL-separated argv */
#define PROCESS_PATH_DEPTH 32 /* dentries walked */
#define PROCESS_MAX_NODES 64  /* default outer size; the agent sizes it */
#define RING_BYTES (256 * 1024)

#define SIGNAL_GROUP_EXIT 0x00000004 /* include/linux/sched/signal.h */

enum process_event_type {
	PROCESS_EVENT_EXEC = 1,
	PROCESS_EVENT_FORK = 2,
	PROCESS_EVENT_EXIT = 3,
	PROCESS_EVENT_OOM = 4,
};

enum process_event_flags {
	PROCESS_PATH_TRUNCATED = 1,
	PROCESS_ARGS_TRUNCATED = 2,
};

/* First in every record. pid is the thread group the event is about. */
struct process_event_hdr {
	__u8 type;
	__u8 flags;
	__u16 cpu;
	__u32 pid;
	__u64 time_ns;  /* bpf_ktime_get_boot_ns() */
	__u64 start_ns; /* group leader's start_boottime: with pid, the identity */
	__u32 ppid;
	__u32 node; /* the ring's node index, as the BPF side chose it */
	char comm[16];
};

struct process_exec_event {
	struct process_event_hdr hdr;
	__u32 uid;
	__u32 euid;
	__u16 path_len; /* bytes used in path: components leaf first, NUL after each */
	__u16 args_len; /* bytes used in args: argv strings, NUL after each */
	__u32 _pad;
	char path[PROCESS_PATH_MAX];
	char args[PROCESS_ARGS_MAX];
};

struct process_fork_event {
	struct process_event_hdr hdr;
};

struct process_exit_event {
	struct process_event_hdr hdr;
	__u32 status;  /* wait(2) status: code << 8, or signal | 0x80 if core */
	__u32 _pad;
	__u64 on_cpu_ns;
};

struct process_oom_event {
	struct process_event_hdr hdr;
	__u64 cgroup_id;
	__u64 rss_pages;
	__u64 total_vm_pages;
	__s32 score_adj;
	__u32 uid;
};

struct process_drops {
	__u64 ring_full;
	__u64 no_ring;
};

/* Set by the agent: emit fork events for the whole host (targets always). */
volatile const bool fork_events = false;
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PROCESS_MAX_NODES);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_RINGBUF);
		__uint(max_entries, RING_BYTES);
	});
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PROCESS_MAX_NODES);
	__type(key, __u32);
	__type(value, struct process_drops);
} drops SEC(".maps");

/* Record types the agent decodes: named here so that their BTF (and so the
 * Go twins bpf2go generates for the layout test) exists. */
const struct process_exec_event *unused_exec_event __attribute__((unused));
const struct process_fork_event *unused_fork_event __attribute__((unused));
const struct process_exit_event *unused_exit_event __attribute__((unused));
const struct process_oom_event *unused_oom_event __attribute__((unused));

static __always_inline void *ring_of_this_cpu(__u32 *node)
{
	__u32 n = telagent_node(); /* the kernel's node, or the agent's table (telagent.h) */

	*node = n;
	return bpf_map_lookup_elem(&rings, &n);
}

static __always_inline void count_drop(__u32 node, bool no_ring)
{
	struct process_drops *d = bpf_map_lookup_elem(&drops, &node);

	if (!d) { /* a node past the agent's table: fold into slot 0 */
		__u32 zero = 0;
		d = bpf_map_lookup_elem(&drops, &zero);
		if (!d)
			return;
	}
	if (no_ring)
		d->no_ring++;
	else
		d->ring_full++;
}

/*
 * Reserves size bytes in this node's ring, or counts why not. The header's
 * common fields are filled here.
 */
static __always_inline void *reserve(__u64 size, __u8 type, struct task_struct *task)
{
	struct process_event_hdr *h;
	struct task_struct *leader;
	__u32 node;
	void *ring;

	ring = ring_of_this_cpu(&node);
	if (!ring) {
		count_drop(node, true);
		return NULL;
	}
	h = bpf_ringbuf_reserve(ring, size, 0);
	if (!h) {
		count_drop(node, false);
		return NULL;
	}
	h->type = type;
	h->flags = 0;
	h->cpu = bpf_get_smp_processor_id();
	h->node = node;
	h->pid = BPF_CORE_READ(task, tgid);
	h->time_ns = bpf_ktime_get_boot_ns();
	h->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	leader = BPF_CORE_READ(task, group_leader);
	BPF_CORE_READ_STR_INTO(&h->comm, leader, comm);
	return h;
}

/* Scratch for the path walk: twice the bound, so that a name written at
 * any offset below the bound fits whatever its length. */
struct path_scratch {
	char buf[2 * PROCESS_PATH_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_scratch);
} path_scratch SEC(".maps");

struct path_walk {
	struct dentry *d;
	struct mount *mnt;
	__u32 off;
	bool truncated;
};

/*
 * One step of the walk from a dentry up to the root of the mount namespace,
 * crossing mounts (what d_path does; tracepoint programs may not call it).
 * Names are written leaf first, each NUL-terminated; the agent reverses
 * them. Run by bpf_loop so the verifier checks one step, not every path
 * through PROCESS_PATH_DEPTH of them.
 */
static long path_step(__u64 i, void *ctx)
{
	struct path_walk *w = ctx;
	/* Locals, not w->...: inside BPF_CORE_READ a w-> access would become a
	 * CO-RE relocation against struct path_walk, which the kernel lacks. */
	struct dentry *d = w->d, *parent, *mnt_root;
	struct mount *mnt = w->mnt, *mnt_parent;
	struct path_scratch *s;
	const unsigned char *name;
	__u32 zero = 0, off = w->off;
	long n;

	mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
	parent = BPF_CORE_READ(d, d_parent);
	if (d == mnt_root || d == parent) {
		mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt_parent == mnt || !mnt_parent)
			return 1; /* the root of the namespace: done */
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mnt_parent;
		return 0;
	}
	if (off >= PROCESS_PATH_MAX) {
		w->truncated = true;
		return 1;
	}
	s = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!s)
		return 1;
	name = BPF_CORE_READ(d, d_name.name);
	n = bpf_probe_read_kernel_str(&s->buf[off & (PROCESS_PATH_MAX - 1)], PROCESS_PATH_MAX, name);
	if (n <= 0)
		return 1;
	w->off = off + n;
	w->d = parent;
	return 0;
}

/* Copies f's path components into dst (PROCESS_PATH_MAX bytes); returns
 * the bytes used and sets *truncated when they did not all fit. */
static __always_inline __u32 walk_path(struct file *f, char *dst, bool *truncated)
{
	struct path_walk w = {};
	struct path_scratch *s;
	__u32 zero = 0;
	long steps;

	w.d = BPF_CORE_READ(f, f_path.dentry);
	w.mnt = container_of(BPF_CORE_READ(f, f_path.mnt), struct mount, mnt);
	steps = bpf_loop(PROCESS_PATH_DEPTH, path_step, &w, 0);
	if (steps >= PROCESS_PATH_DEPTH)
		w.truncated = true; /* deeper than the walk */
	if (w.off > PROCESS_PATH_MAX) { /* the last name ran past the bound */
		w.off = PROCESS_PATH_MAX;
		w.truncated = true;
	}
	*truncated = w.truncated;
	s = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!s || w.off == 0)
		return 0;
	bpf_probe_read_kernel(dst, PROCESS_PATH_MAX, s->buf);
	return w.off;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct process_exec_event *e;
	unsigned long start, end;
	bool truncated = false;
	struct file *exe;
	__u64 len;

	if (!telagent_is_target(p->tgid))
		return 0;
	e = reserve(sizeof(*e), PROCESS_EVENT_EXEC, p);
	if (!e)
		return 0;
	e->_pad = 0;
	e->uid = BPF_CORE_READ(p, cred, uid.val);
	e->euid = BPF_CORE_READ(p, cred, euid.val);

	/* mm->exe_file is what /proc/<pid>/exe shows: the file finally loaded. */
	e->path_len = 0;
	exe = BPF_CORE_READ(p, mm, exe_file);
	if (exe)
		e->path_len = walk_path(exe, e->path, &truncated);
	if (truncated)
		e->hdr.flags |= PROCESS_PATH_TRUNCATED;

	/* The arguments were just copied onto the new program's stack. */
	start = BPF_CORE_READ(p, mm, arg_start);
	end = BPF_CORE_READ(p, mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > PROCESS_ARGS_MAX) {
		len = PROCESS_ARGS_MAX;
		e->hdr.flags |= PROCESS_ARGS_TRUNCATED;
	}
	if (bpf_probe_read_user(e->args, len, (void *)start) != 0)
		len = 0;
	e->args_len = len;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(process_fork, struct task_struct *parent, struct task_struct *child)
{
	struct process_fork_event *e;
	__u32 tgid = child->tgid;

	if (child->pid != tgid) /* a new thread, not a new process */
		return 0;
	if (filter_targets ? !telagent_is_target(tgid) : !fork_events)
		return 0;
	e = reserve(sizeof(*e), PROCESS_EVENT_FORK, child);
	if (!e)
		return 0;
	/* real_parent of a CLONE_PARENT child is not the caller: use it anyway,
	 * it is who will reap it. */
	bpf_ringbuf_submit(e, 0);
	return 0;
}

static __always_inline void emit_exit(struct task_struct *task)
{
	struct process_exit_event *e;
	struct signal_struct *sig;
	__u32 flags;

	e = reserve(sizeof(*e), PROCESS_EVENT_EXIT, task);
	if (!e)
		return;
	sig = BPF_CORE_READ(task, signal);
	flags = BPF_CORE_READ(sig, flags);
	/* What wait(2) will report: the group exit code once the group exits
	 * (exit_group, a fatal signal, or the last thread's exit), else the
	 * leader's own. */
	if (flags & SIGNAL_GROUP_EXIT)
		e->status = BPF_CORE_READ(sig, group_exit_code);
	else
		e->status = BPF_CORE_READ(task, group_leader, exit_code);
	e->_pad = 0;
	/* Reaped threads' time plus this last thread's. */
	e->on_cpu_ns = BPF_CORE_READ(sig, sum_sched_runtime) + BPF_CORE_READ(task, se.sum_exec_runtime);
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exit, struct task_struct *task, bool group_dead)
{
	if (group_dead && telagent_is_target(task->tgid))
		emit_exit(task);
	return 0;
}

/* Processes whose exit process_exit_task reported: identity → 1. */
struct process_identity {
	__u64 start_ns;
	__u32 tgid;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct process_identity);
	__type(value, __u8);
} exits_reported SEC(".maps");

/*
 * process_exit for kernels whose sched_process_exit passes only the task
 * (group_dead came later; Debian's 6.1 and 6.12 lack it). There do_exit has
 * already decremented signal->live when the tracepoint fires, so zero means
 * the thread group is dead; but threads exiting together (exit_group) may
 * all see zero, so the first to claim the process's identity (pid, start
 * time: never reused) reports it. The LRU forgets identities on its own:
 * the threads of one exit race within microseconds. The agent loads this
 * one in process_exit's place when the kernel's tracepoint has one argument.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exit_task, struct task_struct *task)
{
	struct process_identity id = {};
	__u8 one = 1;

	id.tgid = task->tgid;
	if (BPF_CORE_READ(task, signal, live.counter) != 0 || !telagent_is_target(id.tgid))
		return 0;
	id.start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	if (bpf_map_update_elem(&exits_reported, &id, &one, BPF_NOEXIST) != 0)
		return 0;
	emit_exit(task);
	return 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(process_oom, struct task_struct *task, uid_t uid)
{
	struct process_oom_event *e;
	struct mm_struct *mm;

	if (!telagent_is_target(task->tgid))
		return 0;
	e = reserve(sizeof(*e), PROCESS_EVENT_OOM, task);
	if (!e)
		return 0;
	e->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	mm = BPF_CORE_READ(task, mm);
	e->rss_pages = 0;
	e->total_vm_pages = 0;
	if (mm) {
		/* MM_FILEPAGES, MM_ANONPAGES, MM_SHMEMPAGES: what the kernel's own
		 * OOM report calls rss. */
		e->rss_pages = BPF_CORE_READ(mm, rss_stat[0].count) + BPF_CORE_READ(mm, rss_stat[1].count) +
			       BPF_CORE_READ(mm, rss_stat[3].count);
		e->total_vm_pages = BPF_CORE_READ(mm, total_vm);
	}
	e->score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
	e->uid = uid;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
