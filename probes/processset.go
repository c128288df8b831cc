package probes

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
)

// SetKeys say how a metric set's tuple maps onto the exported data: its
// owner and its data-point attributes. Probes give only these.
type SetKeys[K comparable] struct {
	// Owner is the process a tuple belongs to; ok false puts the tuple on
	// the host Resource (tgid 0 of tcp, the OOM set's cgroups).
	Owner func(K) (tgid uint32, ok bool)
	// Attrs are the tuple's data-point attributes.
	Attrs func(K) attribute.Set
}

// ProcessSet is the user-space half of one metric set (schema map_type
// node_hash): it creates the set's kernel storage before its object is
// loaded, drains it each interval into cumulative totals, turns every
// total into points of its owner's Resource, and forgets the totals of
// exited processes once their final values were delivered.
//
// K, E and V are the bpf2go tuple, entry key and value types of the set.
type ProcessSet[K comparable, E any, V any] struct {
	desc     entity.MetricSetDesc
	store    *aggregator.Store[K, E, V]
	totals   *aggregator.Totals[K]
	overflow K
	keys     SetKeys[K]
	emit     *SetEmitter
	limit    int

	cpuNode      []int32    // CPU → index of its node in the storage's nodes
	lastOverflow [][]uint64 // per CPU: the kernel overflow value last seen
	delta        []uint64
	pending      []int // slots of exited processes, removed after delivery
	unknown      []int // slots of exited processes without an identity, folded this Collect
	parts        int   // breakdown parts (1 without one): the overflow's possible parts
	userFolds    uint64
	idFolds      uint64 // totals folded for want of their owner's identity
	live         int    // live tuples (parts) but the overflow's, at the last Collect
	evicted      uint64
}

// NewProcessSet creates the storage of desc for spec (load spec with
// Env.CollectionOptions(spec, set) afterwards): maxEntries bounds the tuples kept in user
// space (0: the schema's max_entries), past which tuples fold into
// the schema's overflow tuple (as K); the kernel's hashes get the capacity
// env assigns the set.
func NewProcessSet[K comparable, E any, V any](spec *ebpf.CollectionSpec, desc entity.MetricSetDesc, env Env,
	maxEntries uint32, keys SetKeys[K]) (*ProcessSet[K, E, V], error) {
	if keys.Owner == nil || keys.Attrs == nil {
		return nil, fmt.Errorf("metric set %s: SetKeys needs Owner and Attrs", desc.Name)
	}
	overflow, err := overflowKey[K](desc)
	if err != nil {
		return nil, err
	}
	if maxEntries == 0 {
		maxEntries = desc.MaxEntries
	}
	s := &ProcessSet[K, E, V]{desc: desc, overflow: overflow, keys: keys, limit: int(maxEntries),
		delta: make([]uint64, desc.ValueWords)}
	if s.emit, err = NewSetEmitter(desc, env.Breakdown); err != nil {
		return nil, err
	}
	s.store, err = aggregator.NewStore[K, E, V](spec, desc.Map, desc.KeySize, desc.ValueWords,
		env.StorageEntries(desc), env.Topology, env.Shared[EpochMap], env.Log)
	if err != nil {
		return nil, err
	}
	s.parts = 1
	if env.Breakdown != nil {
		s.parts = len(env.Breakdown.parts)
	}
	if s.totals, err = aggregator.NewTotals[K](desc.ValueWords, s.limit*s.parts); err != nil {
		s.store.Close()
		return nil, err
	}
	s.cpuNode = make([]int32, env.Topology.PossibleCPUs)
	for i, n := range s.store.Nodes() {
		for _, c := range n.CPUs {
			if c >= 0 && c < len(s.cpuNode) {
				s.cpuNode[c] = int32(i)
			}
		}
	}
	s.lastOverflow = make([][]uint64, env.Topology.PossibleCPUs)
	for c := range s.lastOverflow {
		s.lastOverflow[c] = make([]uint64, desc.ValueWords)
	}
	return s, nil
}

// Replacements are the set's storage maps, for loading its object (Env.
// CollectionOptions takes them).
func (s *ProcessSet[K, E, V]) Replacements() map[string]*ebpf.Map { return s.store.Replacements() }

// EpochMap is the shared map (bpf/include/telagent.h) holding the epoch.
const EpochMap = "telagent_epoch"

// part is where a breakdown puts what entry e counted: its node index
// or its CPU (0 without a breakdown).
func (s *ProcessSet[K, E, V]) part(cpu uint32, node int) int32 {
	if s.emit.breakdown == nil {
		return 0
	}
	if s.emit.breakdown.Desc.Over == "cpu" {
		return int32(cpu)
	}
	return int32(node)
}

