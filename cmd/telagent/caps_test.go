package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telagent/telagent/internal/privilege"
)

// agentCaps are the capabilities the agent is granted in the least
// privilege tests (and in deploy/): CAP_SYS_RESOURCE is not among them,
// since with memcg accounting (5.11+) RLIMIT_MEMLOCK does not apply.
var agentCaps = []string{"bpf", "perfmon", "sys_ptrace", "dac_read_search"}

// setpriv is a command that runs the agent as nobody with exactly caps:
// inheritable and ambient (so they survive the exec as a non-root user)
// and bounding.
func setpriv(t *testing.T, caps []string) []string {
	t.Helper()
	path, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	list := "-all"
	for _, c := range caps {
		list += ",+" + c
	}
	amb := "-all"
	for _, c := range caps {
		amb += ",+" + c
	}
	return []string{path, "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=" + list, "--ambient-caps=" + amb, "--bounding-set=" + list}
}

// worldWritableDir is a temporary directory nobody can write to.
func worldWritableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is 0700 for root: open it up for the agent.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func procCaps(t *testing.T, pid int) map[int]privilege.ThreadState {
	t.Helper()
	th, err := privilege.ThreadCaps("/proc/" + strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// TestLeastPrivilege runs the agent as nobody with only CAP_BPF,
// CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: it counts a held
// command's system calls exactly, every thread has dropped to what
// collection needs once attached, the command inherits no capability, and
// the agent listens on no socket.
func TestLeastPrivilege(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	dir := worldWritableDir(t)
	out := filepath.Join(dir, "out.json")
	const sleeps = 8 // rawsys sleep 8 250: 2 s of nanosleep, time to look at it
	p := startAgent(t, startOpts{wrapper: setpriv(t, agentCaps)},
		"run", "--probes", "syscalls", "--exporter", "otlp-json", "--output", out, "--interval", "1s",
		"--", rawsysBin, "sleep", strconv.Itoa(sleeps), "250")
	p.waitAttached(20 * time.Second)
	agentPid := p.cmd.Process.Pid // setpriv execs the agent

	// The agent: every thread has exactly what collection needs (on 6.5+
	// kernels CAP_BPF is not needed for map reads; privilege's tests check
	// that claim against the kernel), no ambient set.
	want, err := privilege.AfterAttach()
	if err != nil {
		t.Fatal(err)
	}
	threads := procCaps(t, agentPid)
	if len(threads) < 2 {
		t.Errorf("the agent has %d threads; the check means little with one", len(threads))
	}
	for tid, st := range threads {
		if st.Effective != want || st.Permitted != want || st.Ambient != 0 || st.Inheritable != 0 {
			t.Errorf("agent thread %d: effective %s permitted %s inheritable %s ambient %s; want %s only",
				tid, st.Effective, st.Permitted, st.Inheritable, st.Ambient, want)
		}
	}
	if !strings.Contains(p.stderr.String(), "capabilities dropped") {
		t.Errorf("no \"capabilities dropped\" log line:\n%s", p.stderr)
	}
	// The command: a child of the agent, with no capability at all, not
	// even in its inheritable set (which would hand them to any program
	// with file capabilities it runs).
	// The thread that forked the command ends after releasing it and the
	// kernel moves the command to another agent thread's children; once,
	// in a loaded CI run, no child was listed right after the attach (not
	// reproduced in 12 runs under load since): look again for a second.
	kids := children(agentPid)
	for deadline := time.Now().Add(time.Second); len(kids) != 1 && time.Now().Before(deadline); kids = children(agentPid) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(kids) != 1 {
		t.Fatalf("agent children %v, want the one command", kids)
	}
	for tid, st := range procCaps(t, kids[0]) {
		if st.Effective != 0 || st.Permitted != 0 || st.Inheritable != 0 || st.Ambient != 0 {
			t.Errorf("command thread %d inherited capabilities: effective %s permitted %s inheritable %s ambient %s",
				tid, st.Effective, st.Permitted, st.Inheritable, st.Ambient)
		}
	}
	if n := listeningSockets(t, agentPid); len(n) > 0 {
		t.Errorf("the agent listens on %v without being asked to", n)
	}

	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
	}
	assertNoLeakedPrograms(t, p.baseline)
	reqs := readOTLPJSON(t, out)
	pid := onlyProcess(t, reqs, agentPid)
	last := lastPoint(t, reqs, metricDuration, pid, "nanosleep")
	checkHistogram(t, "nanosleep duration", last.hist, sleeps)
}

// TestLeastPrivilegeMissing: without any one of the mandatory
// capabilities the agent exits 2 with one line naming it.
func TestLeastPrivilegeMissing(t *testing.T) {
	requireRoot(t)
	for i, missing := range agentCaps {
		caps := append(append([]string{}, agentCaps[:i]...), agentCaps[i+1:]...)
		t.Run(missing, func(t *testing.T) {
			w := setpriv(t, caps)
			cmd := exec.Command(w[0], append(w[1:], agentBin, "run", "--interval", "1s")...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if err != nil && code < 0 {
				t.Fatal(err)
			}
			line := checkUsageError(t, result{code: code, stdout: stdout.String(), stderr: stderr.String()})
			name := "CAP_" + strings.ToUpper(missing)
			if !strings.Contains(line, "missing capability "+name+" (") {
				t.Errorf("stderr %q does not name %s alone as missing", line, name)
			}
			if !strings.Contains(line, "setcap cap_dac_read_search,cap_sys_ptrace,cap_perfmon,cap_bpf+ep ") {
				t.Errorf("stderr %q does not say how to grant it", line)
			}
		})
	}
}

func TestCapabilitiesKeepFlag(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"telagent", "run", "--capabilities-keep", "bfp"}, io.Discard, &stderr)
	want := "telagent: --capabilities-keep \"bfp\": unknown capability \"bfp\" (want auto, all, none or names such as sys_ptrace,bpf)\n"
	if code != 2 || stderr.String() != want {
		t.Errorf("exit %d, stderr %q; want 2, %q", code, stderr.String(), want)
	}
	for _, spec := range []string{"auto", "all", "none", "bpf, sys_ptrace", "CAP_DAC_READ_SEARCH"} {
		if _, err := parseCapsKeep(spec); err != nil {
			t.Errorf("parseCapsKeep(%q): %v", spec, err)
		}
	}
}

// listeningSockets lists the TCP sockets in LISTEN state and the bound
// UDP sockets held by pid, as "tcp:port".
func listeningSockets(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			// st 0A is TCP_LISTEN; any UDP socket of ours counts as bound.
			if strings.HasPrefix(proto, "udp") || f[3] == "0A" {
				out = append(out, proto+":"+f[1])
			}
		}
	}
	return out
}
