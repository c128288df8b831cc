package sched

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes/probetest"
)

// harness runs the probe in filter mode (targets chosen by the test) or
// over the whole host.
type harness struct {
	*probetest.Harness
	probe *Probe
}

func start(t *testing.T, cfg Config, filter bool) *harness {
	t.Helper()
	p := New(cfg)
	return &harness{Harness: probetest.Start(t, p, filter, nil), probe: p}
}

// misses is how many times the kernel skipped one of the probe's programs
// (recursion protection): each skipped switch would lose time.
func (h *harness) misses() uint64 {
	var n uint64
	for _, prog := range []*ebpf.Program{h.probe.objs.Switch} {
		if prog == nil {
			continue
		}
		if st, err := prog.Stats(); err == nil {
			n += st.RecursionMisses
		}
	}
	return n
}

// sample is what the probe exported for one process.
type sample struct {
	found             bool
	vol, invol        int64
	oncpu             float64 // s
	runq              metricdata.HistogramDataPoint[float64]
	migrations        int64
	overflowed        bool // an overflow series was exported too
	pids              map[int64]bool
	exe               map[int64]string // each process's Resource, for messages
	resource          string           // this process's Resource
	pointsWithoutType int
}

// sampleOf collects once and extracts pid's points (pid 0: none).
func (h *harness) sampleOf(pid int) sample {
	h.T.Helper()
	all, overflowed := h.samples()
	s := sample{pids: map[int64]bool{}, exe: map[int64]string{}, overflowed: overflowed}
	if got, ok := all[int64(pid)]; ok {
		s = *got
		s.overflowed = overflowed
	}
	for p, got := range all {
		s.pids[p] = true
		s.exe[p] = got.resource
	}
	return s
}

// samples collects once and returns every process's points by pid, and
// whether an overflow series was exported too.
func (h *harness) samples() (map[int64]*sample, bool) {
	h.T.Helper()
	all := map[int64]*sample{}
	overflowed := false
	for _, rm := range h.CollectAll() {
		v, hasPID := rm.Resource.Set().Value(entity.AttrProcessPID)
		if !hasPID {
			overflowed = true
			continue
		}
		s := &sample{found: true, pids: map[int64]bool{}, exe: map[int64]string{}, resource: rm.Resource.String()}
		all[v.AsInt64()] = s
		for _, m := range rm.ScopeMetrics[0].Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					switch m.Name {
					case entity.MetricProcessContextSwitches.Name:
						typ, _ := dp.Attributes.Value(entity.AttrProcessContextSwitchType)
						switch typ.AsString() {
						case "voluntary":
							s.vol = dp.Value
						case "involuntary":
							s.invol = dp.Value
						default:
							s.pointsWithoutType++
						}
					case entity.MetricTelagentSchedMigrations.Name:
						s.migrations = dp.Value
					}
				}
			case metricdata.Sum[float64]:
				if m.Name == entity.MetricTelagentProcessOnCPUTime.Name && len(d.DataPoints) == 1 {
					s.oncpu = d.DataPoints[0].Value
				}
			case metricdata.Histogram[float64]:
				if m.Name == entity.MetricTelagentSchedRunqueueDuration.Name && len(d.DataPoints) == 1 {
					s.runq = d.DataPoints[0]
				}
			}
		}
		if s.pointsWithoutType > 0 {
			h.T.Errorf("pid %d: %d context-switch points without a valid %s", v.AsInt64(), s.pointsWithoutType, entity.AttrProcessContextSwitchType)
		}
	}
	return all, overflowed
}

var warmUp sync.Once

// workload is a sched_work child, stopped by itself at its end.
type workload struct {
	t      *testing.T
	cmd    *exec.Cmd
	pid    int
	stdout bytes.Buffer
}

