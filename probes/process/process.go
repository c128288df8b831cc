// Package process is the process probe: process lifecycle events (exec,
// fork, exit) and OOM kills from tracepoints, delivered through one BPF ring
// buffer per NUMA node, each drained by an agent thread pinned to that
// node's CPUs, and handed to the agent as probes.Event values.
package process

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type process_event_hdr -type process_exec_event -type process_fork_event -type process_exit_event -type process_oom_event -type process_drops process ../../bpf/process.bpf.c -- -I../../bpf/include

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// ProbeName is the probe's name on the command line.
const ProbeName = "process"

// DefaultRingBytes is each node's ring buffer size: about 300 exec records
// or 4000 exit records in flight before the BPF side starts counting drops.
const DefaultRingBytes = 256 << 10

// nsPerTick converts start_boottime to /proc's starttime unit (USER_HZ =
// 100), as the kernel's nsec_to_clock_t does.
const nsPerTick = 10_000_000

// Config tunes the probe.
type Config struct {
	// ForkEvents reports every fork on the host; with a target filter,
	// forks of targets are always reported.
	ForkEvents bool
	// CommandArgs puts the exec'd program's argv on exec events as
	// process.command_args. Off by default: argv can carry secrets
	// (passwords, tokens on command lines), and semconv says it should not
	// be collected unless asked for.
	CommandArgs bool
	// RingBytes per node (a power of two, multiple of the page size); 0
	// means DefaultRingBytes.
	RingBytes uint32
}

// Probe implements probes.Probe and probes.EventSource.
type Probe struct {
	cfg   Config
	sink  probes.EventSink
	log   *slog.Logger
	objs  objects
	links []link.Link
	rings []*ring
	topo  aggregator.Topology
	numa  bool // rings were allocated on their nodes (BPF_F_NUMA_NODE)
	wg    sync.WaitGroup

	bootToWall int64         // add to a CLOCK_BOOTTIME ns value to get Unix ns
	oomProg    *ebpf.Program // nil when the kernel cannot load it
	oom        bool          // the OOM program is attached
	attach     string

	drops     []processProcessDrops
	dropAttrs map[dropKey]attribute.Set

	closed         bool
	droppedAtClose uint64
}

type dropKey struct {
	reason string
	node   int
}

type objects struct {
	Exec  *ebpf.Program `ebpf:"process_exec"`
	Fork  *ebpf.Program `ebpf:"process_fork"`
	Exit  *ebpf.Program `ebpf:"process_exit"`
	Rings *ebpf.Map     `ebpf:"rings"`
	Drops *ebpf.Map     `ebpf:"drops"`
}

type oomObjects struct {
	objects
	OOM *ebpf.Program `ebpf:"process_oom"`
}

// New returns the probe; nothing is loaded until Start.
func New(cfg Config) *Probe { return &Probe{cfg: cfg} }

// SetEventSink implements probes.EventSource.
func (p *Probe) SetEventSink(s probes.EventSink) { p.sink = s }

// Info implements probes.Probe.
func (p *Probe) Info() probes.Info {
	return probes.Info{
		Name:     ProbeName,
		Measures: "process lifecycle events (exec, fork, exit with code, signal, lifetime, CPU time) and OOM kills",
		Hooks:    "tracepoints sched_process_exec, sched_process_fork, sched_process_exit, oom:mark_victim (tp_btf); one ring buffer per NUMA node",
		Requires: "BTF (/sys/kernel/btf/vmlinux), BPF ring buffers in map-in-map (Linux 5.8+)",
		Metrics:  []string{entity.MetricTelagentEventDrops.Name},
	}
}

// Supported implements probes.Probe.
func (p *Probe) Supported() error {
	if err := probes.RequireBTF(); err != nil {
		return err
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		return fmt.Errorf("BPF ring buffers unavailable (needs Linux 5.8+): %w", err)
	}
	if err := features.HaveMapType(ebpf.ArrayOfMaps); err != nil {
		return fmt.Errorf("BPF map-in-map unavailable: %w", err)
	}
	return nil
}

