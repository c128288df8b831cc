package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"

	"github.com/telagent/telagent/export/otlptest"
	"github.com/telagent/telagent/internal/testutil"
)

// startSleep starts `sleep 60`, a target that outlives the test's agent.
func startSleep(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// lineCount is the number of whole lines in path (0 if it does not exist).
func lineCount(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// waitLines waits until path has at least n whole lines and returns when.
func waitLines(t *testing.T, p *agentProc, path string, n int, timeout time.Duration) time.Time {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if lineCount(path) >= n {
			return time.Now()
		}
		select {
		case <-p.done:
			t.Fatalf("telagent exited (%v) while %s had %d lines, want %d; stderr:\n%s", p.waitErr, path, lineCount(path), n, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines after %v, want %d; stderr:\n%s", path, lineCount(path), timeout, n, p.stderr)
		}
	}
}

// hostCounter is the value of a host sum metric whose point has attribute
// key=value ("" matches any), in one request.
func hostCounter(req *colmetricspb.ExportMetricsServiceRequest, metric, key, value string) (int64, bool) {
	for _, rm := range req.GetResourceMetrics() {
		if _, ok := resourcePID(rm.GetResource()); ok {
			continue
		}
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if m.GetName() != metric {
					continue
				}
				for _, dp := range m.GetSum().GetDataPoints() {
					if key == "" || otlptest.Attr(dp.GetAttributes(), key).GetStringValue() == value {
						return dp.GetAsInt(), true
					}
				}
			}
		}
	}
	return 0, false
}

// A full disk ends no output for good: while the file system is full the
// intervals are queued (failed attempts and drops counted), no torn line
// is left, and once space is freed writing resumes within an interval or
// so (the queue's retry wait, at least 1 s). On a real 200 KiB tmpfs.
func TestOutputFullDisk(t *testing.T) {
	requireRoot(t)
	dir := testutil.MountTmpfs(t, 200<<10)
	out := filepath.Join(dir, "out.json")
	filler := testutil.FillFS(t, dir)
	// Two pages free: a line or two fit, then one is cut off by ENOSPC.
	st, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, st.Size()-8192); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, startOpts{}, "run", "--probes", "syscalls", "--pid", strconv.Itoa(startSleep(t)),
		"--interval", "200ms", "--exporter", "otlp-json", "--output", out)
	p.waitAttached(20 * time.Second)
	time.Sleep(2 * time.Second) // ten intervals, nearly all failing
	if !strings.Contains(p.stderr.String(), "no space left on device") {
		t.Errorf("no export failure logged while the disk was full; stderr:\n%s", p.stderr)
	}
	full := lineCount(out)
	if full > 2 {
		t.Fatalf("%d lines written with 8 KiB free: is the file system full?", full)
	}
	readOTLPJSONOrEmpty(t, out) // whole lines only, while full

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	resumed := waitLines(t, p, out, full+1, 5*time.Second)
	if d := resumed.Sub(freed); d > 2*time.Second {
		t.Errorf("writing resumed %v after space came back, want within the retry wait (1 s) and an interval", d.Round(time.Millisecond))
	}
	waitLines(t, p, out, full+3, 5*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, p.stderr)
	}
	assertNoLeakedPrograms(t, p.baseline)
	reqs := readOTLPJSON(t, out)
	// The failed attempts are counted in the agent's own metrics, and the
	// intervals that did not fit in the queue as dropped: nothing silent.
	last := reqs[len(reqs)-1]
	failures, _ := hostCounter(last, "telagent.export.attempts", "telagent.export.outcome", "failure")
	drops, _ := hostCounter(last, "telagent.export.drops", "", "")
	if failures == 0 {
		t.Errorf("last line counts no failed export attempt (drops %d); stderr:\n%s", drops, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "export recovered") {
		t.Errorf("no recovery logged; stderr:\n%s", p.stderr)
	}
	t.Logf("%d lines before space came back, resumed after %v; failed attempts %d, intervals dropped %d",
		full, resumed.Sub(freed).Round(time.Millisecond), failures, drops)
}

// readOTLPJSONOrEmpty is readOTLPJSON for a file that may be empty.
func readOTLPJSONOrEmpty(t *testing.T, path string) {
	t.Helper()
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		readOTLPJSON(t, path)
	}
}

