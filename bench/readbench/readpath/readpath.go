// Package readpath is the collection path of one metric set, end to end
// except the network, on a real per-CPU map filled from user space: read
// (batch lookups reduced by aggregator's node workers, or a naive per-key
// lookup loop), resolve each key's process, turn values into OTLP points
// (probes.SetEmitter into metrics.Builder, with the syscalls metric set's
// layout) and export them (OTLP/JSON to /dev/null). bench/readbench and
// aggregator's benchmarks share it, so both measure the same code.
package readpath

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/metrics"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/syscalls"
)

// Key is the syscalls metric set's key (bpf2go's syscallsSyscallsKey).
type Key struct{ Tgid, Nr uint32 }

// SyscallsPerProcess is how many (process, syscall) series each fake
// process has: a busy process touches a few dozen distinct syscalls.
const SyscallsPerProcess = 50

// set is the layout every map here has: the syscalls metric set's.
var set = entity.MetricSetSyscalls

// Snapshot is a read of the whole map, key by key.
type Snapshot interface {
	Read() error
	Len() int
	Key(i int) Key
	Value(i int) []uint64
}

// Env is one map of Keys live series with everything the collection path
// needs around it. Close releases it.
type Env struct {
	Keys     int
	Map      *ebpf.Map
	Topology aggregator.Topology

	procRoot string
	resolver *entity.ProcessResolver
	emitter  *probes.SetEmitter
	builder  *metrics.Builder
	iv       *metrics.Interval // the last Build's, released by the next
	mat      metrics.Materializer
	exporter export.Exporter
	names    map[uint32]attribute.Set
	rms      int // resources of the last export
	protoEnc export.ProtoEncoder
}

// New creates a per-CPU hash map of the syscalls layout holding keys
// series (keys/SyscallsPerProcess processes), fills every CPU's slot of
// every key, and writes a fake /proc for the processes so that the
// resolver describes them as live ones (one stat read per process and
// interval, as in the agent).
func New(keys int, topo aggregator.Topology) (*Env, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "readbench", Type: ebpf.PerCPUHash,
		KeySize: uint32(set.KeySize), ValueSize: uint32(set.ValueWords * 8),
		MaxEntries: uint32(keys + 1), // the probe's overflow slot
	})
	if err != nil {
		return nil, fmt.Errorf("create map: %w", err)
	}
	e := &Env{Keys: keys, Map: m, Topology: topo, names: map[uint32]attribute.Set{}}
	if err := e.fill(); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	if e.procRoot, err = fakeProc(keys); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	host := []attribute.KeyValue{entity.AttrHostID.String("readbench"), entity.AttrHostName.String("readbench")}
	if e.resolver, err = entity.NewProcessResolver(e.procRoot, host); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	if e.emitter, err = probes.NewSetEmitter(set, nil); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	e.builder = metrics.NewBuilder("readbench", time.Now())
	if e.exporter, err = export.NewOTLPJSON(os.DevNull); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	return e, nil
}

// keyOf is the i-th series: process 100000+i/SyscallsPerProcess, one of
// 50 distinct syscall numbers.
func keyOf(i int) Key {
	return Key{Tgid: uint32(100000 + i/SyscallsPerProcess), Nr: uint32((i % SyscallsPerProcess) * 7)}
}

