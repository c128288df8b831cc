package aggregator

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/telagent/telagent/internal/osthread"
	"golang.org/x/sys/unix"
)

// Design: who reads which memory, and what crosses NUMA nodes.
//
// A per-CPU map value lives in the kernel's per-CPU areas: CPU c's slot of
// every key is on node(c). The kernel (up to 6.18, at least) offers no
// lookup that copies only some CPUs' slots, so BPF_MAP_LOOKUP_BATCH copies
// every CPU's slot of a chunk of keys, on the thread that calls it, into
// one user buffer (key major: key, then CPU, then word). That copy is the
// unavoidable cross-node read: every remote CPU's slot, once per interval.
//
// The chunk is read once, by the caller (PerCPUReader.Read), not once per
// node: each node's worker batch-reading the whole map itself would make
// the kernel copy every CPU's slot once per node, multiplying both the
// syscall time and the cross-node traffic by the node count.
//
// Then each node's worker, a goroutine locked to an OS thread pinned to
// that node's CPUs, reduces the columns of its own CPUs (disjoint CPU
// ranges of the same buffer: workers read disjoint memory and write only
// their own) into per-node partials, in buffers it mapped and wrote first,
// so their pages are on its node and nobody else ever writes them. The
// chunk buffer is on the caller's node, so a worker on another node reads
// its own CPUs' columns across the interconnect: each remote column
// crosses once more after the kernel's copy. Finally the caller merges
// the partials into the totals, reading one partial per key and remote
// node (words × 8 bytes) instead of every CPU's slot. With one node the
// only partial is the total: no merge and no second buffer.
//
// So, measured against the caller summing everything itself, the workers
// do not reduce cross-node traffic (the kernel's copy dominates and
// happens either way; the remote columns cross once more); what they buy
// is the reduction spread over the nodes' CPUs and the per-node partials
// (NodeValue) held in node-local memory. Reading each node's slots only on
// that node needs the kernel to copy a subset of CPUs: a BPF map-element
// iterator (bpf_iter) summing one node's CPUs with bpf_per_cpu_ptr, run by
// that node's worker, or a per-CPU lookup flag on newer kernels. The
// workers are where such a read would plug in.
//
// With one node (most hosts, and every host without NUMA) there is no
// worker: the caller reduces each chunk itself. A pinned worker would be
// pinned to every CPU, so it would buy nothing but a thread hand-off per
// chunk, and the reduced values would be cold in the caller's cache when
// it emits them (measured: 14 % of the 10k-key collection path).
//
// Workers run in lock step with the caller, one chunk at a time: the
// caller waits for every worker before the next batch lookup overwrites
// the chunk buffer, which keeps the memory bounded (one chunk) and the
// ownership of each buffer obvious. A hand-off costs a thread wake-up,
// tens of microseconds per chunk of up to 4 MiB (thousands of keys).

// nodeWorker reduces one node's CPUs for every key of a read.
type nodeWorker struct {
	node  Node
	runs  [][2]int // the node's CPUs as [lo, hi) runs: contiguous column ranges
	ncpu  int
	words int

	jobs   chan chunkJob
	done   *sync.WaitGroup
	exited chan struct{}

	// Owned by the worker's thread; the caller reads them only while the
	// worker is idle (after done.Wait, or after exited is closed).
	part     *wordBuf // keys × words, this node's partial per key
	err      error    // of the last job
	pinned   bool     // the thread's affinity was set to (part of) the node
	affinity []int    // the thread's CPUs as read back after pinning
	tid      int      // the thread's id
}

// chunkJob is one batch of keys to reduce: got keys' per-CPU values,
// whose results go to snapshot indices [base, base+got).
type chunkJob struct {
	vals []uint64
	got  int
	base int
}

// reducer owns the node workers and the snapshot's value buffers.
type reducer struct {
	ncpu, words int
	nodes       []Node // the topology's nodes that own CPUs, in order
	workers     []*nodeWorker
	totals      *wordBuf // nil with one node: its partial is the total
	n           int      // keys reduced in the current read
	window      bool     // each chunk replaces the previous one (Each)
	inline      bool     // one node: the caller reduces, workers[0] has no thread
	done        sync.WaitGroup
	closed      bool
	onMain      func() bool // onMainThread; tests replace it
}

