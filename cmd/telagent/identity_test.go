package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export/otlptest"
)

// identity is the process entity's identifying attributes as exported.
type identity struct{ pid, created string }

// TestIdentityStableAcrossRestarts: a long-running process observed by two
// agent runs in a row (the first stopped with SIGINT) has the same
// identifying attributes (process.pid, process.creation.time) in both runs,
// on every metric of each run, and they are the ones /proc gives (boot time
// plus starttime), not when the agent first saw the process.
func TestIdentityStableAcrossRestarts(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	target := exec.CommandContext(ctx, "sh", "-c", "while :; do cat /proc/self/stat >/dev/null; sleep 0.2; done")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = target.Process.Kill()
		_ = target.Wait()
	}()
	pid := target.Process.Pid
	want := identity{strconv.Itoa(pid), procCreationTime(t, pid)}

	var runs []map[string][]identity // per run: metric name → identities of the target seen on it
	for run := 1; run <= 2; run++ {
		out := filepath.Join(t.TempDir(), "run.json")
		p := startAgent(t, startOpts{}, "run", "--pid", strconv.Itoa(pid), "--exporter", "otlp-json",
			"--output", out, "--interval", "1s")
		p.waitAttached(10 * time.Second)
		// Two periodic exports, then SIGINT for the final one.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if b, _ := os.ReadFile(out); bytes.Count(b, []byte("\n")) >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d: fewer than two exports within 10s; stderr:\n%s", run, p.stderr)
			}
		}
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(15 * time.Second); code != 0 {
			t.Fatalf("run %d: exit code %d after SIGINT; stderr:\n%s", run, code, p.stderr)
		}
		assertNoLeakedPrograms(t, p.baseline)

		seen := map[string][]identity{}
		for _, req := range readOTLPJSON(t, out) {
			for _, rm := range req.GetResourceMetrics() {
				attrs := rm.GetResource().GetAttributes()
				if otlptest.Attr(attrs, attrPID).GetIntValue() != int64(pid) {
					continue
				}
				id := identity{strconv.FormatInt(otlptest.Attr(attrs, attrPID).GetIntValue(), 10), otlptest.Attr(attrs, attrCreation).GetStringValue()}
				for _, sm := range rm.GetScopeMetrics() {
					for _, m := range sm.GetMetrics() {
						seen[m.GetName()] = append(seen[m.GetName()], id)
					}
				}
			}
		}
		if len(seen) == 0 {
			t.Fatalf("run %d exported nothing for the target process %d", run, pid)
		}
		for metric, ids := range seen {
			for _, id := range ids {
				if id != want {
					t.Errorf("run %d, metric %s: target identity (%s=%s, %s=%q), want (%s, %q) from /proc",
						run, metric, attrPID, id.pid, attrCreation, id.created, want.pid, want.created)
				}
			}
		}
		runs = append(runs, seen)
	}
	// Both runs saw the target on the same metrics (syscalls at least).
	for metric := range runs[0] {
		if len(runs[1][metric]) == 0 {
			t.Errorf("metric %s carried the target in run 1 but not in run 2", metric)
		}
	}
	if len(runs[0][metricDuration]) == 0 {
		t.Errorf("no %s for the target", metricDuration)
	}
	// Every key the entity declares as identifying was compared.
	if len(entity.EntityProcess.Identifying) != 2 {
		t.Errorf("the process entity's identifying attributes are now %v: compare them all", entity.EntityProcess.Identifying)
	}
}

// procCreationTime is process.creation.time computed independently of the
// agent: /proc/stat btime plus /proc/<pid>/stat starttime (clock ticks of
// 1/100 s), in RFC 3339 UTC.
func procCreationTime(t *testing.T, pid int) string {
	t.Helper()
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	ticks, err := strconv.ParseInt(fields[22-3], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	var btime int64
	for line := range strings.SplitSeq(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			btime, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if btime == 0 {
		t.Fatal("no btime in /proc/stat")
	}
	return time.Unix(btime, 0).Add(time.Duration(ticks) * 10 * time.Millisecond).UTC().Format(time.RFC3339Nano)
}