// Start implements probes.Probe: create one ring per node, load, start the
// pinned readers, then attach (so no event is produced before a reader
// can drain it).
func (p *Probe) Start(_ context.Context, env probes.Env) error {
	p.log = env.Log
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.topo = env.Topology
	if len(p.topo.Nodes) == 0 || p.topo.PossibleCPUs <= 0 {
		return errors.New("process probe: empty CPU topology")
	}
	maxNode := 0
	for _, n := range p.topo.Nodes {
		if n.ID < 0 || n.ID >= 1024 {
			return fmt.Errorf("process probe: NUMA node id %d out of range", n.ID)
		}
		maxNode = max(maxNode, n.ID)
	}

	spec, err := loadProcess()
	if err != nil {
		return fmt.Errorf("load process spec: %w", err)
	}
	ringBytes := p.cfg.RingBytes
	if ringBytes == 0 {
		ringBytes = DefaultRingBytes
	}
	if err := p.createRings(spec.Maps["rings"].InnerMap, ringBytes); err != nil {
		return err
	}
	spec.Maps["rings"].MaxEntries = uint32(maxNode + 1)
	spec.Maps["drops"].MaxEntries = uint32(maxNode + 1)
	if err := spec.Variables["fork_events"].Set(p.cfg.ForkEvents); err != nil {
		p.Close()
		return fmt.Errorf("set fork_events: %w", err)
	}
	// group_dead is sched_process_exit's second argument on newer kernels only.
	if err := probes.UseProgramVariant(spec, "process_exit", "process_exit_task", "sched_process_exit", 2); err != nil {
		p.Close()
		return fmt.Errorf("process probe: %w", err)
	}
	opts, err := env.CollectionOptions(spec)
	if err != nil {
		p.Close()
		return err
	}
	var all oomObjects
	if err := spec.LoadAndAssign(&all, opts); err == nil {
		p.objs, p.oomProg = all.objects, all.OOM
	} else {
		// OOM kills are a bonus: a kernel without the mark_victim
		// tracepoint still gets lifecycle events.
		oomErr := err
		if err := spec.LoadAndAssign(&p.objs, opts); err != nil {
			p.Close()
			return fmt.Errorf("load process programs: %w", err)
		}
		p.log.Warn("process probe: OOM kill events unavailable", "err", oomErr)
	}
	for _, r := range p.rings {
		if err := p.objs.Rings.Update(uint32(r.node.ID), r.m, ebpf.UpdateAny); err != nil {
			p.Close()
			return fmt.Errorf("install ring of node %d: %w", r.node.ID, err)
		}
	}
	if err := p.clock(); err != nil {
		p.Close()
		return err
	}
	if err := p.startReaders(); err != nil {
		p.Close()
		return err
	}
	for _, a := range []struct {
		prog *ebpf.Program
		name string
		on   bool
	}{
		{p.objs.Exec, "sched_process_exec", true},
		{p.objs.Exit, "sched_process_exit", true},
		// Nothing to report without a filter unless asked: do not even run.
		{p.objs.Fork, "sched_process_fork", env.FilterTargets || p.cfg.ForkEvents},
		{p.oomProg, "mark_victim", p.oomProg != nil},
	} {
		if !a.on {
			continue
		}
		if err := p.attachOne(a.prog, a.name); err != nil {
			p.Close()
			return err
		}
	}
	p.attach = "tp_btf"
	p.drops = make([]processProcessDrops, p.topo.PossibleCPUs)
	return nil
}

func (p *Probe) attachOne(prog *ebpf.Program, name string) error {
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		if name == "mark_victim" {
			p.log.Warn("process probe: OOM kill events unavailable", "err", err)
			return nil
		}
		return fmt.Errorf("attach tp_btf/%s: %w", name, err)
	}
	p.links = append(p.links, l)
	if name == "mark_victim" {
		p.oom = true
	}
	return nil
}

