package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/process"
	"github.com/telagent/telagent/probes/syscalls"
)

// entityEvent is an entity.state or entity.delete record reduced to what
// the tests check.
type entityEvent struct {
	name     string
	typ      string
	id, desc map[string]string
	interval int64
	reason   string
	time     time.Time
	resource *attribute.Set
}

func (m *memEvents) entityEvents() []entityEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	asMap := func(v attribute.Value) map[string]string {
		out := map[string]string{}
		for _, kv := range v.AsMap() {
			out[string(kv.Key)] = kv.Value.Emit()
		}
		return out
	}
	var out []entityEvent
	for i := range m.records {
		r := &m.records[i]
		if r.EventName() != entity.EventEntityState.Name && r.EventName() != entity.EventEntityDelete.Name {
			continue
		}
		ev := entityEvent{name: r.EventName(), time: r.Timestamp(), resource: r.Resource().Set()}
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			switch kv.Key {
			case entity.AttrEntityType:
				ev.typ = kv.Value.AsString()
			case entity.AttrEntityID:
				ev.id = asMap(kv.Value)
			case entity.AttrEntityDescription:
				ev.desc = asMap(kv.Value)
			case entity.AttrEntityReportInterval:
				ev.interval = kv.Value.AsInt64()
			case entity.AttrEntityDeleteReason:
				ev.reason = kv.Value.AsString()
			}
			return true
		})
		out = append(out, ev)
	}
	return out
}

// of returns the entity events about the process pid, in order.
func ofProcess(evs []entityEvent, pid int64) []entityEvent {
	var out []entityEvent
	for _, ev := range evs {
		if ev.typ == entity.EntityProcess.Name && ev.id[string(entity.AttrProcessPID)] == strconv.FormatInt(pid, 10) {
			out = append(out, ev)
		}
	}
	return out
}

func ofHost(evs []entityEvent) []entityEvent {
	var out []entityEvent
	for _, ev := range evs {
		if ev.typ == entity.EntityHost.Name {
			out = append(out, ev)
		}
	}
	return out
}

// workloadIdentity parses the stat line a workload printed of itself:
// its pid and the process.creation.time /proc gives it (the oracle).
func workloadIdentity(t *testing.T, stat []byte) (int64, string) {
	t.Helper()
	pid, _ := strconv.ParseInt(string(stat[:bytes.IndexByte(stat, ' ')]), 10, 64)
	ticks, err := entity.ParseStartTicks(stat)
	if err != nil || pid == 0 {
		t.Fatalf("workload output %q: %v", stat, err)
	}
	return pid, bootTime(t).Add(time.Duration(ticks) * 10 * time.Millisecond).UTC().Format(time.RFC3339Nano)
}

