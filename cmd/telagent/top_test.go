package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tmuxSession is one detached tmux server of its own, its socket in the
// test's temporary directory (-S), so that the test neither sees nor
// touches anybody else's tmux and leaves no socket behind.
type tmuxSession struct {
	t      *testing.T
	socket string
	stderr string // where the command's stderr goes, for failure messages
}

func startTmux(t *testing.T, width, height int, stderr, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux)")
	}
	s := &tmuxSession{t: t, socket: filepath.Join(t.TempDir(), "tmux"), stderr: stderr}
	t.Cleanup(func() { exec.Command("tmux", "-S", s.socket, "kill-server").Run() })
	out, err := exec.Command("tmux", "-S", s.socket, "-f", "/dev/null", "new-session", "-d",
		"-x", strconv.Itoa(width), "-y", strconv.Itoa(height), command).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	return s
}

func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"-S", s.socket, "send-keys"}, keys...)...).CombinedOutput(); err != nil {
		s.t.Fatalf("tmux send-keys %v: %v: %s", keys, err, out)
	}
}

func (s *tmuxSession) capture() string {
	out, _ := exec.Command("tmux", "-S", s.socket, "capture-pane", "-p").Output()
	return string(out)
}

func (s *tmuxSession) alive() bool {
	return exec.Command("tmux", "-S", s.socket, "has-session").Run() == nil
}

