// Package probes defines what every telagent probe implements: a feature
// check, a start that loads and attaches its BPF programs, a collect that
// reads its metric-set maps into OTLP data, and a close that detaches.
package probes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

// Info describes a probe to operators (`telagent probes`, the README).
type Info struct {
	Name     string
	Measures string   // what it measures, one line
	Hooks    string   // kernel hooks it attaches to
	Requires string   // kernel features it needs
	Metrics  []string // metric names, from the schema
	// Sets are the probe's metric sets, whose storage the BPF memory
	// budget sizes (PlanStorage).
	Sets []entity.MetricSetDesc
}

// Env is what the agent hands every probe at start.
type Env struct {
	// Shared are the maps of bpf/include/telagent.h that every probe's
	// collection uses in place of its own copies (target set, processes).
	Shared map[string]*ebpf.Map
	// FilterTargets: observe only the target set; otherwise the whole host.
	FilterTargets bool
	Topology      aggregator.Topology
	// Breakdown, when set, splits every per-CPU metric set's points by
	// NUMA node or CPU (--numa-breakdown, --cpu-breakdown).
	Breakdown *Breakdown
	// NodesFromTopology: Topology is not the kernel's (tests fake a
	// two-node host), so the programs map CPUs to nodes with its table
	// instead of asking the kernel.
	NodesFromTopology bool
	// Storage is each metric set's storage capacity in entries per hash
	// (one node, one epoch), by set name, as sized from the memory budget
	// (PlanStorage); a set it lacks gets its schema max_entries.
	Storage map[string]uint32
	Log     *slog.Logger
}

// StorageEntries is the capacity of one storage hash of set.
func (e Env) StorageEntries(set entity.MetricSetDesc) uint32 {
	if n := e.Storage[set.Name]; n > 0 {
		return n
	}
	return set.MaxEntries
}

// CollectionOptions returns the load options that substitute the shared
// maps into spec, and sets the target filter. The shared maps may be sized
// differently from the object's defaults (a one-slot target set in
// whole-host mode), so the spec is made to match them.
//
// sets are the probe's metric sets, whose storage is created before the
// object (NewProcessSet) and substituted into it like the shared maps.
func (e Env) CollectionOptions(spec *ebpf.CollectionSpec, sets ...Replacer) (*ebpf.CollectionOptions, error) {
	repl := map[string]*ebpf.Map{}
	for name, m := range e.Shared {
		repl[name] = m
	}
	for _, s := range sets {
		for name, m := range s.Replacements() {
			repl[name] = m
		}
	}
	for name, m := range e.Shared {
		ms, ok := spec.Maps[name]
		if !ok {
			continue
		}
		ms.MaxEntries = m.MaxEntries()
	}
	if v, ok := spec.Variables["filter_targets"]; ok {
		if err := v.Set(e.FilterTargets); err != nil {
			return nil, fmt.Errorf("set target filter: %w", err)
		}
	}
	if v, ok := spec.Variables["telagent_nodes_from_map"]; ok {
		if err := v.Set(e.NodesFromTopology); err != nil {
			return nil, fmt.Errorf("set node source: %w", err)
		}
	}
	return &ebpf.CollectionOptions{MapReplacements: repl}, nil
}

// Replacer is what provides maps to substitute into an object.
type Replacer interface {
	Replacements() map[string]*ebpf.Map
}

// Collection is one interval's destination for a probe's reads.
type Collection struct {
	Metrics   *metrics.Builder
	Processes *entity.ProcessResolver
}

// Probe is one measurement the agent can run. Start and Close are called
// once; Collect once per interval and once more, finally, before Close.
type Probe interface {
	Info() Info
	// Supported returns nil when this kernel can run the probe, or an error
	// whose text is a one-line reason.
	Supported() error
	Start(ctx context.Context, env Env) error
	Collect(ctx context.Context, c *Collection) error
	// Evict deletes the map entries of processes found gone at the last
	// Collect. The agent calls it only after that interval was exported, so
	// a process's final values are delivered before its keys go.
	Evict() error
	// Stats reports self-telemetry counters of the probe.
	Stats() Stats
	Close() error
}

// Stats are the probe's own health counters.
type Stats struct {
	// Attach says how the probe attached (e.g. "tp_btf", "raw_tp").
	Attach     string
	MetricSets []MetricSetStats
}

// MetricSetStats are the health counters of one metric-set map.
type MetricSetStats struct {
	Name string // as declared in the schema
	// Keys is the number of live keys at the last collect.
	Keys int
	// MaxEntries is the map's capacity (0: unknown); Keys/MaxEntries is
	// the telagent.metric_set.utilization self-metric.
	MaxEntries int
	// OverflowFolds counts updates the programs folded into the overflow
	// series because the node's storage hash was full.
	OverflowFolds uint64
	// EntryFolds counts drained entries the agent folded into the
	// overflow series because the set held MaxEntries tuples.
	EntryFolds uint64
	// IdentityFolds counts totals (one tuple, one breakdown part) the
	// agent folded into the overflow series because their process was gone
	// without an identity (ProcessSet.Collect).
	IdentityFolds uint64
	// Evicted counts keys deleted because their process had exited.
	Evicted uint64
	Storage StorageStats
}

// StorageStats describe a set's kernel storage.
type StorageStats struct {
	Entries int    // capacity of one hash (one node, one epoch)
	Peak    int    // most entries one hash held at the last drain
	Bytes   uint64 // kernel memory of the storage (fdinfo memlock)
	Nodes   int    // nodes with their own hashes
	NUMA    bool   // hashes allocated on their nodes
}

// RequireBTF is the first feature check of every probe: CO-RE relocations
// and tp_btf programs need the kernel's own type information.
func RequireBTF() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return errors.New("kernel BTF missing (/sys/kernel/btf/vmlinux): needs CONFIG_DEBUG_INFO_BTF")
	}
	return nil
}

// CloseLinks detaches every link, first to last, and reports every error.
func CloseLinks(links []link.Link) error {
	var errs []error
	for _, l := range links {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// RequireStorage checks what every metric set's storage needs: hashes
// inside an ARRAY_OF_MAPS and per-CPU arrays for the overflow value
// (drained with batch operations, Linux 5.6+).
func RequireStorage() error {
	for _, t := range []ebpf.MapType{ebpf.ArrayOfMaps, ebpf.Hash, ebpf.PerCPUArray} {
		if err := features.HaveMapType(t); err != nil {
			return fmt.Errorf("%s maps unavailable: %w", t, err)
		}
	}
	return nil
}
