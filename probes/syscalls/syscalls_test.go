package syscalls

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/probetest"
)

// harness runs the probe with this test process as its only target. The Go
// runtime makes its own syscalls, so tests assert exactly only on syscalls
// the runtime never makes (getppid, close(-1), clock_nanosleep).
type harness struct {
	*probetest.Harness
	probe *Probe
}

func start(t *testing.T, cfg Config) *harness { return startOn(t, cfg, nil) }

// startOn starts the probe with topo (nil: this machine's) and this test
// process as its only target.
func startOn(t *testing.T, cfg Config, topo *aggregator.Topology) *harness {
	t.Helper()
	p := New(cfg)
	h := &harness{Harness: probetest.Start(t, p, true, topo), probe: p}
	if err := h.State.Add(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	return h
}

// collect returns this interval's points, by syscall name, of this process
// and of the overflow series (name "").
func (h *harness) collect() (hist map[string]metricdata.HistogramDataPoint[float64], errs map[string]int64) {
	h.T.Helper()
	hist = map[string]metricdata.HistogramDataPoint[float64]{}
	errs = map[string]int64{}
	self := int64(os.Getpid())
	for _, rm := range h.CollectAll() {
		pid, hasPID := rm.Resource.Set().Value(entity.AttrProcessPID)
		if hasPID && pid.AsInt64() != self {
			h.T.Errorf("data for pid %d, which is not a target", pid.AsInt64())
			continue
		}
		for _, m := range rm.ScopeMetrics[0].Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					hist[seriesName(h.T, dp.Attributes, hasPID)] = dp
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					errs[seriesName(h.T, dp.Attributes, hasPID)] = dp.Value
				}
			}
		}
	}
	return hist, errs
}

func seriesName(t *testing.T, attrs attribute.Set, hasPID bool) string {
	if v, ok := attrs.Value(entity.AttrTelagentSyscallName); ok {
		return v.AsString()
	}
	if v, ok := attrs.Value(entity.AttrOtelMetricOverflow); !ok || !v.AsBool() || hasPID {
		t.Errorf("series without a syscall name is not the host's overflow series: %v", attrs.ToSlice())
	}
	return ""
}

func checkBuckets(t *testing.T, name string, dp metricdata.HistogramDataPoint[float64]) {
	t.Helper()
	var n uint64
	for _, c := range dp.BucketCounts {
		n += c
	}
	if n != dp.Count || len(dp.BucketCounts) != len(dp.Bounds)+1 {
		t.Errorf("%s: buckets add up to %d, count %d (%d buckets, %d bounds)", name, n, dp.Count, len(dp.BucketCounts), len(dp.Bounds))
	}
}

func TestGetppidExactCount(t *testing.T) {
	h := start(t, Config{})
	const n = 100000
	for range n {
		unix.Getppid()
	}
	hist, _ := h.collect()
	dp, ok := hist["getppid"]
	if !ok || dp.Count != n {
		t.Fatalf("getppid count = %d (present %v), want exactly %d", dp.Count, ok, n)
	}
	checkBuckets(t, "getppid", dp)
	for name, dp := range hist {
		checkBuckets(t, name, dp)
	}
	// Cumulative: a second interval keeps counting from the first.
	for range 10 {
		unix.Getppid()
	}
	hist, _ = h.collect()
	if got := hist["getppid"].Count; got != n+10 {
		t.Fatalf("second interval getppid = %d, want %d", got, n+10)
	}
}

// The raw_tp fallback must count exactly like tp_btf.
func TestRawTracepointFallback(t *testing.T) {
	h := start(t, Config{Attach: "raw_tp"})
	if got := h.probe.Stats().Attach; got != "raw_tp" {
		t.Fatalf("attached with %q, want raw_tp", got)
	}
	const n = 20000
	for range n {
		unix.Getppid()
	}
	for range 100 {
		unix.Close(-1)
	}
	hist, errs := h.collect()
	if hist["getppid"].Count != n || errs["close"] != 100 {
		t.Fatalf("raw_tp: getppid %d (want %d), close errors %d (want 100)", hist["getppid"].Count, n, errs["close"])
	}
}

func TestCloseErrors(t *testing.T) {
	h := start(t, Config{})
	const n = 5000
	for range n {
		if err := unix.Close(-1); err != unix.EBADF {
			t.Fatalf("close(-1) = %v, want EBADF", err)
		}
	}
	hist, errs := h.collect()
	if errs["close"] != n {
		t.Errorf("close errors = %d, want exactly %d", errs["close"], n)
	}
	if hist["close"].Count < n {
		t.Errorf("close calls = %d, want at least %d", hist["close"].Count, n)
	}
	if errs["getppid"] != 0 {
		t.Errorf("getppid errors = %d, want 0", errs["getppid"])
	}
}

