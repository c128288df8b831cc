package probes

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
)

// ProcessSet is the user-space half of one per-CPU metric set whose key
// starts with a process (tgid): it creates the overflow key, reads the map
// each interval, turns every key into its process's points, and deletes the
// keys of exited processes once their final values were exported. Probes
// only say how a key maps to a tgid and to its data-point attributes.
//
// K and V are the bpf2go key and value types of the set's map.
type ProcessSet[K comparable, V any] struct {
	desc     entity.MetricSetDesc
	m, folds *ebpf.Map
	overflow K
	tgid     func(K) uint32
	attrs    func(K) attribute.Set

	reader  *aggregator.PerCPUReader[K]
	emit    *SetEmitter
	final   *FinalEvictor[K, V]
	foldBuf []uint64
	keys    int
	evicted uint64
}

// NewProcessSet sets up the set on its loaded map m and the object's fold
// counter folds (a one-slot per-CPU array). overflow is the set's overflow
// key, created here so the BPF side can always fold into it.
func NewProcessSet[K comparable, V any](desc entity.MetricSetDesc, m, folds *ebpf.Map, env Env, overflow K,
	tgid func(K) uint32, attrs func(K) attribute.Set) (*ProcessSet[K, V], error) {
	s := &ProcessSet[K, V]{desc: desc, m: m, folds: folds, overflow: overflow, tgid: tgid, attrs: attrs,
		foldBuf: make([]uint64, env.Topology.PossibleCPUs)}
	var err error
	if s.emit, err = NewSetEmitter(desc, env.Breakdown); err != nil {
		return nil, err
	}
	if err := m.Update(overflow, make([]V, env.Topology.PossibleCPUs), ebpf.UpdateNoExist); err != nil {
		return nil, fmt.Errorf("create %s overflow key: %w", desc.Name, err)
	}
	if s.reader, err = NewSetReader[K](m, desc, env); err != nil {
		return nil, err
	}
	if s.final, err = NewFinalEvictor[K, V](m, desc.ValueWords, env.Topology.PossibleCPUs, &s.overflow); err != nil {
		s.reader.Close()
		return nil, err
	}
	return s, nil
}

// Collect reads the map once and adds every key's points: the overflow
// series on the host, everything else on its process. Keys of processes
// found gone are scheduled for eviction.
func (s *ProcessSet[K, V]) Collect(c *Collection) error {
	s.final.Reset()
	// Streamed a chunk at a time: the reader never holds the whole map.
	err := s.reader.Each(func(i int, k K) error {
		if k == s.overflow {
			// EmitKey leaves out the pre-created overflow key until something folded.
			EmitKey(s.emit, c.Metrics, c.Processes.Host(), OverflowAttrs, s.reader, i)
			return nil
		}
		tgid := s.tgid(k)
		EmitKey(s.emit, c.Metrics, c.Processes.Process(tgid), s.attrs(k), s.reader, i)
		if c.Processes.Gone(tgid) {
			s.final.Add(k, s.reader.Value(i))
		}
		return nil
	})
	s.keys = s.reader.Len()
	return err
}

// Evict deletes the keys scheduled at the last Collect; call it only after
// that interval was exported.
func (s *ProcessSet[K, V]) Evict() error {
	n, err := s.final.Evict()
	s.evicted += uint64(n)
	if err != nil {
		return fmt.Errorf("evict exited processes from %s: %w", s.desc.Map, err)
	}
	return nil
}

// Stats reports the set's health counters.
func (s *ProcessSet[K, V]) Stats() MetricSetStats {
	ms := MetricSetStats{Name: s.desc.Name, Keys: s.keys, MaxEntries: int(s.m.MaxEntries()), Evicted: s.evicted}
	if s.folds.Lookup(uint32(0), s.foldBuf) == nil {
		for _, f := range s.foldBuf {
			ms.OverflowFolds += f
		}
	}
	return ms
}

// Close stops the reader's node workers. The maps belong to the probe.
func (s *ProcessSet[K, V]) Close() error {
	if s == nil {
		return nil
	}
	return errors.Join(s.reader.Close())
}

// Reader is the set's map reader (per-node partials, for tests and the
// --numa-breakdown path).
func (s *ProcessSet[K, V]) Reader() *aggregator.PerCPUReader[K] { return s.reader }
