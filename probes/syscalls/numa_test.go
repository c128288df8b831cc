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

// getppidIndex finds this process's getppid key in the reader's last Read.
func getppidIndex(r *aggregator.PerCPUReader[syscallsSyscallsKey]) int {
	want := syscallsSyscallsKey{Tgid: uint32(os.Getpid()), Nr: unix.SYS_GETPPID}
	for i := range r.Len() {
		if r.Key(i) == want {
			return i
		}
	}
	return -1
}

// TestNodeBreakdownOfPinnedWorkload loads the probe with CPU 0 and CPU 1 on
// different (fake) nodes and makes every getppid call on CPU 1: node 1's
// partial has them all, node 0's none, and the total and the exported
// histogram count match the workload exactly.
func TestNodeBreakdownOfPinnedWorkload(t *testing.T) {
	topo := splitTopology(t)
	h := startTopology(t, topo)
	const n = 50000
	getppidOnCPU(t, 1, n)

	r := h.probe.stats.Reader()
	if err := r.Read(); err != nil {
		t.Fatal(err)
	}
	if nodes := r.Nodes(); len(nodes) != 2 || nodes[1].ID != 1 || nodes[1].CPUs[0] != 1 {
		t.Fatalf("Nodes() = %+v", nodes)
	}
	i := getppidIndex(r)
	if i < 0 {
		t.Fatal("no getppid key for this process")
	}
	w := callsWord(t)
	if got := r.NodeValue(i, 0)[w]; got != 0 {
		t.Errorf("node 0 (CPU 0's) partial counts %d getppid calls, want 0", got)
	}
	if got := r.NodeValue(i, 1)[w]; got != n {
		t.Errorf("node 1 (CPU 1's) partial counts %d getppid calls, want %d", got, n)
	}
	if got := r.Value(i)[w]; got != n {
		t.Errorf("total getppid calls %d, want %d", got, n)
	}
	hist, _ := h.collect()
	if got := hist["getppid"].Count; got != n {
		t.Errorf("exported getppid count %d, want %d", got, n)
	}
}

// TestReadWhileCounting reads the map over and over while a getppid loop
// runs, moving between CPU 0 and CPU 1 (two fake nodes): the total and
// each node's partial only ever grow between reads, the partials always
// add up to the total, and once the loop is done the total is exactly the
// number of calls made: reading concurrently loses nothing.
func TestReadWhileCounting(t *testing.T) {
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

	r := h.probe.stats.Reader()
	w := callsWord(t)
	var prevTotal uint64
	prevNode := make([]uint64, 2)
	reads := 0
	deadline := time.Now().Add(time.Minute)
	for done := false; !done; {
		done = made.Load() == rounds*perRound // this read then sees every call
		if !done && time.Now().After(deadline) {
			t.Fatalf("the getppid loop made %d of %d calls in a minute", made.Load(), rounds*perRound)
		}
		if err := r.Read(); err != nil {
			t.Fatal(err)
		}
		reads++
		i := getppidIndex(r)
		if i < 0 {
			continue // no call counted yet
		}
		total := r.Value(i)[w]
		if total < prevTotal {
			t.Fatalf("read %d: total went down from %d to %d", reads, prevTotal, total)
		}
		var sum uint64
		for node := range 2 {
			v := r.NodeValue(i, node)[w]
			if v < prevNode[node] {
				t.Fatalf("read %d: node %d partial went down from %d to %d", reads, node, prevNode[node], v)
			}
			prevNode[node] = v
			sum += v
		}
		if sum != total {
			t.Fatalf("read %d: node partials add up to %d, total %d", reads, sum, total)
		}
		prevTotal = total
	}
	wg.Wait()
	if prevTotal != rounds*perRound {
		t.Errorf("final total %d, want exactly %d", prevTotal, rounds*perRound)
	}
	if prevNode[0] == 0 || prevNode[1] == 0 {
		t.Errorf("calls by node %v: the loop ran on both CPUs, so both nodes should count some", prevNode)
	}
	t.Logf("%d reads during %d calls; by node %v", reads, rounds*perRound, prevNode)
}
