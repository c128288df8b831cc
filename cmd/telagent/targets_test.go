package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// A selector that can never match is one line and exit code 2.
func TestSelectorErrors(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--exe", "/nonexistent/telagent-exe"}, "telagent: --exe /nonexistent/telagent-exe (no such file or directory)"},
		{[]string{"--exe", notExec}, "not executable"},
		{[]string{"--exe", "/"}, "not a regular file"},
		{[]string{"--comm", "a-name-of-sixteen"}, "at most 15"},
		{[]string{"--cgroup", "/nonexistent-telagent-cgroup"}, "no such file or directory"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			res := runAgent(t, startOpts{}, append([]string{"run"}, tc.args...)...)
			line := checkUsageError(t, res)
			if !strings.Contains(line, tc.want) {
				t.Errorf("stderr %q, want it to contain %q", line, tc.want)
			}
		})
	}
}

// mountsOfType are the mount points of file systems of type fstype.
func mountsOfType(t *testing.T, fstype string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if f, p := strings.Fields(pre), strings.Fields(post); ok && len(f) >= 5 && len(p) > 0 && p[0] == fstype {
			out = append(out, f[4])
		}
	}
	return out
}

// --cgroup "" selected the whole host silently, and a cgroup v1 directory
// was joined onto the v2 mount and reported missing; both are now the
// documented one-line errors.
func TestCgroupSelectorErrors(t *testing.T) {
	v2 := mountsOfType(t, "cgroup2")
	if len(v2) == 0 {
		t.Skip("no cgroup v2 file system mounted")
	}
	notCgroup := t.TempDir()
	cases := [][2]string{
		{"", "telagent: --cgroup empty path: name a cgroup directory, e.g. /system.slice/nginx.service (/ is every process)"},
		{notCgroup, "telagent: --cgroup " + notCgroup + ": not in the cgroup v2 file system (mounted at " + v2[0] + ")"},
	}
	// A v1 hierarchy (a hybrid host), or one mounted for the test.
	v1 := mountsOfType(t, "cgroup")
	if len(v1) == 0 {
		dir := t.TempDir()
		if err := syscall.Mount("cgroup", dir, "cgroup", 0, "none,name=telagenttest"); err != nil {
			t.Logf("no cgroup v1 hierarchy mounted and none can be (%v): v1 cases not run", err)
		} else {
			t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
			v1 = []string{dir}
		}
	}
	if len(v1) > 0 {
		cases = append(cases,
			[2]string{v1[0], "telagent: --cgroup " + v1[0] + ": not in the cgroup v2 file system (mounted at " + v2[0] + ")"},
			[2]string{v1[0] + "/no-such-child", "telagent: --cgroup " + v1[0] + "/no-such-child: not in the cgroup v2 file system (mounted at " + v2[0] + ")"})
	}
	for _, tc := range cases {
		line := checkUsageError(t, runAgent(t, startOpts{}, "run", "--cgroup", tc[0], "--duration", "1s"))
		if line != tc[1] {
			t.Errorf("--cgroup %q:\n got %q\nwant %q", tc[0], line, tc[1])
		}
	}
}

// --exe "" said its reason twice ("--exe : no such file or directory (no
// such file or directory)"); it is one line that says what is wrong.
func TestEmptyExeSelector(t *testing.T) {
	line := checkUsageError(t, runAgent(t, startOpts{}, "run", "--exe", "", "--duration", "1s"))
	if want := "telagent: --exe empty path: name an executable file, e.g. /usr/sbin/nginx"; line != want {
		t.Errorf("stderr:\n got %q\nwant %q", line, want)
	}
}

// event is a log record of the otlp-json output, reduced to what tests check.
type event struct {
	name  string
	pid   int64
	attrs map[string]string
}

// readOTLPJSONLogRequests decodes the event lines of an otlp-json output
// file (the metric lines are readOTLPJSON's).
func readOTLPJSONLogRequests(t *testing.T, path string) []*collogspb.ExportLogsServiceRequest {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*collogspb.ExportLogsServiceRequest
	for _, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		if !bytes.HasPrefix(line, []byte(`{"resourceLogs"`)) {
			continue
		}
		req := new(collogspb.ExportLogsServiceRequest)
		if err := protojson.Unmarshal(line, req); err != nil {
			t.Fatalf("not an OTLP/JSON ExportLogsServiceRequest: %v\n%.300s", err, line)
		}
		out = append(out, req)
	}
	return out
}

// readOTLPJSONLogs decodes the event lines of an otlp-json output file,
// reduced to what tests check.
func readOTLPJSONLogs(t *testing.T, path string) []event {
	t.Helper()
	var out []event
	for _, req := range readOTLPJSONLogRequests(t, path) {
		for _, rl := range req.ResourceLogs {
			pid, _ := resourcePID(rl.Resource)
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					ev := event{name: lr.EventName, pid: pid, attrs: map[string]string{}}
					for _, kv := range lr.Attributes {
						ev.attrs[kv.Key] = protojson.Format(kv.Value)
					}
					out = append(out, ev)
				}
			}
		}
	}
	return out
}

