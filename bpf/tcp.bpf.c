// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcp probe: per process owning a socket, and per connection direction,
 * retransmitted segments, the smoothed RTT at each received segment,
 * connections opened, failed and closed with their lifetime, and resets
 * sent and received. Only tracepoints (tp_btf); no kprobes.
 *
 * Attribution. Most TCP events (retransmit timers, received segments,
 * resets, the close after the last ACK) run in softirq or timer context,
 * where `current` is whatever task was interrupted. So every socket gets
 * its owner once, in process context, and keeps it in BPF socket storage
 * (freed by the kernel with the socket: nothing to age, no bound to
 * overflow, nothing leaks):
 *  - connect(): CLOSE → SYN_SENT runs in the connecting task;
 *  - listen(): CLOSE → LISTEN runs in the listening task, and a socket
 *    accepted from that listener inherits its storage (BPF_F_CLONE: the
 *    kernel copies it in sk_clone_lock) before LISTEN → SYN_RECV;
 *  - a socket with no owner yet (opened, or its listener opened, before
 *    the probe attached) is claimed by the first task that sends on it
 *    (tcp:tcp_sendmsg_locked, process context).
 * Limits: a socket handed to another process (fork, SCM_RIGHTS) stays with
 * the one that opened it; a prefork server whose parent listens and whose
 * children accept counts under the parent; an old socket that never sends
 * stays unattributed. Unattributed events go to tgid 0, which the agent
 * exports on the host Resource; with a target filter they are not counted
 * (nothing says whose they are). With a target filter, a target leaves the
 * set when it exits, before the kernel closes the files it left open: the
 * closes of sockets it did not close itself, and anything after its exit
 * (the last ACK of a close), are not counted.
 *
 * Hot path budget per event: one socket-storage lookup (a pointer in the
 * socket plus a cache slot), the target check, one per-CPU hash lookup
 * updated in place. No atomics: the slot is this CPU's, and tracepoint
 * programs run with migration disabled.
 */
#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "gen/tcp_conn.h"
#include "telagent.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Values of tcp_conn_key.direction; 0 is "unknown" (opened before the probe). */
#define DIR_UNKNOWN 0
#define DIR_OUTBOUND 1
#define DIR_INBOUND 2

struct sock_state {
	__u64 established_ns; /* when it reached ESTABLISHED; 0: not seen */
	__u32 tgid;           /* owner; 0: not known yet */
	__u8 direction;       /* DIR_* */
	__u8 open_pending;    /* established while unowned: count the open when owned */
	__u8 _pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sock_state);
} socks SEC(".maps");

static __always_inline __u32 current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

/*
 * This CPU's entry of (owner, direction), or NULL when not observed. The
 * process identity is recorded only when the owner is current: in softirq
 * context current is someone else. Owners are also recorded when they take
 * a socket (own()), in their own context.
 */
static __always_inline struct tcp_conn_value *slot_of(__u32 tgid, __u32 direction)
{
	struct tcp_conn_key key = { .tgid = tgid, .direction = direction };
	struct tcp_conn_value *val;
	bool created = false;

	if (tgid == 0 ? filter_targets : !telagent_is_target(tgid))
		return NULL;
	val = tcp_conn_slot(&key, NULL, &created);
	if (created && tgid && tgid == current_tgid())
		telagent_note_process(bpf_get_current_task_btf());
	return val;
}

static __always_inline struct tcp_conn_value *slot(const struct sock_state *st)
{
	if (!st)
		return slot_of(0, DIR_UNKNOWN);
	return slot_of(st->tgid, st->direction);
}

static __always_inline struct sock_state *state_get(const struct sock *sk, bool create)
{
	return bpf_sk_storage_get(&socks, (void *)sk, 0, create ? BPF_SK_STORAGE_GET_F_CREATE : 0);
}

