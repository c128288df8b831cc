package uprobe

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes/probetest"
)

// sleepBucket is the histogram bucket of a 10 ms call: bucket i >= 1 holds
// [2^(MinShift+i-1), 2^(MinShift+i)) ns and 10 ms is in [2^23, 2^24) ns =
// [8.39, 16.78) ms, so i = 23 - MinShift + 1. A sleeping call that was
// also preempted may land higher, never lower.
var sleepBucket = 23 - entity.HistMinShift + 1

func TestLayout(t *testing.T) {
	testutil.CheckLayout(t, set, reflect.TypeOf(uprobeUprobeKey{}), reflect.TypeOf(uprobeUprobeValue{}))
}

// cfunc is testdata/workload/cfunc.c built with -O2 by testutil.BuildC
// (prebuilt where there is no gcc). Variants are separate calls with
// literal flags: the kernel matrix finds its prebuilds by scanning for them.
func cfunc(t *testing.T) string {
	t.Helper()
	requireAMD64(t)
	return testutil.BuildC(t, "cfunc.c")
}

// gofunc is testdata/workload/gofunc.go built by testutil.BuildGo with the
// toolchain that builds this test (prebuilt where there is none).
func gofunc(t *testing.T) string {
	t.Helper()
	requireAMD64(t)
	return testutil.BuildGo(t, "gofunc.go")
}

func requireAMD64(t *testing.T) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("the uprobe probe supports x86-64 only")
	}
}

// proc is a workload started and waiting for a line on stdin.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   bytes.Buffer
}

func startHeld(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...)}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

func (p *proc) pid() uint32 { return uint32(p.cmd.Process.Pid) }

// run releases the workload and waits for it; it must exit 0.
func (p *proc) run(t *testing.T) string {
	t.Helper()
	if _, err := p.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", p.cmd.Path, err, p.out.String())
	}
	return p.out.String()
}

// series is one function's points in one process.
type series struct {
	calls int64
	hist  metricdata.HistogramDataPoint[float64]
}

func (s series) above(bucket int) uint64 {
	var n uint64
	for i := bucket; i < len(s.hist.BucketCounts); i++ {
		n += s.hist.BucketCounts[i]
	}
	return n
}

// collect returns every series by pid and function name; the overflow
// series must be absent.
func collect(h *probetest.Harness) map[uint32]map[string]series {
	h.T.Helper()
	out := map[uint32]map[string]series{}
	for _, rm := range h.CollectAll() {
		v, ok := rm.Resource.Set().Value(entity.AttrProcessPID)
		if !ok {
			h.T.Errorf("series on the host resource (overflow?): %v", rm.Resource.Attributes())
			continue
		}
		pid := uint32(v.AsInt64())
		if out[pid] == nil {
			out[pid] = map[string]series{}
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					for _, dp := range d.DataPoints {
						name, _ := dp.Attributes.Value(entity.AttrCodeFunctionName)
						s := out[pid][name.AsString()]
						s.calls = dp.Value
						out[pid][name.AsString()] = s
					}
				case metricdata.Histogram[float64]:
					for _, dp := range d.DataPoints {
						name, _ := dp.Attributes.Value(entity.AttrCodeFunctionName)
						s := out[pid][name.AsString()]
						s.hist = dp
						out[pid][name.AsString()] = s
						var n uint64
						for _, c := range dp.BucketCounts {
							n += c
						}
						if n != dp.Count {
							h.T.Errorf("%s: buckets add up to %d, count %d", name.AsString(), n, dp.Count)
						}
					}
				}
			}
		}
	}
	return out
}

// start resolves specs and starts the probe filtering on targets (added
// by the caller).
func start(t *testing.T, specs []string, pids []uint32) *probetest.Harness {
	t.Helper()
	testutil.RequireRoot(t)
	fns, err := Resolve(specs, pids)
	if err != nil {
		t.Fatal(err)
	}
	return probetest.Start(t, New(Config{Functions: fns}), true, nil)
}

