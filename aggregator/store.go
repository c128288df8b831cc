package aggregator

import (
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/internal/osthread"
)

// Design: the storage of a metric set (schema map_type node_hash).
//
// A per-CPU hash holds a key's value once per *possible* CPU, offline ones
// included, and reading it copies every slot: on a host with 255 possible
// CPUs the default sets took 4 GiB of kernel memory and each read copied
// it all. Here the kernel keeps, per NUMA node and epoch, one plain
// preallocated hash whose entries are keyed by (tuple, CPU). Only that CPU
// writes its entry (programs run with migration disabled), so the hot path
// needs no atomics, and a node's hashes are written only by its own CPUs
// (bpf/include/telagent.h). Each interval the agent flips the epoch,
// waits for a grace period (GracePeriod), and drains the idle hashes:
// BPF_MAP_LOOKUP_AND_DELETE_BATCH, on a thread pinned to the node, so the
// copy reads node-local memory. The cumulative totals live in user space
// (Totals). Kernel memory is then what one interval can touch, sized from
// a budget, and a read costs per entry touched, whatever the CPU count.
// An exited process needs no kernel-side eviction: its entries are gone
// after the drain that follows its last update.

// GracePeriod waits until every BPF program that was running when it was
// called has returned: tracing, perf-event and uprobe programs run inside
// RCU read-side sections, and MEMBARRIER_CMD_GLOBAL is synchronize_rcu().
// Where the kernel refuses it (nohz_full CPUs, no CONFIG_MEMBARRIER) a
// fixed wait takes its place: BPF programs run for microseconds.
func GracePeriod() error {
	const cmdGlobal = 1 // MEMBARRIER_CMD_GLOBAL
	_, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, cmdGlobal, 0, 0)
	switch errno {
	case 0:
		return nil
	case unix.EINVAL, unix.ENOSYS:
		time.Sleep(fallbackGrace)
		return nil
	}
	return fmt.Errorf("membarrier: %w", errno)
}

const fallbackGrace = 20 * time.Millisecond

// drainBytes caps one batch read's buffers (keys and values).
const drainBytes = 1 << 20

// storeNode is one NUMA node's two hashes, one per epoch.
type storeNode struct {
	node   Node
	halves [2]*ebpf.Map
}

// Store is the user-space half of one metric set's kernel storage: it
// creates the per-node hashes before the set's object is loaded, installs
// them in the object's outer map, and drains the idle epoch's hashes.
//
// K is the bpf2go tuple type, E the entry key (K, then the CPU as u32, then
// padding) and V the value (u64 words only). A Store is not safe for
// concurrent use.
type Store[K comparable, E any, V any] struct {
	name     string
	words    int
	keySize  int
	capacity uint32
	numa     bool // hashes allocated on their nodes (BPF_F_NUMA_NODE)
	nodes    []storeNode
	slots    int // the outer map's size: 2 × (highest node id + 1)

	outer, overflow, folds, epoch *ebpf.Map

	chunkKeys []E
	chunkVals []V
	overflowV []V // one per possible CPU
	foldsV    []uint64
	allowed   unix.CPUSetDynamic
	log       *slog.Logger

	lastDrained int // entries of the last drain, all nodes
	lastPeak    int // most entries one hash held at the last drain
}

