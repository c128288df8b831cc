// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * blockio probe: per (process, disk, direction) bytes, operations and two
 * latency histograms of block read/write requests, from the block request
 * tracepoints.
 *
 * Life of a request. block_rq_insert fires when a request enters the
 * scheduler or the software queues, block_rq_issue when the driver starts
 * it (blk_mq_start_request), block_rq_complete each time the driver
 * completes bytes of it (blk_update_request; a request can complete in
 * pieces), block_rq_merge when a queued request is merged into another
 * and freed without ever being issued, block_rq_requeue when the driver
 * gives a started request back (it is issued again later, after an insert
 * or not). A request issued directly (no
 * scheduler and an idle queue, or the plug flushed straight to the driver)
 * has no insert; every request has an issue. Between its first insert or
 * issue and its final completion a request lives in blockio_inflight,
 * keyed by its address (requests are preallocated per tag and reused, so
 * an address is unique among the requests in flight).
 *
 * Attribution. The issuer is the process current at insert, or at issue
 * when there was no insert: the submitter for direct and synchronous I/O,
 * which is what can be known in the kernel. Page-cache writeback, async
 * readahead completion work, requeues and stacked devices (loop, dm, md)
 * run in kernel threads, which are then the issuer. A requeued request
 * keeps the issuer of its first insert. Completion runs in interrupt or
 * softirq context, so it never looks at current.
 *
 * Counting. Bytes are added at every completion (the tracepoint's nr_bytes,
 * which is what /sys/block/<dev>/stat adds to its sectors); the operation,
 * its issue -> completion time and its insert -> issue time when it was
 * inserted are added once, at the completion that finishes the request
 * (nr_bytes covers what is left: blk_rq_bytes() is only reduced after the
 * tracepoint). Only REQ_OP_READ and REQ_OP_WRITE requests are followed:
 * flushes, discards and write-zeroes move no data through the semconv
 * read/write directions, and driver-private requests have no disk.
 *
 * Losses are counted, never silent (blockio_drops, per CPU): a full
 * in-flight table (table_full), a leftover entry found when its address is
 * reused (expired; the agent also ages out entries older than max_age_ns),
 * and a completion of a request never seen starting (unmatched, whole-host
 * mode only: with targets, the requests of other processes are never
 * recorded on purpose). The kernel runs a tracing program at most once per
 * CPU at a time: an event on a CPU where the same program is running (a
 * completion in a hard interrupt arriving while this program handles one
 * in softirq or process context) skips it and counts a recursion miss,
 * which the agent reads from the program's stats and exports as "missed".
 *
 * Hot path: insert = one lookup (to keep a requeued request's issuer) and
 * one update; issue = one lookup and, for a direct issue, one update;
 * complete = one lookup in the in-flight table, one per-CPU hash lookup
 * updated in place, one delete. blockio_inflight is a shared hash table
 * (a request starts, is issued and completes on different CPUs), so its
 * bucket locks are the only ones taken; the metric set is per-CPU. Where
 * the issuer's identity cannot be recorded at completion (raw_tp, kernels
 * before 6.2), a recorded start also looks the issuer up in processes.
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "gen/blockio.h"
#include "telagent.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* include/linux/blk_types.h: the operation is the low REQ_OP_BITS bits. */
#define REQ_OP_MASK 0xff

/* Default size of the in-flight table; the agent may resize it at load. */
#define BLOCKIO_INFLIGHT_MAX 16384

/* Indexes of blockio_drops: telagent.disk.request.drop.reason. */
#define DROP_EXPIRED 0
#define DROP_TABLE_FULL 1
#define DROP_UNMATCHED 2
#define DROP_REASONS 3

struct inflight {
	__u64 insert_ns; /* CLOCK_MONOTONIC at the last insert; 0: issued directly */
	__u64 issue_ns;  /* at the last issue; 0 while queued */
	__u32 tgid;      /* the issuer */
	__u32 dev;       /* the disk, MKDEV(major, first_minor) */
	__u32 direction; /* REQ_OP_READ (0) or REQ_OP_WRITE (1) */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BLOCKIO_INFLIGHT_MAX);
	__type(key, __u64); /* the struct request's address */
	__type(value, struct inflight);
} blockio_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} blockio_drops SEC(".maps");

