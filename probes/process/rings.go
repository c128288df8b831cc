package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/internal/osthread"
)

// ring is one NUMA node's ring buffer and the reader that drains it.
type ring struct {
	node aggregator.Node
	m    *ebpf.Map
	rd   *ringbuf.Reader

	tid      atomic.Int32 // the pinned reader thread, once it runs
	affinity []int        // CPUs the reader thread is pinned to (empty: not pinned)
	ready    chan struct{}
	flushed  chan struct{} // one token per completed Flush

	received  atomic.Uint64 // records decoded and delivered
	queueFull atomic.Uint64 // decoded but the sink refused them
	malformed atomic.Uint64 // records Decode rejected
}

// RingInfo describes one node's ring to tests and diagnostics.
type RingInfo struct {
	Node      int
	CPUs      []int // the node's CPUs
	Affinity  []int // CPUs its reader thread is pinned to (empty: not pinned)
	ReaderTID int
	MapID     ebpf.MapID
	NUMA      bool   // allocated on its node (BPF_F_NUMA_NODE)
	Received  uint64 // events delivered through this ring's reader
}

// Rings describes the per-node rings, in node order.
func (p *Probe) Rings() []RingInfo {
	var out []RingInfo
	for _, r := range p.rings {
		info := RingInfo{Node: r.node.ID, CPUs: r.node.CPUs, Affinity: r.affinity, ReaderTID: int(r.tid.Load()),
			NUMA: p.numa, Received: r.received.Load()}
		if mi, err := r.m.Info(); err == nil {
			info.MapID, _ = mi.ID()
		}
		out = append(out, info)
	}
	return out
}

// createRings makes one ring buffer per node, allocated on that node. The
// kernel requires every inner map of an ARRAY_OF_MAPS to have the flags of
// the template, so either all rings carry BPF_F_NUMA_NODE or none does: a
// node the kernel does not have (a fake topology, a node without memory)
// makes the allocation fail, and then every ring is created without the
// hint (the memory comes from wherever the agent runs).
func (p *Probe) createRings(inner *ebpf.MapSpec, size uint32) error {
	if inner == nil {
		return errors.New("process spec: rings has no inner map")
	}
	inner.MaxEntries = size
	create := func(numa bool) error {
		for _, n := range p.topo.Nodes {
			s := inner.Copy()
			s.Name = fmt.Sprintf("proc_ring%d", n.ID)
			if numa {
				s.Flags |= unix.BPF_F_NUMA_NODE
				s.NumaNode = uint32(n.ID)
			}
			m, err := ebpf.NewMap(s)
			if err != nil {
				return fmt.Errorf("create ring buffer of node %d (%d bytes): %w", n.ID, size, err)
			}
			p.rings = append(p.rings, &ring{node: n, m: m, ready: make(chan struct{}), flushed: make(chan struct{}, 1)})
		}
		return nil
	}
	err := create(true)
	if err == nil {
		p.numa = true
		inner.Flags |= unix.BPF_F_NUMA_NODE // the template the outer map checks against
		inner.NumaNode = uint32(p.topo.Nodes[0].ID)
		return nil
	}
	for _, r := range p.rings {
		_ = r.m.Close()
	}
	p.rings = nil
	if err2 := create(false); err2 != nil {
		for _, r := range p.rings {
			_ = r.m.Close()
		}
		p.rings = nil
		return errors.Join(err, err2)
	}
	p.log.Debug("process probe: ring buffers not bound to their NUMA nodes", "reason", err)
	return nil
}

// startReaders starts one reader per ring, each on a thread pinned to its
// node's CPUs, and waits until every one runs.
func (p *Probe) startReaders() error {
	for _, r := range p.rings {
		rd, err := ringbuf.NewReader(r.m)
		if err != nil {
			return fmt.Errorf("ring buffer reader of node %d: %w", r.node.ID, err)
		}
		r.rd = rd
	}
	// What the process may run on, read once before any reader narrows
	// its own thread (which may be the one whose affinity a later read by
	// pid would see).
	allowed, err := osthread.Allowed(p.topo.PossibleCPUs)
	if err != nil {
		allowed = nil // pin to the node's CPUs unchecked
	}
	for _, r := range p.rings {
		p.wg.Add(1)
		osthread.Go(osthread.OnMain, func() { p.read(r, allowed) })
		<-r.ready
	}
	return nil
}

// read drains one ring until it is closed, on its own thread (osthread.Go:
// never the main thread, ended when read returns, so its narrowed affinity
// never leaks to other goroutines).
func (p *Probe) read(r *ring, allowed unix.CPUSetDynamic) {
	defer p.wg.Done()
	r.tid.Store(int32(unix.Gettid()))
	r.affinity, _ = osthread.Pin(r.node.CPUs, allowed, p.topo.PossibleCPUs) // nil: unpinned, still read
	if len(r.affinity) == 0 {
		p.log.Debug("process probe: ring reader not pinned", "node", r.node.ID, "cpus", r.node.CPUs)
	}
	close(r.ready)

	var rec ringbuf.Record
	failures := 0
	for {
		err := r.rd.ReadInto(&rec)
		switch {
		case err == nil:
			failures = 0
			p.handle(r, rec.RawSample)
		case errors.Is(err, ringbuf.ErrFlushed):
			select {
			case r.flushed <- struct{}{}:
			default:
			}
		case errors.Is(err, os.ErrClosed):
			return
		default:
			// Not expected from an epoll-driven reader; back off so a
			// persistent error cannot spin a CPU.
			if failures++; failures == 1 {
				p.log.Warn("process probe: ring buffer read", "node", r.node.ID, "err", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (p *Probe) handle(r *ring, raw []byte) {
	rec, err := Decode(raw)
	if err != nil {
		r.malformed.Add(1)
		return
	}
	ev := p.toEvent(rec)
	// The reader knows which ring it drains; the record's own node field
	// is the BPF side's choice and is kept for the cross-check in tests.
	ev.Node = r.node.ID
	if p.sink == nil || !p.sink.Deliver(ev) {
		r.queueFull.Add(1)
		return
	}
	r.received.Add(1)
}

// SyncEvents implements probes.EventSource: flush every ring and wait until
// each reader has handed over what was in it.
func (p *Probe) SyncEvents(ctx context.Context) error {
	for _, r := range p.rings {
		select { // a token left by an earlier flush is stale
		case <-r.flushed:
		default:
		}
		if err := r.rd.Flush(); err != nil {
			return fmt.Errorf("flush ring of node %d: %w", r.node.ID, err)
		}
	}
	for _, r := range p.rings {
		select {
		case <-r.flushed:
		case <-ctx.Done():
			return fmt.Errorf("drain ring of node %d: %w", r.node.ID, ctx.Err())
		}
	}
	return nil
}
