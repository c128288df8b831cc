// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched probe: per process, context switches by type (the kernel's own
 * voluntary/involuntary accounting), on-CPU time, a log2 histogram of
 * run-queue waits and migrations, from the scheduler tracepoints.
 *
 * Design. Each thread's state lives in BPF task storage: since when it is
 * runnable, the run-queue wait and migrations not yet added, and the
 * kernel's own per-thread accounting (switch counters, runtime) at its
 * last switch-out. All of it is added into the per-process entry of
 * sched_stats at the thread's switch-out, when the thread is `current`:
 * one per-CPU hash lookup per context switch, and the key's process
 * identity (telagent_note_process reads the current task's comm) is always
 * the right one.
 *
 * Switch types and on-CPU time are the kernel's own numbers (nvcsw,
 * nivcsw, se.sum_exec_runtime), taken as deltas at each switch-out, so
 * they agree exactly with /proc, getrusage and cgroup CPU usage. Timing
 * switch-in to switch-out with our own clock would disagree with all of
 * them by several percent under load: the kernel skips the run-queue
 * clock update after a wakeup preemption (rq_clock_skip_update), which
 * charges the woken thread with the time until the switch actually
 * happens, and leaves out steal time. Run-queue waits have no kernel
 * per-wait record, so they are timed here with bpf_ktime_get_ns().
 *
 * Concurrency. sched_stats is per-CPU and every program here runs with
 * interrupts off (under the run-queue lock or p->pi_lock), so plain
 * read-modify-write of this CPU's slot is safe. A thread's storage is
 * written from whichever CPU handles its event, but the scheduler itself
 * orders those events (switch-out, then wakeup, then switch-in; a
 * migration only while it is off-CPU), so it needs no lock or atomic
 * either.
 *
 * Target filter. The target check comes before any map access. A thread
 * group leaves the target set when it dies (sched_process_exit), just
 * before its last thread's final switch-out; that one switch (prev_state
 * TASK_DEAD) is still accounted when the thread has state, so a process's
 * last slice on the CPU is not lost.
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "gen/sched.h"
#include "telagent.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* include/linux/sched.h; not in BTF because they are macros. */
#define TASK_RUNNING 0x0000
#define TASK_DEAD 0x0080

struct thread_state {
	__u64 runnable_since; /* became runnable at; 0 when not waiting for a CPU */
	__u64 wait_ns;        /* the run-queue wait that ended at the last switch-in */
	__u64 nvcsw, nivcsw;  /* the kernel's counters at the last observation */
	__u64 runtime_ns;     /* the kernel's se.sum_exec_runtime, likewise */
	__u64 nr_migrations;  /* raw_tp only: se.nr_migrations at the last switch-out */
	__u32 migrations;     /* tp_btf only: migrations not yet added */
	__u8 has_wait;        /* wait_ns is pending */
	__u8 seen;            /* the counters above hold a baseline */
	__u8 _pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} threads SEC(".maps");

/* Before Linux 5.16 (x86-64, arm64) the CPU was task_struct::cpu. */
struct task_struct___pre516 {
	unsigned int cpu;
} __attribute__((preserve_access_index));

static __always_inline __u32 task_cpu(struct task_struct *p)
{
	if (bpf_core_field_exists(p->thread_info.cpu))
		return p->thread_info.cpu;
	return BPF_CORE_READ((struct task_struct___pre516 *)p, cpu);
}


/*
 * CLOCK_MONOTONIC when the agent loaded this object, set before load.
 * Threads started later were observed from birth.
 */
volatile const __u64 loaded_at_ns = 0;

/*
 * The thread's state, created on first sight. A thread born after the
 * load is counted from birth, as the kernel's counters are (zero at
 * fork); an older one from now on, with the kernel's counters as its
 * baseline. *fresh says the baseline is the counters as they are now.
 */