// startWorkload starts sched_work with the test process as a target for
// the moment of the fork only: the child becomes a target in the kernel
// when it is forked, before it first runs (so the probe and /proc count
// from the same instant), and the test process then leaves the set, so
// the child is the only target.
func (h *harness) startWorkload(args ...string) *workload {
	h.T.Helper()
	bin := testutil.BuildC(h.T, "sched_work.c", "-O2", "-pthread")
	// The Go runtime forks a throw-away child on its first process start
	// (to check pidfd support); let that happen before the test process
	// becomes a target, or it would be followed too.
	warmUp.Do(func() { _ = exec.Command(bin).Run() })
	w := &workload{t: h.T, cmd: exec.Command(bin, args...)}
	w.cmd.Stdout = &w.stdout
	w.cmd.Stderr = os.Stderr
	self := uint32(os.Getpid())
	if h.State.Filtering() {
		if err := h.State.Add(self); err != nil {
			h.T.Fatal(err)
		}
	}
	err := w.cmd.Start()
	if h.State.Filtering() {
		if derr := h.State.Replacements()["targets"].Delete(self); derr != nil {
			h.T.Fatalf("remove the test process from the targets: %v", derr)
		}
	}
	if err != nil {
		h.T.Fatal(err)
	}
	w.pid = w.cmd.Process.Pid
	h.T.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			_ = w.cmd.Process.Kill()
			_ = unix.Kill(w.pid, unix.SIGCONT)
			_ = w.cmd.Wait()
		}
	})
	if h.State.Filtering() && !h.State.Contains(uint32(w.pid)) {
		h.T.Fatalf("workload %d was not followed into the target set at fork", w.pid)
	}
	return w
}