// fill writes every key in batches of 1024, each CPU's slot holding a
// plausible syscall record: calls spread over a few log2 buckets.
func (e *Env) fill() error {
	ncpu := e.Topology.PossibleCPUs
	const batch = 1024
	keys := make([]Key, 0, batch)
	vals := make([]uint64, 0, batch*ncpu*set.ValueWords)
	perCPU := make([][]uint64, 0, batch*ncpu) // cilium/ebpf wants one element per key and CPU
	rng := rand.New(rand.NewPCG(uint64(e.Keys), 1))
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		perCPU = perCPU[:0]
		for i := 0; i < len(vals); i += set.ValueWords {
			perCPU = append(perCPU, vals[i:i+set.ValueWords])
		}
		n, err := e.Map.BatchUpdate(keys, perCPU, nil)
		if err != nil || n != len(keys) {
			return fmt.Errorf("fill map: %d of %d keys: %w", n, len(keys), err)
		}
		keys, vals = keys[:0], vals[:0]
		return nil
	}
	for i := range e.Keys {
		keys = append(keys, keyOf(i))
		for range ncpu {
			vals = append(vals, make([]uint64, set.ValueWords)...) // no allocation: appended in place
			v := vals[len(vals)-set.ValueWords:]
			for range 4 {
				b := rng.IntN(12)
				n := 1 + rng.Uint64N(5000)
				v[3+b] += n
				v[0] += n
				v[2] += n << (10 + b)
			}
			v[1] = v[0] / 50
		}
		if len(keys) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// fakeProc writes a /proc with a boot time and, for each process, the
// stat, comm and cmdline the resolver reads.
func fakeProc(keys int) (string, error) {
	root, err := os.MkdirTemp("", "readbench-proc-")
	if err != nil {
		return "", fmt.Errorf("fake /proc: %w", err)
	}
	write := func(name, content string) error {
		return os.WriteFile(filepath.Join(root, name), []byte(content), 0o644)
	}
	if err := write("stat", "cpu  1 2 3 4\nbtime 1700000000\n"); err != nil {
		return root, fmt.Errorf("fake /proc: %w", err)
	}
	for p := 0; p*SyscallsPerProcess < keys; p++ {
		pid := strconv.Itoa(100000 + p)
		if err := os.Mkdir(filepath.Join(root, pid), 0o755); err != nil {
			return root, fmt.Errorf("fake /proc: %w", err)
		}
		stat := pid + " (worker) S 1 1 1 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 12345 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
		for _, f := range [][2]string{{"stat", stat}, {"comm", "worker\n"}, {"cmdline", "/usr/bin/worker\x00--serve\x00"}} {
			if err := write(filepath.Join(pid, f[0]), f[1]); err != nil {
				return root, fmt.Errorf("fake /proc: %w", err)
			}
		}
	}
	return root, nil
}

// Close releases the map and the fake /proc.
func (e *Env) Close() error {
	var errs []error
	if e.exporter != nil {
		_ = e.exporter.Shutdown(context.Background()) // fsync of /dev/null fails (EINVAL); nothing to lose
	}
	if e.procRoot != "" {
		errs = append(errs, os.RemoveAll(e.procRoot))
	}
	errs = append(errs, e.Map.Close())
	return errors.Join(errs...)
}

// NewReader is the agent's read path: aggregator.PerCPUReader.
func (e *Env) NewReader() (*aggregator.PerCPUReader[Key], error) {
	return aggregator.NewPerCPUReader[Key](e.Map, set.KeySize, set.ValueWords, e.Topology)
}

// Build turns a snapshot into this interval's OTLP data the way the
// syscalls probe's Collect does: per key, its process's resource, its
// syscall's attribute set, and the emitter's points into the builder.
func (e *Env) Build(s Snapshot) {
	e.begin()
	for i := range s.Len() {
		e.add(s.Key(i), s.Value(i))
	}
	e.iv = e.builder.Finish()
}

// Stream is the agent's collection path: the reader's Each (one chunk of
// keys at a time, never the whole map) straight into the builder.
func (e *Env) Stream(r *aggregator.PerCPUReader[Key]) error {
	e.begin()
	err := r.Each(func(i int, k Key) error {
		e.add(k, r.Value(i))
		return nil
	})
	e.iv = e.builder.Finish()
	if err == nil && r.Len() != e.Keys {
		err = fmt.Errorf("streamed %d keys, want %d", r.Len(), e.Keys)
	}
	return err
}

func (e *Env) begin() {
	e.iv.Release()
	e.resolver.NextGeneration(30)
	e.builder.Begin(time.Now())
}

func (e *Env) add(k Key, v []uint64) {
	res := e.resolver.Process(k.Tgid)
	e.emitter.Emit(e.builder, res, e.name(k.Nr), v)
	_ = e.resolver.Gone(k.Tgid)
}

func (e *Env) name(nr uint32) attribute.Set {
	s, ok := e.names[nr]
	if !ok {
		s = attribute.NewSet(entity.AttrTelagentSyscallName.String(syscalls.Name(nr)))
		e.names[nr] = s
	}
	return s
}

// Result is the export stage "none": the built interval as the agent's
// queue holds it (metrics.Interval), not encoded.
func (e *Env) Result() { e.rms = e.iv.Len() }

// ExportJSON writes the built interval with the otlp-json exporter, as
// one OTLP/JSON line, to /dev/null: read resource by resource from the
// compact interval, as the agent's queue hands it over.
func (e *Env) ExportJSON(ctx context.Context) error {
	e.rms = e.iv.Len()
	return e.exporter.(export.IntervalExporter).ExportInterval(ctx, e.iv)
}

// EncodeProto encodes the built interval as OTLP/protobuf requests with
// the otlp exporter's encoder (hand-written, resource by resource from the
// compact interval, a request per 3 MiB, into a reused buffer): what that
// exporter spends before the network.
func (e *Env) EncodeProto() error {
	e.rms = e.iv.Len()
	e.protoEnc.EncodeInterval(e.iv, func([]byte) {}) // the network is not measured
	return nil
}

// Resources is the number of resources of the last export.
func (e *Env) Resources() int { return e.rms }

// Naive is the read path without batch lookups: what a straightforward
// agent does with cilium/ebpf's iterator, one NextKey and one Lookup
// syscall per key, each key's per-CPU values summed as they come. Its
// snapshot buffers are reused like the reader's.
type Naive struct {
	m      *ebpf.Map
	perCPU [][]uint64
	words  int
	keys   []Key
	vals   []uint64
}

// NewNaive returns the naive reader of e's map.
func (e *Env) NewNaive() *Naive {
	per := make([][]uint64, e.Topology.PossibleCPUs)
	for i := range per {
		per[i] = make([]uint64, set.ValueWords)
	}
	return &Naive{m: e.Map, perCPU: per, words: set.ValueWords}
}

// Read implements Snapshot.
func (n *Naive) Read() error {
	n.keys, n.vals = n.keys[:0], n.vals[:0]
	var k Key
	it := n.m.Iterate()
	for it.Next(&k, n.perCPU) {
		n.keys = append(n.keys, k)
		start := len(n.vals)
		n.vals = append(n.vals, n.perCPU[0]...)
		sum := n.vals[start:]
		for _, v := range n.perCPU[1:] {
			for j, w := range v {
				sum[j] += w
			}
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate: %w", err)
	}
	return nil
}

// Len implements Snapshot.
func (n *Naive) Len() int { return len(n.keys) }

// Key implements Snapshot.
func (n *Naive) Key(i int) Key { return n.keys[i] }

// Value implements Snapshot.
func (n *Naive) Value(i int) []uint64 { return n.vals[i*n.words : (i+1)*n.words] }

// EntryKey is a storage entry's key of the syscalls layout: the tuple and
// the CPU that wrote it (bpf2go's syscallsSyscallsEntryKey).
type EntryKey struct {
	Tuple Key
	CPU   uint32
}

// Value is the syscalls layout's value.
type Value [32]uint64

// Node is the agent's storage path for the same series (map_type
// node_hash): each interval the programs' entries are drained from the
// idle epoch's hash into the cumulative totals, which are then emitted.
// Touch stands in for the programs: every key written once, on CPU 0, as
// in an interval that touched every series.
type Node struct {
	env    *Env
	store  *aggregator.Store[Key, EntryKey, Value]
	epoch  *ebpf.Map
	totals *aggregator.Totals[Key]
	keys   []EntryKey
	vals   []Value
}

// NewNode creates the storage and totals for e's series.
func (e *Env) NewNode() (*Node, error) {
	if set.ValueWords != len(Value{}) {
		return nil, fmt.Errorf("syscalls value is %d words, Value %d", set.ValueWords, len(Value{}))
	}
	epoch, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("epoch map: %w", err)
	}
	spec := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{
		"s": {Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: 2,
			InnerMap: &ebpf.MapSpec{Type: ebpf.Hash, KeySize: uint32(set.EntryKeySize), ValueSize: uint32(8 * set.ValueWords), MaxEntries: 1}},
		"s_overflow": {Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: uint32(8 * set.ValueWords), MaxEntries: 1},
		"s_folds":    {Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1},
	}}
	n := &Node{env: e, epoch: epoch}
	if n.store, err = aggregator.NewStore[Key, EntryKey, Value](spec, "s", set.KeySize, set.ValueWords, uint32(e.Keys), e.Topology, epoch, nil); err != nil {
		return nil, errors.Join(err, epoch.Close())
	}
	if n.totals, err = aggregator.NewTotals[Key](set.ValueWords, e.Keys); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	n.keys, n.vals = make([]EntryKey, touchBatch), make([]Value, touchBatch)
	return n, nil
}

