// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched probe: per process, context switches by type (the kernel's own
 * voluntary/involuntary accounting), on-CPU time, a log2 histogram of
 * run-queue waits and migrations, from the scheduler tracepoints.
 *
 * Design. Each thread's state lives in BPF task storage: the kernel's own
 * per-thread accounting at its last switch-out. The deltas since then are
 * added into the per-process entry of
 * sched_stats at the thread's switch-out, when the thread is `current`:
 * one per-CPU hash lookup per context switch, and the key's process
 * identity (telagent_note_process reads the current task's comm) is always
 * the right one.
 *
 * Everything is the kernel's own per-thread accounting, taken as deltas
 * at each switch-out: switch types (nvcsw, nivcsw), on-CPU time
 * (se.sum_exec_runtime), migrations (se.nr_migrations) and run-queue
 * waits (sched_info: run_delay, the time spent runnable on a run queue,
 * and pcount, the arrivals on a CPU that ended such a wait). So they agree
 * exactly with /proc, getrusage, schedstat and cgroup CPU usage, and no
 * event the probe does not see can distort them: a delta covers whatever
 * happened since the thread's last observed switch-out. Timing with our
 * own clock would disagree: the kernel skips the run-queue clock update
 * after a wakeup preemption (rq_clock_skip_update) and leaves out steal
 * time; and timing a wait from the wakeup to the switch-in needs both
 * events of every wait. Some kernels perform switches that fire no
 * sched_switch (the development VM's: a switch away from a thread of its
 * init, about 4 a second), so a start whose switch-in was missed was kept
 * until some later switch-in, and a wait became as long as the sleep after
 * it (issue 18: a kworker with a 1.77 s wait, processes at several times
 * their run_delay). Only sched_switch is attached: no wakeup or migration
 * program runs.
 *
 * Run-queue waits per wait. The waits since the last observed switch-out
 * are the pcount delta, their total the run_delay delta; normally that is
 * the one wait ended by this run's switch-in and its histogram bucket is
 * exact. When a switch-out was missed, several waits arrive at once and
 * each goes into the bucket of their mean; count and sum stay exact.
 *
 * Concurrency. sched_stats is per-CPU and sched_switch runs with
 * interrupts off under the run-queue lock, so plain read-modify-write of
 * this CPU's slot is safe. A thread's storage is written only at its own
 * switch-out, by the CPU it runs on.
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
	__u64 nvcsw, nivcsw;  /* the kernel's counters at the last observation */
	__u64 runtime_ns;     /* se.sum_exec_runtime, likewise */
	__u64 nr_migrations;  /* se.nr_migrations, likewise */
	__u64 run_delay_ns;   /* sched_info.run_delay, likewise */
	__u64 pcount;         /* sched_info.pcount, likewise */
	__u8 seen;            /* the counters above hold a baseline */
	__u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} threads SEC(".maps");

/*
 * The kernel's run-queue accounting (CONFIG_SCHED_INFO, selected by
 * TASK_DELAY_ACCT or SCHEDSTATS, as on every distribution kernel we know).
 * Without it the fields are absent and no wait is counted; the agent says
 * so at start.
 */
static __always_inline void sched_info_read(struct task_struct *t, __u64 *run_delay, __u64 *pcount)
{
	if (bpf_core_field_exists(t->sched_info.pcount)) {
		*run_delay = BPF_CORE_READ(t, sched_info.run_delay);
		*pcount = BPF_CORE_READ(t, sched_info.pcount);
	} else {
		*run_delay = 0;
		*pcount = 0;
	}
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
			sched_info_read(task, &st->run_delay_ns, &st->pcount);
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
				       bool fresh, bool preempt, unsigned int prev_state)
{
	__u64 nv = prev->nvcsw, niv = prev->nivcsw, rt = prev->se.sum_exec_runtime;
	__u64 nm = prev->se.nr_migrations, delay, pcount, dv, div, waits;
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
	sched_info_read(prev, &delay, &pcount);
	waits = pcount - st->pcount;
	delay -= st->run_delay_ns;
	st->pcount = pcount;
	st->run_delay_ns += delay;

	key.tgid = prev->tgid;
	val = sched_slot(&key, prev, NULL);
	if (!val)
		return;
	val->voluntary += dv;
	val->involuntary += div;
	val->oncpu_ns += rt;
	val->migrations += nm - st->nr_migrations;
	if (waits) {
		val->runq_waits += waits;
		val->runq_ns_sum += delay;
		val->runq_hist[telagent_hist_bucket(waits == 1 ? delay : delay / waits)] += waits;
	}
	st->nr_migrations = nm;
}

/*
 * The thread switching out is current; its storage is created on first
 * sight. A thread of a group that just left the target set (it is dying:
 * sched_process_exit ran) is accounted one last time when it has state.
 */
static __always_inline void on_switch(struct task_struct *prev, bool preempt, unsigned int prev_state)
{
	struct thread_state *st = NULL;
	bool fresh = false;

	/* Idle (pid 0) is not a process. */
	if (!prev->pid)
		return;
	if (telagent_is_target(prev->tgid))
		st = thread_get(prev, &fresh);
	else if (prev_state & TASK_DEAD)
		st = bpf_task_storage_get(&threads, prev, 0, 0);
	if (st)
		switch_out(prev, st, fresh, preempt, prev_state);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	on_switch(prev, preempt, prev_state);
	return 0;
}

/*
 * raw_tp fallback, for kernels where tp_btf does not load or attach: the
 * arguments are plain integers, and prev is current, so its BTF pointer
 * (and with it task storage) comes from bpf_get_current_task_btf().
 */
SEC("raw_tp/sched_switch")
int raw_sched_switch(struct bpf_raw_tracepoint_args *ctx)
{
	on_switch(bpf_get_current_task_btf(), ctx->args[0], ctx->args[3]);
	return 0;
}
