// Package tcp is the tcp probe: per process owning a socket, and per
// connection direction, TCP retransmits, smoothed RTT, connections opened,
// failed and closed with their lifetime, and resets, from the tcp and sock
// tracepoints (tp_btf). See bpf/tcp.bpf.c for how sockets are attributed to
// processes.
package tcp

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type tcp_conn_key -type tcp_conn_value tcp ../../bpf/tcp.bpf.c -- -I../../bpf/include

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// ProbeName is the probe's name on the command line.
const ProbeName = "tcp"

var set = entity.MetricSetTCPConn

// Values of the key's direction field (bpf/tcp.bpf.c DIR_*).
const (
	dirUnknown  = 0
	dirOutbound = 1
	dirInbound  = 2
)

// Tracepoints the probe needs, by their BTF typedef; sendmsg is optional.
var (
	requiredTracepoints = []string{"inet_sock_set_state", "tcp_retransmit_skb", "tcp_retransmit_synack",
		"tcp_probe", "tcp_send_reset", "tcp_receive_reset"}
	claimTracepoint = "tcp_sendmsg_locked"
)

// Config tunes the probe.
type Config struct {
	// MaxEntries bounds the (process, direction) keys of the tcp metric
	// set; further keys go into the overflow series. 0: the schema's default.
	MaxEntries uint32
}

// Probe implements probes.Probe.
type Probe struct {
	cfg   Config
	objs  objects
	links []link.Link
	claim bool // sockets opened before the probe are claimed at sendmsg
	// claimProg is tcp_sendmsg_locked, loaded only where the kernel has it.
	claimProg *ebpf.Program

	reader   *aggregator.PerCPUReader[tcpTcpConnKey]
	emit     *probes.SetEmitter
	final    *probes.FinalEvictor[tcpTcpConnKey, tcpTcpConnValue]
	overflow tcpTcpConnKey
	attrs    [3]attribute.Set // per direction value
	foldBuf  []uint64
	keys     int
	evicted  uint64
}

// objects are the bpf2go programs and maps the probe loads; the sendmsg
// claim is loaded separately when the kernel has its tracepoint.
type objects struct {
	SetState   *ebpf.Program `ebpf:"inet_sock_set_state"`
	Retransmit *ebpf.Program `ebpf:"tcp_retransmit_skb"`
	RetransSyn *ebpf.Program `ebpf:"tcp_retransmit_synack"`
	Probe      *ebpf.Program `ebpf:"tcp_probe"`
	SendReset  *ebpf.Program `ebpf:"tcp_send_reset"`
	RecvReset  *ebpf.Program `ebpf:"tcp_receive_reset"`
	Stats      *ebpf.Map     `ebpf:"tcp_stats"`
	Folds      *ebpf.Map     `ebpf:"overflow_folds"`
	Socks      *ebpf.Map     `ebpf:"socks"`
}

// New returns the probe; nothing is loaded until Start.
func New(cfg Config) *Probe { return &Probe{cfg: cfg} }

// Info implements probes.Probe.
func (p *Probe) Info() probes.Info {
	return probes.Info{
		Name: ProbeName,
		Measures: "TCP per process owning the socket and connection direction: retransmitted segments, smoothed RTT, " +
			"connections opened, failed and closed with their lifetime, resets sent and received",
		Hooks: "tracepoints sock:inet_sock_set_state, tcp:tcp_retransmit_skb, tcp_retransmit_synack, tcp_probe, " +
			"tcp_send_reset, tcp_receive_reset, tcp_sendmsg_locked (tp_btf); owners in BPF socket storage",
		Requires: "BTF (/sys/kernel/btf/vmlinux), tp_btf programs, BPF socket storage in tracing programs (Linux 5.11+); " +
			"tcp_sendmsg_locked (6.9+) is optional",
		Metrics: []string{
			entity.MetricTelagentTCPRetransmits.Name, entity.MetricTelagentTCPRTT.Name,
			entity.MetricTelagentTCPConnectionOpens.Name, entity.MetricTelagentTCPConnectionFailures.Name,
			entity.MetricTelagentTCPConnectionCloses.Name, entity.MetricTelagentTCPConnectionDuration.Name,
			entity.MetricTelagentTCPResets.Name,
		},
	}
}

