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
 * Metric-set storage (map_type node_hash in the schema; the generated
 * headers declare each set's maps and its <set>_slot()): per NUMA node two
 * plain hashes, one per epoch, whose entries are keyed by the set's tuple
 * plus the CPU that writes them. Only that CPU ever writes an entry (the
 * programs run with migration disabled), so updates need no atomics, and
 * a node's hashes are written only by its own CPUs. The agent flips the
 * epoch each interval, waits for a grace period (every program that saw
 * the old epoch has returned), then reads and deletes the idle hashes and
 * keeps the cumulative totals itself: the kernel holds what one interval
 * touched, whatever the number of possible CPUs.
 */
#define TELAGENT_STORE_MAX_NODES 64 /* default outer size; the agent sizes it */
#define TELAGENT_STORE_SLOTS (2 * TELAGENT_STORE_MAX_NODES)

/* [0]: the epoch (0 or 1) programs write now. Written only by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} telagent_epoch SEC(".maps");

/*
 * CPU -> node, used instead of the kernel's own node id only when the
 * agent was given a topology that is not the kernel's (tests fake a
 * two-node host this way).
 */
volatile const bool telagent_nodes_from_map = false;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* possible CPUs, set by the agent */
	__type(key, __u32);
	__type(value, __u32);
} telagent_cpu_node SEC(".maps");

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

/* The NUMA node of this CPU: the kernel's, or the agent's table. */
static __always_inline __u32 telagent_node(void)
{
	__u32 cpu, *v;

	if (!telagent_nodes_from_map)
		return bpf_get_numa_node_id();
	cpu = bpf_get_smp_processor_id();
	v = bpf_map_lookup_elem(&telagent_cpu_node, &cpu);
	return v ? *v : 0;
}

/* The storage slot (outer map index) this CPU writes in the current epoch. */
static __always_inline __u32 telagent_store_index(void)
{
	__u32 zero = 0, *epoch;

	epoch = bpf_map_lookup_elem(&telagent_epoch, &zero);
	return 2 * telagent_node() + (epoch ? (*epoch & 1) : 0);
}

/*
 * Returns this CPU's entry of a metric set for ekey (the tuple and this
 * CPU), creating it on first use in this epoch: the common case is one
 * hash lookup. task, when set, has its process identity noted when the
 * entry is created; *created (when set) says whether it was. When the
 * node's hash is full (or missing) the caller's data goes into the set's
 * per-CPU overflow value and the fold is counted: nothing is dropped
 * silently.
 */
static __always_inline void *telagent_store_slot(void *outer, void *overflow, void *fold_count,
						 const void *ekey, const void *zero_value,
						 struct task_struct *task, bool *created)
{
	__u32 idx = telagent_store_index(), slot = 0;
	void *inner, *val;
	__u64 *folds;
	long err;

	inner = bpf_map_lookup_elem(outer, &idx);
	if (inner) {
		val = bpf_map_lookup_elem(inner, ekey);
		if (val)
			return val;
		if (task)
			telagent_note_process(task);
		if (created)
			*created = true;
		err = bpf_map_update_elem(inner, ekey, zero_value, BPF_NOEXIST);
		if (err == 0 || err == -EEXIST) {
			val = bpf_map_lookup_elem(inner, ekey);
			if (val)
				return val;
		}
	}
	folds = bpf_map_lookup_elem(fold_count, &slot);
	if (folds)
		*folds += 1;
	return bpf_map_lookup_elem(overflow, &slot);
}

#endif /* __TELAGENT_H__ */
