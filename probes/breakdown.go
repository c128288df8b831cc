package probes

import (
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

// Breakdown splits the value of every key of a metric set by where it was
// counted (a NUMA node, or a CPU) instead of exporting the sum; the schema
// declares which attribute carries the part and its bound
// (entity.Breakdowns). Storage entries carry the CPU that wrote them and
// are drained node by node, so a part is the entry's node index or CPU.
type Breakdown struct {
	Desc  entity.BreakdownDesc
	parts []attribute.KeyValue // per node index (numa_node) or CPU: its attribute
}

// NewBreakdown prepares desc on the host topology, or fails when the host
// has more parts than the schema's bound for it.
func NewBreakdown(desc entity.BreakdownDesc, host aggregator.Topology) (*Breakdown, error) {
	b := &Breakdown{Desc: desc}
	switch desc.Over {
	case "numa_node":
		for _, n := range host.Nodes {
			b.parts = append(b.parts, desc.Attribute.Int(n.ID))
		}
	case "cpu":
		for cpu := range host.PossibleCPUs {
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

// EmitPart adds one total's points on res: under a breakdown as the
// part's point (part is a node index or a CPU, as the storage entry was
// split; parts that counted nothing are left out), otherwise as the
// key's.
func (e *SetEmitter) EmitPart(b *metrics.Builder, res *resource.Resource, keyAttrs attribute.Set, part int, v []uint64) {
	if e.breakdown == nil {
		e.Emit(b, res, keyAttrs, v)
		return
	}
	if part < 0 || part >= len(e.breakdown.parts) || AllZero(v) {
		return
	}
	e.Emit(b, res, e.partAttrs(keyAttrs, part, e.breakdown.parts[part]), v)
}