// waitStopped waits until the workload stopped itself and every one of its
// threads has left its CPU.
func (w *workload) waitStopped() {
	w.t.Helper()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(w.pid, &ws, unix.WUNTRACED, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR { // the Go runtime's own signals interrupt waits
			w.t.Fatalf("wait for workload %d to stop: %v", w.pid, err)
		}
	}
	if !ws.Stopped() {
		w.t.Fatalf("workload %d did not stop itself (status %#x); stdout: %s", w.pid, uint32(ws), w.stdout.String())
	}
	// The parent is told of a group stop before the last thread calls
	// schedule(); wait until every thread is stopped and off its CPU.
	deadline := time.Now().Add(5 * time.Second)
	for {
		all := true
		for _, task := range w.tasks() {
			b, err := os.ReadFile(filepath.Join(task, "stat"))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			all = all && len(f) > 0 && f[0] == "T"
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("workload %d: threads not all stopped after 5 s", w.pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
}

// finish continues the stopped workload and waits for it to exit 0.
func (w *workload) finish() map[string]int64 {
	w.t.Helper()
	if err := unix.Kill(w.pid, unix.SIGCONT); err != nil {
		w.t.Fatal(err)
	}
	if err := w.cmd.Wait(); err != nil {
		w.t.Fatalf("workload: %v; stdout: %s", err, w.stdout.String())
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(&w.stdout)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
			out[k] = n
		}
	}
	return out
}

// cpuAtExit is the reaped workload's CPU time from wait4's rusage: user
// plus system time, which the kernel scales so that they add up to the
// threads' se.sum_exec_runtime (cputime_adjust), so the oracle of the
// final on-CPU time. Only the last thread's final switch-out may come
// after it (see TestExitedProcessIsEvicted): microseconds.
func (w *workload) cpuAtExit() float64 {
	w.t.Helper()
	ru, ok := w.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		w.t.Fatalf("no rusage for workload %d", w.pid)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func (w *workload) tasks() []string {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", w.pid))
	return tasks
}

// oracle is what the kernel says of the workload, summed over its threads.
type oracle struct {
	threads               int
	vol, invol            int64
	runtimeNs, runDelayNs int64 // /proc/<pid>/task/*/schedstat fields 1 and 2
	migrations            int64 // se.nr_migrations of /proc/<pid>/task/*/sched, -1 when absent
}

func (w *workload) oracle() oracle {
	w.t.Helper()
	o := oracle{}
	for _, task := range w.tasks() {
		o.threads++
		status, err := os.ReadFile(filepath.Join(task, "status"))
		if err != nil {
			w.t.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "voluntary_ctxt_switches":
				o.vol += n
			case "nonvoluntary_ctxt_switches":
				o.invol += n
			}
		}
		rt, rd, err := readSchedstat(task)
		if err != nil {
			w.t.Fatal(err)
		}
		o.runtimeNs += rt
		o.runDelayNs += rd
		sched, err := os.ReadFile(filepath.Join(task, "sched"))
		if err != nil || o.migrations < 0 {
			o.migrations = -1
			continue
		}
		found := false
		for _, line := range strings.Split(string(sched), "\n") {
			k, v, _ := strings.Cut(line, ":")
			if strings.TrimSpace(k) == "se.nr_migrations" {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				o.migrations += n
				found = true
			}
		}
		if !found {
			o.migrations = -1
		}
	}
	if o.threads == 0 {
		w.t.Fatalf("workload %d has no threads in /proc", w.pid)
	}
	return o
}

// readSchedstat reads a thread's /proc/<pid>/task/<tid>/schedstat: its
// run time (se.sum_exec_runtime) and run delay (sched_info.run_delay: the
// time spent runnable on a run queue), in ns.
func readSchedstat(task string) (runtimeNs, runDelayNs int64, err error) {
	b, err := os.ReadFile(filepath.Join(task, "schedstat"))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("%s/schedstat: %q", task, b)
	}
	if runtimeNs, err = strconv.ParseInt(f[0], 10, 64); err == nil {
		runDelayNs, err = strconv.ParseInt(f[1], 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%s/schedstat: %w", task, err)
	}
	return runtimeNs, runDelayNs, nil
}

// within reports whether got is within rel (fraction) of want, or within
// abs of it.
func within(got, want, rel, abs float64) bool {
	d := math.Abs(got - want)
	return d <= abs || d <= rel*math.Abs(want)
}

func checkBuckets(t *testing.T, dp metricdata.HistogramDataPoint[float64]) {
	t.Helper()
	var n uint64
	for _, c := range dp.BucketCounts {
		n += c
	}
	if n != dp.Count || len(dp.BucketCounts) != len(dp.Bounds)+1 {
		t.Errorf("run-queue histogram: buckets add up to %d, count %d (%d buckets, %d bounds)", n, dp.Count, len(dp.BucketCounts), len(dp.Bounds))
	}
}

// checkSwitches compares the context switches by type with the kernel's
// own counts: the probe's values at the workload's stop with /proc (read
// then) within 1% or ±5, and its final values after the exit with the
// reaped workload's rusage (wait4: every thread's nvcsw and nivcsw) within
// 1% or ±2 per thread: a thread's counters go into the process's when it
// is released, before its final switch-out (prev_state TASK_DEAD), which
// the probe counts (see TestExitedProcessIsEvicted), and a preemption on
// the way out may come after that too.
// The threads switch after SIGCONT too (wake up, end, be joined: on an
// emulated CPU tens of switches), so /proc at the stop is no oracle for
// the final values.
func checkSwitches(t *testing.T, w *workload, o oracle, stopped, final sample) {
	t.Helper()
	ru, ok := w.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatalf("no rusage for workload %d", w.pid)
	}
	t.Logf("rusage at the exit: vol %d invol %d | probe final vol %d invol %d", ru.Nvcsw, ru.Nivcsw, final.vol, final.invol)
	for _, s := range []struct {
		name, oracle string
		s            sample
		vol, invol   int64
		abs, absInv  float64
	}{
		{"at stop", "/proc at the stop", stopped, o.vol, o.invol, 5, 5},
		// The reaper's rusage is taken before the threads' last
		// switches: their final switch-out and the preemptions of the
		// exit's tail (up to 4 per thread in a 6.12 TCG guest, as
		// TestExitedProcessIsEvicted sees) are the probe's only.
		{"final", "rusage at the exit", final, ru.Nvcsw, ru.Nivcsw, float64(2 * o.threads), float64(4 * o.threads)},
	} {
		if !within(float64(s.s.vol), float64(s.vol), 0.01, s.abs) {
			t.Errorf("%s: voluntary switches %d, %s says %d (want within 1%% or ±%g)", s.name, s.s.vol, s.oracle, s.vol, s.abs)
		}
		if !within(float64(s.s.invol), float64(s.invol), 0.01, s.absInv) {
			t.Errorf("%s: involuntary switches %d, %s says %d (want within 1%% or ±%g)", s.name, s.s.invol, s.oracle, s.invol, s.absInv)
		}
	}
}

// runSwitches runs the ping-pong workload and checks the context switches
// by type and the on-CPU time against /proc, at the workload's stop and
// after it exited.
func runSwitches(t *testing.T, cfg Config, rounds int) {
	h := start(t, cfg, true)
	w := h.startWorkload("pingpong", strconv.Itoa(rounds))
	w.waitStopped()
	o := w.oracle()
	stopped := h.sampleOf(w.pid)
	self := w.finish()
	final := h.sampleOf(w.pid)
	t.Logf("attach %s, %d threads: /proc vol %d invol %d | probe at stop vol %d invol %d | final vol %d invol %d | workload's getrusage vol %d invol %d | on-CPU: probe %.6fs, schedstat %.6fs",
		h.probe.Stats().Attach, o.threads, o.vol, o.invol, stopped.vol, stopped.invol, final.vol, final.invol,
		self["ru_nvcsw"], self["ru_nivcsw"], final.oncpu, float64(o.runtimeNs)/1e9)
	if !stopped.found || !final.found {
		t.Fatalf("no data for workload %d (processes seen: %v)", w.pid, final.exe)
	}
	if self["n"] != int64(rounds) {
		t.Fatalf("workload did %d rounds, want %d", self["n"], rounds)
	}
	if o.vol < int64(rounds) {
		t.Fatalf("oracle: only %d voluntary switches for %d blocking round trips", o.vol, rounds)
	}
	checkSwitches(t, w, o, stopped, final)
	if want, exit := float64(o.runtimeNs)/1e9, w.cpuAtExit(); !within(stopped.oncpu, want, 0.02, 0) || !within(final.oncpu, exit, 0.02, 0) {
		t.Errorf("on-CPU time at stop %.6fs, final %.6fs; schedstat at the stop says %.6fs, rusage at the exit %.6fs (want within 2%%)", stopped.oncpu, final.oncpu, want, exit)
	}
	// Cumulative: the final values only add what happened after the stop.
	if final.vol < stopped.vol || final.invol < stopped.invol || final.oncpu < stopped.oncpu {
		t.Errorf("final values went back: %+v after %+v", final, stopped)
	}
	if o.invol == 0 {
		t.Errorf("oracle: no involuntary switch although two threads spun on one CPU for 200 ms")
	}
	// Only the workload is a target: no other process may show up except
	// the test process, which was one while it forked the workload.
	for pid := range final.pids {
		if pid != int64(w.pid) && pid != int64(os.Getpid()) {
			t.Errorf("data for pid %d, which is not a target (%v)", pid, final.exe[pid])
		}
	}
	checkBuckets(t, final.runq)
}

func TestContextSwitches(t *testing.T) { runSwitches(t, Config{}, 20000) }

// The raw_tp fallback reaches the same numbers without typed arguments.
func TestRawContextSwitches(t *testing.T) { runSwitches(t, Config{Attach: "raw_tp"}, 10000) }

// runOnCPU checks on-CPU time against /proc/<pid>/task/*/schedstat field 1
// on threads that spin (two of them sharing CPU 0, so they also preempt
// each other), at the stop and after the exit. The probe adds the kernel's
// own runtime (se.sum_exec_runtime) at each switch-out; when it timed
// switch-in to switch-out with its own clock instead, it disagreed with
// this oracle by -14% to +4% on this busy 2-CPU VM (and by -45% on a
// cross-CPU ping-pong) because the kernel charges a woken task from the
// wakeup rather than from its switch-in when it skips a clock update.
func runOnCPU(t *testing.T, cfg Config) {
	h := start(t, cfg, true)
	const ms = 200 // of CPU per thread
	w := h.startWorkload("burn", strconv.Itoa(ms))
	w.waitStopped()
	o := w.oracle()
	stopped := h.sampleOf(w.pid)
	w.finish()
	final := h.sampleOf(w.pid)
	want, exit := float64(o.runtimeNs)/1e9, w.cpuAtExit()
	t.Logf("attach %s, %d threads: schedstat runtime %.6fs | probe at stop %.6fs (%+.2f%%) | rusage at exit %.6fs, probe final %.6fs (%+.2f%%) | involuntary %d (/proc %d) | program runs skipped: %d",
		h.probe.Stats().Attach, o.threads, want, stopped.oncpu, 100*(stopped.oncpu-want)/want,
		exit, final.oncpu, 100*(final.oncpu-exit)/exit, final.invol, o.invol, h.misses())
	if !final.found {
		t.Fatalf("no data for workload %d", w.pid)
	}
	if want < 3*ms/1e3 {
		t.Fatalf("oracle: %d threads spinning for %d ms of CPU each ran only %.3fs", o.threads, ms, want)
	}
	if !within(stopped.oncpu, want, 0.02, 0) {
		t.Errorf("at stop: on-CPU time %.6fs, schedstat says %.6fs (want within 2%%)", stopped.oncpu, want)
	}
	// After SIGCONT the threads run on to their exit (several ms on an
	// emulated CPU): the final value's oracle is the reaped workload's own.
	// The reaper's rusage is taken before the threads' last slices (the
	// exit's tail after the parent is notified, preempted several times on
	// a busy emulated CPU: 6.12 TCG, +2.1 % and +7.2 %, 7 more
	// involuntary switches), which the probe counts: 2 % below, 10 % above.
	if final.oncpu < exit*0.98 || final.oncpu > exit*1.10 || final.oncpu < stopped.oncpu {
		t.Errorf("final: on-CPU time %.6fs (%.6fs at the stop), the exited workload's rusage says %.6fs (want from -2%% to +10%%)", final.oncpu, stopped.oncpu, exit)
	}
	if o.invol == 0 {
		t.Error("oracle: no involuntary switch although two threads spun on one CPU")
	}
	checkSwitches(t, w, o, stopped, final)
}

func TestOnCPUTime(t *testing.T) { runOnCPU(t, Config{}) }

func TestRawOnCPUTime(t *testing.T) { runOnCPU(t, Config{Attach: "raw_tp"}) }

// enableDelayAcct turns on task delay accounting (run delay in
// /proc/<pid>/schedstat) for the test and restores the old value after it.
func enableDelayAcct(t *testing.T) {
	t.Helper()
	const knob = "/proc/sys/kernel/task_delayacct"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Skipf("no %s: %v", knob, err)
	}
	if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
		t.Fatalf("enable %s: %v", knob, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(knob, bytes.TrimSpace(old), 0o644); err != nil {
			t.Errorf("restore %s: %v", knob, err)
		}
	})
}

