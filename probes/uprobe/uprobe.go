// Package uprobe is the uprobe probe: calls and a log2 duration histogram of
// user-space functions chosen with --uprobe BINARY:SYMBOL, per process and
// function, kept in one per-CPU multivariate map.
//
// Native code is timed with a uprobe at the entry and a uretprobe. Go
// functions never get a uretprobe (it replaces the return address on the
// goroutine stack, which breaks when the runtime copies a growing stack):
// they get a uprobe at the entry and one at every RET instruction, found by
// disassembling the function, and calls are paired per goroutine (the g
// pointer in R14, Go >= 1.17 on x86-64), so a goroutine that blocks inside
// the function and resumes on another thread is still paired right. See
// bpf/uprobe.bpf.c for the pairing by stack depth.
package uprobe

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type uprobe_key -type uprobe_entry_key -type uprobe_value uprobe ../../bpf/uprobe.bpf.c -- -I../../bpf/include

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// ProbeName is the probe's name on the command line.
const ProbeName = "uprobe"

var set = entity.MetricSetUprobe

// Config tunes the probe.
type Config struct {
	// Functions are the resolved --uprobe specs (Resolve); function i has
	// id i in the metric set. None: the probe starts idle.
	Functions []Function
	// MaxEntries bounds the (process, function) tuples kept; 0 means the
	// schema's default.
	MaxEntries uint32
}

// Probe implements probes.Probe.
type Probe struct {
	cfg   Config
	objs  objects
	links []link.Link
	stats *probes.ProcessSet[uprobeUprobeKey, uprobeUprobeEntryKey, uprobeUprobeValue]
	names []attribute.Set // data-point attributes per function id, built once
	count int             // attachments made
}

// objects is the probe's part of the bpf2go collection: the shared maps
// (targets, processes) belong to the agent and are not closed here.
type objects struct {
	NativeEntry  *ebpf.Program `ebpf:"native_entry"`
	NativeReturn *ebpf.Program `ebpf:"native_return"`
	GoEntry      *ebpf.Program `ebpf:"go_entry"`
	GoReturn     *ebpf.Program `ebpf:"go_return"`
	ThreadCalls  *ebpf.Map     `ebpf:"thread_calls"`
	GoCalls      *ebpf.Map     `ebpf:"go_calls"`
}

// New returns the probe; nothing is loaded until Start.
func New(cfg Config) *Probe { return &Probe{cfg: cfg} }

// Info implements probes.Probe.
func (p *Probe) Info() probes.Info {
	return probes.Info{
		Name:     ProbeName,
		Measures: "calls and duration of user-space functions given with --uprobe BINARY:SYMBOL, per process",
		Hooks:    "uprobe at each function's entry; uretprobe (native code) or uprobes at every RET (Go)",
		Requires: "x86-64, uprobe perf events, BPF cookies and perf links (Linux 5.15+), BPF task storage (5.11+)",
		Metrics:  []string{entity.MetricTelagentFunctionCalls.Name, entity.MetricTelagentFunctionDuration.Name},
		Sets:     []entity.MetricSetDesc{set},
	}
}

// Supported implements probes.Probe.
func (p *Probe) Supported() error {
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("supported on x86-64 only (the BPF side reads x86-64 registers), this is %s", runtime.GOARCH)
	}
	if err := probes.RequireBTF(); err != nil {
		return err
	}
	if _, err := os.Stat("/sys/bus/event_source/devices/uprobe/type"); err != nil {
		return errors.New("no uprobe PMU (/sys/bus/event_source/devices/uprobe): needs CONFIG_UPROBE_EVENTS")
	}
	if err := features.HaveMapType(ebpf.TaskStorage); err != nil {
		return fmt.Errorf("BPF task storage unavailable (needs Linux 5.11+): %w", err)
	}
	if err := features.HaveProgramHelper(ebpf.Kprobe, asm.FnGetAttachCookie); err != nil {
		return fmt.Errorf("BPF cookies for uprobes unavailable (needs Linux 5.15+): %w", err)
	}
	return nil
}

