package main

// Helpers shared by the CLI and end-to-end tests: the telagent binary and
// the rawsys workload are built once in TestMain, and every test drives the
// binary as a subprocess, the way a user does.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/telagent/telagent/export/otlptest"
	"github.com/telagent/telagent/internal/testutil"
)

var (
	// agentBin is the telagent binary built by TestMain.
	agentBin string
	// rawsysBin is the rawsys workload, set by requireRawsys.
	rawsysBin string
)

// Names of the metrics and attributes the tests look for.
const (
	metricDuration = "telagent.syscall.duration"
	metricErrors   = "telagent.syscall.errors"
	attrSyscall    = "telagent.syscall.name"
	attrPID        = "process.pid"
	attrCreation   = "process.creation.time"
	attrExecName   = "process.executable.name"
)

// ourPrograms are the kernel names of every BPF program telagent loads
// (the tp_btf programs, their raw_tp fallbacks and the target followers).
var ourPrograms = []string{
	"sys_enter", "sys_exit", "raw_sys_enter", "raw_sys_exit",
	"follow_fork_btf", "forget_exit_btf",
}

// bpfObjNameLen is BPF_OBJ_NAME_LEN: the kernel keeps at most 15 bytes of a
// program's name plus the NUL.
const bpfObjNameLen = 16

func kernelName(name string) string {
	if len(name) > bpfObjNameLen-1 {
		return name[:bpfObjNameLen-1]
	}
	return name
}

func isOurProgram(kname string) bool {
	for _, n := range ourPrograms {
		if kernelName(n) == kname {
			return true
		}
	}
	return false
}

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if fuzzOnly() {
		return m.Run() // fuzz targets run in-process: no binary to build
	}
	dir, err := os.MkdirTemp("", "telagent-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The privilege test runs the binary as nobody, who must reach it.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}

	agentBin = filepath.Join(dir, "telagent")
	build := exec.Command("go", "build", "-o", agentBin, ".")
	// As released (Makefile, Dockerfile): without cgo, so the agent can
	// drop capabilities from every thread (internal/privilege).
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "TestMain: go build: %v\n%s", err, out)
		return 1
	}

	return m.Run()
}

// fuzzOnly reports whether this process only runs a fuzz target: a fuzz
// worker, or `go test -run '^$' -fuzz X` (make fuzz).
func fuzzOnly() bool {
	flag.Parse()
	get := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return get("test.fuzzworker") == "true" || get("test.fuzz") != "" && get("test.run") == "^$"
}

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
}

func requireRawsys(t *testing.T) {
	t.Helper()
	rawsysBin = testutil.Rawsys(t)
}

// watchWriter collects a stream and closes attached the first time the
// agent's "attached" log line appears.
type watchWriter struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	attached chan struct{}
	seen     bool
}

func newWatchWriter() *watchWriter { return &watchWriter{attached: make(chan struct{})} }

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.seen && strings.Contains(w.buf.String(), "msg=attached") {
		w.seen = true
		close(w.attached)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// agentProc is a running telagent.
type agentProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	stdout   *watchWriter
	stderr   *watchWriter
	done     chan struct{}
	waitErr  error
	baseline uint32 // highest BPF program id before the start
}

type startOpts struct {
	stdin string
	cred  *syscall.Credential
	// wrapper runs the agent through a command that execs it (setpriv
	// ARGS...): the agent is wrapper[0] wrapper[1:]... agentBin args...
	wrapper []string
}

// startAgent starts the binary with args; it is killed if the test ends first.
func startAgent(t *testing.T, opts startOpts, args ...string) *agentProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	p := &agentProc{t: t, stdout: newWatchWriter(), stderr: newWatchWriter(), done: make(chan struct{})}
	if os.Geteuid() == 0 {
		p.baseline = maxProgramID(t)
	}
	if len(opts.wrapper) > 0 {
		p.cmd = exec.CommandContext(ctx, opts.wrapper[0], append(append(opts.wrapper[1:len(opts.wrapper):len(opts.wrapper)], agentBin), args...)...)
	} else {
		p.cmd = exec.CommandContext(ctx, agentBin, args...)
	}
	p.cmd.Stdin = strings.NewReader(opts.stdin)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if opts.cred != nil {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: opts.cred}
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", agentBin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// waitAttached waits for the agent's "attached" log line.
func (p *agentProc) waitAttached(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.stderr.attached:
	case <-p.done:
		p.t.Fatalf("telagent exited (%v) before attaching; stderr:\n%s", p.waitErr, p.stderr)
	case <-time.After(timeout):
		p.t.Fatalf("telagent did not attach within %v; stderr:\n%s", timeout, p.stderr)
	}
}

// wait waits for the agent to exit and returns its exit code.
func (p *agentProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("telagent did not exit within %v; stderr:\n%s", timeout, p.stderr)
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		p.t.Fatalf("wait for telagent: %v", p.waitErr)
	}
	return p.cmd.ProcessState.ExitCode()
}