// newReducer starts one pinned worker per node that owns CPUs. capKeys is
// the expected largest key count (the map's max_entries): buffers reserve
// that much address space and grow past it only if a read returns more.
func newReducer(topo Topology, words, capKeys int, log *slog.Logger) (*reducer, error) {
	r := &reducer{ncpu: topo.PossibleCPUs, words: words, onMain: osthread.OnMain}
	for _, n := range topo.Nodes {
		if len(n.CPUs) > 0 {
			r.nodes = append(r.nodes, Node{ID: n.ID, CPUs: append([]int(nil), n.CPUs...)})
		}
	}
	if len(r.nodes) == 0 {
		return nil, errors.New("topology has no node with a CPU")
	}
	if len(r.nodes) == 1 {
		n := r.nodes[0]
		part, err := newWordBuf(max(1, capKeys) * words)
		if err != nil {
			return nil, fmt.Errorf("partial buffer: %w", err)
		}
		r.inline = true
		r.workers = []*nodeWorker{{node: n, runs: cpuRuns(n.CPUs), ncpu: r.ncpu, words: words, part: part}}
		return r, nil
	}
	allowed, allowedErr := osthread.Allowed(topo.PossibleCPUs)
	if allowedErr != nil {
		log.Debug("cannot read the process's allowed CPUs; pinning node workers without checking them", "err", allowedErr)
	}
	for _, n := range r.nodes {
		w, err := r.startWorker(n, capKeys, allowed, log)
		if err != nil {
			return nil, errors.Join(err, r.close())
		}
		r.workers = append(r.workers, w)
	}
	if len(r.workers) > 1 {
		var err error
		if r.totals, err = newWordBuf(max(1, capKeys) * words); err != nil {
			return nil, errors.Join(fmt.Errorf("totals buffer: %w", err), r.close())
		}
	}
	return r, nil
}

func (r *reducer) startWorker(n Node, capKeys int, allowed unix.CPUSetDynamic, log *slog.Logger) (*nodeWorker, error) {
	w := &nodeWorker{
		node: n, runs: cpuRuns(n.CPUs), ncpu: r.ncpu, words: r.words,
		jobs:   make(chan chunkJob, 1), // the caller's send never waits for a wake-up
		done:   &r.done,
		exited: make(chan struct{}),
	}
	ready := make(chan error, 1)
	osthread.Go(r.onMain, func() { w.runLocked(capKeys, allowed, log, ready) })
	if err := <-ready; err != nil {
		<-w.exited
		return nil, fmt.Errorf("node %d worker: %w", n.ID, err)
	}
	return w, nil
}

// cpuRuns groups CPU numbers into [lo, hi) runs of consecutive CPUs (any
// order is summed correctly; sorted lists give the fewest runs).
func cpuRuns(cpus []int) [][2]int {
	var runs [][2]int
	for _, c := range cpus {
		if k := len(runs) - 1; k >= 0 && runs[k][1] == c {
			runs[k][1]++
			continue
		}
		runs = append(runs, [2]int{c, c + 1})
	}
	return runs
}

// runLocked runs the worker for the reader's life on its own thread
// (osthread.Go: never the main thread, ended when the worker returns).
func (w *nodeWorker) runLocked(capKeys int, allowed unix.CPUSetDynamic, log *slog.Logger, ready chan<- error) {
	defer close(w.exited)
	w.tid = unix.Gettid()
	w.pin(allowed, log)
	// Mapped and (on first reduce) written here, on the pinned thread.
	part, err := newWordBuf(max(1, capKeys) * w.words)
	if err != nil {
		ready <- fmt.Errorf("partial buffer: %w", err)
		return
	}
	w.part = part
	ready <- nil
	for j := range w.jobs {
		w.err = w.reduce(j)
		w.done.Done()
	}
}

// pin sets the thread's affinity to the node's CPUs that the process may
// run on. None of them allowed (a restricted cpuset), or a failing
// sched_setaffinity, leaves the thread unpinned: the sums are the same,
// only the partials' placement is left to the scheduler.
func (w *nodeWorker) pin(allowed unix.CPUSetDynamic, log *slog.Logger) {
	aff, err := osthread.Pin(w.node.CPUs, allowed, w.ncpu)
	switch {
	case errors.Is(err, osthread.ErrNoneAllowed):
		log.Debug("node worker not pinned: none of the node's CPUs is in the process's allowed set",
			"node", w.node.ID, "cpus", w.node.CPUs)
		return
	case err != nil:
		log.Debug("node worker not pinned", "node", w.node.ID, "cpus", w.node.CPUs, "err", err)
		return
	}
	w.pinned, w.affinity = true, aff
	if len(aff) < len(w.node.CPUs) {
		log.Debug("node worker pinned to the node's allowed CPUs only", "node", w.node.ID, "cpus", w.node.CPUs, "allowed", len(aff))
	} else {
		log.Debug("node worker pinned", "node", w.node.ID, "cpus", w.node.CPUs)
	}
}

