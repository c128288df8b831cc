package aggregator

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/telagent/telagent/internal/osthread"
	"golang.org/x/sys/unix"
)

// randomTopology spreads n possible CPUs over k nodes with random, sorted,
// distinct ids; nodes that draw no CPU are left out, as DiscoverTopology
// leaves out memory-only nodes.
func randomTopology(rng *rand.Rand, n, k int) Topology {
	ids := rng.Perm(8)[:k]
	slices.Sort(ids)
	cpus := make([][]int, k)
	for c := range n {
		i := rng.IntN(k)
		cpus[i] = append(cpus[i], c)
	}
	topo := Topology{PossibleCPUs: n}
	for i, id := range ids {
		if len(cpus[i]) > 0 {
			topo.Nodes = append(topo.Nodes, Node{ID: id, CPUs: cpus[i]})
		}
	}
	return topo
}

func newTestReducer(t *testing.T, topo Topology, words, capKeys int) *reducer {
	t.Helper()
	r, err := newReducer(topo, words, capKeys, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("newReducer(%+v): %v", topo, err)
	}
	t.Cleanup(func() {
		if err := r.close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// TestWorkersReduceLikePlainSum is a property test of the per-node
// reduction on the worker path: whatever the topology (1, 2 or 4 nodes,
// CPUs in runs or interleaved), a key's total is the plain sum of its
// per-CPU words (mod 2^64), each node's partial is the plain sum over that
// node's CPUs, and the partials add up to the total. Keys arrive in chunks
// of random sizes, as batch lookups deliver them, and several rounds per
// reducer check that reused buffers (which hold the previous round's
// partials) are overwritten, not added to. capKeys is small so that the
// buffers have to grow past it.
func TestWorkersReduceLikePlainSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(20240611, 7))
	for tc := range 200 {
		n := 1 + rng.IntN(64)
		k := []int{1, 2, 4}[tc%3]
		words := 1 + rng.IntN(8)
		topo := randomTopology(rng, n, k)
		checkInvariants(t, topo)
		r := newTestReducer(t, topo, words, 1+rng.IntN(8))
		if len(r.workers) != len(topo.Nodes) {
			t.Fatalf("case %d: %d workers for %d nodes", tc, len(r.workers), len(topo.Nodes))
		}
		nodeOf := make([]int, n)
		for i, node := range topo.Nodes {
			for _, c := range node.CPUs {
				nodeOf[c] = i
			}
		}

		for round := range 3 {
			r.reset()
			nkeys := rng.IntN(40)
			if round == 2 {
				nkeys = rng.IntN(3) // fewer keys than before: stale slots beyond
			}
			want := make([][]uint64, nkeys)
			wantNode := make([][][]uint64, nkeys)
			perCPU := make([]uint64, nkeys*n*words)
			for key := range nkeys {
				want[key] = make([]uint64, words)
				wantNode[key] = make([][]uint64, len(topo.Nodes))
				for i := range wantNode[key] {
					wantNode[key][i] = make([]uint64, words)
				}
				for c := range n {
					for j := range words {
						var v uint64
						switch rng.IntN(4) {
						case 0: // leave zero
						case 1:
							v = rng.Uint64() // sums wrap, as in the kernel
						default:
							v = rng.Uint64N(1 << 32)
						}
						perCPU[(key*n+c)*words+j] = v
						want[key][j] += v
						wantNode[key][nodeOf[c]][j] += v
					}
				}
			}
			for done := 0; done < nkeys; {
				got := 1 + rng.IntN(nkeys-done)
				if err := r.add(perCPU[done*n*words:(done+got)*n*words], got); err != nil {
					t.Fatal(err)
				}
				done += got
			}
			r.finish()
			if r.n != nkeys {
				t.Fatalf("case %d round %d: %d keys reduced, want %d", tc, round, r.n, nkeys)
			}
			for key := range nkeys {
				if got := r.value(key); !slices.Equal(got, want[key]) {
					t.Fatalf("case %d round %d (n=%d words=%d topo=%+v): value(%d) = %v, want %v",
						tc, round, n, words, topo, key, got, want[key])
				}
				sum := make([]uint64, words)
				for i := range topo.Nodes {
					got := r.nodeValue(key, i)
					if !slices.Equal(got, wantNode[key][i]) {
						t.Fatalf("case %d round %d (topo=%+v): nodeValue(%d, %d) = %v, want %v",
							tc, round, topo, key, i, got, wantNode[key][i])
					}
					for j, v := range got {
						sum[j] += v
					}
				}
				if !slices.Equal(sum, want[key]) {
					t.Fatalf("case %d: node partials of key %d add up to %v, total %v", tc, key, sum, want[key])
				}
			}
		}
	}
}

func TestCPURuns(t *testing.T) {
	for _, tc := range []struct {
		cpus []int
		want [][2]int
	}{
		{[]int{0}, [][2]int{{0, 1}}},
		{[]int{0, 1, 2, 3}, [][2]int{{0, 4}}},
		{[]int{0, 2, 4}, [][2]int{{0, 1}, {2, 3}, {4, 5}}},
		{[]int{1, 2, 5, 6, 7, 9}, [][2]int{{1, 3}, {5, 8}, {9, 10}}},
	} {
		if got := cpuRuns(tc.cpus); !slices.Equal(got, tc.want) {
			t.Errorf("cpuRuns(%v) = %v, want %v", tc.cpus, got, tc.want)
		}
	}
}

// TestWorkersPinned: each worker's thread runs on its node's CPUs only.
func TestWorkersPinned(t *testing.T) {
	ncpu := possibleCPUs(t)
	allowed, err := osthread.Allowed(ncpu)
	if err != nil {
		t.Fatal(err)
	}
	var mine []int
	for c := range ncpu {
		if allowed.IsSet(c) {
			mine = append(mine, c)
		}
	}
	if len(mine) < 2 {
		t.Skipf("the process may run on %d CPU(s); need 2 to pin two nodes apart", len(mine))
	}
	// Node 0: the first allowed CPU; node 1: every other possible CPU.
	rest := slices.DeleteFunc(seq(0, ncpu-1), func(c int) bool { return c == mine[0] })
	topo := Topology{PossibleCPUs: ncpu, Nodes: []Node{{ID: 0, CPUs: []int{mine[0]}}, {ID: 1, CPUs: rest}}}
	r := newTestReducer(t, topo, 1, 1)
	wantAff := [][]int{{mine[0]}, mine[1:]}
	for i, w := range r.workers {
		if !w.pinned || !slices.Equal(w.affinity, wantAff[i]) {
			t.Errorf("node %d worker: pinned %v, affinity %v, want %v", w.node.ID, w.pinned, w.affinity, wantAff[i])
		}
	}
}

// TestWorkerNotPinnedOutsideAllowedSet: a node none of whose CPUs the
// process may use (a restricted cpuset) gets an unpinned worker and a
// debug note, and still reduces correctly.
func TestWorkerNotPinnedOutsideAllowedSet(t *testing.T) {
	if real, err := osthread.Allowed(1024); err != nil || !real.IsSet(0) {
		t.Skipf("the process may not run on CPU 0 (%v): cannot pin a worker to it", err)
	}
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	allowed := unix.NewCPUSet(1024)
	allowed.Set(0)
	// CPU 1 and CPU 3 may be possible on this host or not: the allowed
	// set here is injected, the workers only try to pin.
	topo := Topology{PossibleCPUs: 4, Nodes: []Node{{ID: 0, CPUs: []int{0, 2}}, {ID: 1, CPUs: []int{1, 3}}}}
	r := &reducer{ncpu: 4, words: 2, nodes: topo.Nodes, onMain: osthread.OnMain}
	t.Cleanup(func() { r.close() })
	for _, n := range topo.Nodes {
		w, err := r.startWorker(n, 4, allowed, log)
		if err != nil {
			t.Fatal(err)
		}
		r.workers = append(r.workers, w)
	}
	if w := r.workers[0]; !w.pinned || !slices.Equal(w.affinity, []int{0}) {
		t.Errorf("node 0 worker: pinned %v to %v, want pinned to [0] (its allowed CPUs)", w.pinned, w.affinity)
	}
	if w := r.workers[1]; w.pinned {
		t.Errorf("node 1 worker pinned to %v although none of its CPUs is allowed", w.affinity)
	}
	out := logBuf.String()
	if !strings.Contains(out, "node worker not pinned") || !strings.Contains(out, "node=1") {
		t.Errorf("no debug note for the unpinned node 1 worker; log:\n%s", out)
	}
	if !strings.Contains(out, "pinned to the node's allowed CPUs only") {
		t.Errorf("no debug note for node 0 pinned to a subset; log:\n%s", out)
	}
	r.totals, _ = newWordBuf(8)
	vals := []uint64{1, 2, 10, 20, 100, 200, 1000, 2000} // CPU 0..3 of one key
	if err := r.add(vals, 1); err != nil {
		t.Fatal(err)
	}
	if got := r.value(0); !slices.Equal(got, []uint64{1111, 2222}) {
		t.Errorf("value = %v, want [1111 2222]", got)
	}
	if got := r.nodeValue(0, 1); !slices.Equal(got, []uint64{1010, 2020}) {
		t.Errorf("node 1 partial = %v, want [1010 2020]", got)
	}
}

// TestWorkersAvoidMainThread: no worker runs on (and so pins, and wedges
// on exit) the process's main thread, also when its goroutine starts
// there (simulated: the first check says "main thread").
func TestWorkersAvoidMainThread(t *testing.T) {
	topo := Topology{PossibleCPUs: 2, Nodes: []Node{{ID: 0, CPUs: []int{0}}, {ID: 1, CPUs: []int{1}}}}
	for i := range 50 {
		r := newTestReducer(t, topo, 1, 1)
		for _, w := range r.workers {
			if w.tid == os.Getpid() {
				t.Fatalf("reducer %d: node %d worker runs on the main thread", i, w.node.ID)
			}
		}
	}

	r := &reducer{ncpu: 2, words: 1, nodes: topo.Nodes}
	calls := 0
	var mainTid int
	r.onMain = func() bool {
		calls++
		if calls == 1 {
			mainTid = unix.Gettid() // pretend this thread is the main one
			return true
		}
		return false
	}
	t.Cleanup(func() { r.close() })
	w, err := r.startWorker(topo.Nodes[1], 1, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.workers = append(r.workers, w)
	if calls != 1 || w.tid == mainTid {
		t.Errorf("worker on thread %d after %d checks; the \"main\" thread was %d", w.tid, calls, mainTid)
	}
	if err := r.add([]uint64{5, 7}, 1); err != nil {
		t.Fatal(err)
	}
	if got := r.nodeValue(0, 0); got[0] != 7 {
		t.Errorf("restarted worker reduced %v, want [7]", got)
	}
}

// TestReducerClose: Close ends the worker threads and is idempotent; a
// closed reducer refuses work. One node has no worker thread at all.
func TestReducerClose(t *testing.T) {
	one, err := newReducer(SingleNode(2), 4, 16, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if w := one.workers[0]; !one.inline || w.jobs != nil || w.tid != 0 {
		t.Errorf("one node: a worker thread was started (inline %v, tid %d)", one.inline, w.tid)
	}
	if err := one.close(); err != nil || one.close() != nil || one.add(make([]uint64, 8), 1) == nil {
		t.Errorf("one node: close %v; a second close or an add after it succeeded wrongly", err)
	}
	r, err := newReducer(Topology{PossibleCPUs: 2, Nodes: []Node{{ID: 0, CPUs: []int{0}}, {ID: 1, CPUs: []int{1}}}}, 4, 16, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w := r.workers[0]
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	default:
		t.Fatal("worker still running after close")
	}
	if err := r.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := r.add(make([]uint64, 8), 1); err == nil {
		t.Error("add after close succeeded")
	}
}

// TestWordBufTrim: a buffer whose high-water mark is far above what the
// last read used gives its pages back, and they read as zero again.
func TestWordBufTrim(t *testing.T) {
	const words = 4 << 20 / 8
	b, err := newWordBuf(words)
	if err != nil {
		t.Fatal(err)
	}
	defer b.free()
	for i := range b.w[:words] {
		b.w[i] = 1
	}
	b.wrote(words)
	b.trim(words - 10) // barely shrank: kept
	if b.hw != words || b.w[words-1] != 1 {
		t.Fatalf("trimmed after a small shrink: hw %d", b.hw)
	}
	b.trim(1000)
	if b.hw != 1000 {
		t.Fatalf("hw = %d after trim to 1000", b.hw)
	}
	if b.w[999] != 1 || b.w[words-1] != 0 {
		t.Errorf("after trim: word 999 = %d (kept), last = %d (given back)", b.w[999], b.w[words-1])
	}
	if err := b.grow(3 * words); err != nil {
		t.Fatal(err)
	}
	if len(b.w) < 3*words || b.w[999] != 1 {
		t.Errorf("grow: %d words, word 999 = %d", len(b.w), b.w[999])
	}
}

// syncBuffer is a bytes.Buffer safe for the workers' log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
