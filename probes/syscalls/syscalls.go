// Package syscalls is the syscalls probe: per (process, system call) calls,
// errors and a log2 duration histogram from the sys_enter/sys_exit
// tracepoints, kept in one per-CPU multivariate map.
package syscalls

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type syscalls_key -type syscalls_entry_key -type syscalls_value syscalls ../../bpf/syscalls.bpf.c -- -I../../bpf/include

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// ProbeName is the probe's name on the command line.
const ProbeName = "syscalls"

var set = entity.MetricSetSyscalls

// Config tunes the probe.
type Config struct {
	// MaxEntries bounds the (process, syscall) tuples kept; further tuples
	// go into the overflow series. 0 means the schema's default.
	MaxEntries uint32
	// Attach forces an attach mode, "tp_btf" or "raw_tp"; empty tries
	// tp_btf and falls back to raw_tp.
	Attach string
}

// Probe implements probes.Probe.
type Probe struct {
	cfg    Config
	objs   objects
	links  []link.Link
	attach string
	stats  *probes.ProcessSet[syscallsSyscallsKey, syscallsSyscallsEntryKey, syscallsSyscallsValue]
	names  []attribute.Set // data-point attributes per syscall number, built once
}

// objects is the subset of the bpf2go collection the tp_btf attach needs;
// loading only these leaves the raw_tp variants unverified and unloaded.
type objects struct {
	Enter *ebpf.Program `ebpf:"sys_enter"`
	Exit  *ebpf.Program `ebpf:"sys_exit"`
}

// rawObjects is the same for the raw_tp fallback.
type rawObjects struct {
	Enter *ebpf.Program `ebpf:"raw_sys_enter"`
	Exit  *ebpf.Program `ebpf:"raw_sys_exit"`
}

// nrBoundOf is the declared bound of the syscall-number key field: numbers
// at or above nrBound-1 were folded by the BPF side into nrBound-1.
func nrBoundOf(s entity.MetricSetDesc) (uint32, error) {
	for _, k := range s.Key {
		if k.Attribute == entity.AttrTelagentSyscallName && k.Bound > 0 {
			return k.Bound, nil
		}
	}
	return 0, fmt.Errorf("schema metric set %s declares no bounded %s key field", s.Name, entity.AttrTelagentSyscallName)
}

// syscallName is the exported name of a key's number; the fold bucket is
// "_OTHER", semconv's spelling of "none of the known values".
func syscallName(nr, bound uint32) string {
	if nr >= bound-1 {
		return "_OTHER"
	}
	return Name(nr)
}

// New returns the probe; nothing is loaded until Start.
func New(cfg Config) *Probe { return &Probe{cfg: cfg} }

// Info implements probes.Probe.
func (p *Probe) Info() probes.Info {
	return probes.Info{
		Name:     ProbeName,
		Measures: "system calls per process and syscall: calls, errors, duration histogram",
		Hooks:    "tracepoints raw_syscalls:sys_enter and sys_exit (tp_btf, raw_tp fallback)",
		Requires: "BTF (/sys/kernel/btf/vmlinux), BPF task storage (Linux 5.11+), tracing programs",
		Metrics:  []string{entity.MetricTelagentSyscallDuration.Name, entity.MetricTelagentSyscallErrors.Name},
		Sets:     []entity.MetricSetDesc{set},
	}
}

// Supported implements probes.Probe.
func (p *Probe) Supported() error {
	if err := probes.RequireBTF(); err != nil {
		return err
	}
	if err := features.HaveMapType(ebpf.TaskStorage); err != nil {
		return fmt.Errorf("BPF task storage unavailable (needs Linux 5.11+): %w", err)
	}
	return probes.RequireStorage()
}

// Start implements probes.Probe: create the metric set's storage, load, attach.
func (p *Probe) Start(ctx context.Context, env probes.Env) error {
	bound, err := nrBoundOf(set)
	if err != nil {
		return err
	}
	spec, err := loadSyscalls()
	if err != nil {
		return fmt.Errorf("load syscalls spec: %w", err)
	}
	p.names = make([]attribute.Set, bound)
	for nr := range p.names {
		p.names[nr] = attribute.NewSet(entity.AttrTelagentSyscallName.String(syscallName(uint32(nr), bound)))
	}
	p.stats, err = probes.NewProcessSet[syscallsSyscallsKey, syscallsSyscallsEntryKey, syscallsSyscallsValue](spec, set, env,
		p.cfg.MaxEntries, probes.SetKeys[syscallsSyscallsKey]{
			Owner: func(k syscallsSyscallsKey) (uint32, bool) { return k.Tgid, true },
			Attrs: func(k syscallsSyscallsKey) attribute.Set { return p.names[min(k.Nr, bound-1)] },
		})
	if err != nil {
		return err
	}
	opts, err := env.CollectionOptions(spec, p.stats)
	if err != nil {
		p.Close()
		return err
	}
	if err := p.loadAndAttach(spec, opts); err != nil {
		p.Close()
		return err
	}
	return nil
}

// loadAndAttach prefers tp_btf (typed arguments, cheaper dispatch) and falls
// back to raw_tp on kernels where tp_btf does not load or attach.
func (p *Probe) loadAndAttach(spec *ebpf.CollectionSpec, opts *ebpf.CollectionOptions) (err error) {
	var raw rawObjects
	p.attach, err = probes.LoadAndAttach("syscalls", spec, opts, &p.links, p.cfg.Attach,
		probes.Variant{Name: "tp_btf", Objects: &p.objs, Attach: func(links *[]link.Link) error {
			return probes.AttachTracing(links, p.objs.Enter, p.objs.Exit)
		}},
		probes.Variant{Name: "raw_tp", Objects: &raw, Attach: func(links *[]link.Link) error {
			if err := probes.AttachRawTracepoints(links, []string{"sys_enter", "sys_exit"}, raw.Enter, raw.Exit); err != nil {
				return err
			}
			p.objs = objects(raw)
			return nil
		}})
	return err
}

// Collect implements probes.Probe: one batch read of the map, every key
// turned into one histogram and one counter point of its process.
func (p *Probe) Collect(_ context.Context, c *probes.Collection) error {
	return p.stats.Collect(c)
}

// Evict implements probes.Probe.
func (p *Probe) Evict() error { return p.stats.Evict() }

// Stats implements probes.Probe.
func (p *Probe) Stats() probes.Stats {
	st := probes.Stats{Attach: p.attach}
	if p.stats != nil {
		st.MetricSets = []probes.MetricSetStats{p.stats.Stats()}
	}
	return st
}

// Close implements probes.Probe: detach first so nothing writes into maps
// being freed, then release every kernel object.
func (p *Probe) Close() error {
	errs := []error{p.closeObjects(), p.stats.Close()}
	p.stats = nil
	return errors.Join(errs...)
}

// closeObjects detaches and closes what was loaded, keeping the storage
// (a failed tp_btf attempt retries with raw_tp on the same storage).
func (p *Probe) closeObjects() error {
	errs := []error{probes.CloseLinks(p.links)}
	p.links = nil
	errs = append(errs, p.objs.Enter.Close(), p.objs.Exit.Close())
	p.objs = objects{}
	return errors.Join(errs...)
}
