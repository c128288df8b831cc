package process

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/shared"
)

// collector is a sink keeping every event.
type collector struct {
	mu     sync.Mutex
	events []probes.Event
	refuse bool
}

func (c *collector) Deliver(ev probes.Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse {
		return false
	}
	c.events = append(c.events, ev)
	return true
}

// of returns the events of pid, in arrival order.
func (c *collector) of(pid int) []probes.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []probes.Event
	for _, ev := range c.events {
		if int(ev.Pid) == pid {
			out = append(out, ev)
		}
	}
	return out
}

func attrOf(ev probes.Event, k attribute.Key) (attribute.Value, bool) {
	for _, a := range ev.Attributes {
		if a.Key == k {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

type started struct {
	p    *Probe
	sink *collector
	tset *shared.State
}

// start loads the shared maps (whole host unless filter) and the probe.
func start(t *testing.T, cfg Config, filter bool) *started {
	t.Helper()
	topo, err := aggregator.DiscoverTopology("/sys")
	if err != nil {
		t.Fatal(err)
	}
	return startOn(t, cfg, filter, topo, false)
}

// startOn is start on topo; fake says it is not the kernel's, so the
// programs map CPUs to nodes with its table (the shared maps').
func startOn(t *testing.T, cfg Config, filter bool, topo aggregator.Topology, fake bool) *started {
	t.Helper()
	testutil.RequireRoot(t)
	tset, err := shared.Load(topo, filter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tset.Close() })
	p := New(cfg)
	if err := p.Supported(); err != nil {
		t.Skip(err)
	}
	sink := &collector{}
	p.SetEventSink(sink)
	env := probes.Env{Shared: tset.Replacements(), FilterTargets: filter, Topology: topo, NodesFromTopology: fake,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if err := p.Start(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &started{p: p, sink: sink, tset: tset}
}

func (s *started) sync(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.p.SyncEvents(ctx); err != nil {
		t.Fatal(err)
	}
}

// startTicks is field 22 of /proc/<pid>/stat: what process.creation.time
// is computed from for metrics.
func startTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	v, err := entity.ParseStartTicks(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A shell that exits with 3: one exec (sh execs nothing, the event comes
// from the test's fork+exec of sh), one exit event with code 3, the pid and
// start time of the process /proc showed.
func TestExitCode(t *testing.T) {
	s := start(t, Config{CommandArgs: true}, false)
	// The shell burns ~10 ms of CPU first: the kernel charges a task's
	// running slice at ticks and switches only, so a process that lives less
	// than a tick without blocking legitimately has 0 s accounted at exit.
	const script = "read x; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3"
	cmd := exec.Command("sh", "-c", script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// /proc's start time of the live process is the oracle for the
	// identity the event must carry.
	ticks := startTicks(t, pid)
	_ = stdin.Close()
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("sh: %v", err)
	}
	s.sync(t)

	evs := s.sink.of(pid)
	var exits, execs []probes.Event
	for _, ev := range evs {
		switch ev.Desc.Name {
		case entity.EventTelagentProcessExit.Name:
			exits = append(exits, ev)
		case entity.EventTelagentProcessExec.Name:
			execs = append(execs, ev)
		}
	}
	if len(exits) != 1 {
		t.Fatalf("%d exit events for pid %d, want 1: %+v", len(exits), pid, evs)
	}
	ex := exits[0]
	if !ex.Exited || ex.StartTicks != ticks {
		t.Errorf("exit event exited=%v start %d ticks, want true and %d (/proc)", ex.Exited, ex.StartTicks, ticks)
	}
	if v, ok := attrOf(ex, entity.AttrProcessExitCode); !ok || v.AsInt64() != 3 {
		t.Errorf("process.exit.code = %v (set %v), want 3", v.Emit(), ok)
	}
	if _, ok := attrOf(ex, entity.AttrTelagentProcessExitSignal); ok {
		t.Error("exit signal set on a normal exit")
	}
	if v, _ := attrOf(ex, entity.AttrTelagentProcessLifetime); v.AsFloat64() <= 0 || v.AsFloat64() > 60 {
		t.Errorf("lifetime %v s", v.AsFloat64())
	}
	if v, _ := attrOf(ex, entity.AttrTelagentProcessOnCPUTime); v.AsFloat64() <= 0 || v.AsFloat64() > 60 {
		t.Errorf("on-CPU time %v s", v.AsFloat64())
	}
	if d := time.Since(ex.Time); d < 0 || d > time.Minute {
		t.Errorf("exit event time %v is %v from now", ex.Time, d)
	}
	if len(execs) != 1 {
		t.Fatalf("%d exec events for pid %d, want 1", len(execs), pid)
	}
	ev := execs[0]
	if ev.StartTicks != ticks || ev.Comm != "sh" {
		t.Errorf("exec event start %d comm %q, want %d sh", ev.StartTicks, ev.Comm, ticks)
	}
	shPath, _ := exec.LookPath("sh")
	real, _ := realPath(shPath)
	if v, _ := attrOf(ev, entity.AttrProcessExecutablePath); v.AsString() != real {
		t.Errorf("process.executable.path %q, want %q", v.AsString(), real)
	}
	if v, _ := attrOf(ev, entity.AttrProcessCommandArgs); !slices.Equal(v.AsStringSlice(), cmd.Args) {
		t.Errorf("process.command_args %q, want the argv the test passed %q", v.AsStringSlice(), cmd.Args)
	}
	if v, _ := attrOf(ev, entity.AttrProcessParentPID); v.AsInt64() != int64(os.Getpid()) {
		t.Errorf("process.parent_pid %d, want %d", v.AsInt64(), os.Getpid())
	}
	if v, _ := attrOf(ev, entity.AttrProcessUserID); v.AsInt64() != int64(os.Geteuid()) {
		t.Errorf("process.user.id %d", v.AsInt64())
	}
}

// runHeld starts argv with its stdin held open, reads its /proc start time
// while it waits, releases it and waits for it to exit with code want.
func runHeld(t *testing.T, want int, argv ...string) (pid int, ticks uint64) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid = cmd.Process.Pid
	ticks = startTicks(t, pid)
	_ = stdin.Close()
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); want != 0 && (!ok || ee.ExitCode() != want) || want == 0 && err != nil {
		t.Fatalf("%q: %v, want exit code %d", argv, err, want)
	}
	return pid, ticks
}

// eventsNamed returns pid's events of one name.
func (c *collector) eventsNamed(pid int, name string) []probes.Event {
	var out []probes.Event
	for _, ev := range c.of(pid) {
		if ev.Desc.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

// process.command_args is opt-in: argv can hold secrets. Without the
// setting an exec event has no process.command_args at all (the token the
// test puts in argv is nowhere in the event); with it, exactly the argv the
// test passed.
func TestCommandArgsOptIn(t *testing.T) {
	argv := []string{"sh", "-c", "read x; exit 0", "sh", "--token=s3cret-for-test"}
	for _, on := range []bool{false, true} {
		t.Run(strconv.FormatBool(on), func(t *testing.T) {
			s := start(t, Config{CommandArgs: on}, false)
			pid, _ := runHeld(t, 0, argv...)
			s.sync(t)
			execs := s.sink.eventsNamed(pid, entity.EventTelagentProcessExec.Name)
			if len(execs) != 1 {
				t.Fatalf("%d exec events for pid %d, want 1", len(execs), pid)
			}
			v, ok := attrOf(execs[0], entity.AttrProcessCommandArgs)
			if !on {
				if ok {
					t.Errorf("process.command_args %q on an exec event without the opt-in", v.AsStringSlice())
				}
				for _, a := range execs[0].Attributes {
					if strings.Contains(a.Value.Emit(), "s3cret") {
						t.Errorf("argv leaked through %s = %q", a.Key, a.Value.Emit())
					}
				}
				return
			}
			if !slices.Equal(v.AsStringSlice(), argv) {
				t.Errorf("process.command_args %q, want the argv the test passed %q", v.AsStringSlice(), argv)
			}
		})
	}
}

// An exec replaces the program, never the process: the test's sh execs
// sleep; both exec events and the exit event carry the pid the test
// started and the start time /proc showed before the exec (the process's
// identifying attributes), while the descriptive ones (command name,
// executable path) change from sh to sleep.
func TestExecKeepsIdentity(t *testing.T) {
	s := start(t, Config{}, false)
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary:", err)
	}
	pid, ticks := runHeld(t, 0, "sh", "-c", "read x; exec "+sleepPath+" 0.05")
	s.sync(t)
	execs := s.sink.eventsNamed(pid, entity.EventTelagentProcessExec.Name)
	exits := s.sink.eventsNamed(pid, entity.EventTelagentProcessExit.Name)
	if len(execs) != 2 || len(exits) != 1 {
		t.Fatalf("pid %d: %d exec and %d exit events, want 2 and 1: %+v", pid, len(execs), len(exits), s.sink.of(pid))
	}
	for _, ev := range append(execs, exits...) {
		if int(ev.Pid) != pid || ev.StartTicks != ticks {
			t.Errorf("%s: pid %d start %d ticks, want %d and %d (the pid started, /proc before the exec)", ev.Desc.Name, ev.Pid, ev.StartTicks, pid, ticks)
		}
	}
	if execs[0].Comm != "sh" || execs[1].Comm != "sleep" || exits[0].Comm != "sleep" {
		t.Errorf("command names %q, %q, exit %q; want sh, sleep, sleep", execs[0].Comm, execs[1].Comm, exits[0].Comm)
	}
	realSleep, _ := realPath(sleepPath)
	if v, _ := attrOf(execs[1], entity.AttrProcessExecutablePath); v.AsString() != realSleep {
		t.Errorf("second exec's process.executable.path %q, want %q", v.AsString(), realSleep)
	}
}

func realPath(p string) (string, error) {
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(openFD(p)))
}

func openFD(p string) int {
	fd, err := unix.Open(p, unix.O_PATH, 0)
	if err != nil {
		return -1
	}
	return fd
}

// A process killed by SIGKILL: the signal is recorded, no exit code.
func TestKilledBySignal(t *testing.T) {
	s := start(t, Config{}, false)
	cmd := exec.Command("sh", "-c", "kill -KILL $$")
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("sh: %v", err)
	}
	s.sync(t)
	var got []probes.Event
	for _, ev := range s.sink.of(cmd.Process.Pid) {
		if ev.Desc.Name == entity.EventTelagentProcessExit.Name {
			got = append(got, ev)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d exit events, want 1", len(got))
	}
	if v, ok := attrOf(got[0], entity.AttrTelagentProcessExitSignal); !ok || v.AsInt64() != int64(syscall.SIGKILL) {
		t.Errorf("exit signal %v (set %v), want 9", v.Emit(), ok)
	}
	if _, ok := attrOf(got[0], entity.AttrProcessExitCode); ok {
		t.Error("exit code set for a process killed by a signal")
	}
}

// runPinned runs argv with the calling thread (and so the child) pinned to
// cpu, and returns the child's pid.
func runPinned(t *testing.T, cpu int, argv ...string) int {
	t.Helper()
	ch := make(chan int, 1)
	go func() {
		// This thread ends with the goroutine (never unlocked), so its
		// narrowed affinity does not outlive the call.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Errorf("pin to CPU %d: %v", cpu, err)
			ch <- -1
			return
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		if err := cmd.Run(); err != nil {
			t.Errorf("%v: %v", argv, err)
		}
		ch <- cmd.Process.Pid
	}()
	return <-ch
}

// A fake two-node topology (one CPU per node): one ring per node, each read
// by a thread pinned to that node's CPU, and the events of a process pinned
// to a CPU arrive through that CPU's node's reader.
func TestTwoNodeRings(t *testing.T) {
	testutil.RequireRoot(t)
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 || runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	topo := aggregator.Topology{PossibleCPUs: n, Nodes: []aggregator.Node{{ID: 0, CPUs: []int{0}}, {ID: 1}}}
	for c := 1; c < n; c++ {
		topo.Nodes[1].CPUs = append(topo.Nodes[1].CPUs, c)
	}
	s := startOn(t, Config{}, false, topo, true)

	rings := s.p.Rings()
	if len(rings) != 2 || rings[0].Node != 0 || rings[1].Node != 1 {
		t.Fatalf("rings %+v, want one for node 0 and one for node 1", rings)
	}
	if rings[0].MapID == rings[1].MapID {
		t.Fatalf("both nodes share ring map %d", rings[0].MapID)
	}
	for _, r := range rings {
		// The reader thread's affinity, as the kernel reports it.
		st, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(r.ReaderTID) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		want := cpuList(r.CPUs)
		if !strings.Contains(string(st), "Cpus_allowed_list:\t"+want+"\n") {
			t.Errorf("node %d reader (tid %d) not pinned to CPUs %s:\n%s", r.Node, r.ReaderTID, want, grepLine(string(st), "Cpus_allowed_list"))
		}
	}

	pid0 := runPinned(t, 0, "true")
	pid1 := runPinned(t, 1, "true")
	s.sync(t)
	for _, c := range []struct{ pid, node int }{{pid0, 0}, {pid1, 1}} {
		evs := s.sink.of(c.pid)
		if len(evs) < 2 {
			t.Errorf("pid %d pinned to node %d: %d events, want exec and exit", c.pid, c.node, len(evs))
		}
		for _, ev := range evs {
			if ev.Node != c.node || ev.CPU != c.node {
				t.Errorf("pid %d pinned to CPU %d: %s read from node %d's ring, happened on CPU %d",
					c.pid, c.node, ev.Desc.Name, ev.Node, ev.CPU)
			}
		}
	}
	after := s.p.Rings()
	if after[0].Received == 0 || after[1].Received == 0 {
		t.Errorf("per-ring deliveries %d/%d: both readers should have delivered", after[0].Received, after[1].Received)
	}
}

func cpuList(cpus []int) string {
	if len(cpus) == 1 {
		return strconv.Itoa(cpus[0])
	}
	return strconv.Itoa(cpus[0]) + "-" + strconv.Itoa(cpus[len(cpus)-1])
}

func grepLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// slowSink makes the reader fall behind, so the ring fills.
type slowSink struct{ collector }

func (s *slowSink) Deliver(ev probes.Event) bool {
	time.Sleep(200 * time.Microsecond)
	return s.collector.Deliver(ev)
}

// With a ring of one page and a slow reader, a burst overflows the ring:
// every event is either delivered or counted as dropped (ring_full), none
// is lost silently.
func TestRingFullCounted(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildC(t, "forkbomb.c", "-O2", "-nostdlib", "-static", "-fno-stack-protector", "-fno-pie", "-no-pie")
	topo, err := aggregator.DiscoverTopology("/sys")
	if err != nil {
		t.Fatal(err)
	}
	tset, err := shared.Load(topo, true)
	if err != nil {
		t.Fatal(err)
	}
	defer tset.Close()
	p := New(Config{RingBytes: 4096})
	sink := &slowSink{}
	p.SetEventSink(sink)
	if err := p.Start(context.Background(), probes.Env{Shared: tset.Replacements(), FilterTargets: true, Topology: topo,
		Log: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := tset.RunForgetLast(); err != nil {
		t.Fatal(err)
	}

	// The shell becomes a target while it waits, then execs the burst:
	// 1 exec, n forks and n+1 exits are produced for targets.
	const n = 2000
	// The shell says "ready" once it runs, so its own exec is over before
	// it becomes a target: the exec tracepoint fires after the close-on-exec
	// pipe that lets cmd.Start return, and would otherwise race the Add.
	cmd := exec.Command("sh", "-c", "echo ready; read x; exec "+bin+" "+strconv.Itoa(n)+" 1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("shell did not start: %q, %v", line, err)
	}
	if err := tset.Add(uint32(cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	_, _ = stdin.Write([]byte("go\n"))
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.SyncEvents(ctx); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	got := len(sink.events)
	sink.mu.Unlock()
	dropped := p.Dropped()
	t.Logf("delivered %d, dropped %d", got, dropped)
	if want := 1 + n + n + 1; uint64(got)+dropped != uint64(want) {
		t.Errorf("delivered %d + dropped %d = %d events, want %d", got, dropped, uint64(got)+dropped, want)
	}
	if dropped == 0 {
		t.Log("no drop: the reader kept up even with a one-page ring")
	}
}