// NewStore creates the whole storage of the set whose outer map spec is
// spec.Maps[outerName] (its inner map the template): capacity entries per
// hash, one pair per node of topo, installed in the outer map, and the
// set's <outerName>_overflow and <outerName>_folds maps. The object is
// then loaded with Replacements, so its programs find it all in place
// when they attach. epoch is the shared epoch map. keySize is the
// tuple's size in bytes (the schema's KeySize), which locates the CPU in
// an entry key.
func NewStore[K comparable, E any, V any](spec *ebpf.CollectionSpec, outerName string, keySize, words int,
	capacity uint32, topo Topology, epoch *ebpf.Map, log *slog.Logger) (*Store[K, E, V], error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	om, ok := spec.Maps[outerName]
	if !ok || om.InnerMap == nil || om.Type != ebpf.ArrayOfMaps {
		return nil, fmt.Errorf("storage %s: no ARRAY_OF_MAPS with an inner map in the object", outerName)
	}
	if sz := int(unsafe.Sizeof(*new(K))); sz != keySize {
		return nil, fmt.Errorf("storage %s: tuple type is %d bytes, schema says %d", outerName, sz, keySize)
	}
	if sz := int(unsafe.Sizeof(*new(V))); sz != words*8 {
		return nil, fmt.Errorf("storage %s: value type is %d bytes, schema says %d words", outerName, sz, words)
	}
	inner := om.InnerMap
	if int(inner.KeySize) != int(unsafe.Sizeof(*new(E))) || int(inner.ValueSize) != words*8 {
		return nil, fmt.Errorf("storage %s: entry layout key %d/value %d bytes, Go types %d/%d",
			outerName, inner.KeySize, inner.ValueSize, unsafe.Sizeof(*new(E)), words*8)
	}
	if int(inner.KeySize) < keySize+4 {
		return nil, fmt.Errorf("storage %s: entry key of %d bytes has no CPU after a %d-byte tuple", outerName, inner.KeySize, keySize)
	}
	if capacity == 0 {
		return nil, fmt.Errorf("storage %s: capacity 0", outerName)
	}
	if len(topo.Nodes) == 0 || topo.PossibleCPUs <= 0 {
		return nil, fmt.Errorf("storage %s: topology has no node", outerName)
	}
	for _, n := range topo.Nodes {
		if n.ID < 0 || n.ID > 1<<16 {
			return nil, fmt.Errorf("storage %s: NUMA node id %d out of range", outerName, n.ID)
		}
	}
	s := &Store[K, E, V]{name: outerName, words: words, keySize: keySize, capacity: capacity,
		slots: StorageSlots(topo), log: log,
		overflowV: make([]V, topo.PossibleCPUs), foldsV: make([]uint64, topo.PossibleCPUs)}
	inner.MaxEntries = capacity
	// The kernel requires every inner map to have the template's flags, so
	// either every hash is bound to its node or none is (a fake topology
	// names nodes the kernel does not have).
	if err := s.create(inner, topo, true); err != nil {
		s.closeInner()
		if err2 := s.create(inner, topo, false); err2 != nil {
			s.closeInner()
			return nil, errors.Join(err, err2)
		}
		log.Debug("metric-set storage not bound to NUMA nodes", "set", outerName, "reason", err)
	} else {
		s.numa = true
		inner.Flags |= unix.BPF_F_NUMA_NODE
		inner.NumaNode = uint32(topo.Nodes[0].ID)
	}
	om.MaxEntries = uint32(s.slots)
	if err := s.createOuter(spec, om, epoch); err != nil {
		s.Close()
		return nil, err
	}
	perEntry := int(inner.KeySize) + words*8
	chunk := max(16, min(int(capacity), drainBytes/perEntry))
	s.chunkKeys, s.chunkVals = make([]E, chunk), make([]V, chunk)
	if allowed, err := osthread.Allowed(topo.PossibleCPUs); err == nil {
		s.allowed = allowed
	}
	return s, nil
}

func (s *Store[K, E, V]) create(inner *ebpf.MapSpec, topo Topology, numa bool) error {
	for _, n := range topo.Nodes {
		sn := storeNode{node: n}
		for e := range sn.halves {
			ms := inner.Copy()
			ms.Name = fmt.Sprintf("%.9s_n%de%d", s.name, n.ID, e)
			if numa {
				ms.Flags |= unix.BPF_F_NUMA_NODE
				ms.NumaNode = uint32(n.ID)
			}
			m, err := ebpf.NewMap(ms)
			if err != nil {
				for _, h := range sn.halves {
					if h != nil {
						_ = h.Close()
					}
				}
				return fmt.Errorf("create %s storage of node %d (%d entries): %w", s.name, n.ID, inner.MaxEntries, err)
			}
			sn.halves[e] = m
		}
		s.nodes = append(s.nodes, sn)
	}
	return nil
}

func (s *Store[K, E, V]) closeInner() error {
	var errs []error
	for _, n := range s.nodes {
		for _, h := range n.halves {
			errs = append(errs, h.Close())
		}
	}
	s.nodes = nil
	return errors.Join(errs...)
}

