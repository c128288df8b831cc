package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"

	"github.com/telagent/telagent/export/otlptest"
)

// TestCommandExitCode: with -- COMMAND, telagent exits with the command's
// exit code, 128+signal when a signal killed it.
func TestCommandExitCode(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	tests := []struct {
		name    string
		command []string
		want    int
	}{
		{"zero", []string{rawsysBin, "getppid", "10"}, 0},
		{"exit 3", []string{rawsysBin, "exit", "3"}, 3},
		{"exit 255", []string{rawsysBin, "exit", "255"}, 255},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + int(syscall.SIGKILL)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.json")
			args := append([]string{"run", "--probes", "syscalls", "--exporter", "otlp-json", "--output", out, "--"}, tc.command...)
			res := runAgent(t, startOpts{}, args...)
			if res.code != tc.want {
				t.Errorf("exit code %d, want %d; stderr:\n%s", res.code, tc.want, res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q: the command wrote nothing", res.stdout)
			}
		})
	}
}

// TestCommandStdio: the command's stdin, stdout and stderr are the agent's;
// the agent adds nothing to stdout.
func TestCommandStdio(t *testing.T) {
	requireRoot(t)
	out := filepath.Join(t.TempDir(), "out.json")
	res := runAgent(t, startOpts{stdin: "abc\n"},
		"run", "--probes", "syscalls", "--exporter", "otlp-json", "--output", out, "--",
		"sh", "-c", `read x; echo "got:$x"; echo to-stderr >&2; exit 4`)
	if res.code != 4 {
		t.Errorf("exit code %d, want 4; stderr:\n%s", res.code, res.stderr)
	}
	if res.stdout != "got:abc\n" {
		t.Errorf("stdout %q, want %q", res.stdout, "got:abc\n")
	}
	if !slices.Contains(strings.Split(res.stderr, "\n"), "to-stderr") {
		t.Errorf("the command's stderr line is missing from:\n%s", res.stderr)
	}
}

// onlyProcess returns the one process.pid exported: with -- COMMAND only
// the command and its descendants are observed, and rawsys does not fork.
func onlyProcess(t *testing.T, reqs []*colmetricspb.ExportMetricsServiceRequest, agentPid int) int64 {
	t.Helper()
	pids := processPIDs(reqs)
	if len(pids) != 1 {
		t.Fatalf("exported process.pid values %v, want exactly one (the workload)", pids)
	}
	if pids[0] == int64(agentPid) {
		t.Fatalf("the only exported process is the agent itself (%d)", agentPid)
	}
	return pids[0]
}

// runRawsysOTLPJSON runs rawsys ARGS under the agent with the otlp-json
// exporter, checks the exit code and that nothing leaked, and returns the
// decoded requests, rawsys's pid and the time window of the run.
func runRawsysOTLPJSON(t *testing.T, args ...string) (reqs []*colmetricspb.ExportMetricsServiceRequest, pid int64, from, to time.Time) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.json")
	from = time.Now()
	p := startAgent(t, startOpts{}, append([]string{"run", "--probes", "syscalls", "--exporter", "otlp-json",
		"--output", out, "--interval", "1s", "--", rawsysBin}, args...)...)
	if code := p.wait(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
	}
	to = time.Now()
	assertNoLeakedPrograms(t, p.baseline)
	reqs = readOTLPJSON(t, out)
	return reqs, onlyProcess(t, reqs, p.cmd.Process.Pid), from, to
}

