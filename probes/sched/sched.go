// Package sched is the sched probe: per process, context switches by type,
// on-CPU time, a log2 histogram of run-queue waits and migrations, from the
// kernel's own per-thread accounting read at every sched_switch, kept in
// one per-CPU multivariate map keyed by process.
package sched

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type sched_key -type sched_entry_key -type sched_value sched ../../bpf/sched.bpf.c -- -I../../bpf/include

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// ProbeName is the probe's name on the command line.
const ProbeName = "sched"

var set = entity.MetricSetSched

// Config tunes the probe.
type Config struct {
	// MaxEntries bounds the processes kept; further processes go into the
	// overflow series. 0 means the schema's default.
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
	stats  *probes.ProcessSet[schedSchedKey, schedSchedEntryKey, schedSchedValue]
}

// objects is what the tp_btf attach needs; loading only these leaves the
// raw_tp variant unverified.
type objects struct {
	Switch *ebpf.Program `ebpf:"sched_switch"`
}

// rawObjects is the raw_tp fallback.
type rawObjects struct {
	Switch *ebpf.Program `ebpf:"raw_sched_switch"`
}

// hook is the one tracepoint: every number is a delta of the kernel's own
// accounting of the thread switching out (see sched.bpf.c).
const hook = "sched_switch"

// New returns the probe; nothing is loaded until Start.
func New(cfg Config) *Probe { return &Probe{cfg: cfg} }

// Info implements probes.Probe.
func (p *Probe) Info() probes.Info {
	return probes.Info{
		Name:     ProbeName,
		Measures: "scheduling per process: context switches by type, on-CPU time, run-queue wait histogram, migrations",
		Hooks:    "tracepoint sched:sched_switch (tp_btf, raw_tp fallback)",
		Requires: "BTF (/sys/kernel/btf/vmlinux), BPF task storage (Linux 5.11+), tracing programs",
		Metrics: []string{
			entity.MetricProcessContextSwitches.Name, entity.MetricTelagentProcessOnCPUTime.Name,
			entity.MetricTelagentSchedRunqueueDuration.Name, entity.MetricTelagentSchedMigrations.Name,
		},
		Sets: []entity.MetricSetDesc{set},
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
	if err := features.HaveMapType(ebpf.PerCPUHash); err != nil {
		return fmt.Errorf("per-CPU hash maps unavailable: %w", err)
	}
	// The kernel's BTF names the tracepoints it has.
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("read kernel BTF: %w", err)
	}
	var typ *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+hook, &typ); err != nil {
		return fmt.Errorf("kernel has no %s tracepoint: %w", hook, err)
	}
	return nil
}

// hasSchedInfo says whether the kernel keeps the per-thread run-queue
// accounting the waits are read from (struct sched_info's pcount, present
// with CONFIG_SCHED_INFO).
func hasSchedInfo() (bool, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false, fmt.Errorf("read kernel BTF: %w", err)
	}
	var info *btf.Struct
	if err := spec.TypeByName("sched_info", &info); err != nil {
		return false, nil
	}
	for _, m := range info.Members {
		if m.Name == "pcount" {
			return true, nil
		}
	}
	return false, nil
}

// Start implements probes.Probe: create the metric set's storage, load, attach.
func (p *Probe) Start(ctx context.Context, env probes.Env) error {
	spec, err := loadSched()
	if err != nil {
		return fmt.Errorf("load sched spec: %w", err)
	}
	// The key is the process itself: its points carry no attributes of
	// their own beyond the constant context-switch type.
	none := *attribute.EmptySet()
	p.stats, err = probes.NewProcessSet[schedSchedKey, schedSchedEntryKey, schedSchedValue](spec, set, env,
		p.cfg.MaxEntries, probes.SetKeys[schedSchedKey]{
			Owner: func(k schedSchedKey) (uint32, bool) { return k.Tgid, true },
			Attrs: func(schedSchedKey) attribute.Set { return none },
		})
	if err != nil {
		return err
	}
	opts, err := env.CollectionOptions(spec, p.stats)
	if err != nil {
		p.Close()
		return err
	}
	// Threads started after this instant are counted from birth, exactly
	// like the kernel's own counters; older ones from their first switch.
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	v, ok := spec.Variables["loaded_at_ns"]
	if !ok {
		return errors.New("sched object lacks loaded_at_ns")
	}
	if err := v.Set(uint64(ts.Nano())); err != nil {
		p.Close()
		return fmt.Errorf("set loaded_at_ns: %w", err)
	}
	if err := p.loadAndAttach(spec, opts); err != nil {
		p.Close()
		return err
	}
	if ok, err := hasSchedInfo(); (err != nil || !ok) && env.Log != nil {
		env.Log.Warn("sched: the kernel keeps no per-thread run-queue accounting (built without CONFIG_SCHED_INFO, i.e. neither TASK_DELAY_ACCT nor SCHEDSTATS): "+
			entity.MetricTelagentSchedRunqueueDuration.Name+" stays empty", "err", err)
	}
	return nil
}

// loadAndAttach prefers tp_btf (typed arguments) and falls back to raw_tp
// where tp_btf does not load or attach.
func (p *Probe) loadAndAttach(spec *ebpf.CollectionSpec, opts *ebpf.CollectionOptions) (err error) {
	var raw rawObjects
	p.attach, err = probes.LoadAndAttach("sched", spec, opts, &p.links, p.cfg.Attach,
		probes.Variant{Name: "tp_btf", Objects: &p.objs, Attach: func(links *[]link.Link) error {
			return probes.AttachTracing(links, p.objs.Switch)
		}},
		probes.Variant{Name: "raw_tp", Objects: &raw, Attach: func(links *[]link.Link) error {
			if err := probes.AttachRawTracepoints(links, []string{hook}, raw.Switch); err != nil {
				return err
			}
			p.objs = objects(raw)
			return nil
		}})
	return err
}

// Collect implements probes.Probe: one batch read of the map, every key
// turned into its process's points.
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
// being freed, then release every kernel object. The task storage was
// never assigned to Go: it is held by the programs only and goes with them.
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
	errs = append(errs, p.objs.Switch.Close())
	p.objs = objects{}
	return errors.Join(errs...)
}