func TestSleepLandsInItsBucket(t *testing.T) {
	h := start(t, Config{})
	const n, d = 5, 20 * time.Millisecond
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ts := unix.NsecToTimespec(int64(d))
	for range n {
		if err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, 0, &ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	hist, _ := h.collect()
	dp := hist["clock_nanosleep"]
	if dp.Count != n {
		t.Fatalf("clock_nanosleep count = %d, want %d", dp.Count, n)
	}
	// The bucket of 20 ms: the first whose upper bound is above it.
	want := 0
	for want < len(dp.Bounds) && dp.Bounds[want] <= d.Seconds() {
		want++
	}
	if dp.BucketCounts[want] != n {
		t.Errorf("bucket %d (%g..%g s) holds %d of %d sleeps; buckets %v",
			want, dp.Bounds[want-1], dp.Bounds[want], dp.BucketCounts[want], n, dp.BucketCounts)
	}
	if lo, hi := n*d.Seconds(), n*(d+5*time.Millisecond).Seconds(); dp.Sum < lo || dp.Sum > hi {
		t.Errorf("sum of %d sleeps of %s = %gs, want in [%g, %g]", n, d, dp.Sum, lo, hi)
	}
}

func TestOverflowSeries(t *testing.T) {
	const maxEntries = 4
	h := start(t, Config{MaxEntries: maxEntries})
	// More distinct syscalls than fit: the runtime's own fill some slots too.
	for range 100 {
		unix.Getppid()
		unix.Getpgrp() // getpgid(0) on amd64 and arm64
		unix.Getuid()
		unix.Getgid()
		unix.Geteuid()
		unix.Getegid()
	}
	hist, _ := h.collect()
	over, ok := hist[""]
	if !ok || over.Count == 0 {
		t.Fatalf("no overflow series with %d slots; series: %d", maxEntries, len(hist))
	}
	if len(hist)-1 > maxEntries {
		t.Errorf("%d named series, more than max_entries %d", len(hist)-1, maxEntries)
	}
	var ours uint64
	for _, name := range []string{"getppid", "getpgid", "getuid", "getgid", "geteuid", "getegid"} {
		ours += hist[name].Count
	}
	// Every call of ours is either in its named series or folded.
	if ours+over.Count < 600 {
		t.Errorf("named %d + overflow %d < 600 calls made: %v", ours, over.Count, counts(hist))
	}
	// The tuples past max_entries were folded by the agent, and counted:
	// at least one drained entry per syscall that found no room.
	st := h.probe.Stats().MetricSets[0]
	if st.EntryFolds == 0 || st.Keys > maxEntries {
		t.Errorf("entry folds %d, live tuples %d (max %d): the folds went uncounted", st.EntryFolds, st.Keys, maxEntries)
	}
}

// TestStorageFullFoldsExactly gives the kernel storage room for only two
// entries per hash: the programs fold whatever finds no room into the
// overflow value and count each update, and named series plus overflow
// still hold every call made, exactly.
func TestStorageFullFoldsExactly(t *testing.T) {
	p := New(Config{})
	h := &harness{Harness: probetest.StartWith(t, p, probetest.Options{Filter: true,
		Storage: map[string]uint32{set.Name: 2}}), probe: p}
	if err := h.State.Add(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	h.collect() // what the test process did before
	const n = 1000
	runtime.LockOSThread()
	for range n {
		unix.Getppid()
		unix.Getuid()
		unix.Getgid()
	}
	runtime.UnlockOSThread()
	hist, _ := h.collect()
	st := h.probe.Stats().MetricSets[0]
	if st.OverflowFolds == 0 || st.Storage.Entries != 2 {
		t.Fatalf("storage of %d entries folded %d updates; want 2 entries and some folds", st.Storage.Entries, st.OverflowFolds)
	}
	// Calls folded are the overflow series' count; ours are the named
	// series plus some of the overflow (the runtime folds too).
	over := hist[""].Count
	named := hist["getppid"].Count + hist["getuid"].Count + hist["getgid"].Count
	if named+over < 3*n {
		t.Errorf("named %d + overflow %d < %d calls made", named, over, 3*n)
	}
	if over > st.OverflowFolds {
		t.Errorf("overflow series counts %d calls, more than the %d updates folded", over, st.OverflowFolds)
	}
}

// A child of a target is followed from fork; once it has exited and its
// final values were collected, Evict removes its keys and nothing of it is
// exported again.
func TestExitedProcessIsEvicted(t *testing.T) {
	h := start(t, Config{})
	cmd := exec.Command(testutil.Rawsys(t), "getppid", "1000")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	child := int64(cmd.Process.Pid)
	find := func(rms []metricdata.ResourceMetrics) (getppid uint64, found bool) {
		for _, rm := range rms {
			if pid, _ := rm.Resource.Set().Value(entity.AttrProcessPID); pid.AsInt64() != child {
				continue
			}
			found = true
			if ct, ok := rm.Resource.Set().Value(entity.AttrProcessCreationTime); !ok || ct.AsString() == "" {
				t.Errorf("exited child has no creation time: %v", rm.Resource.Attributes())
			}
			for _, m := range rm.ScopeMetrics[0].Metrics {
				if hd, ok := m.Data.(metricdata.Histogram[float64]); ok {
					for _, dp := range hd.DataPoints {
						if v, _ := dp.Attributes.Value(entity.AttrTelagentSyscallName); v.AsString() == "getppid" {
							getppid = dp.Count
						}
					}
				}
			}
		}
		return getppid, found
	}
	n, found := find(h.CollectAll())
	if !found || n != 1000 {
		t.Fatalf("exited child: found %v, getppid %d, want 1000", found, n)
	}
	before := h.probe.Stats()
	if err := h.probe.Evict(); err != nil {
		t.Fatal(err)
	}
	if after := h.probe.Stats(); after.MetricSets[0].Evicted <= before.MetricSets[0].Evicted {
		t.Errorf("nothing evicted (%d before, %d after)", before.MetricSets[0].Evicted, after.MetricSets[0].Evicted)
	}
	if _, found := find(h.CollectAll()); found {
		t.Error("exited child still exported after eviction")
	}
}

func counts(hist map[string]metricdata.HistogramDataPoint[float64]) map[string]uint64 {
	m := map[string]uint64{}
	for k, v := range hist {
		m[k] = v.Count
	}
	return m
}

// runWithPid runs cmd as pid (free again: its last owner was reaped), by
// setting the kernel's last allocated pid just below it; another fork on
// the host can take it first, so it tries again a few times.
func runWithPid(t *testing.T, pid int, name string, args ...string) *exec.Cmd {
	t.Helper()
	for range 50 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot choose the next pid (/proc/sys/kernel/ns_last_pid): %v", err)
		}
		cmd := exec.Command(name, args...)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == pid {
			return cmd
		}
	}
	t.Fatalf("pid %d was not reused in 50 tries", pid)
	return nil
}