// Collect drains the storage into the totals and adds every total's
// points: the overflow series on the host, everything else on its owner.
// Totals of processes found gone are scheduled for removal.
//
// A process whose identity the resolver could not obtain (gone before
// /proc was read and unknown to the kernel's record) gets no Resource of
// its own: process.pid alone is an incomplete identity, and its series put
// on the host Resource with their own attributes would collide with the
// host's. Once it is final its totals are folded into the overflow series
// (counted in Stats' IdentityFolds) and forgotten; while the resolver
// defers it (its exit event may still identify it) they are held, not
// exported.
func (s *ProcessSet[K, E, V]) Collect(c *Collection) error {
	s.pending = s.pending[:0]
	s.unknown = s.unknown[:0]
	var errs []error
	errs = append(errs, s.store.Drain(func(e *aggregator.Entry[K]) error {
		return s.add(aggregator.TotalKey[K]{Key: e.Key, Part: s.part(e.CPU, e.Node)}, e.Value)
	}))
	errs = append(errs, s.store.Overflow(func(cpu int, v []uint64) {
		nonzero := false
		for i, x := range v {
			s.delta[i] = x - s.lastOverflow[cpu][i]
			nonzero = nonzero || s.delta[i] != 0
		}
		if !nonzero {
			return
		}
		copy(s.lastOverflow[cpu], v)
		node := 0
		if cpu < len(s.cpuNode) {
			node = int(s.cpuNode[cpu])
		}
		errs = append(errs, s.totals.AddAlways(aggregator.TotalKey[K]{Key: s.overflow, Part: s.part(uint32(cpu), node)}, s.delta))
	}))
	host := c.Processes.Host()
	s.live = 0
	errs = append(errs, s.totals.Each(func(slot int, k aggregator.TotalKey[K], v []uint64) error {
		if k.Key == s.overflow {
			return nil // below, with what folds into it
		}
		tgid, ok := s.keys.Owner(k.Key)
		if !ok {
			s.live++
			s.emit.EmitPart(c.Metrics, host, s.keys.Attrs(k.Key), int(k.Part), v)
			return nil
		}
		res := c.Processes.Process(tgid)
		gone := c.Processes.Gone(tgid)
		if !c.Processes.Identified(tgid) {
			if gone {
				s.unknown = append(s.unknown, slot)
			} else {
				s.live++ // held: deferred by the resolver
			}
			return nil
		}
		s.live++
		s.emit.EmitPart(c.Metrics, res, s.keys.Attrs(k.Key), int(k.Part), v)
		if gone {
			s.pending = append(s.pending, slot)
		}
		return nil
	}))
	errs = append(errs, s.foldUnknown())
	for p := range s.parts {
		if v, ok := s.totals.Get(aggregator.TotalKey[K]{Key: s.overflow, Part: int32(p)}); ok {
			s.emit.EmitPart(c.Metrics, host, OverflowAttrs, p, v)
		}
	}
	return errors.Join(errs...)
}

// foldUnknown moves the totals of the slots in unknown (processes gone
// without an identity) into the overflow tuple's, counting each.
func (s *ProcessSet[K, E, V]) foldUnknown() error {
	for _, slot := range s.unknown {
		k, v, ok := s.totals.At(slot)
		if !ok {
			continue
		}
		copy(s.delta, v) // v is invalid once the overflow's total grows
		s.totals.Remove(slot)
		if err := s.totals.AddAlways(aggregator.TotalKey[K]{Key: s.overflow, Part: k.Part}, s.delta); err != nil {
			return err
		}
		s.idFolds++
	}
	return nil
}

// add adds a drained value to its total, or to the overflow tuple's (and
// counts the fold) when the totals hold their limit of tuples.
func (s *ProcessSet[K, E, V]) add(k aggregator.TotalKey[K], v []uint64) error {
	if k.Key == s.overflow {
		return s.totals.AddAlways(k, v)
	}
	ok, err := s.totals.Add(k, v)
	if err != nil || ok {
		return err
	}
	s.userFolds++
	return s.totals.AddAlways(aggregator.TotalKey[K]{Key: s.overflow, Part: k.Part}, v)
}

// Evict forgets the totals scheduled at the last Collect; call it only
// after that interval was exported. Nothing is left in the kernel to
// delete: a drain takes every entry.
func (s *ProcessSet[K, E, V]) Evict() error {
	for _, slot := range s.pending {
		s.totals.Remove(slot)
	}
	s.evicted += uint64(len(s.pending))
	s.pending = s.pending[:0]
	return nil
}

// Stats reports the set's health counters.
func (s *ProcessSet[K, E, V]) Stats() MetricSetStats {
	if s == nil {
		return MetricSetStats{}
	}
	_, peak := s.store.LastDrain()
	return MetricSetStats{Name: s.desc.Name, Keys: s.live, MaxEntries: s.limit, Evicted: s.evicted,
		OverflowFolds: s.store.Folds(), EntryFolds: s.userFolds, IdentityFolds: s.idFolds,
		Storage: StorageStats{Entries: s.store.Capacity(), Peak: peak, Bytes: s.store.Memory(), Nodes: len(s.store.Nodes()), NUMA: s.store.NUMA()}}
}

// Store is the set's kernel storage (tests, diagnostics).
func (s *ProcessSet[K, E, V]) Store() *aggregator.Store[K, E, V] { return s.store }

// Close frees the storage hashes and the totals. The object's own maps
// belong to the probe. A nil set's Close does nothing.
func (s *ProcessSet[K, E, V]) Close() error {
	if s == nil {
		return nil
	}
	return errors.Join(s.store.Close(), s.totals.Close())
}
