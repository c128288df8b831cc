// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * uprobe probe: per (process, attached function) calls, paired returns, total
 * and log2 histogram of duration of user-space functions chosen by the user.
 *
 * Every attachment carries its function id in the BPF cookie, so one program
 * serves every function. Entry pushes (start time, stack depth, fn) on a
 * small per-thread (native code) or per-goroutine (Go) stack of frames; the
 * return pops the frame whose depth equals its own, so recursion, missed
 * returns (longjmp, panics, calls nested deeper than the kernel's uretprobe
 * limit) and Go stack copies pair correctly:
 *   - native code: depth = -(stack pointer at entry); a uretprobe runs after
 *     RET popped the return address, 8 bytes higher on x86-64.
 *   - Go (amd64, ABIInternal, Go >= 1.17): the goroutine is the g pointer in
 *     r14; depth = g.stack.hi - SP, which stack copying preserves. The entry
 *     probe sits after the prologue's stack check (the agent finds it), so a
 *     call whose stack grows (morestack re-runs the prologue) fires once;
 *     SP there and at a RET both point at the return address.
 *
 * Hot path budget (native call, target): entry = target check + one per-CPU
 * hash lookup + one task-storage get + one clock read; return = target
 * check + one task-storage get + one clock read + one per-CPU hash lookup.
 * The target check (free in whole-host mode) is always first, so a
 * non-target process that traps does no other map work. The slots are this
 * CPU's (uprobe programs run with migration disabled), but unlike
 * tracepoints, uprobe programs run preemptible on PREEMPT kernels, so
 * another thread may update the same slot mid-increment: the adds are
 * atomic, on a CPU-local cache line (a few ns against a trap of µs).
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "gen/uprobe.h"
#include "telagent.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Frames kept per thread or goroutine: a ring, the innermost calls win.
 * Calls nested deeper are counted but not timed. Power of two. */
#define UPROBE_DEPTH 16

/* Goroutines with a call in flight, across every target Go process. */
#define UPROBE_GO_STACKS 8192

struct frame {
	__u64 start_ns;
	__u64 depth;
	__u32 fn;
	__u32 _pad;
};

struct callstack {
	__u32 top; /* frames pushed and not popped; the ring holds the last UPROBE_DEPTH */
	__u32 _pad;
	struct frame f[UPROBE_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct callstack);
} thread_calls SEC(".maps");

struct go_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g;
};

/* Goroutines migrate between threads while blocked, so their frames live in
 * a shared hash keyed by (process, g). LRU: a goroutine that died inside a
 * probed function (its g may even be reused) is forgotten first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, UPROBE_GO_STACKS);
	__type(key, struct go_key);
	__type(value, struct callstack);
} go_calls SEC(".maps");

static const struct callstack zero_stack;

static __always_inline __u32 fn_of(void *ctx)
{
	__u64 c = bpf_get_attach_cookie(ctx);

	/* The agent numbers functions below the bound; anything else folds
	 * into the last id rather than leave the declared bound. */
	return c < UPROBE_FN_BOUND ? (__u32)c : UPROBE_FN_BOUND - 1;
}

static __always_inline struct uprobe_value *stats_of(__u32 tgid, __u32 fn)
{
	struct uprobe_key key = { .tgid = tgid, .fn = fn };

	return uprobe_slot(&key, bpf_get_current_task_btf(), NULL);
}

static __always_inline void count_call(__u32 tgid, __u32 fn)
{
	struct uprobe_value *val = stats_of(tgid, fn);

	if (val)
		__sync_fetch_and_add(&val->calls, 1);
}

static __always_inline void push(struct callstack *cs, __u32 fn, __u64 depth)
{
	struct frame *f = &cs->f[cs->top & (UPROBE_DEPTH - 1)];

	f->fn = fn;
	f->depth = depth;
	cs->top++;
	f->start_ns = bpf_ktime_get_ns(); /* last: our own work is not timed */
}

/*
 * Pops the frame of the call returning at depth: frames deeper than it are
 * calls whose return was never seen (dropped), a shallower one means the
 * entry is gone (overwritten in the ring, or entered before attach).
 * Returns the entry time, 0 when there is none.
 */
