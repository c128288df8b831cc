// Package memory is the memory probe: per-process minor and major page
// faults, counted on the kernel's own software perf events (so they are the
// numbers /proc reports), and OOM kills per victim cgroup from the
// oom:mark_victim tracepoint.
package memory

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type memory_key -type memory_entry_key -type memory_value -type memory_oom_key -type memory_oom_entry_key -type memory_oom_value memory ../../bpf/memory.bpf.c -- -I../../bpf/include

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// ProbeName is the probe's name on the command line.
const ProbeName = "memory"

var (
	set    = entity.MetricSetMemory
	oomSet = entity.MetricSetMemoryOOM
)

// onlineCPUsPath lists the CPUs that can run tasks now (cpulist format).
const onlineCPUsPath = "/sys/devices/system/cpu/online"

// Config tunes the probe.
type Config struct {
	// MaxEntries bounds the processes kept in the memory metric set;
	// further processes go into the overflow series. 0 means the schema's
	// default.
	MaxEntries uint32
	// Attach forces how mark_victim attaches, "tp_btf" or "raw_tp"; empty
	// tries tp_btf and falls back to raw_tp. Faults always use perf events.
	Attach string
}

// Probe implements probes.Probe.
type Probe struct {
	cfg    Config
	objs   objects
	events []cpuEvent
	links  []link.Link // mark_victim
	attach string

	stats   *probes.ProcessSet[memoryMemoryKey, memoryMemoryEntryKey, memoryMemoryValue]          // faults per process
	oom     *probes.ProcessSet[memoryMemoryOomKey, memoryMemoryOomEntryKey, memoryMemoryOomValue] // OOM kills per cgroup
	cgroups map[uint64]attribute.Set                                                              // data-point attributes per cgroup id, built once
}

// cpuEvent is one software perf event on one CPU with its program linked.
type cpuEvent struct {
	cpu  int
	fd   int
	link *link.RawLink
}

// objects is the subset of the bpf2go collection the tp_btf attach needs;
// loading only these leaves the raw_tp variant unverified and unloaded.
type objects struct {
	Minor  *ebpf.Program `ebpf:"page_fault_min"`
	Major  *ebpf.Program `ebpf:"page_fault_maj"`
	Victim *ebpf.Program `ebpf:"mark_victim"`
}

// rawObjects is the same for the raw_tp fallback.
type rawObjects struct {
	Minor  *ebpf.Program `ebpf:"page_fault_min"`
	Major  *ebpf.Program `ebpf:"page_fault_maj"`
	Victim *ebpf.Program `ebpf:"raw_mark_victim"`
}

// New returns the probe; nothing is loaded until Start.
func New(cfg Config) *Probe { return &Probe{cfg: cfg} }

// Info implements probes.Probe.
func (p *Probe) Info() probes.Info {
	return probes.Info{
		Name:     ProbeName,
		Measures: "page faults per process (minor, major, as /proc counts them) and OOM kills per victim cgroup",
		Hooks:    "software perf events page-faults-min/maj on every online CPU; tracepoint oom:mark_victim (tp_btf, raw_tp fallback)",
		Requires: "BTF (/sys/kernel/btf/vmlinux), CPU-wide software perf events (CAP_PERFMON or perf_event_paranoid <= 0), BPF perf links (Linux 5.15+)",
		Metrics:  []string{entity.MetricProcessPagingFaults.Name, entity.MetricTelagentMemoryOOMKills.Name},
		Sets:     []entity.MetricSetDesc{set, oomSet},
	}
}

// Supported implements probes.Probe.
func (p *Probe) Supported() error {
	if err := probes.RequireBTF(); err != nil {
		return err
	}
	// The perf event first: without CAP_PERFMON its error names the fix
	// (perf_event_paranoid), where the BPF feature probes only say EPERM.
	cpus, err := onlineCPUs()
	if err != nil {
		return err
	}
	fd, err := openFaultEvent(unix.PERF_COUNT_SW_PAGE_FAULTS_MIN, cpus[0])
	if err != nil {
		return err
	}
	unix.Close(fd)
	if err := features.HaveProgramType(ebpf.PerfEvent); err != nil {
		return fmt.Errorf("BPF perf-event programs unavailable: %w", err)
	}
	if err := features.HaveMapType(ebpf.PerCPUHash); err != nil {
		return fmt.Errorf("per-CPU hash maps unavailable: %w", err)
	}
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("load kernel BTF: %w", err)
	}
	var tp *btf.Typedef
	if err := kernel.TypeByName("btf_trace_mark_victim", &tp); err != nil {
		return errors.New("tracepoint oom:mark_victim missing from the kernel's BTF")
	}
	return nil
}