// TestPidReuseKeepsCountsApart: a process exits and its final values are
// collected; before they are delivered (and its totals forgotten) its pid
// goes to a new process. The first interval after the eviction exports
// exactly the new process's calls, on a Resource with its own creation
// time: nothing of the old one is carried over, nothing of the new lost.
func TestPidReuseKeepsCountsApart(t *testing.T) {
	h := start(t, Config{})
	first := exec.Command(testutil.Rawsys(t), "getppid", "1000")
	if err := first.Run(); err != nil {
		t.Fatal(err)
	}
	pid := first.Process.Pid
	find := func(rms []metricdata.ResourceMetrics) (getppid uint64, created string) {
		for _, rm := range rms {
			if p, _ := rm.Resource.Set().Value(entity.AttrProcessPID); p.AsInt64() != int64(pid) {
				continue
			}
			ct, _ := rm.Resource.Set().Value(entity.AttrProcessCreationTime)
			created = ct.AsString()
			for _, m := range rm.ScopeMetrics[0].Metrics {
				if hd, ok := m.Data.(metricdata.Histogram[float64]); ok {
					for _, dp := range hd.DataPoints {
						if v, _ := dp.Attributes.Value(entity.AttrTelagentSyscallName); v.AsString() == "getppid" {
							getppid = dp.Count
						}
					}
				}
			}
		}
		return getppid, created
	}
	n, oldCreated := find(h.CollectAll())
	if n != 1000 {
		t.Fatalf("first process (pid %d): getppid %d, want 1000", pid, n)
	}
	time.Sleep(20 * time.Millisecond) // a creation time of its own (10 ms ticks)
	runWithPid(t, pid, testutil.Rawsys(t), "getppid", "300")
	if err := h.probe.Evict(); err != nil { // the interval above was delivered
		t.Fatal(err)
	}
	n, newCreated := find(h.CollectAll())
	if n != 300 {
		t.Errorf("second process with the reused pid %d: getppid %d, want exactly 300", pid, n)
	}
	if newCreated == "" || newCreated == oldCreated {
		t.Errorf("second process's creation time %q, the first's %q: want its own", newCreated, oldCreated)
	}
}

