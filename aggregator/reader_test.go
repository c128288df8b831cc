package aggregator

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// testKey is an 8-byte metric-set key, as bpf2go would generate it.
type testKey struct{ A, B uint32 }

const testWords = 5

type testValue [testWords]uint64

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create BPF maps")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		tb.Fatalf("raise RLIMIT_MEMLOCK: %v", err)
	}
}

func possibleCPUs(tb testing.TB) int {
	tb.Helper()
	n, err := ebpf.PossibleCPU()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func newMap(tb testing.TB, typ ebpf.MapType, keySize, valueSize, maxEntries uint32) *ebpf.Map {
	tb.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "telagent_test", Type: typ,
		KeySize: keySize, ValueSize: valueSize, MaxEntries: maxEntries,
	})
	if err != nil {
		tb.Fatalf("create %s map: %v", typ, err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// fill writes nkeys random keys with random per-CPU values and returns the
// oracle: each key's plain sum over every possible CPU.
func fill(tb testing.TB, m *ebpf.Map, rng *rand.Rand, nkeys int) map[testKey]testValue {
	tb.Helper()
	ncpu := possibleCPUs(tb)
	want := make(map[testKey]testValue, nkeys)
	keys := make([]testKey, 0, nkeys)
	for len(keys) < nkeys {
		k := testKey{A: rng.Uint32N(1 << 20), B: rng.Uint32N(512)}
		if _, dup := want[k]; dup {
			continue
		}
		want[k] = testValue{}
		keys = append(keys, k)
	}
	vals := make([]testValue, nkeys*ncpu) // key-major, one value per possible CPU
	for i, k := range keys {
		var sum testValue
		for c := range ncpu {
			for j := range testWords {
				v := rng.Uint64N(1 << 40)
				vals[i*ncpu+c][j] = v
				sum[j] += v
			}
		}
		want[k] = sum
	}
	n, err := m.BatchUpdate(keys, vals, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		for i, k := range keys {
			if err := m.Update(k, vals[i*ncpu:(i+1)*ncpu], ebpf.UpdateAny); err != nil {
				tb.Fatalf("update %v: %v", k, err)
			}
		}
		n, err = nkeys, nil
	}
	if err != nil || n != nkeys {
		tb.Fatalf("batch update: %d of %d keys: %v", n, nkeys, err)
	}
	return want
}

// newTestReader is NewPerCPUReader with Close at the end of the test.
func newTestReader[K any](tb testing.TB, m *ebpf.Map, keySize, words int, topo Topology) *PerCPUReader[K] {
	tb.Helper()
	r, err := NewPerCPUReader[K](m, keySize, words, topo)
	if err != nil {
		tb.Fatalf("NewPerCPUReader: %v", err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Error(err)
		}
	})
	return r
}

// snapshot checks r's last Read against want key by key and returns it.
func snapshot(t *testing.T, r *PerCPUReader[testKey], want map[testKey]testValue) map[testKey]testValue {
	t.Helper()
	if r.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", r.Len(), len(want))
	}
	got := make(map[testKey]testValue, r.Len())
	for i := range r.Len() {
		k, v := r.Key(i), r.Value(i)
		if len(v) != testWords {
			t.Fatalf("Value(%d) has %d words, want %d", i, len(v), testWords)
		}
		if _, dup := got[k]; dup {
			t.Errorf("key %v read twice", k)
		}
		got[k] = testValue(v)
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("key %v read but not in the map", k)
		case testValue(v) != w:
			t.Errorf("key %v = %v, want %v", k, v, w)
		}
	}
	return got
}

