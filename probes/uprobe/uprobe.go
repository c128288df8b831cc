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
	"strconv"
	"strings"

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
	// Attach forces an attach mode, AttachMulti or AttachPerEvent; empty
	// chooses at load time: AttachMulti where the kernel has it.
	Attach string
}

// Attach modes.
const (
	// AttachMulti: one uprobe_multi link (Linux 6.6+) per binary and
	// program, every site of that binary in it. Its detach waits for one
	// RCU grace period for all the sites together.
	AttachMulti = "uprobe_multi"
	// AttachPerEvent: one uprobe perf event and perf link per site, the
	// fallback before Linux 6.6. Each detach waits for its own grace
	// periods, ~100 ms a site on Linux 6.18, and the kernel serialises
	// them (closing in parallel saved 15 %): 256 functions take ~50 s.
	AttachPerEvent = "uprobe"
)

// Probe implements probes.Probe.
type Probe struct {
	cfg   Config
	objs  objects
	links []link.Link
	stats *probes.ProcessSet[uprobeUprobeKey, uprobeUprobeEntryKey, uprobeUprobeValue]
	names []attribute.Set // data-point attributes per function id, built once
	mode  string          // AttachMulti or AttachPerEvent, once loaded
	why   string          // why AttachPerEvent was chosen when not forced
	sites int             // probe sites attached
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

// Start implements probes.Probe: create the metric set's storage, load, attach every
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
	p.stats, err = probes.NewProcessSet[uprobeUprobeKey, uprobeUprobeEntryKey, uprobeUprobeValue](spec, set, env,
		p.cfg.MaxEntries, probes.SetKeys[uprobeUprobeKey]{
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
	if err := p.chooseMode(); err != nil {
		p.Close()
		return err
	}
	if p.mode == AttachMulti {
		// The kernel picks bpf_get_attach_cookie's implementation from the
		// program's expected attach type at load: a program loaded for
		// uprobe_multi reads the multi link's cookies and attaches to
		// nothing else, so the mode is chosen before loading.
		for _, ps := range spec.Programs {
			ps.AttachType = ebpf.AttachTraceUprobeMulti
		}
	}
	if err := spec.LoadAndAssign(&p.objs, opts); err != nil {
		p.Close()
		return fmt.Errorf("load uprobe programs (%s): %w", p.mode, err)
	}
	if p.mode == AttachMulti {
		err = p.attachMulti()
	} else {
		err = p.attachPerEvent()
	}
	if err != nil {
		p.Close()
		return err
	}
	if p.why != "" && env.Log != nil {
		env.Log.Info("uprobe: one perf event per site; detaching takes longer with many sites",
			"probe", ProbeName, "sites", p.sites, "reason", p.why)
	}
	return nil
}

// chooseMode sets the attach mode: the forced one, else uprobe_multi
// where the kernel has it (one link per binary and program: attach and
// detach cost one call and one grace period for every site), else one
// perf event per site.
func (p *Probe) chooseMode() error {
	switch p.cfg.Attach {
	case AttachMulti:
		if err := features.HaveBPFLinkUprobeMulti(); err != nil {
			return fmt.Errorf("uprobe_multi links unavailable (needs Linux 6.6+): %w", err)
		}
		p.mode = AttachMulti
	case AttachPerEvent:
		p.mode = AttachPerEvent
	case "":
		if err := features.HaveBPFLinkUprobeMulti(); err != nil {
			p.mode, p.why = AttachPerEvent, "no uprobe_multi links (Linux 6.6+): "+err.Error()
		} else {
			p.mode = AttachMulti
		}
	default:
		return fmt.Errorf("uprobe attach mode %q, want %q, %q or empty", p.cfg.Attach, AttachMulti, AttachPerEvent)
	}
	return nil
}

// site is one place a program runs: a file offset of fn's binary.
type site struct {
	off  uint64
	prog *ebpf.Program
	ret  bool // a uretprobe
}

// sites are fn's probe sites: native code an entry uprobe and a uretprobe
// per entry, Go an entry uprobe per entry and a uprobe per RET.
func (p *Probe) sitesOf(fn Function) []site {
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
	return sites
}

// attachPerEvent places every function's sites with one uprobe perf event
// each, its id as the BPF cookie.
func (p *Probe) attachPerEvent() error {
	for id, fn := range p.cfg.Functions {
		ex, err := link.OpenExecutable(fn.Path)
		if err != nil {
			return fmt.Errorf("--uprobe %q: %w", fn.Spec, err)
		}
		for _, s := range p.sitesOf(fn) {
			opts := &link.UprobeOptions{Address: s.off, Cookie: uint64(id)} // every process: the in-kernel filter drops non-targets
			var l link.Link
			if s.ret {
				l, err = ex.Uretprobe(fn.Name, s.prog, opts)
			} else {
				l, err = ex.Uprobe(fn.Name, s.prog, opts)
			}
			if err != nil {
				return fmt.Errorf("--uprobe %q: attach %s at %s+%#x: %w", fn.Spec, s.prog, fn.Path, s.off, err)
			}
			p.links = append(p.links, l)
			p.sites++
		}
	}
	return nil
}

// attachMulti places every site with one uprobe_multi link per binary
// and program, each site's cookie its function's id. A link that cannot
// be made names the functions it held.
func (p *Probe) attachMulti() error {
	type group struct {
		path           string
		prog           *ebpf.Program
		ret            bool
		addrs, cookies []uint64
		specs          []string
	}
	var groups []*group
	index := map[string]*group{}
	for id, fn := range p.cfg.Functions {
		for _, s := range p.sitesOf(fn) {
			k := fmt.Sprintf("%s\x00%p\x00%t", fn.Path, s.prog, s.ret)
			g := index[k]
			if g == nil {
				g = &group{path: fn.Path, prog: s.prog, ret: s.ret}
				index[k] = g
				groups = append(groups, g)
			}
			g.addrs = append(g.addrs, s.off)
			g.cookies = append(g.cookies, uint64(id))
			if len(g.specs) == 0 || g.specs[len(g.specs)-1] != fn.Spec {
				g.specs = append(g.specs, fn.Spec)
			}
		}
	}
	for _, g := range groups {
		ex, err := link.OpenExecutable(g.path)
		if err != nil {
			return fmt.Errorf("--uprobe %s: %w", quoteList(g.specs), err)
		}
		// Every process: the in-kernel filter drops non-targets.
		opts := &link.UprobeMultiOptions{Addresses: g.addrs, Cookies: g.cookies}
		var l link.Link
		if g.ret {
			l, err = ex.UretprobeMulti(nil, g.prog, opts)
		} else {
			l, err = ex.UprobeMulti(nil, g.prog, opts)
		}
		if err != nil {
			return fmt.Errorf("--uprobe %s: attach %s at %d sites of %s with uprobe_multi: %w", quoteList(g.specs), g.prog, len(g.addrs), g.path, err)
		}
		p.links = append(p.links, l)
		p.sites += len(g.addrs)
	}
	return nil
}

// quoteList is specs quoted, the first three and how many more.
func quoteList(specs []string) string {
	var b strings.Builder
	for i, s := range specs {
		if i == 3 {
			fmt.Fprintf(&b, " and %d more", len(specs)-3)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
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
		Attach:     p.attachDesc(),
		MetricSets: []probes.MetricSetStats{p.stats.Stats()},
	}
}

// attachDesc is the attach mode and its size for the "attached" line:
// "uprobe_multi x4 (512 sites)", or "uprobe x512" per perf event.
func (p *Probe) attachDesc() string {
	if p.mode == AttachMulti {
		return fmt.Sprintf("%s x%d (%d sites)", p.mode, len(p.links), p.sites)
	}
	return fmt.Sprintf("%s x%d", p.mode, len(p.links))
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