// reduce sums, for each key of the chunk, the node's CPU columns into the
// key's partial. The first CPU's words are copied, not added: the buffer
// holds the previous read's partials (or zeros after a trim).
func (w *nodeWorker) reduce(j chunkJob) error {
	words := w.words
	end := (j.base + j.got) * words
	if err := w.part.grow(end); err != nil {
		return fmt.Errorf("node %d partials: %w", w.node.ID, err)
	}
	dst := w.part.w[j.base*words : end]
	per := w.ncpu * words
	first := w.runs[0][0]
	for i := range j.got {
		out := dst[i*words : (i+1)*words : (i+1)*words]
		src := j.vals[i*per : (i+1)*per : (i+1)*per]
		copy(out, src[first*words:(first+1)*words])
		for k, run := range w.runs {
			lo := run[0]
			if k == 0 {
				lo++
			}
			for c := lo; c < run[1]; c++ {
				col := src[c*words : (c+1)*words : (c+1)*words]
				for x, v := range col {
					out[x] += v
				}
			}
		}
	}
	w.part.wrote(end)
	return nil
}

// reset starts a new read.
func (r *reducer) reset() { r.n = 0 }

// add reduces got keys' per-CPU values (got × ncpu × words, key-major) and
// appends them to the snapshot. It returns when every worker is done with
// vals, so the caller may then overwrite it.
func (r *reducer) add(vals []uint64, got int) error {
	if r.closed {
		return errors.New("reader closed")
	}
	if got == 0 {
		return nil
	}
	if r.window {
		r.n = 0
	}
	if len(vals) < got*r.ncpu*r.words {
		return fmt.Errorf("chunk of %d keys has %d words, want %d", got, len(vals), got*r.ncpu*r.words)
	}
	if r.inline {
		r.workers[0].err = r.workers[0].reduce(chunkJob{vals: vals, got: got, base: r.n})
	} else {
		r.done.Add(len(r.workers))
		for _, w := range r.workers {
			w.jobs <- chunkJob{vals: vals, got: got, base: r.n}
		}
		r.done.Wait()
	}
	for _, w := range r.workers {
		if w.err != nil {
			return w.err
		}
	}
	if r.totals != nil {
		if err := r.merge(r.n, got); err != nil {
			return err
		}
	}
	r.n += got
	return nil
}

// merge adds the node partials of keys [base, base+got) into their totals.
func (r *reducer) merge(base, got int) error {
	lo, hi := base*r.words, (base+got)*r.words
	if err := r.totals.grow(hi); err != nil {
		return fmt.Errorf("totals: %w", err)
	}
	tot := r.totals.w[lo:hi:hi]
	copy(tot, r.workers[0].part.w[lo:hi])
	for _, w := range r.workers[1:] {
		src := w.part.w[lo:hi:hi]
		for x, v := range src {
			tot[x] += v
		}
	}
	r.totals.wrote(hi)
	return nil
}

// finish ends a read: memory above what it used goes back to the kernel
// when the map has shrunk a lot.
func (r *reducer) finish() {
	used := r.n * r.words
	for _, w := range r.workers {
		w.part.trim(used)
	}
	if r.totals != nil {
		r.totals.trim(used)
	}
}

func (r *reducer) value(i int) []uint64 {
	buf := r.totals
	if buf == nil {
		buf = r.workers[0].part
	}
	return r.slot(buf, i)
}

func (r *reducer) nodeValue(i, node int) []uint64 { return r.slot(r.workers[node].part, i) }

func (r *reducer) slot(b *wordBuf, i int) []uint64 {
	if i < 0 || i >= r.n {
		panic(fmt.Sprintf("aggregator: key index %d out of range [0,%d)", i, r.n))
	}
	return b.w[i*r.words : (i+1)*r.words : (i+1)*r.words]
}

// close stops the workers, waits for their threads to end and unmaps
// every buffer. Idempotent.
func (r *reducer) close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.n = 0
	var errs []error
	for _, w := range r.workers {
		if !r.inline {
			close(w.jobs)
			<-w.exited
		}
		if err := w.part.free(); err != nil {
			errs = append(errs, fmt.Errorf("node %d partials: %w", w.node.ID, err))
		}
	}
	if err := r.totals.free(); err != nil {
		errs = append(errs, fmt.Errorf("totals: %w", err))
	}
	return errors.Join(errs...)
}