// Start implements probes.Probe: load, create the overflow key, attach every
// function. Without functions it does nothing.
func (p *Probe) Start(ctx context.Context, env probes.Env) error {
	if len(p.cfg.Functions) == 0 {
		return nil
	}
	if len(p.cfg.Functions) > MaxFunctions {
		return fmt.Errorf("%d functions, at most %d", len(p.cfg.Functions), MaxFunctions)
	}
	spec, err := loadUprobe()
	if err != nil {
		return fmt.Errorf("load uprobe spec: %w", err)
	}
	p.names = make([]attribute.Set, MaxFunctions)
	for i := range p.names {
		name := "_OTHER"
		if i < len(p.cfg.Functions) {
			name = p.cfg.Functions[i].Name
		}
		p.names[i] = attribute.NewSet(entity.AttrCodeFunctionName.String(name))
	}
	overflow := uprobeUprobeKey{Tgid: uint32(set.OverflowKey["tgid"]), Fn: uint32(set.OverflowKey["fn"])}
	p.stats, err = probes.NewProcessSet[uprobeUprobeKey, uprobeUprobeEntryKey, uprobeUprobeValue](spec, set, env,
		p.cfg.MaxEntries, overflow, probes.SetKeys[uprobeUprobeKey]{
			Owner: func(k uprobeUprobeKey) (uint32, bool) { return k.Tgid, true },
			Attrs: func(k uprobeUprobeKey) attribute.Set { return p.names[min(int(k.Fn), len(p.names)-1)] },
		})
	if err != nil {
		return err
	}
	opts, err := env.CollectionOptions(spec, p.stats)
	if err != nil {
		p.Close()
		return err
	}
	if err := spec.LoadAndAssign(&p.objs, opts); err != nil {
		p.Close()
		return fmt.Errorf("load uprobe programs: %w", err)
	}
	for id, fn := range p.cfg.Functions {
		if err := p.attach(uint64(id), fn); err != nil {
			p.Close()
			return fmt.Errorf("--uprobe %q: %w", fn.Spec, err)
		}
	}
	return nil
}

// attach places fn's probes, with its id as the BPF cookie: native code an
// entry uprobe and a uretprobe per entry, Go an entry uprobe per entry and
// a uprobe per RET.
func (p *Probe) attach(id uint64, fn Function) error {
	ex, err := link.OpenExecutable(fn.Path)
	if err != nil {
		return err
	}
	type site struct {
		off  uint64
		prog *ebpf.Program
		ret  bool
	}
	var sites []site
	for _, off := range fn.Entries {
		if fn.Go {
			sites = append(sites, site{off, p.objs.GoEntry, false})
		} else {
			sites = append(sites, site{off, p.objs.NativeEntry, false}, site{off, p.objs.NativeReturn, true})
		}
	}
	for _, off := range fn.Returns {
		sites = append(sites, site{off, p.objs.GoReturn, false})
	}
	for _, s := range sites {
		opts := &link.UprobeOptions{Address: s.off, Cookie: id} // every process: the in-kernel filter drops non-targets
		var l link.Link
		if s.ret {
			l, err = ex.Uretprobe(fn.Name, s.prog, opts)
		} else {
			l, err = ex.Uprobe(fn.Name, s.prog, opts)
		}
		if err != nil {
			return fmt.Errorf("attach %s at %s+%#x: %w", s.prog, fn.Path, s.off, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

// Collect implements probes.Probe.
func (p *Probe) Collect(_ context.Context, c *probes.Collection) error {
	if p.stats == nil {
		return nil
	}
	return p.stats.Collect(c)
}

// Evict implements probes.Probe.
func (p *Probe) Evict() error {
	if p.stats == nil {
		return nil
	}
	return p.stats.Evict()
}

// Stats implements probes.Probe.
func (p *Probe) Stats() probes.Stats {
	if p.stats == nil {
		return probes.Stats{Attach: "idle"} // no --uprobe
	}
	return probes.Stats{
		Attach:     fmt.Sprintf("uprobe x%d", len(p.links)),
		MetricSets: []probes.MetricSetStats{p.stats.Stats()},
	}
}

// Close implements probes.Probe: detach first so nothing writes into maps
// being freed, then release every kernel object.
func (p *Probe) Close() error {
	errs := []error{probes.CloseLinks(p.links)}
	p.links = nil
	o := p.objs
	errs = append(errs, p.stats.Close(), o.NativeEntry.Close(), o.NativeReturn.Close(), o.GoEntry.Close(), o.GoReturn.Close(),
		o.ThreadCalls.Close(), o.GoCalls.Close())
	p.objs, p.stats = objects{}, nil
	return errors.Join(errs...)
}