// eachSnapshot streams r with Each and checks every key against want, and
// each key's node values against its total, during the callback.
func eachSnapshot(t *testing.T, r *PerCPUReader[testKey], want map[testKey]testValue) {
	t.Helper()
	got := map[testKey]testValue{}
	err := r.Each(func(i int, k testKey) error {
		v := testValue(r.Value(i))
		var sum testValue
		for n := range r.Nodes() {
			for j, w := range r.NodeValue(i, n) {
				sum[j] += w
			}
		}
		if sum != v {
			t.Errorf("Each: key %v: node values sum to %v, total %v", k, sum, v)
		}
		if _, dup := got[k]; dup {
			t.Errorf("Each: key %v streamed twice", k)
		}
		got[k] = v
		return nil
	})
	if err != nil {
		t.Fatalf("Each: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("Each streamed %d keys differing from the map's %d", len(got), len(want))
	}
	if r.Len() != len(want) {
		t.Errorf("Len() after Each = %d, want %d", r.Len(), len(want))
	}
	if len(want) > 0 {
		stop := errors.New("stop")
		calls := 0
		if err := r.Each(func(int, testKey) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Each with a failing callback: %v after %d calls, want the callback's error after 1", err, calls)
		}
	}
}

// testTopologies are the per-node groupings the reduction must be
// indifferent to: one node, a fake two-node split of the real possible
// CPUs, and what /sys says.
func testTopologies(t *testing.T) map[string]Topology {
	ncpu := possibleCPUs(t)
	topos := map[string]Topology{"single": SingleNode(ncpu)}
	if ncpu == 1 {
		t.Log("only 1 possible CPU: the fake two-node split degenerates to one node")
		topos["split"] = Topology{PossibleCPUs: 1, Nodes: []Node{{ID: 0, CPUs: []int{0}}}}
	} else {
		var even, odd []int // interleaved, as on the "odd" fixture
		for c := range ncpu {
			if c%2 == 0 {
				even = append(even, c)
			} else {
				odd = append(odd, c)
			}
		}
		topos["split"] = Topology{PossibleCPUs: ncpu, Nodes: []Node{{ID: 0, CPUs: even}, {ID: 1, CPUs: odd}}}
	}
	sys, err := DiscoverTopology("/sys")
	if err != nil {
		t.Fatal(err)
	}
	topos["sysfs"] = sys
	for name, topo := range topos {
		checkInvariants(t, topo)
		if topo.PossibleCPUs != ncpu {
			t.Fatalf("topology %s has %d CPUs, kernel %d", name, topo.PossibleCPUs, ncpu)
		}
	}
	return topos
}

// readModes are the read paths: the batch one (with its normal chunk and
// with small chunks, so the cursor has to carry over between calls) and the
// per-key iteration fallback of kernels without batch operations.
var readModes = []struct {
	name  string
	setup func(r *PerCPUReader[testKey])
}{
	{"batch", func(r *PerCPUReader[testKey]) {}},
	{"batch-chunk16", func(r *PerCPUReader[testKey]) { r.setChunk(16) }},
	{"iterate", func(r *PerCPUReader[testKey]) { r.useBatch = false }},
}

func TestPerCPUReaderKernelMap(t *testing.T) {
	requireRoot(t)
	const nkeys, maxEntries = 700, 1000
	m := newMap(t, ebpf.PerCPUHash, 8, testWords*8, maxEntries)
	rng := rand.New(rand.NewPCG(1, 2))
	want := fill(t, m, rng, nkeys)

	// Second state of the map: 100 keys rewritten, 50 deleted, 30 added.
	ncpu := possibleCPUs(t)
	want2 := maps.Clone(want)
	keys := slices.SortedFunc(maps.Keys(want), func(a, b testKey) int {
		return cmp.Or(cmp.Compare(a.A, b.A), cmp.Compare(a.B, b.B))
	})
	mutate := func(t *testing.T) {
		for _, k := range keys[:100] {
			per := make([]testValue, ncpu)
			var sum testValue
			for c := range per {
				for j := range testWords {
					per[c][j] = rng.Uint64N(1 << 40)
					sum[j] += per[c][j]
				}
			}
			if err := m.Update(k, per, ebpf.UpdateExist); err != nil {
				t.Fatal(err)
			}
			want2[k] = sum
		}
		for _, k := range keys[100:150] {
			if err := m.Delete(k); err != nil {
				t.Fatal(err)
			}
			delete(want2, k)
		}
		for len(want2) < nkeys-50+30 {
			k := testKey{A: 1<<20 + rng.Uint32N(1000), B: 7}
			if _, dup := want2[k]; dup {
				continue
			}
			per := make([]testValue, ncpu)
			var sum testValue
			for c := range per {
				per[c] = testValue{uint64(c + 1), 0, 1 << 63, 2, uint64(k.A)}
				for j := range testWords {
					sum[j] += per[c][j]
				}
			}
			if err := m.Update(k, per, ebpf.UpdateNoExist); err != nil {
				t.Fatal(err)
			}
			want2[k] = sum
		}
	}

	topos := testTopologies(t)
	type reader struct {
		name string
		r    *PerCPUReader[testKey]
	}
	var readers []reader
	for _, tname := range slices.Sorted(maps.Keys(topos)) {
		for _, mode := range readModes {
			r := newTestReader[testKey](t, m, 8, testWords, topos[tname])
			mode.setup(r)
			readers = append(readers, reader{tname + "/" + mode.name, r})
		}
	}

	totals := map[string]map[testKey]testValue{}
	for _, rd := range readers {
		t.Run("state1/"+rd.name, func(t *testing.T) {
			batch := rd.r.useBatch
			for range 2 { // the second Read reuses every buffer
				if err := rd.r.Read(); err != nil {
					t.Fatalf("Read: %v", err)
				}
				totals[rd.name] = snapshot(t, rd.r, want)
				eachSnapshot(t, rd.r, want)
			}
			if rd.r.useBatch != batch {
				t.Errorf("useBatch went from %v to %v: the batch path fell back to iteration", batch, rd.r.useBatch)
			}
		})
	}
	// Every topology and read path yields the same totals.
	ref := totals[readers[0].name]
	for name, got := range totals {
		if !maps.Equal(got, ref) {
			t.Errorf("totals of %s differ from those of %s", name, readers[0].name)
		}
	}

	mutate(t)
	for _, rd := range readers {
		t.Run("state2/"+rd.name, func(t *testing.T) {
			if err := rd.r.Read(); err != nil {
				t.Fatalf("Read: %v", err)
			}
			snapshot(t, rd.r, want2)
			eachSnapshot(t, rd.r, want2)
		})
	}

	// An emptied map reads as no key at all.
	for _, k := range slices.Collect(maps.Keys(want2)) {
		if err := m.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	for _, rd := range readers {
		if err := rd.r.Read(); err != nil {
			t.Fatalf("%s: Read of empty map: %v", rd.name, err)
		}
		if rd.r.Len() != 0 {
			t.Errorf("%s: Len() = %d on an empty map", rd.name, rd.r.Len())
		}
	}
}

// TestPerCPUReaderArray reads a per-CPU array, whose every index exists.
func TestPerCPUReaderArray(t *testing.T) {
	requireRoot(t)
	ncpu := possibleCPUs(t)
	const entries = 64
	m := newMap(t, ebpf.PerCPUArray, 4, 2*8, entries)
	want := map[uint32][2]uint64{}
	for i := range uint32(entries) {
		per := make([][2]uint64, ncpu)
		var sum [2]uint64
		if i%3 != 0 { // every third index stays all-zero
			for c := range per {
				per[c] = [2]uint64{uint64(i)*1000 + uint64(c), uint64(c+1) << 40}
				sum[0] += per[c][0]
				sum[1] += per[c][1]
			}
			if err := m.Update(i, per, ebpf.UpdateAny); err != nil {
				t.Fatal(err)
			}
		}
		want[i] = sum
	}
	for _, useBatch := range []bool{true, false} {
		r := newTestReader[uint32](t, m, 4, 2, SingleNode(ncpu))
		r.useBatch = useBatch
		if err := r.Read(); err != nil {
			t.Fatalf("useBatch=%v: Read: %v", useBatch, err)
		}
		if r.Len() != entries {
			t.Errorf("useBatch=%v: Len() = %d, want %d", useBatch, r.Len(), entries)
		}
		for i := range r.Len() {
			k := r.Key(i)
			if w := want[k]; [2]uint64(r.Value(i)) != w {
				t.Errorf("useBatch=%v: index %d = %v, want %v", useBatch, k, r.Value(i), w)
			}
		}
	}
}

// TestPerCPUReaderReadAllocs checks the documented property that a
// steady-state batch Read allocates nothing per key.
func TestPerCPUReaderReadAllocs(t *testing.T) {
	requireRoot(t)
	m := newMap(t, ebpf.PerCPUHash, 8, testWords*8, 1000)
	fill(t, m, rand.New(rand.NewPCG(3, 4)), 700)
	r := newTestReader[testKey](t, m, 8, testWords, SingleNode(possibleCPUs(t)))
	if err := r.Read(); err != nil { // grows the snapshot once
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if err := r.Read(); err != nil {
			t.Fatal(err)
		}
	})
	if r.Len() != 700 {
		t.Fatalf("Len() = %d", r.Len())
	}
	if allocs > 16 {
		t.Errorf("steady-state Read of 700 keys: %.0f allocations, want a small constant", allocs)
	}
	t.Logf("steady-state batch Read of 700 keys: %.0f allocations", allocs)
}

func TestNewPerCPUReaderLayoutErrors(t *testing.T) {
	requireRoot(t)
	ncpu := possibleCPUs(t)
	topo := SingleNode(ncpu)
	perCPU := newMap(t, ebpf.PerCPUHash, 8, testWords*8, 16)
	hash := newMap(t, ebpf.Hash, 8, testWords*8, 16)
	array := newMap(t, ebpf.Array, 4, testWords*8, 16)

	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not mention %q", name, err, want)
		}
	}
	_, err := NewPerCPUReader[testKey](perCPU, 4, testWords, topo)
	check("key type 8 bytes, schema 4", err, "key type is 8 bytes, schema says 4")
	_, err = NewPerCPUReader[uint32](perCPU, 4, testWords, topo)
	check("map key 8 bytes, schema 4", err, "layout key 8/value 40 bytes, schema says 4/40")
	_, err = NewPerCPUReader[testKey](perCPU, 8, testWords-1, topo)
	check("value 40 bytes, schema 32", err, "schema says 8/32")
	_, err = NewPerCPUReader[testKey](perCPU, 8, testWords+1, topo)
	check("value 40 bytes, schema 48", err, "schema says 8/48")
	_, err = NewPerCPUReader[testKey](hash, 8, testWords, topo)
	check("hash map", err, "is not per-CPU")
	_, err = NewPerCPUReader[uint32](array, 4, testWords, topo)
	check("array map", err, "is not per-CPU")
	_, err = NewPerCPUReader[testKey](perCPU, 8, testWords, Topology{})
	check("empty topology", err, "no CPUs")

	r := newTestReader[testKey](t, perCPU, 8, testWords, topo)
	if r.chunk < 1 || len(r.chunkKeys) != r.chunk || len(r.chunkVals) != r.chunk*ncpu*testWords {
		t.Errorf("buffers: chunk %d, %d keys, %d value words", r.chunk, len(r.chunkKeys), len(r.chunkVals))
	}
}