// A command that execs another program and exits, with --entity-events:
// exactly one entity.state when it is discovered (its first program, as
// /proc/<pid>/exe named it before the exec), one after the exec (the new
// program's name, as the exec'd program read /proc/self/exe itself) and
// one entity.delete at its exit, all with the identity /proc gave the
// process (pid and creation time), which its metrics and its exec and exit
// events carry too; the host is announced once; everything is on the
// host's Resource. Without the flag, no entity event at all.
func TestEntityEventsOfCommand(t *testing.T) {
	testutil.RequireRoot(t)
	// The shell prints its stat line and its executable (cat and readlink
	// are its children); then it execs readlink, which prints its own
	// executable: the kernel's names before and after the exec.
	argv := []string{"sh", "-c", "cat /proc/$$/stat; readlink /proc/$$/exe; exec readlink /proc/self/exe"}
	run := func(on bool) (*memExporter, *memEvents, []string) {
		exp, evs := &memExporter{}, &memEvents{}
		var stdout bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		code, err := Run(ctx, Config{
			Probes:   []probes.Probe{syscalls.New(syscalls.Config{}), process.New(process.Config{})},
			Command:  argv,
			Interval: time.Hour,
			Exporter: exp, Events: evs, EntityEvents: on,
			Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			Stdout: &stdout,
		})
		if err != nil || code != 0 {
			t.Fatalf("run: code %d, %v", code, err)
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("workload printed %q, want its stat line and two executables", stdout.String())
		}
		return exp, evs, lines
	}

	t.Run("off", func(t *testing.T) {
		_, evs, _ := run(false)
		if got := evs.entityEvents(); len(got) != 0 {
			t.Errorf("%d entity events without --entity-events, want 0: %+v", len(got), got)
		}
		if len(evs.events()) == 0 {
			t.Error("no events at all: the oracle for 'none' is void")
		}
	})

	t.Run("on", func(t *testing.T) {
		exp, evs, lines := run(true)
		pid, creation := workloadIdentity(t, []byte(lines[0]))
		before, after := filepath.Base(lines[1]), filepath.Base(lines[2])
		if before == after {
			t.Fatalf("the exec did not change the executable (%s): the test cannot tell the states apart", before)
		}
		all := evs.entityEvents()
		got := ofProcess(all, pid)
		var names []string
		for _, ev := range got {
			names = append(names, ev.name)
		}
		if want := []string{"entity.state", "entity.state", "entity.delete"}; strings.Join(names, " ") != strings.Join(want, " ") {
			t.Fatalf("entity events of pid %d: %q, want %q: %+v", pid, names, want, got)
		}
		wantID := fmt.Sprint(map[string]string{"process.pid": strconv.FormatInt(pid, 10), "process.creation.time": creation})
		for i, ev := range got {
			if fmt.Sprint(ev.id) != wantID {
				t.Errorf("%s #%d: entity.id %v, want %s (/proc)", ev.name, i, ev.id, wantID)
			}
			if _, ok := ev.resource.Value(entity.AttrProcessPID); ok {
				t.Errorf("%s #%d on a process Resource, want the host's: %v", ev.name, i, ev.resource.ToSlice())
			}
			if _, ok := ev.resource.Value(entity.AttrHostID); !ok {
				t.Errorf("%s #%d: Resource without host.id: %v", ev.name, i, ev.resource.ToSlice())
			}
		}
		if n := got[0].desc[string(entity.AttrProcessExecutableName)]; n != before {
			t.Errorf("discovery: process.executable.name %q, want %q (/proc/<pid>/exe before the exec)", n, before)
		}
		if n := got[1].desc[string(entity.AttrProcessExecutableName)]; n != after {
			t.Errorf("after the exec: process.executable.name %q, want %q (/proc/self/exe of the exec'd program)", n, after)
		}
		for _, ev := range got[:2] {
			if ev.interval != int64(DefaultEntityStateInterval/time.Second) {
				t.Errorf("entity.report.interval %d, want %d", ev.interval, int64(DefaultEntityStateInterval/time.Second))
			}
		}
		if got[2].reason != "terminated" {
			t.Errorf("entity.delete.reason %q, want terminated", got[2].reason)
		}
		if hosts := ofHost(all); len(hosts) != 1 || hosts[0].name != "entity.state" || hosts[0].id["host.id"] == "" {
			t.Errorf("host entity events %+v, want one entity.state with host.id", hosts)
		} else if v, _ := hosts[0].resource.Value(entity.AttrHostID); hosts[0].id["host.id"] != v.AsString() {
			t.Errorf("host entity.id %v, its Resource's host.id %q", hosts[0].id, v.AsString())
		}

		// The same identity on the process's exec and exit events and its metrics.
		var execs, exits int
		for _, ev := range evs.events() {
			if ev.pid != pid {
				continue
			}
			switch ev.name {
			case entity.EventTelagentProcessExec.Name:
				execs++
			case entity.EventTelagentProcessExit.Name:
				exits++
			default:
				continue
			}
			if ev.creation != creation {
				t.Errorf("%s event of pid %d: creation time %q, want %q", ev.name, pid, ev.creation, creation)
			}
		}
		if execs != 1 || exits != 1 {
			t.Errorf("pid %d: %d exec and %d exit events, want 1 and 1", pid, execs, exits)
		}
		found := false
		for _, rm := range exp.last() {
			set := rm.Resource.Set()
			if v, ok := set.Value(entity.AttrProcessPID); ok && v.AsInt64() == pid {
				found = true
				if c, _ := set.Value(entity.AttrProcessCreationTime); c.AsString() != creation {
					t.Errorf("metrics of pid %d: creation time %q, want %q", pid, c.AsString(), creation)
				}
			}
		}
		if !found {
			t.Errorf("no metrics for pid %d", pid)
		}
	})
}