// SIGHUP reopens the output file by name, as logrotate's postrotate (and
// the systemd unit's ExecReload) expects: after a rename the agent goes on
// writing the old file until the signal, then writes a new one; after a
// delete, likewise. The agent keeps running and its final export goes to
// the new file. Real signals, real renames.
func TestSIGHUPReopensOutput(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	out, rotated := filepath.Join(dir, "out.json"), filepath.Join(dir, "out.json.1")
	p := startAgent(t, startOpts{}, "run", "--probes", "syscalls", "--pid", strconv.Itoa(startSleep(t)),
		"--interval", "200ms", "--exporter", "otlp-json", "--output", out)
	p.waitAttached(20 * time.Second)
	waitLines(t, p, out, 1, 5*time.Second)

	if err := os.Rename(out, rotated); err != nil {
		t.Fatal(err)
	}
	n := lineCount(rotated)
	waitLines(t, p, rotated, n+1, 5*time.Second) // still the old file until told
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLines(t, p, out, 2, 5*time.Second)
	oldLines := lineCount(rotated)
	time.Sleep(500 * time.Millisecond)
	if got := lineCount(rotated); got != oldLines {
		t.Errorf("the rotated file grew from %d to %d lines after SIGHUP", oldLines, got)
	}

	// Deleted, then SIGHUP: a new file again.
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLines(t, p, out, 1, 5*time.Second)

	stop := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGHUP and SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	assertNoLeakedPrograms(t, p.baseline)
	if got := strings.Count(p.stderr.String(), "msg=\"output file reopened\""); got != 2 {
		t.Errorf("%d \"output file reopened\" log lines, want 2; stderr:\n%s", got, p.stderr)
	}
	readOTLPJSON(t, rotated) // whole lines
	reqs := readOTLPJSON(t, out)
	final := reqs[len(reqs)-1]
	var at uint64
	for _, rm := range final.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				for _, dp := range m.GetSum().GetDataPoints() {
					at = max(at, dp.GetTimeUnixNano())
				}
			}
		}
	}
	if at < uint64(stop.UnixNano()) {
		t.Errorf("the last line of the reopened file is from %s, before SIGTERM at %s: no final export there",
			time.Unix(0, int64(at)).Format(time.RFC3339Nano), stop.Format(time.RFC3339Nano))
	}
}

// A full metric set (process churn past --syscalls-max-entries) was
// counted in telagent.metric_set.overflows but never logged: now one
// warning per episode, however many intervals it lasts, and one line when
// it ends, as for a backend outage.
func TestMetricSetFullLoggedOnce(t *testing.T) {
	requireRoot(t)
	out := filepath.Join(t.TempDir(), "out.json")
	res := runAgent(t, startOpts{}, "run", "--probes", "syscalls", "--syscalls-max-entries", "4",
		"--interval", "200ms", "--exporter", "otlp-json", "--output", out,
		"--", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; sleep 0.1; done; sleep 1.5")
	if res.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", res.code, res.stderr)
	}
	reqs := readOTLPJSON(t, out)
	// Past 4 tuples the agent folds drained entries (entry_folds); the
	// programs fold only when the storage itself is full (overflows).
	entries, _ := hostCounter(reqs[len(reqs)-1], "telagent.metric_set.entry_folds", "telagent.metric_set.name", "syscalls")
	updates, _ := hostCounter(reqs[len(reqs)-1], "telagent.metric_set.overflows", "telagent.metric_set.name", "syscalls")
	folds := entries + updates
	if folds == 0 {
		t.Fatalf("no overflow folds counted with --syscalls-max-entries 4: the test did not fill the set; stderr:\n%s", res.stderr)
	}
	// Warnings and end lines alternate, a warning first; the first
	// episode spans the churn (many intervals with folds, one warning).
	var seq []string
	var firstLasted time.Duration
	for _, l := range strings.Split(res.stderr, "\n") {
		switch {
		case strings.Contains(l, `msg="metric set full: `):
			seq = append(seq, "full")
		case strings.Contains(l, `msg="metric set no longer full: new keys get their own series again"`):
			seq = append(seq, "end")
			if firstLasted == 0 {
				if _, v, ok := strings.Cut(l, "lasted="); ok {
					firstLasted, _ = time.ParseDuration(strings.Fields(v)[0])
				}
			}
		}
	}
	warnings := 0
	for i, s := range seq {
		if want := []string{"full", "end"}[i%2]; s != want {
			t.Errorf("log sequence %v: want warnings and end lines alternating, a warning first", seq)
			break
		}
		if s == "full" {
			warnings++
		}
	}
	if len(seq) < 2 || firstLasted < 800*time.Millisecond {
		t.Errorf("first episode lasted %v (sequence %v), want one warning over the ~1 s churn and its end; stderr:\n%s", firstLasted, seq, res.stderr)
	}
	t.Logf("%d folds; log sequence %v, first episode %v", folds, seq, firstLasted)
}