// createOuter creates the outer, overflow and fold maps and puts the
// hashes into the outer map, at 2 × node + epoch. Node ids the topology
// lacks (holes, nodes without CPUs at start) get the first node's hashes,
// so a CPU brought online there later still counts (its entries carry
// its CPU).
func (s *Store[K, E, V]) createOuter(spec *ebpf.CollectionSpec, om *ebpf.MapSpec, epoch *ebpf.Map) error {
	ovs, fos := spec.Maps[s.name+"_overflow"], spec.Maps[s.name+"_folds"]
	if ovs == nil || fos == nil || epoch == nil {
		return fmt.Errorf("storage %s: the object lacks %s_overflow or %s_folds, or no epoch map", s.name, s.name, s.name)
	}
	var err error
	if s.outer, err = ebpf.NewMap(om); err != nil {
		return fmt.Errorf("create %s: %w", s.name, err)
	}
	if s.overflow, err = ebpf.NewMap(ovs); err != nil {
		return fmt.Errorf("create %s_overflow: %w", s.name, err)
	}
	if s.folds, err = ebpf.NewMap(fos); err != nil {
		return fmt.Errorf("create %s_folds: %w", s.name, err)
	}
	s.epoch = epoch
	byID := map[int]storeNode{}
	for _, n := range s.nodes {
		byID[n.node.ID] = n
	}
	for id := range s.slots / 2 {
		n, ok := byID[id]
		if !ok {
			n = s.nodes[0]
		}
		for e, h := range n.halves {
			if err := s.outer.Update(uint32(2*id+e), h, ebpf.UpdateAny); err != nil {
				return fmt.Errorf("storage %s: install node %d epoch %d: %w", s.name, id, e, err)
			}
		}
	}
	return nil
}

// Replacements are the storage's maps by the names the object declares
// them with: load the object with them (CollectionOptions.MapReplacements).
func (s *Store[K, E, V]) Replacements() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{s.name: s.outer, s.name + "_overflow": s.overflow, s.name + "_folds": s.folds}
}

// Entry is one drained storage entry: its tuple, the CPU that wrote it,
// the index of its node in Nodes(), and its value words (valid only
// during the callback).
type Entry[K any] struct {
	Key   K
	CPU   uint32
	Node  int
	Value []uint64
}

// Drain reads and deletes every entry of the epoch the programs do not
// write now and hands each to fn. The caller flips the epoch and waits
// for the grace period (shared.State.Flip) before; a drain without a
// flip finds only what was already drained, never half-written entries.
// On a host of several nodes each node's hashes are drained on a thread
// pinned to that node's CPUs. An error from fn ends the drain with it;
// the entries of that chunk not yet handed over are lost, so fn should
// not fail.
func (s *Store[K, E, V]) Drain(fn func(e *Entry[K]) error) error {
	if s.outer == nil {
		return fmt.Errorf("storage %s: closed", s.name)
	}
	var cur uint32
	if err := s.epoch.Lookup(uint32(0), &cur); err != nil {
		return fmt.Errorf("storage %s: read epoch: %w", s.name, err)
	}
	idle := (cur & 1) ^ 1
	s.lastDrained, s.lastPeak = 0, 0
	for i := range s.nodes {
		var n int
		var err error
		if len(s.nodes) == 1 {
			n, err = s.drainNode(i, idle, fn)
		} else {
			n, err = s.drainPinned(i, idle, fn)
		}
		s.lastDrained += n
		s.lastPeak = max(s.lastPeak, n)
		if err != nil {
			return err
		}
	}
	return nil
}

// drainPinned drains node i on a thread pinned to its CPUs (osthread.Go:
// the narrowed affinity ends with the thread).
func (s *Store[K, E, V]) drainPinned(i int, idle uint32, fn func(e *Entry[K]) error) (int, error) {
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	osthread.Go(osthread.OnMain, func() {
		if _, err := osthread.Pin(s.nodes[i].node.CPUs, s.allowed, len(s.overflowV)); err != nil {
			s.log.Debug("storage drain not pinned", "set", s.name, "node", s.nodes[i].node.ID, "reason", err)
		}
		n, err := s.drainNode(i, idle, fn)
		done <- result{n, err}
	})
	r := <-done
	return r.n, r.err
}