// TestExactCountsOTLPJSON checks the numbers against rawsys, whose system
// calls are exactly known.
func TestExactCountsOTLPJSON(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)

	t.Run("getppid 100000", func(t *testing.T) {
		reqs, pid, from, to := runRawsysOTLPJSON(t, "getppid", "100000")
		last := lastPoint(t, reqs, metricDuration, pid, "getppid")
		checkHistogram(t, "getppid duration", last.hist, 100000)
		checkProcessResource(t, last.res, "rawsys", from, to)
		if errs := lastPoint(t, reqs, metricErrors, pid, "getppid"); errs.sum.GetAsInt() != 0 || !errs.monotonic {
			t.Errorf("getppid errors %d (monotonic %v), want 0 on a monotonic sum", errs.sum.GetAsInt(), errs.monotonic)
		}
		// Nothing but the asked-for calls: execve returned before the
		// command was released, exit_group never returns.
		if names := syscallNames(reqs, metricDuration, pid); !slices.Equal(names, []string{"getppid"}) {
			t.Errorf("system calls exported for rawsys: %v, want only getppid", names)
		}
		// Cumulative: the count never goes down from one export to the next.
		var prev uint64
		for _, pt := range points(reqs, metricDuration, pid, "getppid") {
			if pt.hist.GetCount() < prev {
				t.Errorf("cumulative count went down from %d to %d", prev, pt.hist.GetCount())
			}
			prev = pt.hist.GetCount()
		}
	})

	t.Run("close 5000", func(t *testing.T) {
		reqs, pid, from, to := runRawsysOTLPJSON(t, "close", "5000")
		last := lastPoint(t, reqs, metricDuration, pid, "close")
		checkHistogram(t, "close duration", last.hist, 5000)
		checkProcessResource(t, last.res, "rawsys", from, to)
		errs := lastPoint(t, reqs, metricErrors, pid, "close")
		if errs.sum.GetAsInt() != 5000 {
			t.Errorf("close errors %d, want exactly 5000 (every close(-1) fails with EBADF)", errs.sum.GetAsInt())
		}
		if !errs.monotonic {
			t.Errorf("%s is not a monotonic sum", metricErrors)
		}
		if names := syscallNames(reqs, metricErrors, pid); !slices.Equal(names, []string{"close"}) {
			t.Errorf("system calls exported for rawsys: %v, want only close", names)
		}
	})
}

// TestExactCountsOTLPGRPC sends the same measurement over OTLP/gRPC.
func TestExactCountsOTLPGRPC(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	recv := otlptest.NewMetricsReceiver(t)
	from := time.Now()
	res := runAgent(t, startOpts{}, "run", "--probes", "syscalls", "--exporter", "otlp",
		"--endpoint", recv.Addr(), "--interval", "1s", "--", rawsysBin, "getppid", "100000")
	if res.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", res.code, res.stderr)
	}
	to := time.Now()
	// The final export completes before the agent exits: no waiting.
	reqs := recv.Requests()
	if len(reqs) == 0 {
		t.Fatalf("the receiver got nothing; stderr:\n%s", res.stderr)
	}
	pids := processPIDs(reqs)
	if len(pids) != 1 {
		t.Fatalf("exported process.pid values %v, want exactly one (the workload)", pids)
	}
	last := lastPoint(t, reqs, metricDuration, pids[0], "getppid")
	checkHistogram(t, "getppid duration", last.hist, 100000)
	checkProcessResource(t, last.res, "rawsys", from, to)
	if names := syscallNames(reqs, metricDuration, pids[0]); !slices.Equal(names, []string{"getppid"}) {
		t.Errorf("system calls exported for rawsys: %v, want only getppid", names)
	}
}

// TestCommandPrograms checks, while a held command runs, that the agent
// holds exactly the programs the leak check looks for (so that check can
// fail), that the exported pid is the agent's child, and that a known
// sleep is measured as such; and that the programs are gone afterwards.
// The command sleeps 2 × 0.9 s, so it is still running when the test
// reads the agent's children (a 0.7 s sleep had exited once under load).
func TestCommandPrograms(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	out := filepath.Join(t.TempDir(), "out.json")
	p := startAgent(t, startOpts{}, "run", "--probes", "syscalls", "--exporter", "otlp-json",
		"--output", out, "--interval", "1s", "--", rawsysBin, "sleep", "2", "900")
	p.waitAttached(10 * time.Second)
	agentPid := p.cmd.Process.Pid
	kids := children(agentPid)
	held := programNamesHeldBy(agentPid)
	var kidHeld []string
	for _, k := range kids {
		kidHeld = append(kidHeld, programNamesHeldBy(k)...)
	}
	code := p.wait(20 * time.Second)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
	}
	assertNoLeakedPrograms(t, p.baseline)

	want := []string{kernelName("follow_fork_btf"), kernelName("forget_exit_btf"), "sys_enter", "sys_exit"}
	if !slices.Equal(held, want) {
		t.Errorf("programs held by the running agent: %v, want %v", held, want)
	}
	if len(kidHeld) != 0 {
		t.Errorf("the command inherited BPF programs %v: they would outlive the agent", kidHeld)
	}
	if len(kids) != 1 {
		t.Fatalf("children of the agent while the command ran: %v, want the one command", kids)
	}
	reqs := readOTLPJSON(t, out)
	if pids := processPIDs(reqs); !slices.Equal(pids, []int64{int64(kids[0])}) {
		t.Fatalf("exported process.pid values %v, want only the command's pid %d", pids, kids[0])
	}
	last := lastPoint(t, reqs, metricDuration, int64(kids[0]), "nanosleep")
	checkHistogram(t, "nanosleep duration", last.hist, 2)
	if s := last.hist.GetSum(); s < 1.8 || s > 2.4 {
		t.Errorf("2 × nanosleep(900ms) measured as %vs", s)
	}
}

