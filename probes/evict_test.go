package probes

import (
	"runtime"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/telagent/telagent/internal/testutil"
)

type evVal struct{ A, B uint64 }

// A pid reused between the read that exported a dead process's final values
// and the deletion: what the new process added is put back, not lost.
func TestFinalEvictorKeepsReusedPidUpdates(t *testing.T) {
	testutil.RequireRoot(t)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 16, MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	overflow := uint32(0xffffffff)
	e, err := NewFinalEvictor[uint32, evVal](m, 2, ncpu, &overflow)
	if err != nil {
		t.Fatal(err)
	}
	put := func(k uint32, a, b uint64) {
		vs := make([]evVal, ncpu)
		vs[ncpu-1] = evVal{a, b}
		if err := m.Put(k, vs); err != nil {
			t.Fatal(err)
		}
	}
	sum := func(k uint32) (evVal, bool) {
		vs := make([]evVal, ncpu)
		if m.Lookup(k, vs) != nil {
			return evVal{}, false
		}
		var s evVal
		for _, v := range vs {
			s.A += v.A
			s.B += v.B
		}
		return s, true
	}
	put(1, 5, 50) // unchanged since the read: deleted
	put(2, 7, 70) // gained 3/30 after the read (pid reused): 3/30 stay
	put(3, 1, 10) // recreated after the read (less than exported): all stays
	e.Add(1, []uint64{5, 50})
	e.Add(2, []uint64{4, 40})
	e.Add(3, []uint64{6, 60})
	e.Add(4, []uint64{1, 1}) // already gone
	n, err := e.Evict()
	if err != nil || n != 3 {
		t.Fatalf("evicted %d (err %v), want 3", n, err)
	}
	if _, ok := sum(1); ok {
		t.Error("key 1 not deleted")
	}
	if v, ok := sum(2); !ok || v != (evVal{3, 30}) {
		t.Errorf("key 2 = %+v (present %v), want the new owner's 3/30", v, ok)
	}
	if v, ok := sum(3); !ok || v != (evVal{1, 10}) {
		t.Errorf("key 3 = %+v (present %v), want all of the recreated key", v, ok)
	}
	if e.Returned != 2 || e.Pending() != 0 {
		t.Errorf("returned %d, pending %d", e.Returned, e.Pending())
	}
}

// TestFinalEvictorAllocs: evicting a burst of keys (after an outage,
// thousands at once) allocates nothing per key.
func TestFinalEvictorAllocs(t *testing.T) {
	testutil.RequireRoot(t)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 16, MaxEntries: n})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e, err := NewFinalEvictor[uint32, evVal](m, 2, ncpu, nil)
	if err != nil {
		t.Fatal(err)
	}
	vs := make([]evVal, ncpu)
	vs[0] = evVal{1, 2}
	round := func() {
		for k := range uint32(n) {
			if err := m.Put(k, vs); err != nil {
				t.Fatal(err)
			}
			e.Add(k, []uint64{1, 2})
		}
		if got, err := e.Evict(); err != nil || got != n {
			t.Fatalf("evicted %d (err %v), want %d", got, err, n)
		}
	}
	round() // sizes the evictor's buffers
	for k := range uint32(n) {
		if err := m.Put(k, vs); err != nil {
			t.Fatal(err)
		}
		e.Add(k, []uint64{1, 2})
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := e.Evict()
	runtime.ReadMemStats(&after)
	if err != nil || got != n {
		t.Fatalf("evicted %d (err %v), want %d", got, err, n)
	}
	if allocs := after.Mallocs - before.Mallocs; allocs > 10 {
		t.Errorf("evicting %d keys: %d allocations, want none per key", n, allocs)
	}
	if it := m.Iterate(); it.Next(new(uint32), make([]evVal, ncpu)) {
		t.Error("a key is left after eviction")
	}
}