// childSeries sums the calls of every syscall series of pid in rms and
// counts the series; getppid is that syscall's count.
func childSeries(rms []metricdata.ResourceMetrics, pid int64) (calls, series, getppid uint64) {
	for _, rm := range rms {
		if v, _ := rm.Resource.Set().Value(entity.AttrProcessPID); v.AsInt64() != pid {
			continue
		}
		for _, m := range rm.ScopeMetrics[0].Metrics {
			if hd, ok := m.Data.(metricdata.Histogram[float64]); ok {
				for _, dp := range hd.DataPoints {
					calls += dp.Count
					series++
					if v, _ := dp.Attributes.Value(entity.AttrTelagentSyscallName); v.AsString() == "getppid" {
						getppid = dp.Count
					}
				}
			}
		}
	}
	return calls, series, getppid
}

// hostOverflow is the count of the host Resource's overflow series in
// rms, and it fails t when any Resource has process.pid without
// process.creation.time (an incomplete identity).
func hostOverflow(t *testing.T, rms []metricdata.ResourceMetrics) uint64 {
	t.Helper()
	var n uint64
	for _, rm := range rms {
		set := rm.Resource.Set()
		pid, hasPID := set.Value(entity.AttrProcessPID)
		if _, hasCT := set.Value(entity.AttrProcessCreationTime); hasPID && !hasCT {
			t.Errorf("Resource with process.pid %d and no process.creation.time: %v", pid.AsInt64(), set.ToSlice())
		}
		if hasPID {
			continue
		}
		for _, m := range rm.ScopeMetrics[0].Metrics {
			if hd, ok := m.Data.(metricdata.Histogram[float64]); ok {
				for _, dp := range hd.DataPoints {
					if v, ok := dp.Attributes.Value(entity.AttrOtelMetricOverflow); ok && v.AsBool() {
						n += dp.Count
					}
				}
			}
		}
	}
	return n
}

// TestGoneWithoutIdentityFoldsToHost: a child exits before the agent read
// it and the kernel's record of its identity is gone too (as when more
// short-lived processes than the record holds came and went): it has no
// creation time, so it gets no Resource; its series fold into the host's
// overflow series, exactly, and are counted. The oracle is a first child
// running the same program with its identity kept: its series give the
// calls the program makes besides the getppid loop (fork to exit) and
// their number.
func TestGoneWithoutIdentityFoldsToHost(t *testing.T) {
	h := start(t, Config{})
	control := exec.Command(testutil.Rawsys(t), "getppid", "1000")
	if err := control.Run(); err != nil {
		t.Fatal(err)
	}
	rms := h.CollectAll()
	calls, series, getppid := childSeries(rms, int64(control.Process.Pid))
	if getppid != 1000 || series == 0 {
		t.Fatalf("control child: getppid %d in %d series, want 1000", getppid, series)
	}
	before := hostOverflow(t, rms)
	other := calls - getppid // the program's calls besides the loop
	if err := h.probe.Evict(); err != nil {
		t.Fatal(err)
	}
	folds := h.probe.Stats().MetricSets[0].IdentityFolds

	const n = 3000
	child := exec.Command(testutil.Rawsys(t), "getppid", strconv.Itoa(n))
	if err := child.Run(); err != nil { // reaped: /proc/<pid> is gone
		t.Fatal(err)
	}
	pid := child.Process.Pid
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Fatalf("/proc/%d still there after the child was reaped", pid)
	}
	if _, _, ok := h.State.Process(uint32(pid)); !ok {
		t.Fatalf("the kernel has no record of child %d to forget: the test would not test the fold", pid)
	}
	h.State.Forget(uint32(pid))
	rms = h.CollectAll()
	if c, s, _ := childSeries(rms, int64(pid)); s != 0 {
		t.Errorf("child without identity exported on a Resource of its own: %d calls in %d series", c, s)
	}
	if got := hostOverflow(t, rms) - before; got != n+other {
		t.Errorf("host overflow series grew by %d calls, want %d (getppid %d + %d other calls of the program)", got, n+other, n, other)
	}
	if got := h.probe.Stats().MetricSets[0].IdentityFolds - folds; got != series {
		t.Errorf("identity folds counted %d, want %d (the program's series)", got, series)
	}
	// Folded once: the next interval neither exports the child nor
	// counts it again.
	rms = h.CollectAll()
	if got := hostOverflow(t, rms) - before; got != n+other {
		t.Errorf("a later interval: host overflow grew by %d calls since the control, want still %d", got, n+other)
	}
	if got := h.probe.Stats().MetricSets[0].IdentityFolds - folds; got != series {
		t.Errorf("a later interval: identity folds %d, want still %d", got, series)
	}
}