// touchBatch is how many entries Touch writes per batch: the stand-in for
// the programs holds one batch, not the series (it is not the agent's
// memory).
const touchBatch = 1024

// Touch writes every series' entry into the hash the next Read drains:
// a plausible syscall record each (calls over a few log2 buckets).
func (n *Node) Touch() error {
	var cur uint32
	if err := n.epoch.Lookup(uint32(0), &cur); err != nil {
		return err
	}
	idle := n.store.Hashes()[(cur&1)^1] // node 0: epoch 0, epoch 1
	rng := rand.New(rand.NewPCG(uint64(n.env.Keys), 2))
	for i := 0; i < n.env.Keys; i += touchBatch {
		m := min(touchBatch, n.env.Keys-i)
		for j := range m {
			n.keys[j] = EntryKey{Tuple: keyOf(i + j)}
			v := &n.vals[j]
			*v = Value{}
			for range 4 {
				b := rng.IntN(12)
				c := 1 + rng.Uint64N(5000)
				v[3+b] += c
				v[0] += c
				v[2] += c << (10 + b)
			}
			v[1] = v[0] / 50
		}
		if _, err := idle.BatchUpdate(n.keys[:m], n.vals[:m], nil); err != nil {
			return fmt.Errorf("touch: %w", err)
		}
	}
	return nil
}

