package collectortest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/telagent/telagent/export/otlptest"
	"github.com/telagent/telagent/internal/testutil"
)

// agentBin is the telagent binary built once for these tests.
var agentBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "telagent-collectortest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	agentBin = filepath.Join(dir, "telagent")
	build := exec.Command("go", "build", "-o", agentBin, "./cmd/telagent")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build telagent: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// ---- the agent process ------------------------------------------------------

type agentProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr syncBuffer
	done   chan struct{}
	err    error
	exited time.Time
}

func startAgent(t *testing.T, env []string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(agentBin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &p.stderr
	p.cmd.Stdout = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.exited = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.After(20 * time.Second)
	for !strings.Contains(p.stderr.String(), "msg=attached") {
		select {
		case <-p.done:
			t.Fatalf("telagent exited before attaching (%v):\n%s", p.err, p.stderr.String())
		case <-deadline:
			t.Fatalf("telagent did not attach:\n%s", p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p
}

func (p *agentProc) wait(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("telagent still running after %v:\n%s", timeout, p.stderr.String())
	}
	if p.err != nil {
		p.t.Fatalf("telagent: %v\n%s", p.err, p.stderr.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(b)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ---- reading what arrived ---------------------------------------------------

// syscallCount is the workload's count of one syscall at the backend: per
// rawsys process the last cumulative value (or the sum of deltas), summed
// over processes.
func syscallCount(reqs []*colmetricspb.ExportMetricsServiceRequest, name string) (uint64, metricspb.AggregationTemporality) {
	last := map[int64]uint64{}
	var sum uint64
	var tmp metricspb.AggregationTemporality
	for _, req := range reqs {
		for _, rm := range req.ResourceMetrics {
			if otlptest.Attr(rm.Resource.GetAttributes(), "process.executable.name").GetStringValue() != "rawsys" {
				continue
			}
			pid := otlptest.Attr(rm.Resource.GetAttributes(), "process.pid").GetIntValue()
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != "telagent.syscall.duration" {
						continue
					}
					tmp = m.GetHistogram().GetAggregationTemporality()
					for _, dp := range m.GetHistogram().GetDataPoints() {
						if otlptest.Attr(dp.Attributes, "telagent.syscall.name").GetStringValue() == name {
							last[pid] = max(last[pid], dp.Count)
							sum += dp.Count
						}
					}
				}
			}
		}
	}
	if tmp == metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA {
		return sum, tmp
	}
	var total uint64
	for _, v := range last {
		total += v
	}
	return total, tmp
}

// hostSum is the value of a host-level self-metric in the last host
// resource that has it (a Collector's batch may put several intervals in
// one request), summed over points whose attribute key (if given) is val.
func hostSum(reqs []*colmetricspb.ExportMetricsServiceRequest, metric, key, val string) (float64, bool) {
	for i := len(reqs) - 1; i >= 0; i-- {
		rms := reqs[i].ResourceMetrics
		for j := len(rms) - 1; j >= 0; j-- {
			rm := rms[j]
			if otlptest.Attr(rm.Resource.GetAttributes(), "process.pid") != nil {
				continue
			}
			var v float64
			found := false
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != metric {
						continue
					}
					pts := m.GetSum().GetDataPoints()
					if g := m.GetGauge(); g != nil {
						pts = g.GetDataPoints()
					}
					for _, dp := range pts {
						if key != "" && otlptest.Attr(dp.Attributes, key).GetStringValue() != val {
							continue
						}
						found = true
						v += float64(dp.GetAsInt()) + dp.GetAsDouble()
					}
					if h := m.GetHistogram(); h != nil {
						for _, dp := range h.DataPoints {
							found = true
							v += float64(dp.Count)
						}
					}
				}
			}
			if found {
				return v, true
			}
		}
	}
	return 0, false
}

// events lists the event records at the backend by pid: the event names
// in arrival order, and the exit code of an exit.
func events(reqs []*collogspb.ExportLogsServiceRequest) (names map[int64][]string, codes map[int64]int64) {
	names, codes = map[int64][]string{}, map[int64]int64{}
	for _, req := range reqs {
		for _, rl := range req.ResourceLogs {
			pid := otlptest.Attr(rl.Resource.GetAttributes(), "process.pid").GetIntValue()
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					names[pid] = append(names[pid], lr.EventName)
					if lr.EventName == "telagent.process.exit" {
						codes[pid] = otlptest.Attr(lr.Attributes, "process.exit.code").GetIntValue()
					}
				}
			}
		}
	}
	return names, codes
}

