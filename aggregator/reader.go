// Package aggregator reads per-CPU multivariate metric-set maps and reduces
// them to one value per key, grouped by NUMA node.
package aggregator

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
	"unsafe"

	"github.com/cilium/ebpf"
)

// batchBytes caps the per-chunk value buffer so that hosts with many CPUs do
// not need max_entries × CPUs × value size of memory at once.
const batchBytes = 4 << 20

// PerCPUReader snapshots one per-CPU hash map whose values are arrays of u64
// words (every telagent metric-set value is). Buffers are allocated once and
// reused across reads: a steady-state Read allocates nothing per key.
type PerCPUReader[K any] struct {
	m        *ebpf.Map
	topo     Topology
	keySize  int
	words    int
	chunk    int
	useBatch bool

	chunkKeys []K      // chunk
	chunkVals []uint64 // chunk × possibleCPUs × words
	cursor    ebpf.MapBatchCursor

	keys []K      // n, the snapshot
	vals []uint64 // n × words, reduced over every CPU
	node []uint64 // words, one node's partial
	n    int
}

// NewPerCPUReader checks that m is a per-CPU map with the layout the schema
// declares (keySize bytes of key K, words u64 of value) and sizes its
// buffers. K is the bpf2go-generated key type.
func NewPerCPUReader[K any](m *ebpf.Map, keySize, words int, topo Topology) (*PerCPUReader[K], error) {
	if sz := int(unsafe.Sizeof(*new(K))); sz != keySize {
		return nil, fmt.Errorf("map %s: key type is %d bytes, schema says %d", m.String(), sz, keySize)
	}
	if t := m.Type(); t != ebpf.PerCPUHash && t != ebpf.LRUCPUHash && t != ebpf.PerCPUArray {
		return nil, fmt.Errorf("map %s: type %s is not per-CPU", m.String(), t)
	}
	if int(m.KeySize()) != keySize || int(m.ValueSize()) != words*8 {
		return nil, fmt.Errorf("map %s: layout key %d/value %d bytes, schema says %d/%d",
			m.String(), m.KeySize(), m.ValueSize(), keySize, words*8)
	}
	if topo.PossibleCPUs <= 0 {
		return nil, errors.New("topology has no CPUs")
	}
	// Per-CPU values are laid out by the kernel's possible CPUs: a topology
	// of another size, or one that misses a CPU or lists it twice, would
	// misread or double-count silently.
	if n, err := ebpf.PossibleCPU(); err != nil {
		return nil, err
	} else if n != topo.PossibleCPUs {
		return nil, fmt.Errorf("topology has %d possible CPUs, the kernel %d", topo.PossibleCPUs, n)
	}
	seen := make([]bool, topo.PossibleCPUs)
	for _, node := range topo.Nodes {
		for _, c := range node.CPUs {
			if c < 0 || c >= topo.PossibleCPUs || seen[c] {
				return nil, fmt.Errorf("topology: CPU %d of node %d is not possible or is in two nodes", c, node.ID)
			}
			seen[c] = true
		}
	}
	if i := slices.Index(seen, false); i >= 0 {
		return nil, fmt.Errorf("topology: CPU %d is in no node", i)
	}
	perKey := topo.PossibleCPUs * words * 8
	chunk := max(1, min(int(m.MaxEntries()), batchBytes/perKey))
	r := &PerCPUReader[K]{
		m: m, topo: topo, keySize: keySize, words: words, useBatch: true,
		node: make([]uint64, words),
	}
	r.setChunk(chunk)
	return r, nil
}

func (r *PerCPUReader[K]) setChunk(chunk int) {
	r.chunk = chunk
	r.chunkKeys = make([]K, chunk)
	r.chunkVals = make([]uint64, chunk*r.topo.PossibleCPUs*r.words)
}

// Len is the number of keys of the last Read.
func (r *PerCPUReader[K]) Len() int { return r.n }

// Key returns the i-th key of the last Read; valid until the next Read.
func (r *PerCPUReader[K]) Key(i int) K { return r.keys[i] }

// Value returns the i-th key's value summed over every CPU; valid until the
// next Read.
func (r *PerCPUReader[K]) Value(i int) []uint64 { return r.vals[i*r.words : (i+1)*r.words] }

// Read snapshots the whole map: batch lookups where the kernel has them,
// per-key iteration otherwise. Values only grow inside an interval, so a
// key's snapshot is a consistent lower bound of its cumulative total.
func (r *PerCPUReader[K]) Read() error {
	r.n = 0
	r.keys = r.keys[:0]
	r.vals = r.vals[:0]
	if r.useBatch {
		err := r.readBatch()
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
		r.useBatch = false // kernel < 5.6: fall through to iteration from now on
		r.n, r.keys, r.vals = 0, r.keys[:0], r.vals[:0]
	}
	return r.readIterate()
}

func (r *PerCPUReader[K]) readBatch() error {
	r.cursor = ebpf.MapBatchCursor{}
	for {
		got, err := r.m.BatchLookup(&r.cursor, r.chunkKeys, r.chunkVals, nil)
		if got == 0 && errors.Is(err, syscall.ENOSPC) && r.chunk < int(r.m.MaxEntries()) {
			// A hash bucket holds more keys than a chunk: the kernel
			// returned nothing and left the cursor on that bucket.
			r.setChunk(min(2*r.chunk, int(r.m.MaxEntries())))
			continue
		}
		per := r.topo.PossibleCPUs * r.words
		for i := 0; i < got; i++ {
			r.append(r.chunkKeys[i], r.chunkVals[i*per:(i+1)*per:(i+1)*per])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("batch read %s: %w", r.m.String(), err)
		}
	}
}

// readIterate is the fallback for kernels without batch map operations.
func (r *PerCPUReader[K]) readIterate() error {
	var key, next K
	perCPU := make([][]uint64, r.topo.PossibleCPUs)
	for i := range perCPU {
		perCPU[i] = make([]uint64, r.words)
	}
	flat := r.chunkVals[:r.topo.PossibleCPUs*r.words]
	var prev any // nil: start from the first key
	for {
		if err := r.m.NextKey(prev, &next); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return nil
			}
			return fmt.Errorf("iterate %s: %w", r.m.String(), err)
		}
		key = next
		prev = &key
		if err := r.m.Lookup(key, perCPU); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue // deleted between NextKey and Lookup
			}
			return fmt.Errorf("lookup %s: %w", r.m.String(), err)
		}
		for c, v := range perCPU {
			copy(flat[c*r.words:], v)
		}
		r.append(key, flat)
	}
}

// append reduces one key's per-CPU values node by node (each node's CPUs
// into a partial, then partials into the total) and stores the result.
func (r *PerCPUReader[K]) append(key K, perCPU []uint64) {
	r.keys = append(r.keys, key)
	start := len(r.vals)
	r.vals = growZero(r.vals, r.words)
	total := r.vals[start:]
	w := r.words
	for _, node := range r.topo.Nodes {
		partial := r.node
		clear(partial)
		for _, c := range node.CPUs {
			src := perCPU[c*w : (c+1)*w]
			for j, v := range src {
				partial[j] += v
			}
		}
		for j, v := range partial {
			total[j] += v
		}
	}
	r.n++
}

// growZero extends s by n zeroed words, reusing capacity when it can.
func growZero(s []uint64, n int) []uint64 {
	l := len(s)
	if cap(s)-l >= n {
		s = s[:l+n]
		clear(s[l:])
		return s
	}
	return append(s, make([]uint64, n)...)
}
