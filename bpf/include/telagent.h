/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared building blocks of every telagent BPF object: the log2 latency
 * histogram, the target filter and overflow accounting for bounded metric-set
 * maps. Each probe includes this header once; maps declared here are replaced
 * by the agent with one shared instance (cilium/ebpf MapReplacements), so the
 * target set is the same for every probe.
 */
#ifndef __TELAGENT_H__
#define __TELAGENT_H__

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_core_read.h"

#define TELAGENT_MAX_TARGETS 8192
#define TELAGENT_MAX_PROCESSES 16384

#ifndef EEXIST
#define EEXIST 17
#endif

/*
 * Set by the agent at load time. When false the verifier removes the target
 * lookup entirely, so whole-host mode pays nothing for the filter.
 */
volatile const bool filter_targets = false;

/* Thread-group ids being observed; followed on fork by targets.bpf.c. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TELAGENT_MAX_TARGETS);
	__type(key, __u32);
	__type(value, __u8);
} targets SEC(".maps");

/*
 * Identity of every process that appears in a metric-set key, recorded when
 * its first key is created (the slow path only), so that a process that
 * exits before the agent reads /proc still gets its creation time and name.
 * LRU: the oldest processes go first when it is full.
 */
struct telagent_process {
	__u64 start_boottime_ns; /* task->start_boottime of the group leader */
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TELAGENT_MAX_PROCESSES);
	__type(key, __u32);
	__type(value, struct telagent_process);
} processes SEC(".maps");

/*
 * Folds into the overflow key of this object's metric set(s), one slot per
 * CPU. Read by the agent and exported as a self-metric.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} overflow_folds SEC(".maps");

static __always_inline bool telagent_is_target(__u32 tgid)
{
	if (!filter_targets)
		return true;
	return bpf_map_lookup_elem(&targets, &tgid) != NULL;
}

#ifdef TELAGENT_HIST_BUCKETS /* defined by the generated metric-set headers */
/*
 * floor(log2(v)) for v > 0 by binary search on shifts: clang 14 crashes on
 * __builtin_clzll for BPF, and this is branch-free and verifier friendly.
 */
static __always_inline __u32 telagent_log2(__u64 v)
{
	__u32 r, s;

	r = (v > 0xFFFFFFFFULL) << 5; v >>= r;
	s = (v > 0xFFFF) << 4; v >>= s; r |= s;
	s = (v > 0xFF) << 3; v >>= s; r |= s;
	s = (v > 0xF) << 2; v >>= s; r |= s;
	s = (v > 0x3) << 1; v >>= s; r |= s;
	return r | (__u32)(v >> 1);
}

/*
 * Histogram bucket of a duration in ns: bucket 0 holds [0, 2^MIN_SHIFT) ns,
 * bucket i holds [2^(MIN_SHIFT+i-1), 2^(MIN_SHIFT+i)), the last one is open.
 * With MIN_SHIFT 10 and 29 buckets that is <1.024 us ... >=137 s.
 */
static __always_inline __u32 telagent_hist_bucket(__u64 ns)
{
	__u32 b;

	if (ns < (1ULL << TELAGENT_HIST_MIN_SHIFT))
		return 0;
	b = telagent_log2(ns) - TELAGENT_HIST_MIN_SHIFT + 1;
	if (b > TELAGENT_HIST_BUCKETS - 1)
		b = TELAGENT_HIST_BUCKETS - 1;
	return b;
}
#endif /* TELAGENT_HIST_BUCKETS */

/* Records task's process identity; called only when a new key is created. */
static __always_inline void telagent_note_process(struct task_struct *task)
{
	struct telagent_process p = {};
	__u32 tgid = task->tgid;

	p.start_boottime_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	bpf_get_current_comm(p.comm, sizeof(p.comm));
	bpf_map_update_elem(&processes, &tgid, &p, BPF_ANY);
}

/*
 * Returns this CPU's value slot for key, creating the entry on first use.
 * When the map is full the caller's data goes into the overflow key (created
 * by the agent before attach, so it always exists) and the fold is counted:
 * nothing is dropped silently. The common case is one lookup.
 */
static __always_inline void *telagent_lookup_or_init(void *map, const void *key,
						     const void *zero,
						     const void *overflow_key,
						     struct task_struct *task)
{
	void *val;
	long err;
	__u32 slot = 0;
	__u64 *folds;

	val = bpf_map_lookup_elem(map, key);
	if (val)
		return val;
	telagent_note_process(task);
	err = bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	if (err == 0 || err == -EEXIST) {
		val = bpf_map_lookup_elem(map, key);
		if (val)
			return val;
	}
	folds = bpf_map_lookup_elem(&overflow_folds, &slot);
	if (folds)
		*folds += 1;
	return bpf_map_lookup_elem(map, overflow_key);
}

#endif /* __TELAGENT_H__ */