static __always_inline struct thread_state *thread_get(struct task_struct *task, bool *fresh)
{
	struct thread_state *st;

	*fresh = false;
	st = bpf_task_storage_get(&threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (st && !st->seen) {
		if (task->start_time < loaded_at_ns) {
			st->nvcsw = task->nvcsw;
			st->nivcsw = task->nivcsw;
			st->nr_migrations = task->se.nr_migrations;
			st->runtime_ns = task->se.sum_exec_runtime;
			*fresh = true;
		}
		st->seen = 1;
	}
	return st;
}

/*
 * Adds what prev's thread has pending into its process's entry: called at
 * its switch-out, with prev == current. The switch itself is classified by
 * the kernel's own counters: __schedule increments prev->nvcsw or
 * prev->nivcsw just before the tracepoint. The tracepoint's arguments
 * cannot say which on 6.13+: when a signal is pending as the thread goes to
 * sleep, try_to_block_task() rewrites prev_state to TASK_RUNNING but the
 * switch still counts in nvcsw. The argument rule (voluntary when not a
 * preemption and prev_state != TASK_RUNNING) is used only when the
 * counters have no baseline from before this switch (fresh): the first
 * observed switch of a thread older than the probe. The runtime is
 * complete here too: the dequeue (blocking) or put_prev_task (preemption)
 * before the tracepoint ran update_curr() on prev.
 */
static __always_inline void switch_out(struct task_struct *prev, struct thread_state *st,
				       bool fresh, bool preempt, unsigned int prev_state,
				       __u64 migrations)
{
	__u64 nv = prev->nvcsw, niv = prev->nivcsw, rt = prev->se.sum_exec_runtime, dv, div;
	struct sched_value *val;
	struct sched_key key;

	if (fresh) {
		dv = !preempt && prev_state != TASK_RUNNING;
		div = !dv;
	} else {
		dv = nv - st->nvcsw;
		div = niv - st->nivcsw;
	}
	st->nvcsw = nv;
	st->nivcsw = niv;
	rt -= st->runtime_ns;
	st->runtime_ns += rt;

	key.tgid = prev->tgid;
	val = sched_slot(&key, prev, NULL);
	if (val) {
		val->voluntary += dv;
		val->involuntary += div;
		val->oncpu_ns += rt;
		val->migrations += migrations;
		if (st->has_wait) {
			val->runq_waits++;
			val->runq_ns_sum += st->wait_ns;
			val->runq_hist[telagent_hist_bucket(st->wait_ns)]++;
		}
	}
	st->has_wait = 0;
	/* Preempted or yielding: still on the run queue, waiting from now. */
	if (prev_state == TASK_RUNNING)
		st->runnable_since = bpf_ktime_get_ns();
}

/* ---- tp_btf: typed arguments, task storage for every task involved ---- */

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct thread_state *st = NULL;
	bool fresh = false;

	/* Idle (pid 0) is not a process. */
	if (prev->pid && telagent_is_target(prev->tgid))
		st = thread_get(prev, &fresh);
	else if (prev->pid && (prev_state & TASK_DEAD))
		/* Its group just left the target set: last switch of a thread seen alive. */
		st = bpf_task_storage_get(&threads, prev, 0, 0);
	if (st) {
		switch_out(prev, st, fresh, preempt, prev_state, st->migrations);
		st->migrations = 0;
	}

	if (next->pid && telagent_is_target(next->tgid)) {
		st = thread_get(next, &fresh);
		if (st && st->runnable_since) {
			st->wait_ns = bpf_ktime_get_ns() - st->runnable_since;
			st->has_wait = 1;
			st->runnable_since = 0;
		}
	}
	return 0;
}

/* p became runnable. A thread still on its CPU (woken before it got to
 * sleep) is not waiting, and an earlier start of the wait is kept. */
