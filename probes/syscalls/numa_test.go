package syscalls

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/aggregator"
)

// splitTopology is a fake two-node layout of this kernel's possible CPUs:
// even CPUs on node 0, odd ones on node 1, so CPU 0 and CPU 1 are on
// different nodes. It skips the test unless the process may run on both.
func splitTopology(t *testing.T) aggregator.Topology {
	t.Helper()
	sys, err := aggregator.DiscoverTopology("/sys")
	if err != nil {
		t.Fatal(err)
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	if sys.PossibleCPUs < 2 || !allowed.IsSet(0) || !allowed.IsSet(1) {
		t.Skipf("needs CPUs 0 and 1 (possible %d, allowed %d)", sys.PossibleCPUs, allowed.Count())
	}
	topo := aggregator.Topology{PossibleCPUs: sys.PossibleCPUs, Nodes: []aggregator.Node{{ID: 0}, {ID: 1}}}
	for c := range sys.PossibleCPUs {
		topo.Nodes[c%2].CPUs = append(topo.Nodes[c%2].CPUs, c)
	}
	return topo
}

// startTopology is start (syscalls_test.go) with a given topology.
func startTopology(t *testing.T, topo aggregator.Topology) *harness {
	t.Helper()
	return startOn(t, Config{}, &topo)
}

// callsWord is the value word that counts calls (the histogram's count).
func callsWord(t *testing.T) int {
	for _, v := range set.Values {
		if v.Role == "count" {
			return v.Offset
		}
	}
	t.Fatal("schema: syscalls metric set has no count field")
	return -1
}

// getppidOnCPU makes n getppid calls from a thread pinned to cpu. The
// thread stays locked until the goroutine ends, which ends the thread, so
// its affinity never leaks to other goroutines.
func getppidOnCPU(t *testing.T, cpu, n int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var mask unix.CPUSet
		mask.Set(cpu)
		if err := unix.SchedSetaffinity(0, &mask); err != nil {
			errc <- err
			return
		}
		for range n {
			unix.Getppid()
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("pin to CPU %d: %v", cpu, err)
	}
}

// drainGetppid flips the epoch and drains the storage itself (as a
// collection would, bypassing the totals): this process's getppid entries.
func drainGetppid(t *testing.T, h *harness) []aggregator.Entry[syscallsSyscallsKey] {
	t.Helper()
	if err := h.State.Flip(); err != nil {
		t.Fatal(err)
	}
	want := syscallsSyscallsKey{Tgid: uint32(os.Getpid()), Nr: unix.SYS_GETPPID}
	var out []aggregator.Entry[syscallsSyscallsKey]
	err := h.probe.stats.Store().Drain(func(e *aggregator.Entry[syscallsSyscallsKey]) error {
		if e.Key == want {
			c := *e
			c.Value = append([]uint64(nil), e.Value...)
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNodeBreakdownOfPinnedWorkload loads the probe with CPU 0 and CPU 1 on
// different (fake) nodes and makes every getppid call on CPU 1: they are
// all in node 1's storage, in CPU 1's entry, none in node 0's, and the
// exported histogram count of a second such workload matches it exactly.
func TestNodeBreakdownOfPinnedWorkload(t *testing.T) {
	topo := splitTopology(t)
	h := startTopology(t, topo)
	const n = 50000
	getppidOnCPU(t, 1, n)

	st := h.probe.stats.Store()
	if nodes := st.Nodes(); len(nodes) != 2 || nodes[1].ID != 1 || nodes[1].CPUs[0] != 1 {
		t.Fatalf("Nodes() = %+v", nodes)
	}
	entries := drainGetppid(t, h)
	w := callsWord(t)
	var onNode1 uint64
	for _, e := range entries {
		if e.Node != 1 || e.CPU != 1 {
			t.Errorf("entry %+v: written on CPU %d into node index %d, want CPU 1, node 1", e.Key, e.CPU, e.Node)
		}
		onNode1 += e.Value[w]
	}
	if onNode1 != n {
		t.Errorf("node 1 storage counts %d getppid calls, want %d", onNode1, n)
	}
	getppidOnCPU(t, 1, n)
	hist, _ := h.collect()
	if got := hist["getppid"].Count; got != n {
		t.Errorf("exported getppid count %d, want %d", got, n)
	}
}

// TestDrainWhileCounting collects over and over, each collection a flip
// and a drain, while a getppid loop runs, moving between CPU 0 and CPU 1
// (two fake nodes): the exported total only ever grows, and once the loop
// is done it is exactly the number of calls made. No update is lost or
// counted twice at an epoch flip, whichever CPU it was made on.
func TestDrainWhileCounting(t *testing.T) {
	topo := splitTopology(t)
	h := startTopology(t, topo)
	const rounds, perRound = 40, 5000
	var made atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		for round := range rounds {
			var mask unix.CPUSet
			mask.Set(round % 2)
			if err := unix.SchedSetaffinity(0, &mask); err != nil {
				t.Error(err)
				return
			}
			for range perRound {
				unix.Getppid()
			}
			made.Add(perRound)
		}
	}()

	var prev uint64
	reads := 0
	deadline := time.Now().Add(time.Minute)
	for done := false; !done; {
		done = made.Load() == rounds*perRound // this collection then sees every call
		if !done && time.Now().After(deadline) {
			t.Fatalf("the getppid loop made %d of %d calls in a minute", made.Load(), rounds*perRound)
		}
		hist, _ := h.collect()
		reads++
		total := hist["getppid"].Count
		if total < prev {
			t.Fatalf("collection %d: total went down from %d to %d", reads, prev, total)
		}
		prev = total
	}
	wg.Wait()
	if prev != rounds*perRound {
		t.Errorf("final total %d, want exactly %d", prev, rounds*perRound)
	}
	t.Logf("%d collections during %d calls", reads, rounds*perRound)
}