/*
 * An entry whose last insert or issue is older than this is a leftover
 * (its completion was never seen): set by the agent before load, which
 * ages entries out by the same bound.
 */
volatile const __u64 max_age_ns = 300ULL * 1000000000ULL;

/*
 * Kernel functions usable from tp_btf (tracing) programs since 6.2. Weak:
 * on older kernels (Debian's 6.1) the loader resolves them to nothing and
 * task_from_pid_exists() is false, a constant the verifier prunes on, so
 * the same object loads there and records identities at request start.
 */
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym __weak;
extern void bpf_task_release(struct task_struct *p) __ksym __weak;

/* Whether the weak ksym resolved at load (libbpf's bpf_ksym_exists, which
 * this copy of bpf_helpers.h predates): the address of a missing weak
 * symbol is 0. The assertion catches a symbol declared without __weak. */
#define ksym_exists(sym) ({                                                  \
	_Static_assert(!__builtin_constant_p(!!sym), #sym " must be __weak"); \
	!!sym;                                                                \
})

/* Whether the issuer's identity is recorded at completion, from its pid;
 * otherwise at request start, from current (see note_current). */
static __always_inline bool identity_at_completion(bool btf)
{
	return btf && ksym_exists(bpf_task_from_pid);
}

static __always_inline void count_drop(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&blockio_drops, &reason);

	if (n)
		*n += 1;
}

/*
 * Field reads: direct (BTF-typed, faults read as zero) in tp_btf programs,
 * CO-RE probe reads in the raw_tp fallback. btf is a constant at every
 * call site, so each program keeps only its own branch.
 */
static __always_inline __u32 rq_op(struct request *rq, bool btf)
{
	return (btf ? rq->cmd_flags : BPF_CORE_READ(rq, cmd_flags)) & REQ_OP_MASK;
}

static __always_inline __u32 rq_bytes(struct request *rq, bool btf)
{
	return btf ? rq->__data_len : BPF_CORE_READ(rq, __data_len);
}

/* The disk's dev_t in the kernel's encoding (MKDEV: major << 20 | minor),
 * 0 when the queue has no disk. */
static __always_inline __u32 rq_dev(struct request *rq, bool btf)
{
	struct gendisk *disk = btf ? rq->q->disk : BPF_CORE_READ(rq, q, disk);
	int major, minor;

	if (!disk)
		return 0;
	if (btf) {
		major = disk->major;
		minor = disk->first_minor;
	} else {
		major = BPF_CORE_READ(disk, major);
		minor = BPF_CORE_READ(disk, first_minor);
	}
	return ((__u32)major << 20) | ((__u32)minor & 0xfffff);
}

/* A queued entry (inserted or requeued, not issued since) younger than the
 * maximum age: anything else found at an insert or issue is a leftover. */
static __always_inline bool queued(const struct inflight *e, __u64 now)
{
	return !e->issue_ns && now - e->insert_ns <= max_age_ns;
}

/*
 * Records the identity of current, the issuer, unless it is known: where
 * the issuer cannot be looked up by pid at completion (raw_tp, or a kernel
 * without bpf_task_from_pid). That costs one lookup in processes per
 * recorded request start, paid only on those kernels or in that mode.
 * Only CO-RE reads: a raw_tp program has no BTF-typed task pointer.
 */
static __always_inline void note_current(__u32 tgid)
{
	struct telagent_process p = {};
	struct task_struct *task;

	if (bpf_map_lookup_elem(&processes, &tgid))
		return;
	task = (struct task_struct *)bpf_get_current_task();
	p.start_boottime_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	bpf_get_current_comm(p.comm, sizeof(p.comm));
	bpf_map_update_elem(&processes, &tgid, &p, BPF_NOEXIST);
}