// The probe's run-queue waits are the kernel's own (sched_info's run_delay
// and pcount deltas at each switch-out), so their total equals run_delay up
// to the waits in flight at the reading. The workload runs as SCHED_BATCH
// (wakeups never preempt) here and as SCHED_NORMAL in
// TestRunqueueWaitWithWakeupPreemption: both must agree within 3 %. When the
// probe timed waits with its own clock it was above run_delay by +2.4..+7.3 %
// with preempting wakeups (the kernel skips the run-queue clock update of
// the switch that follows such a wakeup, rq_clock_skip_update).
func runRunqueue(t *testing.T, cfg Config) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	enableDelayAcct(t)
	o, stopped, final, self := measureRunqueue(t, cfg, true)
	if o.runDelayNs < 50e6 {
		t.Fatalf("oracle run delay %.3fs: the workload hardly waited, the spinner did not compete", float64(o.runDelayNs)/1e9)
	}
	// Compared at the same instant: /proc was read at the stop. The final
	// sample adds the waits after SIGCONT, behind the spinner that still
	// holds the CPU: a few ms, several % of the total on a slow guest.
	if !within(stopped.runq.Sum, float64(o.runDelayNs)/1e9, 0.03, 0) {
		t.Errorf("run-queue wait total at the stop %.6fs, /proc schedstat run delay %.6fs (want within 3%%)", stopped.runq.Sum, float64(o.runDelayNs)/1e9)
	}
	if final.runq.Sum < stopped.runq.Sum || final.runq.Count < stopped.runq.Count {
		t.Errorf("run-queue waits went back: final %d waits, %.6fs; at the stop %d, %.6fs", final.runq.Count, final.runq.Sum, stopped.runq.Count, stopped.runq.Sum)
	}
	// Every sleep ends in a wakeup that waits, so there are at least as
	// many waits as rounds.
	if stopped.runq.Count < uint64(self["n"]) {
		t.Errorf("%d run-queue waits for %d sleep/wakeup rounds", stopped.runq.Count, self["n"])
	}
	checkBuckets(t, final.runq)
	var inBuckets uint64
	for i, c := range final.runq.BucketCounts {
		// Waits behind a spinner last at least a few µs: the first two
		// buckets (<2.048 µs) cannot hold most of them.
		if i >= 2 {
			inBuckets += c
		}
	}
	if inBuckets*2 < final.runq.Count {
		t.Errorf("most run-queue waits below 2 µs behind a spinner: buckets %v", final.runq.BucketCounts)
	}
}