// Supported implements probes.Probe.
func (p *Probe) Supported() error {
	if err := probes.RequireBTF(); err != nil {
		return err
	}
	if err := features.HaveMapType(ebpf.SkStorage); err != nil {
		return fmt.Errorf("BPF socket storage maps unavailable: %w", err)
	}
	if err := features.HaveMapType(ebpf.PerCPUHash); err != nil {
		return fmt.Errorf("per-CPU hash maps unavailable: %w", err)
	}
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("load kernel BTF: %w", err)
	}
	for _, tp := range requiredTracepoints {
		if !hasTracepoint(kernel, tp) {
			return fmt.Errorf("tracepoint %s missing from the kernel's BTF", tp)
		}
	}
	return nil
}

func hasTracepoint(kernel *btf.Spec, name string) bool {
	var tp *btf.Typedef
	return kernel.TypeByName("btf_trace_"+name, &tp) == nil
}

// Start implements probes.Probe: load, create the overflow key, attach.
func (p *Probe) Start(ctx context.Context, env probes.Env) error {
	spec, err := loadTcp()
	if err != nil {
		return fmt.Errorf("load tcp spec: %w", err)
	}
	maxEntries := p.cfg.MaxEntries
	if maxEntries == 0 {
		maxEntries = set.MaxEntries
	}
	// One extra slot holds the overflow key, which must always fit.
	spec.Maps[set.Map].MaxEntries = maxEntries + 1
	// tcp_retransmit_skb has its err argument (sk, skb, err) only on
	// recent kernels; before, it fired only for err == 0 (sk, skb).
	if err := probes.UseProgramVariant(spec, "tcp_retransmit_skb", "tcp_retransmit_skb_noerr", "tcp_retransmit_skb", 3); err != nil {
		return fmt.Errorf("tcp probe: %w", err)
	}
	opts, err := env.CollectionOptions(spec)
	if err != nil {
		return err
	}
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("load kernel BTF: %w", err)
	}
	// The claim program is left out where the kernel lacks its tracepoint.
	p.claim = hasTracepoint(kernel, claimTracepoint)
	if !p.claim {
		delete(spec.Programs, claimTracepoint)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, *opts)
	if err != nil {
		return fmt.Errorf("load tcp programs: %w", err)
	}
	err = coll.Assign(&p.objs)
	if err == nil && p.claim {
		p.claimProg = coll.DetachProgram(claimTracepoint)
	}
	coll.Close() // what was assigned or detached stays open
	if err != nil {
		p.Close()
		return fmt.Errorf("load tcp programs: %w", err)
	}
	if err := p.initSet(env); err != nil {
		p.Close()
		return err
	}
	progs := []*ebpf.Program{p.objs.SetState, p.objs.Retransmit, p.objs.RetransSyn, p.objs.Probe, p.objs.SendReset, p.objs.RecvReset}
	if p.claimProg != nil {
		progs = append(progs, p.claimProg)
	}
	if err := probes.AttachTracing(&p.links, progs...); err != nil {
		p.Close()
		return err
	}
	return nil
}