static __always_inline __u64 pop(struct callstack *cs, __u32 fn, __u64 depth)
{
	for (int i = 0; i < UPROBE_DEPTH; i++) {
		struct frame *f;

		if (cs->top == 0)
			return 0;
		f = &cs->f[(cs->top - 1) & (UPROBE_DEPTH - 1)];
		if (f->depth < depth)
			return 0;
		cs->top--;
		if (f->depth == depth && f->fn == fn)
			return f->start_ns;
	}
	return 0;
}

static __always_inline void record(__u32 tgid, __u32 fn, __u64 start, __u64 now)
{
	struct uprobe_value *val;
	__u64 delta;

	if (!start)
		return;
	delta = now - start;
	val = stats_of(tgid, fn);
	if (!val)
		return;
	__sync_fetch_and_add(&val->returns, 1);
	__sync_fetch_and_add(&val->duration_ns_sum, delta);
	__sync_fetch_and_add(&val->duration_hist[telagent_hist_bucket(delta)], 1);
}

SEC("uprobe")
int native_entry(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct callstack *cs;
	__u32 fn;

	if (!telagent_is_target(tgid))
		return 0;
	fn = fn_of(ctx);
	count_call(tgid, fn);
	cs = bpf_task_storage_get(&thread_calls, bpf_get_current_task_btf(), 0,
				  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (cs)
		push(cs, fn, -ctx->sp);
	return 0;
}

SEC("uretprobe")
int native_return(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct callstack *cs;
	__u32 fn;

	/* The kernel runs the return probe of every process the entry probe
	 * trapped: the target filter comes first here too. */
	if (!telagent_is_target(tgid))
		return 0;
	cs = bpf_task_storage_get(&thread_calls, bpf_get_current_task_btf(), 0, 0);
	if (!cs)
		return 0;
	fn = fn_of(ctx);
	/* RET popped the 8-byte return address: SP is 8 above the entry's. */
	record(tgid, fn, pop(cs, fn, -(ctx->sp - 8)), now);
	return 0;
}

/*
 * The goroutine (g, in R14) and its stack depth at this probe: runtime.g
 * begins with stack{lo, hi uintptr}, and hi - SP survives stack copies.
 */
static __always_inline int go_frame(struct pt_regs *ctx, struct go_key *key, __u64 *depth)
{
	__u64 hi;

	key->g = ctx->r14;
	if (!key->g || bpf_probe_read_user(&hi, sizeof(hi), (void *)(key->g + 8)))
		return -1;
	*depth = hi - ctx->sp;
	return 0;
}

SEC("uprobe")
int go_entry(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_key key = { .tgid = tgid };
	struct callstack *cs;
	struct frame *top;
	__u64 depth;
	__u32 fn;

	if (!telagent_is_target(tgid))
		return 0;
	fn = fn_of(ctx);
	count_call(tgid, fn);
	if (go_frame(ctx, &key, &depth))
		return 0;
	cs = bpf_map_lookup_elem(&go_calls, &key);
	if (!cs) {
		bpf_map_update_elem(&go_calls, &key, &zero_stack, BPF_NOEXIST);
		cs = bpf_map_lookup_elem(&go_calls, &key);
		if (!cs)
			return 0;
	}
	/* A frame at this depth or deeper is a call that never returned (a
	 * recovered panic unwound it): drop it, or it would shadow this one. */
	if (cs->top) {
		top = &cs->f[(cs->top - 1) & (UPROBE_DEPTH - 1)];
		if (top->depth >= depth)
			cs->top--;
	}
	push(cs, fn, depth);
	return 0;
}

SEC("uprobe")
int go_return(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_key key = { .tgid = tgid };
	struct callstack *cs;
	__u64 depth;
	__u32 fn;

	if (!telagent_is_target(tgid))
		return 0;
	if (go_frame(ctx, &key, &depth))
		return 0;
	cs = bpf_map_lookup_elem(&go_calls, &key);
	if (!cs)
		return 0;
	fn = fn_of(ctx);
	/* At a RET, SP points at the return address, as it did at entry. */
	record(tgid, fn, pop(cs, fn, depth), now);
	return 0;
}