/*
 * Records a request first seen now (at insert, or at issue when issued
 * directly) for the current process. Requests of processes that are not
 * targets, and operations other than read and write, are not recorded.
 */
static __always_inline void start(struct request *rq, __u64 key, __u64 now, bool inserted, bool btf)
{
	struct inflight e = {};
	__u32 op = rq_op(rq, btf);

	if (op != REQ_OP_READ && op != REQ_OP_WRITE)
		return;
	e.tgid = bpf_get_current_pid_tgid() >> 32;
	if (!telagent_is_target(e.tgid))
		return;
	e.dev = rq_dev(rq, btf);
	if (!e.dev)
		return;
	e.direction = op;
	if (!identity_at_completion(btf))
		note_current(e.tgid);
	if (inserted)
		e.insert_ns = now;
	else
		e.issue_ns = now;
	if (bpf_map_update_elem(&blockio_inflight, &key, &e, BPF_ANY))
		count_drop(DROP_TABLE_FULL);
}

/*
 * An entry found at insert or issue that is not queued belongs to an
 * earlier request at this address whose completion was never seen (an
 * issued request is only issued again after a requeue, which makes it
 * queued): most often the kernel skipped this object's completion program
 * because it was already running on that CPU (a completion in an
 * interrupt nested in another; counted as the programs' recursion
 * misses). It must not lend its issuer or direction to the new request.
 */
static __always_inline void drop_leftover(__u64 *key)
{
	count_drop(DROP_EXPIRED);
	bpf_map_delete_elem(&blockio_inflight, key);
}

static __always_inline void on_insert(struct request *rq, bool btf)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns();
	struct inflight *e = bpf_map_lookup_elem(&blockio_inflight, &key);

	if (e) {
		if (queued(e, now)) {
			/* Requeued, now inserted again: queued from now, same issuer. */
			e->insert_ns = now;
			return;
		}
		drop_leftover(&key);
	}
	start(rq, key, now, true, btf);
}

static __always_inline void on_issue(struct request *rq, bool btf)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns();
	struct inflight *e = bpf_map_lookup_elem(&blockio_inflight, &key);

	if (e) {
		if (queued(e, now)) {
			e->issue_ns = now;
			return;
		}
		drop_leftover(&key);
	}
	start(rq, key, now, false, btf);
}

/*
 * The driver gave the request back (busy, or blk_mq_requeue_request): it
 * waits again from now and will be issued again; a device time is measured
 * from its last issue.
 */
static __always_inline void on_requeue(struct request *rq)
{
	__u64 key = (__u64)rq;
	struct inflight *e = bpf_map_lookup_elem(&blockio_inflight, &key);

	if (e) {
		e->insert_ns = bpf_ktime_get_ns();
		e->issue_ns = 0;
	}
}

/*
 * Records the issuer's identity when its first key is created: the slow
 * path only. Completion does not run in the issuer's context, so the task
 * is looked up by pid (where that kfunc exists; elsewhere start() did it).
 */
static __always_inline void note_issuer(__u32 tgid, bool btf)
{
	struct telagent_process p = {};
	struct task_struct *task;

	if (!identity_at_completion(btf))
		return;
	if (bpf_map_lookup_elem(&processes, &tgid))
		return;
	task = bpf_task_from_pid(tgid);
	if (!task)
		return; /* gone already */
	p.start_boottime_ns = task->group_leader->start_boottime;
	bpf_probe_read_kernel_str(p.comm, sizeof(p.comm), task->group_leader->comm);
	bpf_task_release(task);
	bpf_map_update_elem(&processes, &tgid, &p, BPF_NOEXIST);
}

/* This CPU's entry of key (blockio_slot); the issuer is noted from its
 * pid, not from current, when the entry is created. */
static __always_inline struct blockio_value *slot(const struct blockio_key *key, bool btf)
{
	struct blockio_value *val;
	bool created = false;

	val = blockio_slot(key, NULL, &created);
	if (created)
		note_issuer(key->tgid, btf);
	return val;
}