// measureRunqueue runs the runq workload next to a spinner on one CPU:
// what /proc says at its stop, the probe's samples at the stop and after
// the exit, and the workload's own counters.
func measureRunqueue(t *testing.T, cfg Config, batch bool) (o oracle, stopped, final sample, self map[string]int64) {
	t.Helper()
	h := start(t, cfg, true)
	const cpu, ms = 1, 400
	// The competitor is not a target: it starts first and outlives the
	// workload, so the workload waits behind it the whole time.
	spinner := exec.Command(testutil.BuildC(t, "sched_work.c", "-O2", "-pthread"), "spin", strconv.Itoa(ms+2000), strconv.Itoa(cpu))
	if err := spinner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = spinner.Process.Kill()
		_ = spinner.Wait()
	})
	time.Sleep(20 * time.Millisecond)
	args := []string{"runq", strconv.Itoa(ms), strconv.Itoa(cpu)}
	if batch {
		args = append(args, "batch")
	}
	w := h.startWorkload(args...)
	w.waitStopped()
	o = w.oracle()
	stopped = h.sampleOf(w.pid)
	self = w.finish()
	final = h.sampleOf(w.pid)
	t.Logf("attach %s, SCHED_BATCH %v: %d rounds; /proc run delay %.6fs runtime %.6fs | probe at stop: %d waits, sum %.6fs (%+.2f%%) | final: %d waits, sum %.6fs, oncpu %.6fs",
		h.probe.Stats().Attach, batch, self["n"], float64(o.runDelayNs)/1e9, float64(o.runtimeNs)/1e9,
		stopped.runq.Count, stopped.runq.Sum, 100*(stopped.runq.Sum*1e9/float64(o.runDelayNs)-1), final.runq.Count, final.runq.Sum, final.oncpu)
	if !final.found || !stopped.found {
		t.Fatalf("no data for workload %d", w.pid)
	}
	return o, stopped, final, self
}

