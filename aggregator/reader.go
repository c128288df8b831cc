// Package aggregator reads per-CPU multivariate metric-set maps and reduces
// them to one value per key, grouped by NUMA node.
package aggregator

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"syscall"
	"unsafe"

	"github.com/cilium/ebpf"
)

// batchBytes caps the per-chunk value buffer so that hosts with many CPUs do
// not need max_entries × CPUs × value size of memory at once.
const batchBytes = 1 << 20

// PerCPUReader snapshots one per-CPU hash map whose values are arrays of u64
// words (every telagent metric-set value is), reduced NUMA node by NUMA
// node: one worker per node, on a thread pinned to that node's CPUs, sums
// its CPUs into a per-node partial kept in node-local memory, and the
// partials are merged into the totals (see nodes.go for who reads which
// memory). Buffers are allocated once and reused across reads: a
// steady-state Read allocates nothing per key.
//
// A reader owns OS threads and memory outside the Go heap: Close must be
// called when it is no longer used. A PerCPUReader is not safe for
// concurrent use; one goroutine calls Read and then the accessors.
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
	perCPU    [][]uint64 // one key's values, for the iteration fallback

	keys []K // the snapshot's keys; values are in red
	red  *reducer
	n    int
	each func(i int, k K) error // set during Each
}

// Option configures a PerCPUReader.
type Option func(*readerOptions)

type readerOptions struct {
	log *slog.Logger
}

// WithLogger sets where the reader notes, at debug level, how each node
// worker was pinned, and which it could not pin (their CPUs are outside the
// process's allowed set, as in a restricted cpuset; the sums are the same,
// unpinned). A nil logger discards the notes, as does the default.
func WithLogger(l *slog.Logger) Option {
	return func(o *readerOptions) {
		if l != nil {
			o.log = l
		}
	}
}

// NewPerCPUReader checks that m is a per-CPU map with the layout the schema
// declares (keySize bytes of key K, words u64 of value), sizes its
// buffers and starts one pinned worker per NUMA node of topo. K is the
// bpf2go-generated key type. Close releases the workers and buffers.
func NewPerCPUReader[K any](m *ebpf.Map, keySize, words int, topo Topology, opts ...Option) (*PerCPUReader[K], error) {
	o := readerOptions{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
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
		return nil, fmt.Errorf("possible CPUs: %w", err)
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
	red, err := newReducer(topo, words, int(m.MaxEntries()), o.log)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", m.String(), err)
	}
	perKey := topo.PossibleCPUs * words * 8
	chunk := max(1, min(int(m.MaxEntries()), batchBytes/perKey))
	r := &PerCPUReader[K]{
		m: m, topo: topo, keySize: keySize, words: words, useBatch: true,
		red: red,
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
// next Read or Close (it points into memory Close unmaps).
func (r *PerCPUReader[K]) Value(i int) []uint64 { return r.red.value(i) }

// NodeValue returns the i-th key's value summed over the CPUs of one NUMA
// node: node is an index into Nodes(), not a node ID (IDs may have holes).
// The NodeValues of a key add up to its Value. Valid until the next Read
// or Close.
func (r *PerCPUReader[K]) NodeValue(i, node int) []uint64 { return r.red.nodeValue(i, node) }

// Nodes returns the NUMA nodes the reader reduces, in the order NodeValue
// indexes them: the topology's nodes that own at least one CPU.
func (r *PerCPUReader[K]) Nodes() []Node {
	out := make([]Node, len(r.red.nodes))
	for i, n := range r.red.nodes {
		out[i] = Node{ID: n.ID, CPUs: slices.Clone(n.CPUs)}
	}
	return out
}

// Close stops the node workers (their threads end) and unmaps the
// snapshot's buffers; values returned earlier must not be used after it.
// It does not close the map. Close is idempotent, and a nil reader's
// Close does nothing, so a probe may call it on any path.
func (r *PerCPUReader[K]) Close() error {
	if r == nil || r.red == nil {
		return nil
	}
	r.n, r.keys = 0, nil
	if err := r.red.close(); err != nil {
		return fmt.Errorf("close reader of %s: %w", r.m.String(), err)
	}
	return nil
}

// Read snapshots the whole map: batch lookups where the kernel has them,
// per-key iteration otherwise. Values only grow inside an interval, so a
// key's snapshot is a consistent lower bound of its cumulative total.
func (r *PerCPUReader[K]) Read() error {
	if r.red.closed {
		return fmt.Errorf("read %s: reader closed", r.m.String())
	}
	r.reset()
	defer r.red.finish()
	if r.useBatch {
		err := r.readBatch()
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
		r.useBatch = false // kernel < 5.6: fall through to iteration from now on
		r.reset()
	}
	return r.readIterate()
}

// Each reads the map like Read, but streams it: after each chunk of keys
// is reduced, fn is called for every key of the chunk with its index i in
// the chunk, for Value(i) and NodeValue(i, node), valid only during that
// call. The reader then holds one chunk's values instead of the whole
// map's (a 100k-key syscalls set: ~0.5 instead of ~26 MB). An error from
// fn ends the read with it. After Each, Len is the number of keys read;
// Key and Value are not valid.
func (r *PerCPUReader[K]) Each(fn func(i int, k K) error) error {
	if r.red.closed {
		return fmt.Errorf("read %s: reader closed", r.m.String())
	}
	r.each, r.red.window = fn, true
	defer func() { r.each, r.red.window = nil, false }()
	return r.Read()
}

func (r *PerCPUReader[K]) reset() {
	r.n = 0
	r.keys = r.keys[:0]
	r.red.reset()
}

// flush hands the first got keys of the chunk buffers to the node workers
// and appends them to the snapshot (or, in Each, hands them to its fn).
func (r *PerCPUReader[K]) flush(got int) error {
	if err := r.red.add(r.chunkVals, got); err != nil {
		return fmt.Errorf("reduce %s: %w", r.m.String(), err)
	}
	r.n += got
	if r.each == nil {
		r.keys = append(r.keys, r.chunkKeys[:got]...)
		return nil
	}
	for i, k := range r.chunkKeys[:got] {
		if err := r.each(i, k); err != nil {
			return err
		}
	}
	return nil
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
		if ferr := r.flush(got); ferr != nil {
			return ferr
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("batch read %s: %w", r.m.String(), err)
		}
	}
}

// readIterate is the fallback for kernels without batch map operations:
// keys are looked up one by one into the chunk buffers, which go to the
// node workers whenever they are full.
func (r *PerCPUReader[K]) readIterate() error {
	if r.perCPU == nil {
		r.perCPU = make([][]uint64, r.topo.PossibleCPUs)
		for i := range r.perCPU {
			r.perCPU[i] = make([]uint64, r.words)
		}
	}
	per := r.topo.PossibleCPUs * r.words
	var key, next K
	var prev any // nil: start from the first key
	got := 0
	for {
		if err := r.m.NextKey(prev, &next); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return r.flush(got)
			}
			return fmt.Errorf("iterate %s: %w", r.m.String(), err)
		}
		key = next
		prev = &key
		if err := r.m.Lookup(key, r.perCPU); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue // deleted between NextKey and Lookup
			}
			return fmt.Errorf("lookup %s: %w", r.m.String(), err)
		}
		slot := r.chunkVals[got*per : (got+1)*per]
		for c, v := range r.perCPU {
			copy(slot[c*r.words:], v)
		}
		r.chunkKeys[got] = key
		if got++; got == r.chunk {
			if err := r.flush(got); err != nil {
				return err
			}
			got = 0
		}
	}
}