// clock measures the offset between CLOCK_BOOTTIME (the BPF timestamps)
// and the wall clock once; a wall-clock step later shifts event times by
// the step, as it does for every other timestamp the agent takes.
func (p *Probe) clock() error {
	var ts unix.Timespec
	before := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	after := time.Now()
	mid := before.Add(after.Sub(before) / 2)
	p.bootToWall = mid.UnixNano() - ts.Nano()
	return nil
}

// Collect implements probes.Probe: the drop counters, per node and reason.
func (p *Probe) Collect(_ context.Context, c *probes.Collection) error {
	kernel := map[int]processProcessDrops{}
	if p.objs.Drops != nil {
		for n := range int(p.objs.Drops.MaxEntries()) {
			if err := p.objs.Drops.Lookup(uint32(n), p.drops); err != nil {
				return fmt.Errorf("read event drops: %w", err)
			}
			var sum processProcessDrops
			for _, d := range p.drops {
				sum.RingFull += d.RingFull
				sum.NoRing += d.NoRing
			}
			kernel[n] = sum
		}
	}
	host := c.Processes.Host()
	emit := func(reason string, node int, v uint64, always bool) {
		if v == 0 && !always {
			return
		}
		c.Metrics.Counter(host, entity.MetricTelagentEventDrops, p.dropAttr(reason, node), int64(v))
	}
	for _, r := range p.rings {
		k := kernel[r.node.ID]
		delete(kernel, r.node.ID)
		emit("ring_full", r.node.ID, k.RingFull, true)
		emit("no_ring", r.node.ID, k.NoRing, false)
		emit("queue_full", r.node.ID, r.queueFull.Load(), true)
		emit("malformed", r.node.ID, r.malformed.Load(), false)
	}
	for n, k := range kernel { // node ids with no ring (holes): only what they dropped
		emit("ring_full", n, k.RingFull, false)
		emit("no_ring", n, k.NoRing, false)
	}
	return nil
}

func (p *Probe) dropAttr(reason string, node int) attribute.Set {
	k := dropKey{reason, node}
	s, ok := p.dropAttrs[k]
	if !ok {
		if p.dropAttrs == nil {
			p.dropAttrs = map[dropKey]attribute.Set{}
		}
		s = attribute.NewSet(entity.AttrTelagentEventDropReason.String(reason), entity.AttrTelagentNUMANode.Int(node))
		p.dropAttrs[k] = s
	}
	return s
}

// Dropped is the total of events dropped so far, for every reason and node
// (after Close: up to Close).
func (p *Probe) Dropped() uint64 {
	if p.closed {
		return p.droppedAtClose
	}
	var n uint64
	if p.objs.Drops != nil {
		for i := range int(p.objs.Drops.MaxEntries()) {
			if p.objs.Drops.Lookup(uint32(i), p.drops) == nil {
				for _, d := range p.drops {
					n += d.RingFull + d.NoRing
				}
			}
		}
	}
	for _, r := range p.rings {
		n += r.queueFull.Load() + r.malformed.Load()
	}
	return n
}

// Evict implements probes.Probe: the probe keeps no per-process keys.
func (p *Probe) Evict() error { return nil }

// Stats implements probes.Probe.
func (p *Probe) Stats() probes.Stats { return probes.Stats{Attach: p.attach} }

// Close implements probes.Probe: detach first so nothing writes into rings
// being freed, stop the readers, then release every kernel object.
func (p *Probe) Close() error {
	errs := []error{probes.CloseLinks(p.links)}
	p.links = nil
	if !p.closed && p.drops != nil {
		p.droppedAtClose, p.closed = p.Dropped(), true
	}
	for _, r := range p.rings {
		if r.rd != nil {
			errs = append(errs, r.rd.Close())
		}
	}
	p.wg.Wait()
	for _, r := range p.rings {
		errs = append(errs, r.m.Close())
	}
	p.rings = nil
	errs = append(errs, p.objs.Exec.Close(), p.objs.Fork.Close(), p.objs.Exit.Close(),
		p.objs.Rings.Close(), p.objs.Drops.Close(), p.oomProg.Close())
	p.objs, p.oomProg, p.oom = objects{}, nil, false
	return errors.Join(errs...)
}
