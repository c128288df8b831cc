package aggregator

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

type testTuple struct{ Tgid, Nr uint32 }

type testEntryKey struct {
	Tuple testTuple
	CPU   uint32
}

type storeValue struct{ Calls, Sum uint64 }

// storeSpec is the object side of a set "s": what the generated header
// declares (ARRAY_OF_MAPS of hashes, overflow and fold per-CPU arrays).
func storeSpec() *ebpf.CollectionSpec {
	return &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{
		"s": {Name: "s", Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: 128,
			InnerMap: &ebpf.MapSpec{Type: ebpf.Hash, KeySize: 12, ValueSize: 16, MaxEntries: 1}},
		"s_overflow": {Name: "s_overflow", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 1},
		"s_folds":    {Name: "s_folds", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1},
	}}
}

func newEpoch(t testing.TB) *ebpf.Map {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestStoreDrainsTheIdleEpoch writes entries into both epochs' hashes of
// two (fake) nodes from user space, as programs would: a drain takes
// exactly the idle epoch's entries, with their CPU and node, deletes them,
// and leaves the written epoch alone.
func TestStoreDrainsTheIdleEpoch(t *testing.T) {
	requireRoot(t)
	possible, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	topo := Topology{PossibleCPUs: possible, Nodes: []Node{{ID: 0, CPUs: []int{0}}, {ID: 3, CPUs: seq(1, possible-1)}}}
	epoch := newEpoch(t)
	st, err := NewStore[testTuple, testEntryKey, storeValue](storeSpec(), "s", 8, 2, 100, topo, epoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.slots != 8 || len(st.Hashes()) != 4 {
		t.Fatalf("slots %d, hashes %d; want 8 (nodes 0..3) and 4", st.slots, len(st.Hashes()))
	}
	// The outer map points every slot at a hash: node ids 1 and 2 (holes)
	// at node 0's.
	outer := st.Replacements()["s"]
	for slot := range uint32(8) {
		var id ebpf.MapID
		if err := outer.Lookup(slot, &id); err != nil {
			t.Fatalf("outer slot %d: %v", slot, err)
		}
	}
	put := func(node, e int, k testEntryKey, v storeValue) {
		if err := st.nodes[node].halves[e].Update(k, v, ebpf.UpdateNoExist); err != nil {
			t.Fatal(err)
		}
	}
	// Epoch 0 is written (the epoch map is 0): epoch 1 is idle.
	put(0, 1, testEntryKey{testTuple{7, 1}, 0}, storeValue{3, 30})
	put(1, 1, testEntryKey{testTuple{7, 1}, 1}, storeValue{4, 40})
	put(1, 1, testEntryKey{testTuple{8, 2}, 1}, storeValue{5, 50})
	put(1, 0, testEntryKey{testTuple{9, 9}, 1}, storeValue{100, 1000}) // being written: not drained
	type got struct {
		k         testTuple
		cpu       uint32
		node      int
		calls, su uint64
	}
	drain := func() []got {
		var out []got
		if err := st.Drain(func(e *Entry[testTuple]) error {
			out = append(out, got{e.Key, e.CPU, e.Node, e.Value[0], e.Value[1]})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := drain()
	want := map[got]bool{{testTuple{7, 1}, 0, 0, 3, 30}: true, {testTuple{7, 1}, 1, 1, 4, 40}: true, {testTuple{8, 2}, 1, 1, 5, 50}: true}
	if len(first) != len(want) {
		t.Fatalf("drained %+v, want %v", first, want)
	}
	for _, g := range first {
		if !want[g] {
			t.Errorf("drained %+v, not one of %v", g, want)
		}
	}
	if entries, peak := st.LastDrain(); entries != 3 || peak != 2 {
		t.Errorf("LastDrain = %d, %d; want 3 entries, 2 from one hash", entries, peak)
	}
	if again := drain(); len(again) != 0 {
		t.Errorf("a second drain without a flip found %+v: entries must go with the first", again)
	}
	// Flip: epoch 0 becomes idle and its entry is drained.
	if err := epoch.Update(uint32(0), uint32(1), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if g := drain(); len(g) != 1 || g[0] != (got{testTuple{9, 9}, 1, 1, 100, 1000}) {
		t.Errorf("after the flip drained %+v, want the epoch-0 entry", g)
	}
}

// TestStoreDrainsMoreThanAChunk fills one hash with more entries than a
// drain chunk holds: every entry comes out once.
func TestStoreDrainsMoreThanAChunk(t *testing.T) {
	requireRoot(t)
	possible, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	st, err := NewStore[testTuple, testEntryKey, storeValue](storeSpec(), "s", 8, 2, n, SingleNode(possible), newEpoch(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.chunkKeys, st.chunkVals = st.chunkKeys[:16], st.chunkVals[:16]
	for i := range uint32(n) {
		if err := st.nodes[0].halves[1].Update(testEntryKey{testTuple{i, i}, 0}, storeValue{uint64(i), 1}, ebpf.UpdateNoExist); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]bool{}
	var sum uint64
	if err := st.Drain(func(e *Entry[testTuple]) error {
		if seen[e.Key.Tgid] {
			return errors.New("entry drained twice")
		}
		seen[e.Key.Tgid] = true
		sum += e.Value[0]
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || sum != n*(n-1)/2 {
		t.Errorf("drained %d entries summing %d, want %d summing %d", len(seen), sum, n, n*(n-1)/2)
	}
}

// TestMemoryFormulas checks the budget's arithmetic against the kernel's
// own accounting (fdinfo memlock, exact since Linux 6.4): for a store of
// several sizes, Memory() (what the kernel says) equals StorageMemory
// (what the planner assumed) within a few bytes per map.
func TestMemoryFormulas(t *testing.T) {
	requireRoot(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil || major < 6 || major == 6 && minor < 4 {
		t.Skipf("kernel %s accounts map memory by a footprint estimate before 6.4", unix.ByteSliceToString(u.Release[:]))
	}
	possible, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for _, entries := range []int{1, 100, 1024, 1025, 10000} {
		st, err := NewStore[testTuple, testEntryKey, storeValue](storeSpec(), "s", 8, 2, uint32(entries), SingleNode(possible), newEpoch(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, want := st.Memory(), StorageMemory(entries, 12, 16, 1, 2, possible)
		st.Close()
		// The fixed struct sizes are 6.18's: another kernel differs by
		// bytes per map (5 maps here), never per entry.
		if d := int64(got) - int64(want); d < -5*256 || d > 5*256 {
			t.Errorf("%d entries: kernel accounts %d bytes, formula %d (%+d)", entries, got, want, d)
		}
	}
}

// nodeMemFree is a node's free memory in bytes (its meminfo).
func nodeMemFree(t *testing.T, node int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/node/node%d/meminfo", node))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		var n int
		var kb int64
		if _, err := fmt.Sscanf(l, "Node %d MemFree: %d kB", &n, &kb); err == nil {
			return kb << 10
		}
	}
	t.Fatalf("node %d meminfo has no MemFree", node)
	return 0
}

// TestStoreMemoryOnItsNode creates storage for the last node only, ~36
// MiB of hashes, on a host with two nodes that have memory (the kernel
// matrix's numa255 guest): that node's free memory drops by about that
// much, the other node's does not. The oracle is the kernel's per-node
// meminfo, not the flag the agent passed.
func TestStoreMemoryOnItsNode(t *testing.T) {
	requireRoot(t)
	topo, err := DiscoverTopology("/sys")
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Nodes) < 2 {
		t.Skipf("this host has %d NUMA node(s) with CPUs; needs two (make test-kernels runs a two-node guest)", len(topo.Nodes))
	}
	first, last := topo.Nodes[0], topo.Nodes[len(topo.Nodes)-1]
	const entries = 180_000 // 2 hashes × 180k × (48 + 16 + 16 bytes) + buckets ≈ 36 MiB
	spec := storeSpec()
	beforeFirst, beforeLast := nodeMemFree(t, first.ID), nodeMemFree(t, last.ID)
	st, err := NewStore[testTuple, testEntryKey, storeValue](spec, "s", 8, 2, entries,
		Topology{PossibleCPUs: topo.PossibleCPUs, Nodes: []Node{last}}, newEpoch(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.NUMA() {
		t.Fatalf("node %d's hashes were not bound to it", last.ID)
	}
	size := int64(st.Memory())
	dropFirst, dropLast := beforeFirst-nodeMemFree(t, first.ID), beforeLast-nodeMemFree(t, last.ID)
	t.Logf("storage %d MiB; free memory dropped %d MiB on node %d, %d MiB on node %d", size>>20, dropLast>>20, last.ID, dropFirst>>20, first.ID)
	if dropLast < size*8/10 {
		t.Errorf("node %d lost %d MiB for %d MiB of its storage: not allocated there", last.ID, dropLast>>20, size>>20)
	}
	if dropFirst > size/4 {
		t.Errorf("node %d lost %d MiB while only node %d's storage (%d MiB) was made", first.ID, dropFirst>>20, last.ID, size>>20)
	}
}