// onlineCPUs are the CPUs a per-CPU perf event can be opened on now.
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile(onlineCPUsPath)
	if err != nil {
		return nil, fmt.Errorf("read online CPUs: %w", err)
	}
	cpus, err := aggregator.ParseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", onlineCPUsPath, err)
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("%s lists no CPU", onlineCPUsPath)
	}
	return cpus, nil
}

// openFaultEvent opens one CPU-wide (pid -1) software page-fault event,
// disabled until its program is linked. sample_period 1 makes every fault
// an overflow that runs the program; kernel-mode faults on user memory
// (copy_to_user) are included, as /proc includes them.
func openFaultEvent(config uint64, cpu int) (int, error) {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: config,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample: 1,
		Bits:   unix.PerfBitDisabled,
	}
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		return fd, nil
	}
	name := map[uint64]string{unix.PERF_COUNT_SW_PAGE_FAULTS_MIN: "page-faults-min", unix.PERF_COUNT_SW_PAGE_FAULTS_MAJ: "page-faults-maj"}[config]
	switch {
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		paranoid, _ := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
		return -1, fmt.Errorf("CPU-wide perf event %s not permitted (perf_event_paranoid=%s, needs CAP_PERFMON or root): %w",
			name, strings.TrimSpace(string(paranoid)), err)
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP):
		return -1, fmt.Errorf("software perf event %s unsupported by this kernel: %w", name, err)
	}
	return -1, fmt.Errorf("open perf event %s on CPU %d: %w", name, cpu, err)
}

// Start implements probes.Probe: create the metric set's storage, load, attach.
func (p *Probe) Start(ctx context.Context, env probes.Env) error {
	spec, err := loadMemory()
	if err != nil {
		return fmt.Errorf("load memory spec: %w", err)
	}
	if err := p.initSets(spec, env); err != nil {
		p.Close()
		return err
	}
	opts, err := env.CollectionOptions(spec, p.stats, p.oom)
	if err != nil {
		p.Close()
		return err
	}
	if err := p.loadAndAttachVictim(spec, opts); err != nil {
		p.Close()
		return err
	}
	if err := p.attachFaults(env); err != nil {
		p.Close()
		return err
	}
	return nil
}

// loadAndAttachVictim prefers the tp_btf variant of mark_victim (typed
// arguments) and falls back to raw_tp on kernels where tp_btf does not load
// or attach.
func (p *Probe) loadAndAttachVictim(spec *ebpf.CollectionSpec, opts *ebpf.CollectionOptions) (err error) {
	var raw rawObjects
	p.attach, err = probes.LoadAndAttach("memory", spec, opts, &p.links, p.cfg.Attach,
		probes.Variant{Name: "tp_btf", Objects: &p.objs, Attach: func(links *[]link.Link) error {
			return probes.AttachTracing(links, p.objs.Victim)
		}},
		probes.Variant{Name: "raw_tp", Objects: &raw, Attach: func(links *[]link.Link) error {
			if err := probes.AttachRawTracepoints(links, []string{"mark_victim"}, raw.Victim); err != nil {
				return err
			}
			p.objs = objects(raw)
			return nil
		}})
	return err
}

// attachFaults opens page-faults-min and page-faults-maj on every online
// CPU and links the programs to them.
//
// CPU hotplug: events exist only for the CPUs online at start. A CPU that
// comes online later runs tasks whose faults are not counted until the
// probe is restarted. Following hotplug would need a watcher (a netlink
// uevent socket for cpu online/offline, or a re-read of
// /sys/devices/system/cpu/online at each Collect) that opens and links
// events on newly online CPUs and re-enables events of CPUs that come back
// (the kernel keeps them, but may leave them off after an offline).
func (p *Probe) attachFaults(env probes.Env) error {
	cpus, err := onlineCPUs()
	if err != nil {
		return err
	}
	for _, cpu := range cpus {
		if cpu >= env.Topology.PossibleCPUs {
			return fmt.Errorf("online CPU %d is not among the %d possible CPUs", cpu, env.Topology.PossibleCPUs)
		}
		for _, ev := range []struct {
			config uint64
			prog   *ebpf.Program
		}{{unix.PERF_COUNT_SW_PAGE_FAULTS_MIN, p.objs.Minor}, {unix.PERF_COUNT_SW_PAGE_FAULTS_MAJ, p.objs.Major}} {
			fd, err := openFaultEvent(ev.config, cpu)
			if errors.Is(err, unix.ENODEV) {
				// Went offline since the list was read: as if it had been offline.
				if env.Log != nil {
					env.Log.Info("CPU went offline while attaching; its faults are not counted", "probe", ProbeName, "cpu", cpu)
				}
				break
			}
			if err != nil {
				return err
			}
			e := cpuEvent{cpu: cpu, fd: fd}
			// The link (not the perf event fd) owns the program attachment:
			// closing it detaches, and it holds its own reference to the
			// event, so no program outlives Close.
			e.link, err = link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: ev.prog, Attach: ebpf.AttachPerfEvent})
			if err != nil {
				unix.Close(fd)
				return fmt.Errorf("link %s to perf event on CPU %d (needs Linux 5.15+): %w", ev.prog, cpu, err)
			}
			p.events = append(p.events, e)
			if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
				return fmt.Errorf("enable perf event on CPU %d: %w", cpu, err)
			}
		}
	}
	if len(p.events) == 0 {
		return errors.New("no online CPU to open page-fault perf events on")
	}
	return nil
}