// waitScreen polls the pane until ok accepts it.
func (s *tmuxSession) waitScreen(what string, timeout time.Duration, ok func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var screen string
	for time.Now().Before(deadline) {
		if screen = s.capture(); ok(screen) {
			return screen
		}
		if !s.alive() {
			errOut, _ := os.ReadFile(s.stderr)
			s.t.Fatalf("%s: the session ended; stderr:\n%s", what, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("%s: not on screen within %s; screen:\n%s", what, timeout, screen)
	return ""
}

// topRow is a process row of the view: PID COMM CPU% RUNQ-P50 RUNQ-P99
// SYSCALL/S ERR/S FAULT/S DISK/S RETRANS/S.
type topRow struct {
	pid      int
	comm     string
	syscalls string
	fields   []string
}

var topRowRE = regexp.MustCompile(`^[> ]\s*(\d+) (\S+)\s+(.*)$`)

func topRows(screen string) []topRow {
	var rows []topRow
	for _, line := range strings.Split(screen, "\n") {
		m := topRowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		if len(f) != 8 {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		rows = append(rows, topRow{pid: pid, comm: m[2], syscalls: f[3], fields: f})
	}
	return rows
}

func rowOf(rows []topRow, comm string) (topRow, int) {
	for i, r := range rows {
		if r.comm == comm {
			return r, i
		}
	}
	return topRow{}, -1
}

// startSleeper runs rawsys under the name comm making n nanosleeps of ms
// milliseconds: at most 1000/ms system calls a second, exactly that many
// calls in all.
func startSleeper(t *testing.T, dir, comm string, n, ms int) *exec.Cmd {
	t.Helper()
	bin := filepath.Join(dir, comm)
	data, err := os.ReadFile(rawsysBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "sleep", strconv.Itoa(n), strconv.Itoa(ms))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestTopTmux drives `telagent top` in a real terminal (tmux): two known
// workloads appear with the syscall rate their nanosleep loops allow, the
// sort keys reorder them, the filter hides one, Enter shows the picked
// process's histograms as bars, q quits, the terminal is back in cooked
// mode and no BPF program is left behind.
func TestTopTmux(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	dir := t.TempDir()
	// rawsys: ≤ 200 nanosleep/s; zsleeper: ≤ 500/s. Long enough to outlive
	// the test; killed at cleanup.
	slow := startSleeper(t, dir, "rawsys", 6000, 5)
	fast := startSleeper(t, dir, "zsleeper", 15000, 2)
	baseline := maxProgramID(t)

	status := filepath.Join(dir, "status")
	s := startTmux(t, 120, 40, filepath.Join(dir, "stderr"), fmt.Sprintf("%s top --comm rawsys --comm zsleeper --interval 1s 2>%s; echo exit=$? >%s; stty -a >>%s",
		agentBin, filepath.Join(dir, "stderr"), status, status))

	// The second interval onwards has rates over a whole interval.
	screen := s.waitScreen("both workloads with rates", 20*time.Second, func(sc string) bool {
		_, i := rowOf(topRows(sc), "rawsys")
		_, j := rowOf(topRows(sc), "zsleeper")
		return i >= 0 && j >= 0 && strings.Contains(sc, "interval 1s")
	})
	rows := topRows(screen)
	for _, w := range []struct {
		comm string
		pid  int
		max  float64 // 1000/ms calls a second
	}{{"rawsys", slow.Process.Pid, 200}, {"zsleeper", fast.Process.Pid, 500}} {
		r, _ := rowOf(rows, w.comm)
		if r.pid != w.pid {
			t.Errorf("%s: pid %d, want %d", w.comm, r.pid, w.pid)
		}
		rate, err := strconv.ParseFloat(r.syscalls, 64)
		// nanosleep sleeps at least ms (plus timer slack): never above
		// 1000/ms; a loaded 2-CPU machine may wake it late, but not by
		// half.
		if err != nil || rate > w.max*1.05 || rate < w.max*0.5 {
			t.Errorf("%s: %s syscalls/s, want between %.0f and %.0f\n%s", w.comm, r.syscalls, w.max*0.5, w.max*1.05, screen)
		}
		if r.fields[4] != "0.0" { // ERR/S: nanosleep never fails here
			t.Errorf("%s: %s errors/s, want 0.0", w.comm, r.fields[4])
		}
	}

	// s: busiest by syscalls first; n: by name, ascending.
	s.keys("s")
	screen = s.waitScreen("sorted by syscalls", 5*time.Second, func(sc string) bool {
		_, i := rowOf(topRows(sc), "zsleeper")
		_, j := rowOf(topRows(sc), "rawsys")
		return strings.Contains(sc, "sort: SYSCALL/S desc") && i >= 0 && j >= 0
	})
	if _, i := rowOf(topRows(screen), "zsleeper"); i != 0 {
		t.Errorf("sorted by syscalls/s, zsleeper is row %d, want 0:\n%s", i, screen)
	}
	s.keys("n")
	screen = s.waitScreen("sorted by name", 5*time.Second, func(sc string) bool {
		return strings.Contains(sc, "sort: COMM asc")
	})
	if _, i := rowOf(topRows(screen), "rawsys"); i != 0 {
		t.Errorf("sorted by name, rawsys is row %d, want 0:\n%s", i, screen)
	}

	// Filter: only zsleeper is left.
	s.keys("/", "zsl", "Enter")
	screen = s.waitScreen("filtered", 5*time.Second, func(sc string) bool {
		return strings.Contains(sc, `filter: "zsl"`)
	})
	if _, i := rowOf(topRows(screen), "rawsys"); i >= 0 {
		t.Errorf("rawsys still shown with filter zsl:\n%s", screen)
	}
	if r, i := rowOf(topRows(screen), "zsleeper"); i != 0 || !strings.HasPrefix(strings.Split(screen, "\n")[2], ">") {
		t.Errorf("zsleeper (%v) not the highlighted first row:\n%s", r, screen)
	}

	// Pick it: its histograms drawn as bars.
	s.keys("Enter")
	bar := regexp.MustCompile(`(?m)^\s+\S+ -> \S+\s+: \d+\s+\|\*+ *\|$`)
	screen = s.waitScreen("histograms of zsleeper", 5*time.Second, func(sc string) bool {
		return strings.Contains(sc, fmt.Sprintf("process %d zsleeper", fast.Process.Pid)) &&
			strings.Contains(sc, "telagent.syscall.duration:") && bar.MatchString(sc)
	})
	// Every nanosleep of 2 ms lands in (1.05ms, 2.10ms] or, woken late, above.
	if !regexp.MustCompile(`1\.05ms -> 2\.10ms : \d+ +\|\*`).MatchString(screen) &&
		!regexp.MustCompile(`2\.10ms -> 4\.19ms : \d+ +\|\*`).MatchString(screen) {
		t.Errorf("no 2 ms bucket in the syscall histogram:\n%s", screen)
	}

	s.keys("q")
	deadline := time.Now().Add(15 * time.Second)
	for s.alive() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if s.alive() {
		t.Fatalf("top did not exit on q:\n%s", s.capture())
	}
	checkTopExit(t, status, filepath.Join(dir, "stderr"))
	assertNoLeakedPrograms(t, baseline)
}

// checkTopExit reads what the shell wrote after top returned: its exit
// status 0, and a terminal back in cooked mode (echo and icanon on).
func checkTopExit(t *testing.T, status, stderr string) {
	t.Helper()
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatalf("top's shell left no status: %v", err)
	}
	out := string(b)
	errOut, _ := os.ReadFile(stderr)
	if !strings.HasPrefix(out, "exit=0\n") {
		t.Errorf("top exited with %q, stderr:\n%s", strings.SplitN(out, "\n", 2)[0], errOut)
	}
	for _, mode := range []string{" icanon ", " echo ", " isig ", " opost "} {
		if !strings.Contains(strings.ReplaceAll(out, "\n", " "), mode) {
			t.Errorf("terminal not restored: stty -a lacks %q:\n%s", strings.TrimSpace(mode), out)
		}
	}
}

// TestTopTmuxSignal: SIGTERM ends top like q does, terminal restored,
// programs detached.
func TestTopTmuxSignal(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	dir := t.TempDir()
	startSleeper(t, dir, "zsleeper", 15000, 2)
	baseline := maxProgramID(t)
	status, pidFile := filepath.Join(dir, "status"), filepath.Join(dir, "pid")
	// The inner shell writes its pid and becomes top (exec), in the
	// foreground of the terminal; the outer one reports how it ended.
	s := startTmux(t, 120, 30, filepath.Join(dir, "stderr"), fmt.Sprintf("sh -c 'echo $$ >%s; exec %s top --comm zsleeper --interval 1s' 2>%s; echo exit=$? >%s; stty -a >>%s",
		pidFile, agentBin, filepath.Join(dir, "stderr"), status, status))
	s.waitScreen("zsleeper", 20*time.Second, func(sc string) bool {
		_, i := rowOf(topRows(sc), "zsleeper")
		return i >= 0
	})
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for s.alive() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if s.alive() {
		t.Fatalf("top did not exit on SIGTERM:\n%s", s.capture())
	}
	checkTopExit(t, status, filepath.Join(dir, "stderr"))
	assertNoLeakedPrograms(t, baseline)
}

// TestTopPlain: without a terminal, top prints a text table per interval.
func TestTopPlain(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	dir := t.TempDir()
	fast := startSleeper(t, dir, "zsleeper", 15000, 2)
	res := runAgent(t, startOpts{}, "top", "--comm", "zsleeper", "--interval", "1s", "--duration", "2500ms")
	if res.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", res.code, res.stderr)
	}
	if strings.Contains(res.stdout, "\x1b[") {
		t.Errorf("escape sequences in plain output:\n%q", res.stdout)
	}
	if n := strings.Count(res.stdout, "--- "); n < 2 {
		t.Errorf("%d tables in 2.5 s at 1 s, want ≥ 2:\n%s", n, res.stdout)
	}
	r, i := rowOf(topRows(res.stdout), "zsleeper")
	if i < 0 || r.pid != fast.Process.Pid {
		t.Errorf("no zsleeper row with pid %d:\n%s", fast.Process.Pid, res.stdout)
	}
}
