package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/process"
	"github.com/telagent/telagent/probes/syscalls"
	"github.com/telagent/telagent/probes/targets"
)

// memEvents keeps every event record it is given.
type memEvents struct {
	mu      sync.Mutex
	records []sdklog.Record
	closed  bool
}

func (m *memEvents) ExportEvents(_ context.Context, rs []sdklog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records = append(m.records, rs...)
	return nil
}

func (m *memEvents) Shutdown(context.Context) error { m.closed = true; return nil }

// event is a record reduced to what the tests check.
type event struct {
	name     string
	pid      int64
	creation string
	attrs    map[attribute.Key]attribute.Value
}

func (m *memEvents) events() []event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []event
	for i := range m.records {
		r := &m.records[i]
		ev := event{name: r.EventName(), attrs: map[attribute.Key]attribute.Value{}}
		if v, ok := r.Resource().Set().Value(entity.AttrProcessPID); ok {
			ev.pid = v.AsInt64()
		}
		if v, ok := r.Resource().Set().Value(entity.AttrProcessCreationTime); ok {
			ev.creation = v.AsString()
		}
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			ev.attrs[kv.Key] = kv.Value
			return true
		})
		out = append(out, ev)
	}
	return out
}

// bootTime is /proc/stat's btime: with /proc/<pid>/stat starttime it gives
// process.creation.time, the oracle for the identity on every signal.
func bootTime(t *testing.T) time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			s, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(s, 0)
		}
	}
	t.Fatal("no btime")
	return time.Time{}
}

// `sh -c 'exit 3'` under the agent: one exit event, code 3, on the
// Resource of the command's process with the creation time /proc gave it,
// which is also the identity of that process's metrics.
func TestExitEventOfCommand(t *testing.T) {
	testutil.RequireRoot(t)
	exp, evs := &memExporter{}, &memEvents{}
	var stdout bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The shell prints its own /proc stat line (cat is its child), so the
	// test learns the pid and start time from the kernel, not the agent.
	code, err := Run(ctx, Config{
		Probes:   []probes.Probe{syscalls.New(syscalls.Config{}), process.New(process.Config{})},
		Command:  []string{"sh", "-c", "cat /proc/$$/stat; exit 3"},
		Interval: time.Hour,
		Exporter: exp, Events: evs,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Stdout: &stdout,
	})
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	if !evs.closed {
		t.Error("event exporter not shut down")
	}
	stat := stdout.Bytes()
	pid, _ := strconv.ParseInt(string(stat[:bytes.IndexByte(stat, ' ')]), 10, 64)
	ticks, err := entity.ParseStartTicks(stat)
	if err != nil || pid == 0 {
		t.Fatalf("workload output %q: %v", stat, err)
	}
	wantCreation := bootTime(t).Add(time.Duration(ticks) * 10 * time.Millisecond).UTC().Format(time.RFC3339Nano)

	var exits []event
	for _, ev := range evs.events() {
		if ev.pid == pid && ev.name == entity.EventTelagentProcessExit.Name {
			exits = append(exits, ev)
		}
	}
	if len(exits) != 1 {
		t.Fatalf("%d exit events for the command (pid %d), want 1: %+v", len(exits), pid, evs.events())
	}
	if exits[0].creation != wantCreation {
		t.Errorf("exit event creation time %q, want %q (/proc)", exits[0].creation, wantCreation)
	}
	if v := exits[0].attrs[entity.AttrProcessExitCode]; v.AsInt64() != 3 {
		t.Errorf("process.exit.code %v, want 3", v.Emit())
	}
	// The same process's metrics carry the same identity.
	found := false
	for _, rm := range exp.last() {
		set := rm.Resource.Set()
		if v, ok := set.Value(entity.AttrProcessPID); ok && v.AsInt64() == pid {
			found = true
			if c, _ := set.Value(entity.AttrProcessCreationTime); c.AsString() != wantCreation {
				t.Errorf("metrics of pid %d have creation time %q, want %q", pid, c.AsString(), wantCreation)
			}
		}
	}
	if !found {
		t.Errorf("no metrics for the command's process %d", pid)
	}
}

// agentRun runs the agent in the background and returns once the probes
// are attached; stop ends it and returns Run's results.
type agentRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	err    error
	logs   *syncBuffer
}