/* current takes sk: a fresh connection of its own. */
static __always_inline void own(struct sock_state *st, __u8 direction)
{
	st->tgid = current_tgid();
	st->direction = direction;
	st->established_ns = 0;
	st->open_pending = 0;
	if (telagent_is_target(st->tgid))
		telagent_note_process(bpf_get_current_task_btf());
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct sock_state *st;
	struct tcp_conn_value *val;
	__u64 now;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	switch (newstate) {
	case TCP_SYN_SENT: /* connect(), in the connecting task */
		st = state_get(sk, true);
		if (st)
			own(st, DIR_OUTBOUND);
		return 0;
	case TCP_LISTEN: /* listen(), in the listening task */
		st = state_get(sk, true);
		if (st)
			own(st, DIR_UNKNOWN);
		return 0;
	case TCP_SYN_RECV:
		/* A child of a listener (its copied state is LISTEN), with the
		 * listener's storage cloned into it, in softirq: keep the owner.
		 * SYN_SENT → SYN_RECV (simultaneous open) stays outbound. */
		if (oldstate != TCP_LISTEN)
			return 0;
		st = state_get(sk, true);
		if (st) {
			st->direction = DIR_INBOUND;
			st->established_ns = 0;
			st->open_pending = 0;
		}
		return 0;
	case TCP_ESTABLISHED:
		st = state_get(sk, true);
		if (!st) {
			val = slot_of(0, oldstate == TCP_SYN_SENT ? DIR_OUTBOUND : DIR_INBOUND);
			if (val)
				val->opens++;
			return 0;
		}
		st->established_ns = bpf_ktime_get_ns();
		if (!st->tgid) {
			/* Counted where it ends up: at the claim or at the close. */
			st->open_pending = 1;
			return 0;
		}
		val = slot(st);
		if (val)
			val->opens++;
		return 0;
	case TCP_CLOSE:
		break;
	default:
		return 0;
	}

	/* newstate == TCP_CLOSE */
	if (oldstate == TCP_LISTEN || oldstate == TCP_CLOSE)
		return 0;
	st = state_get(sk, false);
	if (st)
		val = slot(st);
	else
		val = slot_of(0, oldstate == TCP_SYN_SENT ? DIR_OUTBOUND :
				 oldstate == TCP_SYN_RECV ? DIR_INBOUND : DIR_UNKNOWN);
	if (val) {
		if (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV) {
			val->failures++;
		} else {
			val->closes++;
			if (st && st->open_pending)
				val->opens++;
			if (st && st->established_ns) {
				now = bpf_ktime_get_ns() - st->established_ns;
				val->lifetimes++;
				val->lifetime_ns_sum += now;
				val->lifetime_hist[telagent_hist_bucket(now)]++;
			}
		}
	}
	if (st) {
		st->established_ns = 0;
		st->open_pending = 0;
	}
	return 0;
}

/* Counts the segments of skb, retransmitted on sk: tcp_skb_pcount(skb),
 * what the kernel adds to TcpRetransSegs for the attempt. */
static __always_inline void count_retransmit(const struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_conn_value *val = slot(state_get(sk, false));
	struct tcp_skb_cb *cb;
	__u16 segs;

	if (!val)
		return;
	cb = (struct tcp_skb_cb *)&skb->cb[0];
	segs = BPF_CORE_READ(cb, tcp_gso_segs);
	val->retransmits += segs ? segs : 1;
}

/*
 * The kernel adds tcp_skb_pcount(skb) to TcpRetransSegs for an attempt
 * that got past its early checks; err == 0 is an attempt that reached the
 * IP layer. Kernels with the err argument (6.18 has it) fire this for
 * every attempt, with its result.
 */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (!err)
		count_retransmit(sk, skb);
	return 0;
}

/*
 * The same for kernels whose tracepoint has no err argument (Debian's 6.1
 * and 6.12): __tcp_retransmit_skb fires it only when the transmit
 * returned 0, so every call is an attempt with err == 0. The agent loads
 * this one instead of tcp_retransmit_skb there (probes.UseProgramVariant).
 */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb_noerr, const struct sock *sk, const struct sk_buff *skb)
{
	count_retransmit(sk, skb);
	return 0;
}

/*
 * A SYN-ACK retransmitted for a pending (inbound) connection of listener sk,
 * counted on the listener's owner. (The kernel counts it in TcpRetransSegs
 * too, and fires this only when it was sent.)
 */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(tcp_retransmit_synack, const struct sock *sk, const struct request_sock *req)
{
	struct sock_state *st = state_get(sk, false);
	struct tcp_conn_value *val = slot_of(st ? st->tgid : 0, DIR_INBOUND);

	if (val)
		val->retransmits++;
	return 0;
}

/* Every segment received on an established connection. */
SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_conn_value *val;
	__u64 srtt, ns;

	/* srtt_us holds 8 × the smoothed RTT in µs; 0 until the first sample. */
	srtt = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us);
	if (!srtt)
		return 0;
	val = slot(state_get(sk, false));
	if (!val)
		return 0;
	ns = srtt * 125;
	val->rtt_samples++;
	val->rtt_ns_sum += ns;
	val->rtt_hist[telagent_hist_bucket(ns)]++;
	return 0;
}

/*
 * sk is NULL for a reset answering a segment that matched no socket, and
 * may be a TIME_WAIT or request socket, which has no storage (the helper
 * returns NULL for anything but a full socket): unattributed. Before 6.10
 * (Debian's 6.1) the kernel fired this only for full sockets: those other
 * resets are not seen there. 6.10 also added a reason argument; only sk
 * is read, so one program serves both.
 */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcp_send_reset, const struct sock *sk)
{
	struct tcp_conn_value *val = slot(state_get(sk, false));

	if (val)
		val->resets_sent++;
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tcp_receive_reset, struct sock *sk)
{
	struct tcp_conn_value *val = slot(state_get(sk, false));

	if (val)
		val->resets_received++;
	return 0;
}

/*
 * sendmsg, in the sending task: claims a socket that has no owner yet. The
 * owner of an owned socket never changes. Optional (Linux 6.9+).
 */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(tcp_sendmsg_locked, const struct sock *sk)
{
	struct sock_state *st = state_get(sk, true);
	struct tcp_conn_value *val;

	if (!st || st->tgid)
		return 0;
	st->tgid = current_tgid();
	if (telagent_is_target(st->tgid))
		telagent_note_process(bpf_get_current_task_btf());
	if (st->open_pending) {
		st->open_pending = 0;
		val = slot(st);
		if (val)
			val->opens++;
	}
	return 0;
}