// Every period the host and each live process are announced again (with
// the period in whole seconds as entity.report.interval); a process that
// exits without an exit event (no process probe here) is deleted by the
// first period that finds it gone from /proc: exactly one entity.delete,
// after its last entity.state, and nothing about it after that.
func TestEntityStatePeriodDeletesGone(t *testing.T) {
	testutil.RequireRoot(t)
	// It lives 0.7 s from the moment the agent is attached, however long
	// the agent takes to start (a sleep 0.7 started before Run lived
	// only ~0.3 s of it on a busy machine: 1 in 6 runs had 2 states).
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleep.Process.Kill()
	exited := make(chan time.Time, 1)
	go func() { _ = sleep.Wait(); exited <- time.Now() }()
	pid := int64(sleep.Process.Pid)
	lifetime := func() error {
		time.AfterFunc(700*time.Millisecond, func() { _ = sleep.Process.Signal(syscall.SIGTERM) })
		return nil
	}
	evs := &memEvents{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := Run(ctx, Config{
		Probes:   []probes.Probe{syscalls.New(syscalls.Config{})},
		Pids:     []uint32{uint32(pid)},
		Interval: 100 * time.Millisecond, Duration: 2 * time.Second,
		Exporter: &memExporter{}, Events: evs, EntityEvents: true, EntityStateInterval: 250 * time.Millisecond,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Attached: lifetime,
	})
	if err != nil {
		t.Fatal(err)
	}
	end := <-exited
	all := evs.entityEvents()
	got := ofProcess(all, pid)
	var states, deletes int
	for i, ev := range got {
		switch ev.name {
		case "entity.state":
			states++
			if ev.interval != 1 {
				t.Errorf("entity.report.interval %d, want 1 (250ms in whole seconds, rounded up)", ev.interval)
			}
			if n := ev.desc[string(entity.AttrProcessExecutableName)]; n != "sleep" {
				t.Errorf("state #%d: process.executable.name %q, want sleep", i, n)
			}
		case "entity.delete":
			deletes++
			if i != len(got)-1 {
				t.Errorf("entity.delete is event %d of %d: something about the process came after it", i, len(got))
			}
			if ev.time.Before(end) {
				t.Errorf("entity.delete at %v, before the process exited at %v", ev.time, end)
			}
		}
	}
	// 0.7 s of life after attach, a period of 0.25 s: the announcement at
	// --pid plus two periods at least (a loaded machine may delay ticks,
	// never add).
	if states < 3 || states > 4 || deletes != 1 {
		t.Errorf("pid %d: %d entity.state and %d entity.delete, want 3..4 and 1: %+v", pid, states, deletes, got)
	}
	// The host: at start, then every period of the 2 s run (about 8).
	if h := len(ofHost(all)); h < 4 || h > 10 {
		t.Errorf("%d host entity.state events in a 2 s run with a 250 ms period, want 4..10", h)
	}
}

// An exec keeps the process's identity on its metrics too: the metrics
// Resource of a process before its exec (the shell's syscalls) and after
// it (the exec'd sleep's clock_nanosleep, which the shell never calls)
// has the pid and creation time /proc gave the process before the exec.
func TestExecKeepsMetricsIdentity(t *testing.T) {
	testutil.RequireRoot(t)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	exp, evs := &memExporter{}, &memEvents{}
	var stdout syncBuffer
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		_, err := Run(ctx, Config{
			Probes:   []probes.Probe{syscalls.New(syscalls.Config{}), process.New(process.Config{})},
			Command:  []string{"sh", "-c", "cat /proc/$$/stat; read x; exec sleep 0.5"},
			Interval: 100 * time.Millisecond,
			Exporter: exp, Events: evs,
			Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Stdin: stdinR, Stdout: &stdout,
		})
		done <- err
	}()
	// Before the exec: wait for an interval with the shell's metrics.
	var pid int64
	var creation string
	before := func() bool {
		exp.mu.Lock()
		defer exp.mu.Unlock()
		for _, iv := range exp.intervals {
			for _, rm := range iv {
				if v, ok := rm.Resource.Set().Value(entity.AttrProcessPID); ok && v.AsInt64() == pid && len(syscallNames(rm)) > 0 {
					return true
				}
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pid == 0 && strings.Contains(stdout.String(), "\n") {
			pid, creation = workloadIdentity(t, []byte(stdout.String()))
		}
		if pid != 0 && before() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no interval with the shell's metrics (pid %d)", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	exp.mu.Lock()
	nBefore := len(exp.intervals)
	exp.mu.Unlock()
	if _, err := stdinW.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	var sawBefore, sawAfter bool
	exp.mu.Lock()
	defer exp.mu.Unlock()
	for i, iv := range exp.intervals {
		for _, rm := range iv {
			set := rm.Resource.Set()
			if v, ok := set.Value(entity.AttrProcessPID); !ok || v.AsInt64() != pid {
				continue
			}
			names := syscallNames(rm)
			if c, _ := set.Value(entity.AttrProcessCreationTime); c.AsString() != creation {
				t.Errorf("interval %d: metrics of pid %d with creation time %q, want %q (/proc before the exec)", i, pid, c.AsString(), creation)
			}
			refs := entity.Refs(set)
			if !hasRef(refs, entity.EntityProcess.Name) {
				t.Errorf("interval %d: no process entity ref on the metrics Resource: %+v", i, refs)
			}
			switch {
			case i < nBefore && !names["clock_nanosleep"]:
				sawBefore = true
			case names["clock_nanosleep"]:
				sawAfter = true
			}
		}
	}
	if !sawBefore || !sawAfter {
		t.Errorf("metrics of pid %d before the exec: %v, after it (sleep's clock_nanosleep): %v; want both", pid, sawBefore, sawAfter)
	}
	var execs int
	for _, ev := range evs.events() {
		if ev.pid == pid && ev.name == entity.EventTelagentProcessExec.Name {
			execs++
			if ev.creation != creation {
				t.Errorf("exec event creation time %q, want %q", ev.creation, creation)
			}
		}
	}
	if execs != 1 {
		t.Errorf("%d exec events of pid %d, want 1", execs, pid)
	}
}

func hasRef(refs []entity.Ref, typ string) bool {
	for _, r := range refs {
		if r.Type == typ {
			return true
		}
	}
	return false
}

// syscallNames is the set of syscalls with a series on rm.
func syscallNames(rm metricdata.ResourceMetrics) map[string]bool {
	out := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok || m.Name != entity.MetricTelagentSyscallDuration.Name {
				continue
			}
			for _, dp := range h.DataPoints {
				if v, ok := dp.Attributes.Value(entity.AttrTelagentSyscallName); ok && dp.Count > 0 {
					out[v.AsString()] = true
				}
			}
		}
	}
	return out
}

// A discovery that raced with the exit (the collector read /proc just
// before the process died, its note queued after the exit event) must not
// announce a process already deleted; a second exit of it is not a second
// delete; a new process with the same pid (another start time) is a new
// entity and is announced.
func TestEntityReporterAfterDelete(t *testing.T) {
	var got []string
	r := newEntityReporter(time.Minute, t.TempDir(), []attribute.KeyValue{entity.AttrHostID.String("h")},
		func(ticks uint64) string { return strconv.FormatUint(ticks, 10) },
		func(name string, _ time.Time, attrs []attribute.KeyValue, _ int) {
			id := ""
			for _, kv := range attrs {
				if kv.Key == entity.AttrEntityID {
					id = kv.Value.Emit()
				}
			}
			got = append(got, name+" "+id)
		}, slog.New(slog.DiscardHandler))
	desc := []attribute.KeyValue{entity.AttrProcessExecutableName.String("x")}
	now := time.Now()
	r.discover(entityKey{7, 100}, desc, now, 0)
	r.observe(probes.Event{Desc: entity.EventTelagentProcessExit, Pid: 7, StartTicks: 100, Exited: true, Time: now})
	r.discover(entityKey{7, 100}, desc, now, 0)                                                                      // the late note
	r.observe(probes.Event{Desc: entity.EventTelagentProcessExit, Pid: 7, StartTicks: 100, Exited: true, Time: now}) // a duplicate
	r.discover(entityKey{7, 200}, desc, now, 0)                                                                      // the pid's next owner
	want := []string{
		`entity.state {"process.creation.time":"100","process.pid":"7"}`,
		`entity.delete {"process.creation.time":"100","process.pid":"7"}`,
		`entity.state {"process.creation.time":"200","process.pid":"7"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
