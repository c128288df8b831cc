// Package tcp is the tcp probe: per process owning a socket, and per
// connection direction, TCP retransmits, smoothed RTT, connections opened,
// failed and closed with their lifetime, and resets, from the tcp and sock
// tracepoints (tp_btf). See bpf/tcp.bpf.c for how sockets are attributed to
// processes.
package tcp

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type tcp_conn_key -type tcp_conn_entry_key -type tcp_conn_value tcp ../../bpf/tcp.bpf.c -- -I../../bpf/include

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/attribute"

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

	stats *probes.ProcessSet[tcpTcpConnKey, tcpTcpConnEntryKey, tcpTcpConnValue]
	attrs [3]attribute.Set // per direction value
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
		Sets: []entity.MetricSetDesc{set},
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

// Start implements probes.Probe: create the metric set's storage, load, attach.
func (p *Probe) Start(ctx context.Context, env probes.Env) error {
	spec, err := loadTcp()
	if err != nil {
		return fmt.Errorf("load tcp spec: %w", err)
	}
	// tcp_retransmit_skb has its err argument (sk, skb, err) only on
	// recent kernels; before, it fired only for err == 0 (sk, skb).
	if err := probes.UseProgramVariant(spec, "tcp_retransmit_skb", "tcp_retransmit_skb_noerr", "tcp_retransmit_skb", 3); err != nil {
		return fmt.Errorf("tcp probe: %w", err)
	}
	if err := p.initSet(spec, env); err != nil {
		return err
	}
	opts, err := env.CollectionOptions(spec, p.stats)
	if err != nil {
		p.Close()
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

// initSet creates the tcp set's storage and the data-point attributes of
// each direction: every tuple is its owner's, tgid 0 (no owner known) the
// host's.
func (p *Probe) initSet(spec *ebpf.CollectionSpec, env probes.Env) error {
	p.attrs = [3]attribute.Set{
		dirUnknown:  *attribute.EmptySet(),
		dirOutbound: attribute.NewSet(entity.AttrTelagentTCPConnectionDirection.String("outbound")),
		dirInbound:  attribute.NewSet(entity.AttrTelagentTCPConnectionDirection.String("inbound")),
	}
	var err error
	p.stats, err = probes.NewProcessSet[tcpTcpConnKey, tcpTcpConnEntryKey, tcpTcpConnValue](spec, set, env, p.cfg.MaxEntries,
		probes.SetKeys[tcpTcpConnKey]{
			Owner: func(k tcpTcpConnKey) (uint32, bool) { return k.Tgid, k.Tgid != 0 },
			Attrs: func(k tcpTcpConnKey) attribute.Set { return p.attrs[min(k.Direction, uint32(len(p.attrs)-1))] },
		})
	return err
}

// Collect implements probes.Probe: the set drained and every total turned
// into its owner's points. Totals of processes found gone are forgotten
// after export.
func (p *Probe) Collect(_ context.Context, c *probes.Collection) error { return p.stats.Collect(c) }

// Evict implements probes.Probe.
func (p *Probe) Evict() error { return p.stats.Evict() }

// Stats implements probes.Probe.
func (p *Probe) Stats() probes.Stats {
	st := probes.Stats{Attach: "tp_btf"}
	if p.stats != nil {
		st.MetricSets = []probes.MetricSetStats{p.stats.Stats()}
	}
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
	errs = append(errs, p.stats.Close())
	p.stats = nil
	errs = append(errs, p.objs.SetState.Close(), p.objs.Retransmit.Close(), p.objs.RetransSyn.Close(),
		p.objs.Probe.Close(), p.objs.SendReset.Close(), p.objs.RecvReset.Close(), p.claimProg.Close(),
		p.objs.Socks.Close())
	p.objs, p.claimProg = objects{}, nil
	return errors.Join(errs...)
}
