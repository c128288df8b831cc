package probes

import (
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
)

// Breakdown splits the value of every key of a per-CPU metric set by where
// it was counted (a NUMA node, or a CPU) instead of exporting the sum; the
// schema declares which attribute carries the part and its bound
// (entity.Breakdowns). It works on the per-node partials the readers
// compute anyway: a CPU breakdown is a reader topology of one pseudo-node
// per CPU, so both come out of PerCPUReader.NodeValue.
type Breakdown struct {
	Desc  entity.BreakdownDesc
	topo  aggregator.Topology  // the readers' topology
	parts []attribute.KeyValue // per reader node: its attribute
}

// NewBreakdown prepares desc on the host topology, or fails when the host
// has more parts than the schema's bound for it.
func NewBreakdown(desc entity.BreakdownDesc, host aggregator.Topology) (*Breakdown, error) {
	b := &Breakdown{Desc: desc}
	switch desc.Over {
	case "numa_node":
		b.topo = host
		for _, n := range host.Nodes {
			b.parts = append(b.parts, desc.Attribute.Int(n.ID))
		}
	case "cpu":
		b.topo = aggregator.Topology{PossibleCPUs: host.PossibleCPUs}
		for cpu := range host.PossibleCPUs {
			b.topo.Nodes = append(b.topo.Nodes, aggregator.Node{ID: cpu, CPUs: []int{cpu}})
			b.parts = append(b.parts, desc.Attribute.Int(cpu))
		}
	default:
		return nil, fmt.Errorf("--%s: breakdown over %q is not implemented", desc.Flag, desc.Over)
	}
	if len(b.parts) > int(desc.Bound) {
		return nil, fmt.Errorf("--%s: this host has %d parts to split by, more than its bound %d (cardinality); use a coarser breakdown or none",
			desc.Flag, len(b.parts), desc.Bound)
	}
	return b, nil
}

// ReaderTopology is the topology metric-set readers reduce over: the
// host's NUMA nodes, or one pseudo-node per CPU under a CPU breakdown.
func (e Env) ReaderTopology() aggregator.Topology {
	if e.Breakdown == nil {
		return e.Topology
	}
	return e.Breakdown.topo
}

// NewSetReader is the reader of one metric set's per-CPU map, on the
// environment's reader topology.
func NewSetReader[K any](m *ebpf.Map, desc entity.MetricSetDesc, env Env) (*aggregator.PerCPUReader[K], error) {
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return aggregator.NewPerCPUReader[K](m, desc.KeySize, desc.ValueWords, env.ReaderTopology(), aggregator.WithLogger(log))
}

// EmitKey adds key i of r's current read (its index in Each's chunk, or
// in Read's snapshot) on res: its total, or under a
// breakdown one point per part that counted anything. An overflow key
// (keyAttrs OverflowAttrs) that nothing folded into yet is left out: it is
// created in advance, so that the BPF side can always fold into it.
func EmitKey[K any](e *SetEmitter, b *export.Builder, res *resource.Resource, keyAttrs attribute.Set, r *aggregator.PerCPUReader[K], i int) {
	if e.breakdown == nil {
		v := r.Value(i)
		if keyAttrs.Equals(&OverflowAttrs) && AllZero(v) {
			return
		}
		e.Emit(b, res, keyAttrs, v)
		return
	}
	for n, part := range e.breakdown.parts {
		v := r.NodeValue(i, n)
		if AllZero(v) {
			continue
		}
		e.Emit(b, res, e.partAttrs(keyAttrs, n, part), v)
	}
}