// A command killed by SIGKILL: its exit event, in the same otlp-json file
// as its metrics, records the signal; the agent exits with 128+9.
func TestExitEventOTLPJSON(t *testing.T) {
	requireRoot(t)
	out := filepath.Join(t.TempDir(), "out.json")
	res := runAgent(t, startOpts{}, "run", "--probes", "syscalls,process", "--exporter", "otlp-json", "--output", out,
		"--", "sh", "-c", "kill -KILL $$")
	if res.code != 128+9 {
		t.Fatalf("exit code %d, want 137; stderr:\n%s", res.code, res.stderr)
	}
	pids := processPIDs(readOTLPJSON(t, out))
	var exits []event
	for _, ev := range readOTLPJSONLogs(t, out) {
		if ev.name == "telagent.process.exit" {
			exits = append(exits, ev)
		}
	}
	if len(exits) != 1 {
		t.Fatalf("%d exit events, want the command's one", len(exits))
	}
	if got := exits[0].attrs["telagent.process.exit.signal"]; !strings.Contains(got, `"9"`) {
		t.Errorf("exit signal %s, want 9", got)
	}
	if _, ok := exits[0].attrs["process.exit.code"]; ok {
		t.Error("exit code set on a process killed by a signal")
	}
	found := false
	for _, p := range pids {
		found = found || p == exits[0].pid
	}
	if !found {
		t.Errorf("the exit event's process %d has no metrics in the same file (metrics for %v)", exits[0].pid, pids)
	}
}

// --comm: a process that takes the selected name at exec after the agent
// started becomes a target, and so do its descendants.
func TestCommSelector(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	dir := t.TempDir()
	// A unique command name: the basename of what is exec'd.
	bin := filepath.Join(dir, "telagent-c"+strconv.Itoa(os.Getpid()%10000))
	src, err := os.ReadFile(rawsysBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	comm := filepath.Base(bin)
	out := filepath.Join(dir, "out.json")
	p := startAgent(t, startOpts{}, "run", "--probes", "syscalls,process", "--comm", comm, "--exporter", "otlp-json",
		"--output", out, "--interval", "1h")
	p.waitAttached(10 * time.Second)
	cmd := exec.Command(bin, "getppid", "77")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
	}
	reqs := readOTLPJSON(t, out)
	pid := int64(cmd.Process.Pid)
	if pids := processPIDs(reqs); len(pids) != 1 || pids[0] != pid {
		t.Fatalf("metrics for %v, want only the selected process %d", pids, pid)
	}
	if got := lastPoint(t, reqs, "telagent.syscall.duration", pid, "getppid"); got.hist.GetCount() != 77 {
		t.Errorf("getppid calls %d, want 77", got.hist.GetCount())
	}
}

// --exe of a #! script never matched: the kernel runs the interpreter, and
// by sched_process_exec the script's own file is gone (README promised a
// match by it). It is a one-line usage error naming what does select the
// script, whether the script is named by its path, a symlink or a relative
// path; the claims of the message are checked against the kernel first.
func TestExeScriptSelector(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "job.sh")
	body := "#!/bin/sh -e\ncat /proc/$$/comm; readlink /proc/$$/exe\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "job-link")
	if err := os.Symlink(script, link); err != nil {
		t.Fatal(err)
	}
	// The oracle: run by its path, the script's process is named after the
	// file and runs the interpreter.
	out, err := exec.Command(script).Output()
	if err != nil {
		t.Fatal(err)
	}
	interp, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(out)); len(got) != 2 || got[0] != "job.sh" || got[1] != interp {
		t.Fatalf("the script ran as %q, want comm job.sh and exe %s", got, interp)
	}
	tail := ": a #! script, which runs as its interpreter /bin/sh, never as this file, so it can never match; " +
		"select it with --comm job.sh (its processes' name when started by this file name) or --exe /bin/sh (every process of that interpreter)"
	for _, tc := range []struct {
		name string
		opts startOpts
		args []string
		want string
	}{
		{"path", startOpts{}, []string{"run", "--exe", script, "--duration", "1s"}, "telagent: --exe " + script + tail},
		{"top", startOpts{}, []string{"top", "--exe", script}, "telagent: --exe " + script + tail},
		// A symlink is followed to the file, but the name its processes
		// get is the link's: that is the one to suggest.
		{"symlink", startOpts{}, []string{"run", "--exe", link, "--duration", "1s"},
			"telagent: --exe " + link + strings.Replace(tail, "--comm job.sh", "--comm job-link", 1)},
		{"relative", startOpts{wrapper: []string{"sh", "-c", `cd "$1" && shift && exec "$@"`, "sh", dir}},
			[]string{"run", "--exe", "./job.sh", "--duration", "1s"}, "telagent: --exe ./job.sh" + tail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := checkUsageError(t, runAgent(t, tc.opts, tc.args...))
			if line != tc.want {
				t.Errorf("stderr:\n got %q\nwant %q", line, tc.want)
			}
		})
	}
	// The interpreter itself is still a valid --exe.
	if _, err := os.Stat("/bin/sh"); err == nil {
		res := runAgent(t, startOpts{}, "run", "--exe", "/bin/sh", "--probes", "sched", "--duration", "1s", "--exporter", "otlp-json", "--output", filepath.Join(dir, "out.json"))
		if res.code != 0 {
			t.Errorf("--exe /bin/sh: exit %d, stderr %s", res.code, res.stderr)
		}
	}
}