// initSet creates the overflow key and the reader, emitter and evictor of
// the tcp set, and the data-point attributes of each direction.
func (p *Probe) initSet(env probes.Env) error {
	var err error
	if p.emit, err = probes.NewSetEmitter(set, env.Breakdown); err != nil {
		return err
	}
	p.overflow = tcpTcpConnKey{Tgid: uint32(set.OverflowKey["tgid"]), Direction: uint32(set.OverflowKey["direction"])}
	if err := p.objs.Stats.Update(p.overflow, make([]tcpTcpConnValue, env.Topology.PossibleCPUs), ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("create %s overflow key: %w", set.Map, err)
	}
	if p.reader, err = probes.NewSetReader[tcpTcpConnKey](p.objs.Stats, set, env); err != nil {
		return err
	}
	if p.final, err = probes.NewFinalEvictor[tcpTcpConnKey, tcpTcpConnValue](p.objs.Stats, set.ValueWords, env.Topology.PossibleCPUs, &p.overflow); err != nil {
		return err
	}
	p.attrs = [3]attribute.Set{
		dirUnknown:  *attribute.EmptySet(),
		dirOutbound: attribute.NewSet(entity.AttrTelagentTCPConnectionDirection.String("outbound")),
		dirInbound:  attribute.NewSet(entity.AttrTelagentTCPConnectionDirection.String("inbound")),
	}
	p.foldBuf = make([]uint64, env.Topology.PossibleCPUs)
	return nil
}

// Collect implements probes.Probe: one batch read of the map. Each key is
// its owner's points; tgid 0 (no owner known) and the overflow key go on
// the host. Keys of processes found gone are evicted after export.
func (p *Probe) Collect(_ context.Context, c *probes.Collection) error {
	p.final.Reset()
	err := p.reader.Each(func(i int, k tcpTcpConnKey) error {
		switch {
		case k == p.overflow:
			probes.EmitKey(p.emit, c.Metrics, c.Processes.Host(), probes.OverflowAttrs, p.reader, i)
			return nil
		case k.Direction >= uint32(len(p.attrs)):
			return fmt.Errorf("%s: key %+v has a direction out of its bound", set.Map, k)
		case k.Tgid == 0:
			probes.EmitKey(p.emit, c.Metrics, c.Processes.Host(), p.attrs[k.Direction], p.reader, i)
			return nil
		}
		probes.EmitKey(p.emit, c.Metrics, c.Processes.Process(k.Tgid), p.attrs[k.Direction], p.reader, i)
		if c.Processes.Gone(k.Tgid) {
			p.final.Add(k, p.reader.Value(i))
		}
		return nil
	})
	p.keys = p.reader.Len()
	return err
}

// Evict implements probes.Probe.
func (p *Probe) Evict() error {
	n, err := p.final.Evict()
	p.evicted += uint64(n)
	if err != nil {
		return fmt.Errorf("evict exited processes from %s: %w", set.Map, err)
	}
	return nil
}

// Stats implements probes.Probe.
func (p *Probe) Stats() probes.Stats {
	st := probes.Stats{Attach: "tp_btf"}
	if p.reader == nil {
		return st
	}
	ms := probes.MetricSetStats{Name: set.Name, Keys: p.keys, Evicted: p.evicted}
	if p.objs.Folds.Lookup(uint32(0), p.foldBuf) == nil {
		for _, f := range p.foldBuf {
			ms.OverflowFolds += f
		}
	}
	st.MetricSets = []probes.MetricSetStats{ms}
	return st
}

// Claims reports whether sockets opened before the probe are claimed at
// their first sendmsg (the kernel has tcp:tcp_sendmsg_locked).
func (p *Probe) Claims() bool { return p.claim }

// Close implements probes.Probe: detach first so nothing writes into maps
// being freed, then release every kernel object. Socket storage is freed
// with the map (and with each socket).
func (p *Probe) Close() error {
	errs := []error{probes.CloseLinks(p.links)}
	p.links = nil
	if p.reader != nil {
		errs = append(errs, p.reader.Close())
		p.reader = nil
	}
	errs = append(errs, p.objs.SetState.Close(), p.objs.Retransmit.Close(), p.objs.RetransSyn.Close(),
		p.objs.Probe.Close(), p.objs.SendReset.Close(), p.objs.RecvReset.Close(), p.claimProg.Close(),
		p.objs.Stats.Close(), p.objs.Folds.Close(), p.objs.Socks.Close())
	p.objs, p.claimProg = objects{}, nil
	return errors.Join(errs...)
}