static __always_inline void on_wakeup(struct task_struct *p)
{
	struct thread_state *st;
	bool fresh;

	if (!p->pid || !telagent_is_target(p->tgid))
		return;
	st = thread_get(p, &fresh);
	if (st && !st->runnable_since && !p->on_cpu)
		st->runnable_since = bpf_ktime_get_ns();
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

/*
 * set_task_cpu() fires this before it compares CPUs; like the kernel's
 * se.nr_migrations, only a move to another CPU counts. The thread is off
 * its CPU here, so the count waits in its state until it next switches out.
 */
SEC("tp_btf/sched_migrate_task")
int BPF_PROG(sched_migrate_task, struct task_struct *p, int dest_cpu)
{
	struct thread_state *st;
	bool fresh;

	if (!p->pid || task_cpu(p) == (__u32)dest_cpu || !telagent_is_target(p->tgid))
		return 0;
	st = thread_get(p, &fresh);
	if (st)
		st->migrations++;
	return 0;
}

/*
 * ---- raw_tp fallback ----
 * Raw tracepoint arguments are plain integers, and task storage helpers
 * take only BTF task pointers, so the storage of a task other than
 * `current` is out of reach. What needs another task's state is kept
 * elsewhere:
 *  - the wait that ended at a switch-in goes into a per-CPU slot, read back
 *    at the switch-out of the same thread (a running thread cannot change
 *    CPU);
 *  - the start of a run-queue wait goes into a hash by thread id (set by
 *    the waker, taken by the switch-in), the one map here shared between
 *    CPUs: per-bucket locks, only in this fallback;
 *  - migrations are the delta of the kernel's se.nr_migrations read from
 *    current at switch-out, so sched_migrate_task is not needed.
 */

struct cpu_slot {
	__u64 wait_ns;
	__u32 pid;      /* the thread switched in last on this CPU */
	__u32 has_wait; /* wait_ns ended at its switch-in */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_slot);
} raw_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);   /* thread id */
	__type(value, __u64); /* runnable since */
} raw_runnable SEC(".maps");

SEC("raw_tp/sched_switch")
int raw_sched_switch(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *prev = bpf_get_current_task_btf(); /* == args[1] */
	struct task_struct *next = (struct task_struct *)ctx->args[2];
	bool preempt = ctx->args[0];
	unsigned int prev_state = ctx->args[3];
	__u32 pid = prev->pid, zero = 0, next_pid, next_tgid;
	__u64 nm, *since;
	struct thread_state *st = NULL;
	struct cpu_slot *slot;
	bool fresh = false;

	slot = bpf_map_lookup_elem(&raw_cpu, &zero);
	if (!slot)
		return 0;
	if (pid && telagent_is_target(prev->tgid))
		st = thread_get(prev, &fresh);
	else if (pid && (prev_state & TASK_DEAD))
		st = bpf_task_storage_get(&threads, prev, 0, 0);
	if (st) {
		if (slot->pid == pid && slot->has_wait) {
			st->wait_ns = slot->wait_ns;
			st->has_wait = 1;
		}
		nm = prev->se.nr_migrations;
		switch_out(prev, st, fresh, preempt, prev_state, nm - st->nr_migrations);
		st->nr_migrations = nm;
		/* switch_out() stamped runnable_since; only the hash is read here. */
		if (prev_state == TASK_RUNNING)
			bpf_map_update_elem(&raw_runnable, &pid, &st->runnable_since, BPF_ANY);
	}

	next_pid = BPF_CORE_READ(next, pid);
	next_tgid = BPF_CORE_READ(next, tgid);
	slot->pid = next_pid;
	slot->has_wait = 0;
	if (next_pid && telagent_is_target(next_tgid)) {
		since = bpf_map_lookup_elem(&raw_runnable, &next_pid);
		if (since) {
			slot->wait_ns = bpf_ktime_get_ns() - *since;
			slot->has_wait = 1;
			bpf_map_delete_elem(&raw_runnable, &next_pid);
		}
	}
	return 0;
}

static __always_inline void raw_wakeup(struct task_struct *p)
{
	__u32 pid = BPF_CORE_READ(p, pid);
	__u64 now;

	if (!pid || !telagent_is_target(BPF_CORE_READ(p, tgid)) || BPF_CORE_READ(p, on_cpu))
		return;
	now = bpf_ktime_get_ns();
	/* NOEXIST: a wait that already started keeps its start. */
	bpf_map_update_elem(&raw_runnable, &pid, &now, BPF_NOEXIST);
}

SEC("raw_tp/sched_wakeup")
int raw_sched_wakeup(struct bpf_raw_tracepoint_args *ctx)
{
	raw_wakeup((struct task_struct *)ctx->args[0]);
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int raw_sched_wakeup_new(struct bpf_raw_tracepoint_args *ctx)
{
	raw_wakeup((struct task_struct *)ctx->args[0]);
	return 0;
}