static __always_inline void on_complete(struct request *rq, unsigned int nr_bytes, bool btf)
{
	__u64 key = (__u64)rq, now, d;
	struct blockio_value *val;
	struct blockio_key k;
	struct inflight *e;
	__u32 op;
	bool done;

	e = bpf_map_lookup_elem(&blockio_inflight, &key);
	/* What is left before this completion: done when it covers it. */
	done = nr_bytes >= rq_bytes(rq, btf);
	if (!e) {
		/* Data moved for a request never seen starting. A second,
		 * empty completion of a finished request (the flush state
		 * machine ends a FUA/PREFLUSH write twice) moves none. */
		if (!filter_targets && done && nr_bytes) {
			op = rq_op(rq, btf);
			if (op == REQ_OP_READ || op == REQ_OP_WRITE)
				count_drop(DROP_UNMATCHED);
		}
		return;
	}
	k.tgid = e->tgid;
	k.dev = e->dev;
	k.direction = e->direction;
	val = slot(&k, btf);
	if (val) {
		val->bytes += nr_bytes;
		if (done) {
			now = bpf_ktime_get_ns();
			val->operations++;
			/* Ended before it was issued (failed in the block layer): no
			 * device time to measure. */
			if (e->issue_ns) {
				d = now - e->issue_ns;
				val->op_count++;
				val->op_ns_sum += d;
				val->op_hist[telagent_hist_bucket(d)]++;
			}
			if (e->insert_ns && e->issue_ns) {
				d = e->issue_ns - e->insert_ns;
				val->queue_count++;
				val->queue_ns_sum += d;
				val->queue_hist[telagent_hist_bucket(d)]++;
			}
		}
	}
	if (done)
		bpf_map_delete_elem(&blockio_inflight, &key);
}

/* A queued request merged into another is freed without issue. */
static __always_inline void on_merge(struct request *rq)
{
	__u64 key = (__u64)rq;

	bpf_map_delete_elem(&blockio_inflight, &key);
}

/* ---- tp_btf: typed arguments (6.18: block_rq_complete(rq, error, nr_bytes)) ---- */

SEC("tp_btf/block_rq_insert")
int BPF_PROG(block_rq_insert, struct request *rq)
{
	on_insert(rq, true);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(block_rq_issue, struct request *rq)
{
	on_issue(rq, true);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	on_complete(rq, nr_bytes, true);
	return 0;
}

SEC("tp_btf/block_rq_merge")
int BPF_PROG(block_rq_merge, struct request *rq)
{
	on_merge(rq);
	return 0;
}

SEC("tp_btf/block_rq_requeue")
int BPF_PROG(block_rq_requeue, struct request *rq)
{
	on_requeue(rq);
	return 0;
}

/* ---- raw_tp fallback: same logic, CO-RE reads, identity at start ---- */

SEC("raw_tp/block_rq_insert")
int raw_block_rq_insert(struct bpf_raw_tracepoint_args *ctx)
{
	on_insert((struct request *)ctx->args[0], false);
	return 0;
}

SEC("raw_tp/block_rq_issue")
int raw_block_rq_issue(struct bpf_raw_tracepoint_args *ctx)
{
	on_issue((struct request *)ctx->args[0], false);
	return 0;
}

SEC("raw_tp/block_rq_complete")
int raw_block_rq_complete(struct bpf_raw_tracepoint_args *ctx)
{
	on_complete((struct request *)ctx->args[0], (unsigned int)ctx->args[2], false);
	return 0;
}

SEC("raw_tp/block_rq_merge")
int raw_block_rq_merge(struct bpf_raw_tracepoint_args *ctx)
{
	on_merge((struct request *)ctx->args[0]);
	return 0;
}

SEC("raw_tp/block_rq_requeue")
int raw_block_rq_requeue(struct bpf_raw_tracepoint_args *ctx)
{
	on_requeue((struct request *)ctx->args[0]);
	return 0;
}