type result struct {
	code           int
	stdout, stderr string
}

// runAgent runs the binary to completion and, when root, checks that none of
// its BPF programs outlives it.
func runAgent(t *testing.T, opts startOpts, args ...string) result {
	t.Helper()
	p := startAgent(t, opts, args...)
	code := p.wait(40 * time.Second)
	if os.Geteuid() == 0 {
		assertNoLeakedPrograms(t, p.baseline)
	}
	return result{code: code, stdout: p.stdout.String(), stderr: p.stderr.String()}
}

// maxProgramID is the highest id of a loaded BPF program (0 if none). The
// kernel hands out program ids cyclically upward, so programs loaded later
// have higher ids.
func maxProgramID(t *testing.T) uint32 {
	t.Helper()
	var last ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(last)
		if errors.Is(err, os.ErrNotExist) {
			return uint32(last)
		}
		if err != nil {
			t.Fatalf("enumerate BPF programs: %v", err)
		}
		last = next
	}
}

type loadedProgram struct {
	id   uint32
	name string
}

// programsAfter lists loaded programs with an id above baseline whose name
// is one of ours.
func programsAfter(t *testing.T, baseline uint32) []loadedProgram {
	t.Helper()
	var out []loadedProgram
	id := ebpf.ProgramID(baseline)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return out
		}
		if err != nil {
			t.Fatalf("enumerate BPF programs: %v", err)
		}
		id = next
		if name, ok := programName(next); ok && isOurProgram(name) {
			out = append(out, loadedProgram{uint32(next), name})
		}
	}
}

// programName is the kernel name of program id (false if it is gone).
func programName(id ebpf.ProgramID) (string, bool) {
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return "", false // unloaded in between
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return "", false
	}
	return info.Name, true
}