// collectWith is Harness.CollectAll with before run between the new
// generation and the read, where the agent marks exits.
func collectWith(h *harness, before func()) []metricdata.ResourceMetrics {
	h.T.Helper()
	h.Resolver.NextGeneration(10)
	h.Builder.Begin(time.Now())
	if err := h.State.Flip(); err != nil {
		h.T.Fatal(err)
	}
	before()
	if err := h.Probe.Collect(context.Background(), &probes.Collection{Metrics: h.Builder, Processes: h.Resolver}); err != nil {
		h.T.Fatal(err)
	}
	return h.Builder.Result()
}

// TestWithoutIdentityWaitsForExitEvent: with exit events, a child first
// met gone and without identity is held for a generation, exported
// nowhere, since its exit event may still identify it. When the event
// comes, the child's series go out on its own Resource with its whole
// identity and exact counts; when none comes, they fold into the host's
// overflow series a generation later.
func TestWithoutIdentityWaitsForExitEvent(t *testing.T) {
	h := start(t, Config{})
	h.Resolver.ExitEvents = true
	h.CollectAll() // the test process so far
	run := func(n int) (pid int, ticks uint64, comm string) {
		cmd := exec.Command(testutil.Rawsys(t), "getppid", strconv.Itoa(n))
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pid = cmd.Process.Pid
		ticks, comm, ok := h.State.Process(uint32(pid))
		if !ok {
			t.Fatalf("the kernel has no record of child %d to forget", pid)
		}
		h.State.Forget(uint32(pid))
		return pid, ticks, comm
	}

	pid, ticks, comm := run(2000)
	rms := h.CollectAll()
	before := hostOverflow(t, rms)
	if c, s, _ := childSeries(rms, int64(pid)); s != 0 {
		t.Errorf("deferred child exported on its own Resource: %d calls", c)
	}
	rms = collectWith(h, func() { h.Resolver.MarkExited(uint32(pid), ticks, comm) })
	calls, series, getppid := childSeries(rms, int64(pid))
	if getppid != 2000 {
		t.Errorf("child after its exit event: getppid %d in %d series, want 2000", getppid, series)
	}
	want := h.Resolver.CreationTime(ticks)
	for _, rm := range rms {
		if v, _ := rm.Resource.Set().Value(entity.AttrProcessPID); v.AsInt64() == int64(pid) {
			if ct, _ := rm.Resource.Set().Value(entity.AttrProcessCreationTime); ct.AsString() != want {
				t.Errorf("child's creation time %q, want %q (the exit event's)", ct.AsString(), want)
			}
		}
	}
	if got := hostOverflow(t, rms); got != before {
		t.Errorf("host overflow went from %d to %d calls while the child was identified", before, got)
	}
	if err := h.probe.Evict(); err != nil {
		t.Fatal(err)
	}

	// No exit event: held once, then folded: the same program's calls,
	// with 3000 more getppid than above.
	folds := h.probe.Stats().MetricSets[0].IdentityFolds
	pid, _, _ = run(5000)
	rms = h.CollectAll()
	if c, s, _ := childSeries(rms, int64(pid)); s != 0 || hostOverflow(t, rms) != before {
		t.Errorf("deferred child: %d calls on its own Resource, host overflow %d (was %d); want held", c, hostOverflow(t, rms), before)
	}
	rms = h.CollectAll()
	if got, want := hostOverflow(t, rms)-before, calls+3000; got != want {
		t.Errorf("a generation later: host overflow grew by %d, want %d (the program's %d calls with 5000 getppid)", got, want, want)
	}
	if got := h.probe.Stats().MetricSets[0].IdentityFolds - folds; got != series {
		t.Errorf("identity folds %d, want %d", got, series)
	}
}