// rawsysPID is the process.pid of the rawsys resource in reqs (0: none).
func rawsysPID(reqs []*colmetricspb.ExportMetricsServiceRequest) int64 {
	for _, req := range reqs {
		for _, rm := range req.ResourceMetrics {
			if otlptest.Attr(rm.Resource.GetAttributes(), "process.executable.name").GetStringValue() == "rawsys" {
				return otlptest.Attr(rm.Resource.GetAttributes(), "process.pid").GetIntValue()
			}
		}
	}
	return 0
}

// waitMetrics waits until cond holds for the metric requests srv got;
// on timeout it fails with the agent's and the Collector's logs.
func waitMetrics(t *testing.T, srv *otlptest.Server, p *agentProc, col *Collector, timeout time.Duration, cond func([]*colmetricspb.ExportMetricsServiceRequest) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.WaitFor(ctx, func([]otlptest.Request) bool { return cond(srv.Metrics()) }); err != nil {
		colLog := ""
		if col != nil {
			colLog = col.Log()
		}
		t.Fatalf("%v\nagent:\n%s\ncollector:\n%s", err, p.stderr.String(), colLog)
	}
}

// ---- tests ------------------------------------------------------------------

// The agent's metrics and events go through a real Collector (otlp
// receiver, batch processor, otlp exporter) and arrive with the names,
// resources and exact values of the workload, over gRPC and HTTP, in
// cumulative and delta temporality.
func TestThroughCollector(t *testing.T) {
	testutil.RequireRoot(t)
	bin := Require(t)
	rawsys := testutil.Rawsys(t)
	machineID, _ := os.ReadFile("/etc/machine-id")
	hostname, _ := os.Hostname()
	for _, c := range []struct{ name, protocol, temporality string }{
		{"grpc", "grpc", "cumulative"},
		{"http", "http/protobuf", "cumulative"},
		{"grpc_delta", "grpc", "delta"},
	} {
		t.Run(c.name, func(t *testing.T) {
			down := otlptest.NewServer(t, otlptest.Options{})
			col := Start(t, bin, down.Addr())
			endpoint := col.GRPC
			if c.protocol != "grpc" {
				endpoint = "http://" + col.HTTP
			}
			p := startAgent(t, []string{"OTEL_RESOURCE_ATTRIBUTES=k8s.node.name=node-7,host.id=not-the-host", "OTEL_SERVICE_NAME=telagent-e2e"},
				"run", "--probes", "syscalls,process", "--interval", "200ms", "--exporter", "otlp",
				"--protocol", c.protocol, "--endpoint", endpoint, "--temporality", c.temporality,
				// Through a shell, so that rawsys's exec is an event too.
				"--", "/bin/sh", "-c", rawsys+" sleep 5 100; exit 0")
			p.wait(30 * time.Second)

			// Behind the Collector's batch processor: wait for the final values.
			waitMetrics(t, down, p, col, 10*time.Second, func(r []*colmetricspb.ExportMetricsServiceRequest) bool {
				n, _ := syscallCount(r, "nanosleep")
				return n >= 5
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pid := rawsysPID(down.Metrics())
			if err := down.WaitFor(ctx, func([]otlptest.Request) bool {
				_, codes := events(down.Logs())
				_, ok := codes[pid]
				return ok
			}); err != nil {
				t.Fatalf("no exit event of rawsys (pid %d) behind the collector: %v", pid, err)
			}
			time.Sleep(300 * time.Millisecond) // a duplicate or overshoot would arrive now
			reqs := down.Metrics()
			n, tmp := syscallCount(reqs, "nanosleep")
			if n != 5 {
				t.Errorf("nanosleep count behind the collector %d, want 5", n)
			}
			wantTmp := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
			if c.temporality == "delta" {
				wantTmp = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
			}
			if tmp != wantTmp {
				t.Errorf("temporality %v, want %v", tmp, wantTmp)
			}

			// Events: rawsys forked by the shell, its exec and exit, on the
			// same process.pid as its metrics; the shell's exit.
			names, codes := events(down.Logs())
			if got := strings.Join(names[pid], ","); got != "telagent.process.fork,telagent.process.exec,telagent.process.exit" || codes[pid] != 0 {
				t.Errorf("events of rawsys (pid %d): %s, exit code %d; want fork,exec,exit and 0 (all: %v)", pid, got, codes[pid], names)
			}
			if len(names) != 2 {
				t.Errorf("events of %d processes, want rawsys and its shell: %v", len(names), names)
			}
			for _, req := range down.Logs() {
				for _, rl := range req.ResourceLogs {
					if got := otlptest.Attr(rl.Resource.GetAttributes(), "k8s.node.name").GetStringValue(); got != "node-7" {
						t.Errorf("event resource k8s.node.name %q, want node-7 from OTEL_RESOURCE_ATTRIBUTES", got)
					}
				}
			}
			// Resources: the process's identity, the host's, the environment's.
			found := false
			for _, req := range reqs {
				for _, rm := range req.ResourceMetrics {
					a := rm.Resource.GetAttributes()
					if otlptest.Attr(a, "process.pid").GetIntValue() != pid {
						continue
					}
					found = true
					if got := otlptest.Attr(a, "host.id").GetStringValue(); got != strings.TrimSpace(string(machineID)) {
						t.Errorf("host.id %q: the environment must not override the host's identity", got)
					}
					if got := otlptest.Attr(a, "host.name").GetStringValue(); got != hostname {
						t.Errorf("host.name %q, want %q", got, hostname)
					}
					if got := otlptest.Attr(a, "k8s.node.name").GetStringValue(); got != "node-7" {
						t.Errorf("k8s.node.name %q from OTEL_RESOURCE_ATTRIBUTES", got)
					}
					if got := otlptest.Attr(a, "service.name").GetStringValue(); got != "telagent-e2e" {
						t.Errorf("service.name %q from OTEL_SERVICE_NAME", got)
					}
					if otlptest.Attr(a, "process.creation.time").GetStringValue() == "" {
						t.Error("no process.creation.time")
					}
				}
			}
			if !found {
				t.Errorf("no metrics of rawsys (pid %d)", pid)
			}
			// Self-telemetry arrives too.
			if v, ok := hostSum(reqs, "telagent.export.attempts", "telagent.export.outcome", "success"); !ok || v < 1 {
				t.Errorf("telagent.export.attempts{success} = %v (%v)", v, ok)
			}
			if v, ok := hostSum(reqs, "telagent.probe.count", "telagent.probe.state", "attached"); !ok || v != 2 {
				t.Errorf("telagent.probe.count{attached} = %v (%v), want 2", v, ok)
			}
			if v, ok := hostSum(reqs, "telagent.metric_set.utilization", "telagent.metric_set.name", "syscalls"); !ok || v <= 0 || v > 1 {
				t.Errorf("telagent.metric_set.utilization{syscalls} = %v (%v)", v, ok)
			}
			// Cumulative: every collection so far; delta: the last interval's.
			if v, ok := hostSum(reqs, "otel.sdk.metric_reader.collection.duration", "", ""); !ok || v < 1 || (c.temporality == "cumulative" && v < 2) {
				t.Errorf("otel.sdk.metric_reader.collection.duration count = %v (%v)", v, ok)
			}
			t.Logf("%d metric requests, %d log requests behind the collector", len(reqs), len(down.Logs()))
		})
	}
}

// countWarnings counts the agent's outage warnings.
func countWarnings(log string) int { return strings.Count(log, "export failing") }

// The Collector is not up when the agent starts and comes up later: one
// warning, collection goes on, and the total arrives.
func TestCollectorNotUpAtStart(t *testing.T) {
	testutil.RequireRoot(t)
	bin := Require(t)
	down := otlptest.NewServer(t, otlptest.Options{})
	col := New(t, bin, down.Addr())
	start := time.Now()
	p := startAgent(t, nil, "run", "--probes", "syscalls", "--interval", "200ms", "--exporter", "otlp",
		"--endpoint", col.GRPC, "--", testutil.Rawsys(t), "sleep", "25", "100")
	time.Sleep(time.Second)
	col.Restart()
	p.wait(30 * time.Second)
	waitMetrics(t, down, p, col, 10*time.Second, func(r []*colmetricspb.ExportMetricsServiceRequest) bool {
		n, _ := syscallCount(r, "nanosleep")
		return n >= 25
	})
	if n, _ := syscallCount(down.Metrics(), "nanosleep"); n != 25 {
		t.Errorf("nanosleep count %d, want 25", n)
	}
	log := p.stderr.String()
	if countWarnings(log) != 1 || !strings.Contains(log, "export recovered") {
		t.Errorf("want one outage warning and a recovery:\n%s", log)
	}
	t.Logf("agent ran %v", p.exited.Sub(start).Round(time.Millisecond))
}

// The Collector is killed mid-run (losing what it had batched) and
// restarted: the next intervals carry the cumulative totals.
func TestCollectorKilledAndRestarted(t *testing.T) {
	testutil.RequireRoot(t)
	bin := Require(t)
	down := otlptest.NewServer(t, otlptest.Options{})
	col := Start(t, bin, down.Addr())
	p := startAgent(t, nil, "run", "--probes", "syscalls", "--interval", "200ms", "--exporter", "otlp",
		"--endpoint", col.GRPC, "--", testutil.Rawsys(t), "sleep", "30", "100")
	waitMetrics(t, down, p, col, 10*time.Second, func(r []*colmetricspb.ExportMetricsServiceRequest) bool {
		n, _ := syscallCount(r, "nanosleep")
		return n > 0
	})
	col.Kill()
	killed := time.Now()
	time.Sleep(1200 * time.Millisecond)
	col.Restart()
	p.wait(30 * time.Second)
	waitMetrics(t, down, p, col, 10*time.Second, func(r []*colmetricspb.ExportMetricsServiceRequest) bool {
		n, _ := syscallCount(r, "nanosleep")
		return n >= 30
	})
	if n, _ := syscallCount(down.Metrics(), "nanosleep"); n != 30 {
		t.Errorf("nanosleep count %d, want 30", n)
	}
	log := p.stderr.String()
	if countWarnings(log) != 1 || !strings.Contains(log, "export recovered") {
		t.Errorf("want one outage warning and a recovery:\n%s", log)
	}
	t.Logf("outage from kill to agent exit %v", p.exited.Sub(killed).Round(time.Millisecond))
}

// A backend that accepts and never answers: the agent keeps collecting
// (every interval counted in otel.sdk.metric_reader.collection.duration), its queue
// stays within --export-queue-size and drops the oldest intervals, counted,
// and after the stall the total arrives. SIGTERM during a stall exits
// within the shutdown budget.
func TestStalledBackend(t *testing.T) {
	testutil.RequireRoot(t)
	srv := otlptest.NewServer(t, otlptest.Options{})
	srv.SetStall(true)
	env := []string{"OTEL_EXPORTER_OTLP_TIMEOUT=300"}
	p := startAgent(t, env, "run", "--probes", "syscalls", "--interval", "100ms", "--exporter", "otlp",
		"--endpoint", srv.Addr(), "--export-queue-size", "2", "--", testutil.Rawsys(t), "sleep", "30", "100")
	time.Sleep(1500 * time.Millisecond)
	srv.SetStall(false)
	p.wait(30 * time.Second)
	reqs := srv.Metrics()
	if n, _ := syscallCount(reqs, "nanosleep"); n != 30 {
		t.Errorf("nanosleep count %d, want 30", n)
	}
	drops, _ := hostSum(reqs, "telagent.export.drops", "", "")
	fails, _ := hostSum(reqs, "telagent.export.attempts", "telagent.export.outcome", "failure")
	collections, _ := hostSum(reqs, "otel.sdk.metric_reader.collection.duration", "", "")
	if drops < 1 || fails < 1 {
		t.Errorf("telagent.export.drops %v, failures %v: want both > 0 after a 1.5 s stall", drops, fails)
	}
	// ~3 s at 100 ms: collection went on through the stall.
	if collections < 20 {
		t.Errorf("%v collections in ~3 s at 100ms: collection stalled with the backend", collections)
	}
	for _, req := range reqs {
		if q, ok := hostSum([]*colmetricspb.ExportMetricsServiceRequest{req}, "telagent.export.queue.count", "", ""); ok && q > 2 {
			t.Errorf("queue length %v over --export-queue-size 2", q)
		}
	}
	if log := p.stderr.String(); countWarnings(log) != 1 {
		t.Errorf("want one outage warning:\n%s", log)
	}
	t.Logf("stall 1.5 s: %v intervals dropped, %v failed attempts, %v collections", drops, fails, collections)

	// SIGTERM while the backend stalls: the final flush gives up at the
	// shutdown deadline (10 s), not later.
	srv.SetStall(true)
	p = startAgent(t, env, "run", "--probes", "syscalls", "--interval", "100ms", "--exporter", "otlp",
		"--endpoint", srv.Addr(), "--", testutil.Rawsys(t), "sleep", "300", "100")
	time.Sleep(300 * time.Millisecond)
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("agent did not exit 15 s after SIGTERM:\n%s", p.stderr.String())
	}
	took := p.exited.Sub(sent)
	if took > 11*time.Second {
		t.Errorf("exit took %v after SIGTERM with a stalled backend, budget 10 s", took)
	}
	t.Logf("SIGTERM to exit with a stalled backend: %v", took.Round(time.Millisecond))
}

// SIGKILL: the kernel frees every program and link with the process's
// file descriptors, and the agent pinned nothing in bpffs.
func TestSIGKILLLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	pinsBefore := bpffsEntries(t)
	p := startAgent(t, nil, "run", "--interval", "1s", "--exporter", "otlp-json", "--output", os.DevNull, "--duration", "60s")
	progs, links := heldBPF(p.cmd.Process.Pid)
	if len(progs) == 0 || len(links) == 0 {
		t.Fatalf("agent holds %d programs, %d links: nothing to check", len(progs), len(links))
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []string
		for _, id := range progs {
			if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
				prog.Close()
				alive = append(alive, fmt.Sprintf("prog %d", id))
			}
		}
		for _, id := range links {
			if l, err := link.NewFromID(link.ID(id)); err == nil {
				l.Close()
				alive = append(alive, fmt.Sprintf("link %d", id))
			}
		}
		if len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGKILL still loaded: %v", alive)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after := bpffsEntries(t); after != pinsBefore {
		t.Errorf("bpffs changed across the run:\nbefore %q\nafter  %q", pinsBefore, after)
	}
	t.Logf("%d programs and %d links freed after SIGKILL", len(progs), len(links))
}

// heldBPF lists the program and link ids whose file descriptors pid holds.
func heldBPF(pid int) (progs, links []uint32) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				continue
			}
			switch k {
			case "prog_id":
				progs = append(progs, uint32(n))
			case "link_id":
				links = append(links, uint32(n))
			}
		}
	}
	return progs, links
}

// bpffsEntries lists every path under the mounted bpffs instances.
func bpffsEntries(t *testing.T) string {
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "bpf" {
			continue
		}
		_ = filepath.WalkDir(f[1], func(path string, _ os.DirEntry, err error) error {
			if err == nil {
				out = append(out, path)
			}
			return nil
		})
	}
	return strings.Join(out, " ")
}
