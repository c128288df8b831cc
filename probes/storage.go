package probes

import (
	"fmt"
	"math"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

// DefaultBPFMemory is the kernel memory the metric-set storage may use by
// default: the default probes' sets at their schema sizes fit on a
// one-node host, and it sits beside the agent's own memory inside the
// DaemonSet's 512 MiB limit (BPF maps are charged to the agent's cgroup).
const DefaultBPFMemory = 48 << 20

// MinStorageEntries is the smallest storage hash (per node and epoch) a
// budget may give a set: below it a busy interval folds most updates.
const MinStorageEntries = 64

// maxStorageEntries bounds one hash whatever the budget.
const maxStorageEntries = 1 << 22

// StoragePlan is what a budget gives each metric set on one host.
type StoragePlan struct {
	Budget  uint64
	Entries map[string]uint32 // per hash (one node, one epoch), by set name
	Bytes   map[string]uint64 // kernel memory of the set's storage
	Total   uint64
	Nodes   int
}

// PlanStorage divides budget bytes of kernel memory among sets on topo:
// every set's hashes get the same share of its schema max_entries (split
// over the nodes, whose hashes each hold an interval's entries of their
// own CPUs), as large as the budget allows. The estimate follows the
// kernel's own accounting (aggregator.HashMemory). A budget that cannot
// give every set MinStorageEntries is an error that says what is needed.
func PlanStorage(budget uint64, sets []entity.MetricSetDesc, topo aggregator.Topology) (StoragePlan, error) {
	nodes, slots := max(1, len(topo.Nodes)), aggregator.StorageSlots(topo)
	plan := StoragePlan{Budget: budget, Nodes: nodes}
	entries := func(s entity.MetricSetDesc, f float64) int {
		n := int(math.Min(f*float64(s.MaxEntries)/float64(nodes), maxStorageEntries))
		return max(MinStorageEntries, n)
	}
	total := func(f float64) uint64 {
		var sum uint64
		for _, s := range sets {
			sum += aggregator.StorageMemory(entries(s, f), s.EntryKeySize, 8*s.ValueWords, nodes, slots, topo.PossibleCPUs)
		}
		return sum
	}
	if need := total(0); need > budget {
		return plan, &BudgetError{Budget: budget, Need: need, Sets: len(sets), PossibleCPUs: topo.PossibleCPUs, Nodes: nodes}
	}
	// The largest share that fits: total is monotonic in f.
	lo, hi := 0.0, float64(maxStorageEntries)
	for range 60 {
		mid := (lo + hi) / 2
		if total(mid) <= budget {
			lo = mid
		} else {
			hi = mid
		}
	}
	plan.Entries, plan.Bytes = map[string]uint32{}, map[string]uint64{}
	for _, s := range sets {
		n := entries(s, lo)
		plan.Entries[s.Name] = uint32(n)
		plan.Bytes[s.Name] = aggregator.StorageMemory(n, s.EntryKeySize, 8*s.ValueWords, nodes, slots, topo.PossibleCPUs)
		plan.Total += plan.Bytes[s.Name]
	}
	return plan, nil
}

// BudgetError is a budget too small for the smallest storage of the sets.
type BudgetError struct {
	Budget, Need              uint64
	Sets, PossibleCPUs, Nodes int
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("%s is too small for %d metric sets on %d possible CPUs and %d NUMA nodes: they need at least %s",
		metrics.FormatBytes(float64(e.Budget)), e.Sets, e.PossibleCPUs, e.Nodes, metrics.FormatBytes(float64(e.Need)))
}