// Read drains the idle hash into the totals.
func (n *Node) Read() error {
	err := n.store.Drain(func(en *aggregator.Entry[Key]) error {
		_, err := n.totals.Add(aggregator.TotalKey[Key]{Key: en.Key}, en.Value)
		return err
	})
	if got, _ := n.store.LastDrain(); err == nil && got != n.env.Keys {
		err = fmt.Errorf("drained %d entries, want %d", got, n.env.Keys)
	}
	return err
}

// Len is the number of series in the totals.
func (n *Node) Len() int { return n.totals.Len() }

// Build emits every total into the builder, as ProcessSet.Collect does.
func (n *Node) Build() error {
	n.env.begin()
	err := n.totals.Each(func(_ int, k aggregator.TotalKey[Key], v []uint64) error {
		n.env.add(k.Key, v)
		return nil
	})
	n.env.iv = n.env.builder.Finish()
	return err
}

// Memory is the storage's kernel memory (fdinfo memlock).
func (n *Node) Memory() uint64 { return n.store.Memory() }

// Close frees the storage, the totals and the epoch map.
func (n *Node) Close() error {
	return errors.Join(n.store.Close(), n.totals.Close(), n.epoch.Close())
}

// Memory is the per-CPU hash's kernel memory (fdinfo memlock).
func (e *Env) Memory() uint64 {
	info, err := e.Map.Info()
	if err != nil {
		return 0
	}
	n, _ := info.Memlock()
	return n
}