// TestPerCPUReaderWrongCPUCount: a topology that does not match the kernel's
// possible CPUs must fail, never misread the per-CPU layout.
func TestPerCPUReaderWrongCPUCount(t *testing.T) {
	requireRoot(t)
	ncpu := possibleCPUs(t)
	m := newMap(t, ebpf.PerCPUHash, 8, testWords*8, 100)
	fill(t, m, rand.New(rand.NewPCG(5, 6)), 10)
	counts := []int{ncpu + 1, 2 * ncpu}
	if ncpu > 1 {
		counts = append(counts, ncpu-1)
	}
	for _, n := range counts {
		for _, useBatch := range []bool{true, false} {
			r, err := NewPerCPUReader[testKey](m, 8, testWords, SingleNode(n))
			if err != nil {
				continue // rejected up front: fine
			}
			t.Cleanup(func() { r.Close() })
			r.useBatch = useBatch
			if err := r.Read(); err == nil {
				t.Errorf("topology of %d CPUs on a %d-CPU kernel (useBatch=%v): Read succeeded with %d keys",
					n, ncpu, useBatch, r.Len())
			}
		}
	}
}

// fakeSysfs writes a sysfs tree for this kernel's possible CPUs split over
// two NUMA nodes, even CPUs on node 0 and odd ones on node 1, so CPU 0 and
// CPU 1 are on different nodes.
func fakeSysfs(t *testing.T, ncpu int) string {
	t.Helper()
	root := t.TempDir()
	var even, odd []string
	for c := range ncpu {
		if c%2 == 0 {
			even = append(even, strconv.Itoa(c))
		} else {
			odd = append(odd, strconv.Itoa(c))
		}
	}
	files := map[string]string{
		"devices/system/cpu/possible":       fmt.Sprintf("0-%d\n", ncpu-1),
		"devices/system/node/node0/cpulist": strings.Join(even, ",") + "\n",
		"devices/system/node/node1/cpulist": strings.Join(odd, ",") + "\n",
		"devices/system/node/possible":      "0-1\n",
		"devices/system/node/has_cpu":       "0-1\n",
		"devices/system/node/online":        "0-1\n",
	}
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestNodePartialOfOneCPU: with CPU 0 and CPU 1 on different (fake) nodes,
// keys whose only non-zero per-CPU slot is CPU 1's have a non-zero partial
// on CPU 1's node only, on every read path.
func TestNodePartialOfOneCPU(t *testing.T) {
	requireRoot(t)
	ncpu := possibleCPUs(t)
	if ncpu < 2 {
		t.Skip("needs 2 possible CPUs to put CPU 0 and CPU 1 on different nodes")
	}
	topo, err := DiscoverTopology(fakeSysfs(t, ncpu))
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, topo)
	const nkeys = 300
	m := newMap(t, ebpf.PerCPUHash, 8, testWords*8, 512)
	want := map[testKey]testValue{}
	for i := range uint32(nkeys) {
		k := testKey{A: i, B: i * 7}
		per := make([]testValue, ncpu)
		per[1] = testValue{uint64(i) + 1, 1 << 40, 0, uint64(i) << 20, 3}
		if err := m.Update(k, per, ebpf.UpdateNoExist); err != nil {
			t.Fatal(err)
		}
		want[k] = per[1]
	}
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			r := newTestReader[testKey](t, m, 8, testWords, topo)
			mode.setup(r)
			nodes := r.Nodes()
			if len(nodes) != 2 || nodes[0].ID != 0 || nodes[1].ID != 1 || !slices.Contains(nodes[1].CPUs, 1) || !slices.Contains(nodes[0].CPUs, 0) {
				t.Fatalf("Nodes() = %+v, want node 0 with CPU 0 and node 1 with CPU 1", nodes)
			}
			for round := range 2 {
				if err := r.Read(); err != nil {
					t.Fatal(err)
				}
				snapshot(t, r, want)
				for i := range r.Len() {
					k := r.Key(i)
					if got := testValue(r.NodeValue(i, 1)); got != want[k] {
						t.Fatalf("round %d: key %v: node 1 (CPU 1's) partial = %v, want %v", round, k, got, want[k])
					}
					if got := testValue(r.NodeValue(i, 0)); got != (testValue{}) {
						t.Fatalf("round %d: key %v: node 0 partial = %v, want zero (only CPU 1 counted)", round, k, got)
					}
				}
			}
		})
	}
}