func TestRunqueueWaitVsRunDelay(t *testing.T) { runRunqueue(t, Config{}) }

func TestRawRunqueueWaitVsRunDelay(t *testing.T) { runRunqueue(t, Config{Attach: "raw_tp"}) }

// With wakeup preemption (SCHED_NORMAL) too the probe is run_delay.
func TestRunqueueWaitWithWakeupPreemption(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	enableDelayAcct(t)
	o, stopped, _, self := measureRunqueue(t, Config{}, false)
	want := float64(o.runDelayNs) / 1e9
	if want < 0.05 {
		t.Fatalf("oracle run delay %.3fs: the workload hardly waited, the spinner did not compete", want)
	}
	if !within(stopped.runq.Sum, want, 0.03, 0) {
		t.Errorf("run-queue wait total at the stop %.6fs, /proc schedstat run delay %.6fs (want within 3%%)", stopped.runq.Sum, want)
	}
	if stopped.runq.Count < uint64(self["n"]) {
		t.Errorf("%d run-queue waits for %d sleep/wakeup rounds", stopped.runq.Count, self["n"])
	}
}

func runMigrations(t *testing.T, cfg Config) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	h := start(t, cfg, true)
	const n = 500
	w := h.startWorkload("migrate", strconv.Itoa(n))
	w.waitStopped()
	o := w.oracle()
	stopped := h.sampleOf(w.pid)
	w.finish()
	final := h.sampleOf(w.pid)
	t.Logf("attach %s: %d moves requested; probe migrations at stop %d, final %d; /proc se.nr_migrations %d",
		h.probe.Stats().Attach, n, stopped.migrations, final.migrations, o.migrations)
	if final.migrations < n {
		t.Errorf("migrations %d, want at least the %d moves", final.migrations, n)
	}
	// Pinned to one CPU at a time, the kernel has no reason for many more.
	if final.migrations > n+n/10+10 {
		t.Errorf("migrations %d for %d moves: implausibly many", final.migrations, n)
	}
	// The kernel's own count, where /proc/<pid>/sched shows it: exact at
	// the stop; the exit may add a move (the wakeup after SIGCONT).
	if o.migrations >= 0 && stopped.migrations != o.migrations {
		t.Errorf("migrations at stop %d, the kernel's se.nr_migrations %d", stopped.migrations, o.migrations)
	}
	if final.migrations < stopped.migrations || final.migrations > stopped.migrations+2 {
		t.Errorf("final migrations %d, %d at the stop", final.migrations, stopped.migrations)
	}
}