// TestWholeHostSIGINT: without a target every process is observed; SIGINT
// makes a final export and a clean exit, leaving no program behind.
func TestWholeHostSIGINT(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	out := filepath.Join(t.TempDir(), "out.json")
	// --probes pins the programs this test expects as more probes register.
	p := startAgent(t, startOpts{}, "run", "--probes", "syscalls", "--interval", "1s", "--exporter", "otlp-json", "--output", out)
	p.waitAttached(10 * time.Second)

	held := programNamesHeldBy(p.cmd.Process.Pid)
	if !slices.Equal(held, []string{"sys_enter", "sys_exit"}) {
		t.Errorf("programs held by the whole-host agent: %v, want [sys_enter sys_exit] (no target followers)", held)
	}

	// A workload started by the test, not the agent, is observed too.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := exec.CommandContext(ctx, rawsysBin, "getppid", "1234")
	if err := w.Run(); err != nil {
		t.Fatalf("rawsys: %v", err)
	}
	wpid := int64(w.Process.Pid)

	// Let one periodic export happen, so the final one is told apart from it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(out); bytes.IndexByte(b, '\n') >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no periodic export within 5s with --interval 1s; stderr:\n%s", p.stderr)
		}
	}
	sigint := time.Now()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0; stderr:\n%s", code, p.stderr)
	}
	assertNoLeakedPrograms(t, p.baseline)

	reqs := readOTLPJSON(t, out)
	if len(reqs) < 2 {
		t.Fatalf("%d exports, want a periodic one and the final one", len(reqs))
	}
	final := reqs[len(reqs)-1]
	var finalTime uint64
	for _, rm := range final.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				for _, dp := range m.GetHistogram().GetDataPoints() {
					finalTime = max(finalTime, dp.GetTimeUnixNano())
				}
			}
		}
	}
	if finalTime < uint64(sigint.UnixNano()) {
		t.Errorf("last export at %s is not after SIGINT at %s: no final export",
			time.Unix(0, int64(finalTime)).Format(time.RFC3339Nano), sigint.Format(time.RFC3339Nano))
	}
	if pids := processPIDs(reqs); len(pids) < 2 {
		t.Errorf("whole-host run exported processes %v, want many", pids)
	}
	last := lastPoint(t, reqs, metricDuration, wpid, "getppid")
	checkHistogram(t, "rawsys "+strconv.FormatInt(wpid, 10)+" getppid", last.hist, 1234)
}

// SIGTERM sent to the agent alone (not to the command's process group)
// reaches the command; the agent exports and exits with its status.
func TestSIGTERMReachesCommand(t *testing.T) {
	requireRoot(t)
	out := filepath.Join(t.TempDir(), "out.json")
	p := startAgent(t, startOpts{}, "run", "--probes", "syscalls", "--exporter", "otlp-json", "--output", out,
		"--interval", "1s", "--", "sleep", "30")
	p.waitAttached(20 * time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(15 * time.Second); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit code %d, want %d (the command killed by the forwarded SIGTERM); stderr:\n%s", code, 128+int(syscall.SIGTERM), p.stderr)
	}
	assertNoLeakedPrograms(t, p.baseline)
}