// TestPerCPUReaderConcurrentWriter reads while another goroutine keeps
// rewriting every key's per-CPU values upwards: each snapshot is one of
// the written states per CPU, so totals never go down, and the read after
// the writer stops sees its last state exactly.
func TestPerCPUReaderConcurrentWriter(t *testing.T) {
	requireRoot(t)
	ncpu := possibleCPUs(t)
	const nkeys = 64
	m := newMap(t, ebpf.PerCPUHash, 8, testWords*8, nkeys)
	write := func(round uint64) {
		per := make([]testValue, ncpu)
		for c := range per {
			per[c] = testValue{round, round * 2, round + uint64(c), 0, 1}
		}
		for k := range uint32(nkeys) {
			if err := m.Update(testKey{A: k}, per, ebpf.UpdateAny); err != nil {
				t.Error(err)
				return
			}
		}
	}
	write(0)
	topo := testTopologies(t)["split"]
	r := newTestReader[testKey](t, m, 8, testWords, topo)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var last uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for round := uint64(1); ; round++ {
			select {
			case <-stop:
				return
			default:
			}
			write(round)
			last = round
		}
	}()
	prev := make(map[testKey]testValue, nkeys)
	for range 200 {
		if err := r.Read(); err != nil {
			t.Fatal(err)
		}
		if r.Len() != nkeys {
			t.Fatalf("Len() = %d, want %d", r.Len(), nkeys)
		}
		for i := range r.Len() {
			k, v := r.Key(i), testValue(r.Value(i))
			for j := range v {
				if v[j] < prev[k][j] {
					t.Fatalf("key %v word %d went down: %d after %d", k, j, v[j], prev[k][j])
				}
			}
			prev[k] = v
		}
	}
	close(stop)
	wg.Wait()
	if err := r.Read(); err != nil {
		t.Fatal(err)
	}
	n := uint64(ncpu)
	want := testValue{last * n, 2 * last * n, last*n + n*(n-1)/2, 0, n}
	for i := range r.Len() {
		if v := testValue(r.Value(i)); v != want {
			t.Errorf("key %v after the writer stopped = %v, want %v", r.Key(i), v, want)
		}
	}
	if last < 2 {
		t.Logf("the writer only completed %d rounds during the reads", last)
	}
}

// TestPerCPUReaderClose: a closed reader refuses to read; Close is
// idempotent and a nil reader's Close is a no-op (probes call it on every
// path).
func TestPerCPUReaderClose(t *testing.T) {
	requireRoot(t)
	m := newMap(t, ebpf.PerCPUHash, 8, testWords*8, 16)
	fill(t, m, rand.New(rand.NewPCG(7, 8)), 4)
	r, err := NewPerCPUReader[testKey](m, 8, testWords, SingleNode(possibleCPUs(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Read(); err != nil || r.Len() != 4 {
		t.Fatalf("Read: %v, %d keys", err, r.Len())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if r.Len() != 0 {
		t.Errorf("Len() = %d after Close", r.Len())
	}
	if err := r.Read(); err == nil {
		t.Error("Read after Close succeeded")
	}
	var nilReader *PerCPUReader[testKey]
	if err := nilReader.Close(); err != nil {
		t.Errorf("nil reader Close: %v", err)
	}
}