func (s *Store[K, E, V]) drainNode(i int, idle uint32, fn func(e *Entry[K]) error) (int, error) {
	m := s.nodes[i].halves[idle]
	var cursor ebpf.MapBatchCursor
	total := 0
	e := Entry[K]{Node: i}
	for {
		got, err := m.BatchLookupAndDelete(&cursor, s.chunkKeys, s.chunkVals, nil)
		if got == 0 && errors.Is(err, syscall.ENOSPC) && len(s.chunkKeys) < int(s.capacity) {
			// A hash bucket holds more entries than a chunk.
			n := min(2*len(s.chunkKeys), int(s.capacity))
			s.chunkKeys, s.chunkVals = make([]E, n), make([]V, n)
			continue
		}
		for j := range got {
			p := unsafe.Pointer(&s.chunkKeys[j])
			e.Key = *(*K)(p)
			e.CPU = *(*uint32)(unsafe.Add(p, s.keySize))
			e.Value = unsafe.Slice((*uint64)(unsafe.Pointer(&s.chunkVals[j])), s.words)
			if ferr := fn(&e); ferr != nil {
				return total + j, ferr
			}
		}
		total += got
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("drain %s node %d: %w", s.name, s.nodes[i].node.ID, err)
		}
	}
}

// Overflow reads the set's per-CPU overflow values (cumulative since
// load) and hands fn each CPU's words; valid only during the call.
func (s *Store[K, E, V]) Overflow(fn func(cpu int, v []uint64)) error {
	if err := s.overflow.Lookup(uint32(0), s.overflowV); err != nil {
		return fmt.Errorf("read %s overflow: %w", s.name, err)
	}
	for c := range s.overflowV {
		fn(c, unsafe.Slice((*uint64)(unsafe.Pointer(&s.overflowV[c])), s.words))
	}
	return nil
}

// Folds is the number of updates the programs folded into the overflow
// value because a node's hash was full (or missing).
func (s *Store[K, E, V]) Folds() uint64 {
	var n uint64
	if s.folds != nil && s.folds.Lookup(uint32(0), s.foldsV) == nil {
		for _, f := range s.foldsV {
			n += f
		}
	}
	return n
}

// Nodes are the nodes the storage has hashes for, in Entry.Node order.
func (s *Store[K, E, V]) Nodes() []Node {
	out := make([]Node, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n.node
	}
	return out
}

// Capacity is the entries one hash (one node, one epoch) holds.
func (s *Store[K, E, V]) Capacity() int { return int(s.capacity) }

// NUMA reports whether every hash was allocated on its node.
func (s *Store[K, E, V]) NUMA() bool { return s.numa }

// LastDrain is the entries the last drain read, in all and the most from
// one hash (what utilization is measured against Capacity by).
func (s *Store[K, E, V]) LastDrain() (entries, peak int) { return s.lastDrained, s.lastPeak }

// Hashes are the storage hashes, node by node, epoch 0 then 1 (tests,
// diagnostics).
func (s *Store[K, E, V]) Hashes() []*ebpf.Map {
	var out []*ebpf.Map
	for _, n := range s.nodes {
		out = append(out, n.halves[:]...)
	}
	return out
}

// Memory is the kernel's own accounting (fdinfo memlock) of the storage's
// maps: every hash, the outer map, the overflow value and the fold counter.
func (s *Store[K, E, V]) Memory() uint64 {
	var total uint64
	for _, m := range append(s.Hashes(), s.outer, s.overflow, s.folds) {
		if m == nil {
			continue
		}
		if info, err := m.Info(); err == nil {
			if b, ok := info.Memlock(); ok {
				total += b
			}
		}
	}
	return total
}

// Close frees the storage's maps (a loaded object's programs keep what
// they use until they are closed). A nil store's Close does nothing.
func (s *Store[K, E, V]) Close() error {
	if s == nil {
		return nil
	}
	err := errors.Join(s.closeInner(), s.outer.Close(), s.overflow.Close(), s.folds.Close())
	s.outer, s.overflow, s.folds = nil, nil, nil
	if err != nil {
		return fmt.Errorf("close %s storage: %w", s.name, err)
	}
	return nil
}