func addTarget(t *testing.T, h *probetest.Harness, pid uint32) {
	t.Helper()
	if err := h.State.Add(pid); err != nil {
		t.Fatal(err)
	}
}

// parseInts splits a workload's output line into integers.
func parseInts(t *testing.T, s string, skip int) []int64 {
	t.Helper()
	var out []int64
	for _, f := range strings.Fields(s)[skip:] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("workload output %q: %v", s, err)
		}
		out = append(out, n)
	}
	return out
}

// checkTimed checks a function's series against the workload's own
// numbers: exactly n calls, all paired; at or above the 10 ms bucket the
// sleeping calls, and no more than the calls the workload itself timed at
// 8.39 ms or more (a call the probe times is inside the workload's own
// timing of it; on an emulated CPU a call that does not sleep can take
// that long); a sum between the sleeps and the time the workload
// measured around the calls.
func checkTimed(t *testing.T, s series, n, sleeps, slow int64, around time.Duration) {
	t.Helper()
	if s.calls != n || s.hist.Count != uint64(n) {
		t.Fatalf("calls = %d, paired returns = %d, want exactly %d each", s.calls, s.hist.Count, n)
	}
	if got := s.above(sleepBucket); got < uint64(sleeps) || got > uint64(slow) {
		t.Errorf("%d calls in buckets >= %d ([8.39 ms, ...)), want the %d sleeping ones and at most the %d the workload timed that long; buckets %v", got, sleepBucket, sleeps, slow, s.hist.BucketCounts)
	}
	if got := s.hist.BucketCounts[sleepBucket] + s.hist.BucketCounts[sleepBucket+1]; got < uint64(sleeps)*9/10 {
		t.Errorf("only %d of %d sleeping calls in [8.39, 33.5) ms: %v", got, sleeps, s.hist.BucketCounts)
	}
	sum := time.Duration(s.hist.Sum * 1e9)
	if low := time.Duration(sleeps) * 10 * time.Millisecond; sum < low || sum > around+time.Microsecond {
		t.Errorf("duration sum %v, want in [%v, %v] (the sleeps, the workload's own time around the calls)", sum, low, around)
	}
}

// A C function, non-PIE and PIE: exact calls and paired returns, the
// sleeping calls in the 10 ms bucket; a second process of the same binary
// that is not a target records nothing.
func TestNativeFunction(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(*testing.T) string
	}{
		{"non-PIE", func(t *testing.T) string {
			requireAMD64(t)
			return testutil.BuildC(t, "cfunc.c", "-O2", "-fno-pie", "-no-pie")
		}},
		{"PIE", func(t *testing.T) string {
			requireAMD64(t)
			return testutil.BuildC(t, "cfunc.c", "-O2", "-fpie", "-pie")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := tc.build(t)
			const n, every = 200, 20 // 10 sleeping calls
			target := startHeld(t, bin, "work", fmt.Sprint(n), fmt.Sprint(every))
			other := startHeld(t, bin, "work", fmt.Sprint(n), fmt.Sprint(every))
			h := start(t, []string{bin + ":work"}, nil)
			addTarget(t, h, target.pid())
			out := parseInts(t, target.run(t), 0)
			other.run(t)
			got := collect(h)
			checkTimed(t, got[target.pid()]["work"], n, out[1], out[2], time.Duration(out[0]))
			if s, ok := got[other.pid()]; ok {
				t.Errorf("non-target process %d of the same binary recorded %v", other.pid(), s)
			}
			if len(got) != 1 {
				t.Errorf("series of %d processes, want only the target's: %v", len(got), got)
			}
		})
	}
}