func TestMigrations(t *testing.T) { runMigrations(t, Config{}) }

func TestRawMigrations(t *testing.T) { runMigrations(t, Config{Attach: "raw_tp"}) }

// Whole host: every process is observed, the idle task is not a process,
// and a full map folds into the overflow series, which the fold counter
// accounts for.
func TestWholeHostAndOverflow(t *testing.T) {
	const maxEntries = 4
	h := start(t, Config{MaxEntries: maxEntries}, false)
	w := h.startWorkload("pingpong", "2000")
	w.waitStopped()
	w.finish()
	// A quiet host (the kernel matrix's guest) may switch fewer processes
	// than the map holds: more than maxEntries short-lived ones surely
	// do (each switches out at least at its exit).
	for i := 0; i <= maxEntries; i++ {
		var ee *exec.ExitError
		if err := exec.Command(w.cmd.Path).Run(); !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("sched_work without arguments: %v, want its usage exit 2", err)
		}
	}
	s := h.sampleOf(w.pid)
	if s.pids[0] {
		t.Error("the idle task (pid 0) was exported as a process")
	}
	if len(s.pids) > maxEntries {
		t.Errorf("%d processes exported, more than max_entries %d", len(s.pids), maxEntries)
	}
	if !s.overflowed {
		t.Fatalf("no overflow series with %d slots on a whole host (processes: %v)", maxEntries, s.pids)
	}
	ms := h.probe.Stats().MetricSets[0]
	folds := ms.OverflowFolds + ms.EntryFolds // folded by the programs or by the agent
	if folds == 0 {
		t.Error("overflow series exported but the fold counter is 0")
	}
}

// A whole-host run with room for everyone sees more than one process and
// the workload among them.
func TestWholeHost(t *testing.T) {
	h := start(t, Config{}, false)
	w := h.startWorkload("pingpong", "2000")
	w.waitStopped()
	o := w.oracle()
	w.finish()
	s := h.sampleOf(w.pid)
	if !s.found || s.vol < o.vol {
		t.Fatalf("workload %d: found %v, voluntary %d (at its stop /proc said %d)", w.pid, s.found, s.vol, o.vol)
	}
	if len(s.pids) < 2 {
		t.Errorf("whole host: only %d processes seen", len(s.pids))
	}
	if s.pids[0] {
		t.Error("the idle task (pid 0) was exported as a process")
	}
}