// programNamesHeldBy are the names of the BPF programs process pid holds.
func programNamesHeldBy(pid int) []string {
	var names []string
	for id := range testutil.HeldProgramIDs(pid) {
		if name, ok := programName(ebpf.ProgramID(id)); ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// assertNoLeakedPrograms fails if a program with one of our names, loaded
// after baseline, is still loaded while no live process holds it. Programs
// of other live processes (other tests running concurrently) are not ours
// to judge; the kernel frees a detached program's last reference after an
// RCU grace period, hence the short poll.
func assertNoLeakedPrograms(t *testing.T, baseline uint32) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var leaked []loadedProgram
		if candidates := programsAfter(t, baseline); len(candidates) > 0 {
			held := testutil.HeldProgramIDs(0)
			for _, c := range candidates {
				if !held[c.id] {
					leaked = append(leaked, c)
				}
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("BPF programs still loaded after telagent exited, held by no process: %+v", leaked)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readOTLPJSON decodes every line of an otlp-json output file.
func readOTLPJSON(t *testing.T, path string) []*colmetricspb.ExportMetricsServiceRequest {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read output: %v", err)
	}
	if len(raw) == 0 {
		t.Fatalf("output %s is empty", path)
	}
	if raw[len(raw)-1] != '\n' {
		t.Errorf("output %s does not end with a newline", path)
	}
	var reqs []*colmetricspb.ExportMetricsServiceRequest
	for i, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		if bytes.HasPrefix(line, []byte(`{"resourceLogs"`)) {
			continue // events (ExportLogsServiceRequest), read by readOTLPJSONLogs
		}
		req := new(colmetricspb.ExportMetricsServiceRequest)
		if err := protojson.Unmarshal(line, req); err != nil {
			t.Fatalf("line %d of %s is not an OTLP/JSON ExportMetricsServiceRequest: %v\n%.500s", i+1, path, err, line)
		}
		reqs = append(reqs, req)
	}
	return reqs
}

// resourcePID is the resource's process.pid, if it has one.
func resourcePID(r *resourcepb.Resource) (int64, bool) {
	v := otlptest.Attr(r.GetAttributes(), attrPID)
	if v == nil {
		return 0, false
	}
	iv, ok := v.GetValue().(*commonpb.AnyValue_IntValue)
	if !ok {
		return 0, false
	}
	return iv.IntValue, true
}

// processPIDs lists every distinct process.pid in reqs.
func processPIDs(reqs []*colmetricspb.ExportMetricsServiceRequest) []int64 {
	var pids []int64
	for _, req := range reqs {
		for _, rm := range req.GetResourceMetrics() {
			if pid, ok := resourcePID(rm.GetResource()); ok && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return pids
}

// point is one data point of one process's metric, with where it was found.
type point struct {
	res         *resourcepb.Resource
	hist        *metricspb.HistogramDataPoint
	sum         *metricspb.NumberDataPoint
	temporality metricspb.AggregationTemporality
	monotonic   bool
}

func (p point) time() uint64 {
	if p.hist != nil {
		return p.hist.GetTimeUnixNano()
	}
	return p.sum.GetTimeUnixNano()
}

// points returns, in export order, every data point of metric on the
// resource with process.pid pid whose telagent.syscall.name is syscall
// ("" matches any).
func points(reqs []*colmetricspb.ExportMetricsServiceRequest, metric string, pid int64, syscall string) []point {
	var out []point
	for _, req := range reqs {
		for _, rm := range req.GetResourceMetrics() {
			if p, ok := resourcePID(rm.GetResource()); !ok || p != pid {
				continue
			}
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					if m.GetName() != metric {
						continue
					}
					match := func(kvs []*commonpb.KeyValue) bool {
						return syscall == "" || otlptest.Attr(kvs, attrSyscall).GetStringValue() == syscall
					}
					if h := m.GetHistogram(); h != nil {
						for _, dp := range h.GetDataPoints() {
							if match(dp.GetAttributes()) {
								out = append(out, point{res: rm.GetResource(), hist: dp, temporality: h.GetAggregationTemporality()})
							}
						}
					}
					if s := m.GetSum(); s != nil {
						for _, dp := range s.GetDataPoints() {
							if match(dp.GetAttributes()) {
								out = append(out, point{res: rm.GetResource(), sum: dp, temporality: s.GetAggregationTemporality(), monotonic: s.GetIsMonotonic()})
							}
						}
					}
				}
			}
		}
	}
	return out
}

// lastPoint is the latest (cumulative) data point of points(...); it fails
// the test when there is none, or when the series is not cumulative.
func lastPoint(t *testing.T, reqs []*colmetricspb.ExportMetricsServiceRequest, metric string, pid int64, syscall string) point {
	t.Helper()
	ps := points(reqs, metric, pid, syscall)
	if len(ps) == 0 {
		t.Fatalf("no %s data point for %s=%q on the resource with process.pid %d (pids exported: %v)",
			metric, attrSyscall, syscall, pid, processPIDs(reqs))
	}
	last := ps[0]
	for _, p := range ps {
		if p.temporality != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
			t.Errorf("%s %s: temporality %v, want cumulative", metric, syscall, p.temporality)
		}
		if p.time() >= last.time() {
			last = p
		}
	}
	return last
}

// syscallNames lists the telagent.syscall.name values of metric on pid.
func syscallNames(reqs []*colmetricspb.ExportMetricsServiceRequest, metric string, pid int64) []string {
	var names []string
	for _, p := range points(reqs, metric, pid, "") {
		var kvs []*commonpb.KeyValue
		if p.hist != nil {
			kvs = p.hist.GetAttributes()
		} else {
			kvs = p.sum.GetAttributes()
		}
		if n := otlptest.Attr(kvs, attrSyscall).GetStringValue(); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// checkHistogram checks a cumulative histogram point: count, buckets adding
// up to it, and a non-negative sum.
func checkHistogram(t *testing.T, what string, dp *metricspb.HistogramDataPoint, wantCount uint64) {
	t.Helper()
	if dp.GetCount() != wantCount {
		t.Errorf("%s: count %d, want exactly %d", what, dp.GetCount(), wantCount)
	}
	var sum uint64
	for _, b := range dp.GetBucketCounts() {
		sum += b
	}
	if sum != dp.GetCount() {
		t.Errorf("%s: bucket counts add up to %d, count is %d", what, sum, dp.GetCount())
	}
	if len(dp.GetBucketCounts()) != len(dp.GetExplicitBounds())+1 {
		t.Errorf("%s: %d bucket counts for %d bounds", what, len(dp.GetBucketCounts()), len(dp.GetExplicitBounds()))
	}
	if dp.GetSum() < 0 {
		t.Errorf("%s: sum %v is negative", what, dp.GetSum())
	}
	if dp.GetStartTimeUnixNano() == 0 || dp.GetStartTimeUnixNano() > dp.GetTimeUnixNano() {
		t.Errorf("%s: start %d, time %d", what, dp.GetStartTimeUnixNano(), dp.GetTimeUnixNano())
	}
}

// checkProcessResource checks the identity of a workload's resource: its
// creation time is RFC 3339 and lies within [from, to] (the boot time the
// agent adds ticks to is whole seconds, hence the slack), and its
// executable name.
func checkProcessResource(t *testing.T, r *resourcepb.Resource, exe string, from, to time.Time) {
	t.Helper()
	ct := otlptest.Attr(r.GetAttributes(), attrCreation).GetStringValue()
	created, err := time.Parse(time.RFC3339, ct)
	if err != nil {
		t.Errorf("%s %q is not RFC 3339: %v", attrCreation, ct, err)
	} else if created.Before(from.Add(-2*time.Second)) || created.After(to.Add(time.Second)) {
		t.Errorf("%s %s is outside the run [%s, %s]", attrCreation, ct, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	if got := otlptest.Attr(r.GetAttributes(), attrExecName).GetStringValue(); got != exe {
		t.Errorf("%s %q, want %q", attrExecName, got, exe)
	}
}

// children lists the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