// Recursion pairs by stack depth: every level is a call and a return.
// Deeper than the 16 frames kept per thread, the innermost 16 levels of
// each outer call are timed and the outer ones only counted, never paired
// with a wrong entry.
func TestNativeRecursion(t *testing.T) {
	bin := cfunc(t)
	for _, tc := range []struct{ depth, timed int64 }{{5, 6}, {40, 16}} {
		const n = 100
		p := startHeld(t, bin, "rec", fmt.Sprint(n), fmt.Sprint(tc.depth))
		h := start(t, []string{bin + ":rec"}, nil)
		addTarget(t, h, p.pid())
		p.run(t)
		s := collect(h)[p.pid()]["rec"]
		if s.calls != n*(tc.depth+1) || s.hist.Count != uint64(n*tc.timed) {
			t.Errorf("depth %d: calls %d, paired %d; want %d and %d", tc.depth, s.calls, s.hist.Count, n*(tc.depth+1), n*tc.timed)
		}
	}
}

// Go: uprobes at the entry and at every RET, never a uretprobe. Each call
// runs in a fresh goroutine whose stack grows in work's prologue
// (morestack re-enters work: still one call) and again inside it; the
// sleeping calls park and may resume on another thread. The program must
// run to completion with the right results, and every call be paired.
func TestGoFunction(t *testing.T) {
	bin := gofunc(t)
	fns, err := Resolve([]string{bin + ":main.work"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !fns[0].Go || len(fns[0].Returns) == 0 {
		t.Fatalf("main.work resolved as %+v, want a Go function with RET sites", fns[0])
	}
	const n, every = 60, 10
	target := startHeld(t, bin, fmt.Sprint(n), fmt.Sprint(every))
	other := startHeld(t, bin, fmt.Sprint(n), fmt.Sprint(every))
	h := start(t, []string{bin + ":main.work"}, nil)
	addTarget(t, h, target.pid())
	out := target.run(t)
	if !strings.HasPrefix(out, fmt.Sprintf("ok %d ", n*(n-1)/2)) {
		t.Fatalf("target output %q, want ok %d ...", out, n*(n-1)/2)
	}
	other.run(t)
	v := parseInts(t, out, 2)
	got := collect(h)
	checkTimed(t, got[target.pid()]["main.work"], n, v[0], v[2], time.Duration(v[1]))
	if s, ok := got[other.pid()]; ok {
		t.Errorf("non-target process %d of the same binary recorded %v", other.pid(), s)
	}
	// Uprobes only: one at the entry, one per RET.
	if links := len(h.Probe.(*Probe).links); links != 1+len(fns[0].Returns) {
		t.Errorf("%d attachments, want 1 entry + %d RET sites", links, len(fns[0].Returns))
	}
}

// A recursive Go function whose stack grows while it recurses (main.grow,
// 65 levels of 1 KiB frames per call of work, in a fresh goroutine): every
// level is one call, morestack re-running its prologue included, and the
// innermost 16 levels of each chain are paired (16 frames are kept per
// goroutine), never an outer level with a wrong entry.
func TestGoRecursion(t *testing.T) {
	bin := gofunc(t)
	const n = 20
	p := startHeld(t, bin, fmt.Sprint(n), "0")
	h := start(t, []string{bin + ":main.grow"}, nil)
	addTarget(t, h, p.pid())
	if out := p.run(t); !strings.HasPrefix(out, fmt.Sprintf("ok %d ", n*(n-1)/2)) {
		t.Fatalf("output %q", out)
	}
	s := collect(h)[p.pid()]["main.grow"]
	if s.calls != n*65 || s.hist.Count != n*16 {
		t.Errorf("main.grow: calls %d, paired %d; want %d and %d", s.calls, s.hist.Count, n*65, n*16)
	}
}

// A stripped binary (-s: the linker leaves out .symtab, as strip(1)
// removes it): only .dynsym, so a function exported with -rdynamic
// resolves and counts, and a missing one lists close matches.
func TestStrippedBinary(t *testing.T) {
	requireAMD64(t)
	bin := testutil.BuildC(t, "cfunc.c", "-O2", "-rdynamic", "-s")
	if f, err := elf.Open(bin); err != nil {
		t.Fatal(err)
	} else {
		syms, serr := f.Symbols()
		f.Close()
		if !errors.Is(serr, elf.ErrNoSymbols) {
			t.Fatalf("workload built with -s has a symbol table (%d symbols, %v)", len(syms), serr)
		}
	}
	_, err := Resolve([]string{bin + ":wrok"}, nil)
	if err == nil || !strings.Contains(err.Error(), "stripped") || !strings.Contains(err.Error(), "close matches: work") {
		t.Fatalf("missing symbol error = %v, want the stripped note and close match work", err)
	}
	const n = 500
	p := startHeld(t, bin, "work", fmt.Sprint(n), "0")
	h := start(t, []string{bin + ":work"}, nil)
	addTarget(t, h, p.pid())
	p.run(t)
	if s := collect(h)[p.pid()]["work"]; s.calls != n || s.hist.Count != n {
		t.Errorf("stripped: calls %d, paired %d, want %d", s.calls, s.hist.Count, n)
	}
}

// A function of a shared library the target maps, given by library name:
// libc's atoi (a plain function; strlen and friends are IFUNCs, refused).
func TestSharedLibrary(t *testing.T) {
	bin := cfunc(t)
	const n = 1000
	p := startHeld(t, bin, "atoi", fmt.Sprint(n))
	// Resolved through the target's own mappings, once the dynamic linker
	// has mapped libc (the process then blocks reading stdin).
	deadline := time.Now().Add(5 * time.Second)
	for {
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.pid()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(maps), "/libc.so") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("libc not mapped by the workload after 5 s:\n%s", maps)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fns, err := Resolve([]string{"libc:atoi"}, []uint32{p.pid()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fns[0].Path, fmt.Sprintf("/proc/%d/root/", p.pid())) {
		t.Errorf("libc resolved to %s, want the target's mapping", fns[0].Path)
	}
	h := probetest.Start(t, New(Config{Functions: fns}), true, nil)
	addTarget(t, h, p.pid())
	p.run(t)
	if s := collect(h)[p.pid()]["atoi"]; s.calls != n || s.hist.Count != n {
		t.Errorf("libc atoi: calls %d, paired %d, want %d", s.calls, s.hist.Count, n)
	}
	if _, err := Resolve([]string{"libc:strlen"}, nil); err == nil || !strings.Contains(err.Error(), "IFUNC") {
		t.Errorf("libc:strlen error = %v, want the IFUNC refusal", err)
	}
}

// Close leaves no program, map or link of the probe behind: each is looked
// up by id after Close (ids are not reused while the test runs).
func TestNoBPFObjectOutlives(t *testing.T) {
	testutil.RequireRoot(t)
	bin := cfunc(t)
	fns, err := Resolve([]string{bin + ":work", bin + ":rec"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{AttachMulti, AttachPerEvent} {
		t.Run(mode, func(t *testing.T) {
			if mode == AttachMulti && features.HaveBPFLinkUprobeMulti() != nil {
				t.Skip("kernel lacks uprobe_multi links (Linux 6.6+)")
			}
			noObjectOutlives(t, New(Config{Functions: fns, Attach: mode}))
		})
	}
}

func noObjectOutlives(t *testing.T, p *Probe) {
	probetest.Start(t, p, true, nil)
	var progs []ebpf.ProgramID
	for _, prog := range []*ebpf.Program{p.objs.NativeEntry, p.objs.NativeReturn, p.objs.GoEntry, p.objs.GoReturn} {
		info, err := prog.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		progs = append(progs, id)
	}
	var maps []ebpf.MapID
	storage := p.stats.Store().Hashes()
	for _, m := range append(storage, p.objs.ThreadCalls, p.objs.GoCalls) {
		info, err := m.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		maps = append(maps, id)
	}
	var links []link.ID
	for _, l := range p.links {
		info, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, info.ID)
	}
	// An entry and a return site for each of two functions: one link per
	// site, or one uprobe_multi link per binary and program.
	if want := map[string]int{AttachPerEvent: 4, AttachMulti: 2}[p.mode]; len(links) != want {
		t.Fatalf("%d %s links, want %d", len(links), p.mode, want)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// The kernel frees a uprobe_multi link's program after an RCU
	// tasks-trace grace period and a map after the last program using it,
	// from deferred work: give each a moment.
	for _, id := range progs {
		waitGone(t, fmt.Sprintf("program %d", id), func() bool {
			prog, err := ebpf.NewProgramFromID(id)
			if err == nil {
				prog.Close()
			}
			return err != nil
		})
	}
	for _, id := range maps {
		waitGone(t, fmt.Sprintf("map %d", id), func() bool {
			m, err := ebpf.NewMapFromID(id)
			if err == nil {
				m.Close()
			}
			return err != nil
		})
	}
	for _, id := range links {
		if l, err := link.NewFromID(id); err == nil {
			l.Close()
			t.Errorf("link %d still exists after Close", id)
		}
	}
}

// waitGone fails the test when gone has not said so within 3 s.
func waitGone(t *testing.T, what string, gone func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !gone(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%s still exists 3 s after Close", what)
			return
		}
	}
}

// manyFunctions attaches f000 … f<n-1> of testdata/workload/manyfuncs.c in
// the given attach mode, checks every function's call count against the
// workload's own arithmetic (N rounds; f<i> is called (i % 7) + 1 times a
// round) and returns how long Close took.
func manyFunctions(t *testing.T, mode string, n int) (attach, closing time.Duration) {
	t.Helper()
	testutil.RequireRoot(t)
	requireAMD64(t)
	bin := testutil.BuildC(t, "manyfuncs.c", "-O2")
	const rounds = 3
	target := startHeld(t, bin, fmt.Sprint(rounds))
	specs := make([]string, n)
	for i := range specs {
		specs[i] = fmt.Sprintf("%s:f%03d", bin, i)
	}
	fns, err := Resolve(specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Functions: fns, Attach: mode})
	begin := time.Now()
	h := probetest.Start(t, p, true, nil)
	attach = time.Since(begin)
	if p.mode != mode {
		t.Fatalf("attached with %q, want %q", p.mode, mode)
	}
	if p.sites != 2*n { // an entry uprobe and a uretprobe per function
		t.Errorf("%d probe sites, want %d", p.sites, 2*n)
	}
	addTarget(t, h, target.pid())
	out := parseInts(t, target.run(t), 0)
	got := collect(h)[target.pid()]
	var want, sum int64
	for i := range 256 {
		want += rounds * int64(i%7+1)
	}
	if out[0] != want {
		t.Fatalf("workload made %d calls, its arithmetic says %d", out[0], want)
	}
	for i := range n {
		name := fmt.Sprintf("f%03d", i)
		s := got[name]
		if w := rounds * int64(i%7+1); s.calls != w || int64(s.hist.Count) != w {
			t.Errorf("%s: %d calls, %d timed, want %d of each", name, s.calls, s.hist.Count, w)
		}
		sum += s.calls
	}
	if len(got) != n {
		t.Errorf("series for %d functions, want %d", len(got), n)
	}
	begin = time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	closing = time.Since(begin)
	t.Logf("%s: %d functions (%d calls counted), attach %v, close %v", mode, n, sum, attach, closing)
	return attach, closing
}

// With uprobe_multi, 256 functions (512 probe sites) detach within the 5 s
// the agent's shutdown may spend on them: one perf-event uprobe per site
// took ~80 ms each to close, 56 s in all, past the shipped
// TimeoutStopSec=40s.
func TestManyFunctionsMulti(t *testing.T) {
	if err := features.HaveBPFLinkUprobeMulti(); err != nil {
		t.Skipf("kernel lacks uprobe_multi links (Linux 6.6+): %v", err)
	}
	if _, closing := manyFunctions(t, AttachMulti, 256); closing > 5*time.Second {
		t.Errorf("closing 256 functions' uprobe_multi links took %v, want < 5 s", closing)
	}
}

// The fallback where uprobe_multi is missing: one perf event per site,
// exact counts too (fewer functions: each site's close waits for its own
// grace periods).
func TestManyFunctionsPerEvent(t *testing.T) {
	manyFunctions(t, AttachPerEvent, 16)
}