// Once an exited process's final values were collected, Evict removes its
// key and, within an interval or two, nothing of it is exported again.
// Not at once: the parent's wait returns when the last thread has
// notified it, before that thread's final switch-out (prev_state
// TASK_DEAD), which the probe still accounts so the last slice on the CPU
// is not lost. On a busy CPU that switch can land after the collection or
// the eviction: it adds into the key (which the evictor puts back as a new
// owner's gain) or makes it anew, and the next interval exports that last
// slice, finds the process gone and evicts the key again, as the agent's
// loop (collect, then evict) does every interval. So: evicted by the
// first Evict, gone from the export by the third interval, and anything
// exported after the first eviction is no more than those last switches.
func TestExitedProcessIsEvicted(t *testing.T) {
	h := start(t, Config{}, true)
	w := h.startWorkload("pingpong", "100")
	w.waitStopped()
	threads := w.oracle().threads
	w.finish()
	if s := h.sampleOf(w.pid); !s.found || s.vol == 0 {
		t.Fatalf("exited workload: found %v, voluntary %d", s.found, s.vol)
	}
	before := h.probe.Stats().MetricSets[0].Evicted
	if err := h.probe.Evict(); err != nil {
		t.Fatal(err)
	}
	if after := h.probe.Stats().MetricSets[0].Evicted; after <= before {
		t.Errorf("nothing evicted (%d before, %d after)", before, after)
	}
	for interval := 2; ; interval++ {
		time.Sleep(10 * time.Millisecond)
		s := h.sampleOf(w.pid)
		if !s.found {
			break
		}
		t.Logf("interval %d: a late final switch-out exported after the eviction: voluntary %d, on-CPU %.6fs", interval, s.vol, s.oncpu)
		// The final switch-out (one per thread) and preemptions of the
		// exit's tail after the parent's wait returned (the woken parent,
		// or anything else on a busy CPU, may preempt the exiting thread:
		// 5 in a 6.12 TCG guest), a few per thread at most; the workload
		// made hundreds of switches before the first export, which a key
		// left behind would show.
		if s.vol > int64(threads) || s.invol > 4*int64(threads) {
			t.Errorf("exported after its eviction with %d voluntary and %d involuntary switches; want only the exit's last switches (at most 1 voluntary and 4 involuntary for each of %d threads)", s.vol, s.invol, threads)
		}
		if interval == 3 {
			t.Fatalf("exited workload still exported in interval %d, after two evictions", interval)
		}
		if err := h.probe.Evict(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInfo(t *testing.T) {
	p := New(Config{})
	info := p.Info()
	if info.Name != ProbeName || len(info.Metrics) != 4 || info.Requires == "" || info.Hooks == "" {
		t.Errorf("info = %+v", info)
	}
	// Every metric of the set is listed, so `telagent probes` is complete.
	for _, v := range set.Values {
		found := false
		for _, m := range info.Metrics {
			found = found || m == v.Metric
		}
		if !found {
			t.Errorf("metric %s of the set is not in Info().Metrics", v.Metric)
		}
	}
	err := p.Supported()
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("Supported must give a one-line reason, got %q", err)
	}
	// The development and CI kernels (6.18, BTF, root) have every hook.
	if os.Geteuid() == 0 && err != nil {
		t.Errorf("Supported on this kernel: %v", err)
	}
}

// Close releases every program, link and map the probe created, in both
// attach modes (the task storage and raw_tp maps included, which only the
// programs hold); the shared maps belong to their owner.
func TestCloseReleasesEverything(t *testing.T) {
	for _, mode := range []string{"tp_btf", "raw_tp"} {
		t.Run(mode, func(t *testing.T) {
			h := start(t, Config{Attach: mode}, true)
			shared := map[ebpf.MapID]bool{}
			for _, m := range h.State.Replacements() {
				info, err := m.Info()
				if err != nil {
					t.Fatal(err)
				}
				id, _ := info.ID()
				shared[id] = true
			}
			var progs []ebpf.ProgramID
			var maps []ebpf.MapID
			for _, prog := range []*ebpf.Program{h.probe.objs.Switch} {
				if prog == nil {
					continue
				}
				info, err := prog.Info()
				if err != nil {
					t.Fatal(err)
				}
				id, _ := info.ID()
				progs = append(progs, id)
				ids, _ := info.MapIDs()
				for _, m := range ids {
					if !shared[m] && !slices.Contains(maps, m) {
						maps = append(maps, m)
					}
				}
			}
			if len(progs) != 1 || len(maps) < 3 { // sched_switch; stats, folds, task storage, ...
				t.Fatalf("%s: %d programs, %d own maps: not what the probe loads", mode, len(progs), len(maps))
			}
			if err := h.probe.Close(); err != nil {
				t.Fatal(err)
			}
			// The kernel frees them after an RCU grace period.
			deadline := time.Now().Add(5 * time.Second)
			for {
				var alive []string
				for _, id := range progs {
					if p, err := ebpf.NewProgramFromID(id); err == nil {
						p.Close()
						alive = append(alive, fmt.Sprintf("program %d", id))
					}
				}
				for _, id := range maps {
					if m, err := ebpf.NewMapFromID(id); err == nil {
						m.Close()
						alive = append(alive, fmt.Sprintf("map %d", id))
					}
				}
				if len(alive) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("still alive 5 s after Close: %v", alive)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