// initSets creates the storage of both sets: faults per process, OOM
// kills per victim cgroup (on the host).
func (p *Probe) initSets(spec *ebpf.CollectionSpec, env probes.Env) error {
	noAttrs := *attribute.EmptySet() // the process is the Resource; the fault type is a constant
	p.cgroups = map[uint64]attribute.Set{}
	var err error
	p.stats, err = probes.NewProcessSet[memoryMemoryKey, memoryMemoryEntryKey, memoryMemoryValue](spec, set, env, p.cfg.MaxEntries,
		probes.SetKeys[memoryMemoryKey]{
			Owner: func(k memoryMemoryKey) (uint32, bool) { return k.Tgid, true },
			Attrs: func(memoryMemoryKey) attribute.Set { return noAttrs },
		})
	if err != nil {
		return err
	}
	p.oom, err = probes.NewProcessSet[memoryMemoryOomKey, memoryMemoryOomEntryKey, memoryMemoryOomValue](spec, oomSet, env, 0,
		probes.SetKeys[memoryMemoryOomKey]{
			Owner: func(memoryMemoryOomKey) (uint32, bool) { return 0, false },
			Attrs: func(k memoryMemoryOomKey) attribute.Set { return p.cgroupAttrs(k.CgroupId) },
		})
	return err
}

// Collect implements probes.Probe: both sets drained; each process total
// becomes a minor and a major fault point of its process, each cgroup's
// an OOM kill point on the host.
func (p *Probe) Collect(_ context.Context, c *probes.Collection) error {
	return errors.Join(p.stats.Collect(c), p.oom.Collect(c))
}

// cgroupAttrs caches the attribute set of a cgroup id: the map holds at
// most max_entries of them, and a steady state allocates nothing.
func (p *Probe) cgroupAttrs(id uint64) attribute.Set {
	s, ok := p.cgroups[id]
	if !ok {
		s = attribute.NewSet(entity.AttrTelagentCgroupID.Int64(int64(id)))
		p.cgroups[id] = s
	}
	return s
}

// Evict implements probes.Probe. Only process keys are evicted: a cgroup's
// OOM kill count stays (bounded by the set's max_entries) because nothing
// tells the agent cheaply that a cgroup id will never be seen again.
func (p *Probe) Evict() error { return p.stats.Evict() }

// Stats implements probes.Probe.
func (p *Probe) Stats() probes.Stats {
	st := probes.Stats{Attach: "perf_event+" + p.attach}
	if p.stats != nil {
		st.MetricSets = []probes.MetricSetStats{p.stats.Stats(), p.oom.Stats()}
	}
	return st
}

// Close implements probes.Probe: detach first so nothing writes into maps
// being freed, then release every kernel object.
func (p *Probe) Close() error {
	var errs []error
	for _, e := range p.events {
		errs = append(errs, e.link.Close())
		if err := unix.Close(e.fd); err != nil {
			errs = append(errs, fmt.Errorf("close perf event on CPU %d: %w", e.cpu, err))
		}
	}
	p.events = nil
	errs = append(errs, probes.CloseLinks(p.links))
	p.links = nil
	errs = append(errs, p.closeObjects(), p.stats.Close(), p.oom.Close())
	p.stats, p.oom = nil, nil
	return errors.Join(errs...)
}

// closeObjects closes the loaded programs, keeping the storage (a failed
// tp_btf attempt retries with raw_tp on the same storage).
func (p *Probe) closeObjects() error {
	err := errors.Join(p.objs.Minor.Close(), p.objs.Major.Close(), p.objs.Victim.Close())
	p.objs = objects{}
	return err
}