func startAgent(t *testing.T, cfg Config) *agentRun {
	t.Helper()
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	a := &agentRun{cancel: cancel, done: make(chan struct{}), logs: &syncBuffer{}}
	cfg.Log = slog.New(slog.NewTextHandler(a.logs, nil))
	go func() {
		defer close(a.done)
		a.code, a.err = Run(ctx, cfg)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.logs.String(), "msg=attached") {
		select {
		case <-a.done:
			t.Fatalf("agent ended before attaching: %v\n%s", a.err, a.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("agent did not attach:\n%s", a.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { a.stop(t) })
	return a
}

func (a *agentRun) stop(t *testing.T) {
	t.Helper()
	a.cancel()
	<-a.done
	if a.err != nil {
		t.Errorf("agent: %v\n%s", a.err, a.logs.String())
	}
}

// --exe: a process that execs the selected binary after the agent started,
// through a symlink, becomes a target at its exec, so its syscalls are
// counted from its first instruction, exactly, and its exec is reported
// with the real path.
func TestExeSelectorCountsFromExec(t *testing.T) {
	// A private copy: the selector matches the file (device and inode),
	// and tests of other packages run the shared rawsys build meanwhile.
	bin, err := os.ReadFile(testutil.Rawsys(t))
	if err != nil {
		t.Fatal(err)
	}
	rawsys := filepath.Join(t.TempDir(), "rawsys")
	if err := os.WriteFile(rawsys, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	sel, err := targets.ResolveExe(rawsys)
	if err != nil {
		t.Fatal(err)
	}
	exp, evs := &memExporter{}, &memEvents{}
	a := startAgent(t, Config{
		Probes:    []probes.Probe{syscalls.New(syscalls.Config{}), process.New(process.Config{})},
		Selectors: targets.Selectors{Exes: []targets.Exe{sel}},
		Interval:  time.Hour,
		Exporter:  exp, Events: evs,
	})
	link := filepath.Join(t.TempDir(), "renamed-link")
	if err := os.Symlink(rawsys, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "mix", "1000")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := int64(cmd.Process.Pid)
	// Not selected: must not be observed.
	if err := exec.Command("true").Run(); err != nil {
		t.Fatal(err)
	}
	a.stop(t)

	got, pids := counts(t, exp.last())
	if len(pids) != 1 || !pids[pid] {
		t.Errorf("metrics for processes %v, want only the selected one (%d)", pids, pid)
	}
	want := map[string]uint64{"getppid": 1000, "getpid": 1000, "getuid": 1000, "getgid": 1000,
		"geteuid": 1000, "getegid": 1000, "getpgrp": 1000, "close": 1000}
	for name, c := range got {
		if want[name] != c {
			t.Errorf("%s: %d calls, want %d (execve must not be counted: the process was no target yet)", name, c, want[name])
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want exactly %v", got, want)
	}
	var execs int
	for _, ev := range evs.events() {
		if ev.pid == pid && ev.name == entity.EventTelagentProcessExec.Name {
			execs++
			if p := ev.attrs[entity.AttrProcessExecutablePath].AsString(); p != rawsys {
				t.Errorf("exec path %q, want the file itself %q", p, rawsys)
			}
		}
	}
	if execs != 1 {
		t.Errorf("%d exec events for the selected process, want 1", execs)
	}
}

// keyWatch wraps a probe and records the most keys its metric sets held at
// any collection.
type keyWatch struct {
	probes.Probe
	mu      sync.Mutex
	maxKeys int
}

func (k *keyWatch) Collect(ctx context.Context, c *probes.Collection) error {
	err := k.Probe.Collect(ctx, c)
	k.mu.Lock()
	for _, ms := range k.Probe.Stats().MetricSets {
		k.maxKeys = max(k.maxKeys, ms.Keys)
	}
	k.mu.Unlock()
	return err
}

// A fork bomb of 20,000 short processes under the agent: the syscalls map
// never holds more than its bound, the exported final values add up to
// exactly the work done, and every lifecycle event is either exported or
// counted as dropped.
func TestForkBomb(t *testing.T) {
	// A map far smaller than the burst (most processes fold into the
	// overflow series) and one that could hold every process.
	for _, maxEntries := range []uint32{2048, 65536} {
		t.Run("max_entries="+strconv.Itoa(int(maxEntries)), func(t *testing.T) { forkBomb(t, maxEntries) })
	}
}

func forkBomb(t *testing.T, maxEntries uint32) {
	testutil.RequireRoot(t)
	const n, k = 20000, 3
	bin := testutil.BuildC(t, "forkbomb.c", "-O2", "-nostdlib", "-static", "-fno-stack-protector", "-fno-pie", "-no-pie")
	watch := &keyWatch{Probe: syscalls.New(syscalls.Config{MaxEntries: maxEntries})}
	proc := process.New(process.Config{})
	exp, evs := &memExporter{}, &memEvents{}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	start := time.Now()
	code, err := Run(ctx, Config{
		Probes:   []probes.Probe{watch, proc},
		Command:  []string{bin, strconv.Itoa(n), strconv.Itoa(k)},
		Interval: 2 * time.Second,
		Exporter: exp, Events: evs,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil || code != 0 {
		t.Fatalf("run: code %d, err %v", code, err)
	}
	t.Logf("%d processes in %v, %d intervals exported", n, time.Since(start).Round(time.Millisecond), len(exp.intervals))

	if watch.maxKeys > int(maxEntries)+1 {
		t.Errorf("syscalls map held %d keys, bound %d (+1 overflow key)", watch.maxKeys, maxEntries)
	}
	// Final value of every series: the last cumulative value of each
	// (process identity, syscall), over all intervals (a process's series
	// stop appearing once it is evicted).
	type seriesID struct {
		pid      int64
		creation string
		name     string
		overflow bool
	}
	final := map[seriesID]uint64{}
	var dropped int64
	exp.mu.Lock()
	for i, rms := range exp.intervals {
		for _, rm := range rms {
			set := rm.Resource.Set()
			pidV, _ := set.Value(entity.AttrProcessPID)
			ctV, _ := set.Value(entity.AttrProcessCreationTime)
			for _, m := range rm.ScopeMetrics[0].Metrics {
				switch d := m.Data.(type) {
				case metricdata.Histogram[float64]:
					if m.Name != entity.MetricTelagentSyscallDuration.Name {
						continue // the agent's own otel.sdk.metric_reader.collection.duration
					}
					for _, dp := range d.DataPoints {
						nameV, _ := dp.Attributes.Value(entity.AttrTelagentSyscallName)
						_, ovf := dp.Attributes.Value(entity.AttrOtelMetricOverflow)
						final[seriesID{pidV.AsInt64(), ctV.AsString(), nameV.AsString(), ovf}] = dp.Count
					}
				case metricdata.Sum[int64]:
					if m.Name == entity.MetricTelagentEventDrops.Name && i == len(exp.intervals)-1 {
						for _, dp := range d.DataPoints {
							dropped += dp.Value
						}
					}
				}
			}
		}
	}
	exp.mu.Unlock()
	var total uint64
	procs := map[int64]bool{}
	for id, v := range final {
		total += v
		procs[id.pid] = true
	}
	if want := uint64(n*k + 2*n); total != want {
		t.Errorf("sum of final values %d, want %d (%d getppid + %d fork + %d wait4)", total, want, n*k, n, n)
	}
	t.Logf("%d processes with exported series, %d series", len(procs), len(final))

	var forks, exits int64
	for _, ev := range evs.events() {
		switch ev.name {
		case entity.EventTelagentProcessFork.Name:
			forks++
		case entity.EventTelagentProcessExit.Name:
			exits++
		}
	}
	t.Logf("events: %d forks, %d exits exported, %d dropped", forks, exits, dropped)
	if forks+exits+dropped != 2*n+1 {
		t.Errorf("exported %d + dropped %d events, want %d (%d forks, %d exits)", forks+exits, dropped, 2*n+1, n, n+1)
	}
	if got := proc.Dropped(); int64(got) != dropped {
		t.Errorf("exported %s %d, probe counted %d", entity.MetricTelagentEventDrops.Name, dropped, got)
	}
}

// An event's start time is the kernel's, always: 0 is a process started in
// the first tick after boot, whose creation time is the boot time, never a
// reason to leave process.creation.time off (process.pid alone would be an
// incomplete identity). Both events go on Resources with the whole
// identity, computed from their own start times.
func TestEventIdentityAlwaysWhole(t *testing.T) {
	creation := func(ticks uint64) string { return "t" + strconv.FormatUint(ticks, 10) }
	e := newPipeline(&memEvents{}, "test", []attribute.KeyValue{entity.AttrHostID.String("h")}, creation, slog.New(slog.DiscardHandler))
	for _, ticks := range []uint64{0, 7} {
		e.add(probes.Event{Desc: entity.EventTelagentProcessFork, Time: time.Now(), Pid: 42, StartTicks: ticks,
			Attributes: []attribute.KeyValue{entity.AttrProcessParentPID.Int64(1)}})
	}
	recs := e.builder.Take()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for i, want := range []string{"t0", "t7"} {
		set := recs[i].Resource().Set()
		pid, _ := set.Value(entity.AttrProcessPID)
		ct, ok := set.Value(entity.AttrProcessCreationTime)
		if pid.AsInt64() != 42 || !ok || ct.AsString() != want {
			t.Errorf("event %d: Resource %v, want process.pid 42 and process.creation.time %q", i, set.ToSlice(), want)
		}
	}
}
