package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/telagent/telagent/probes/all"
)

// validProbes is the list an unknown --probes name is answered with: every
// registered probe, in registration order.
func validProbes() string {
	var names []string
	for _, p := range all.New(all.Options{}) {
		names = append(names, p.Info().Name)
	}
	return strings.Join(names, ", ")
}

// absentPID returns a pid below pid_max that no process has.
func absentPID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatalf("read pid_max: %v", err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid_max %q: %v", b, err)
	}
	for pid := max - 1; pid > 1; pid-- {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			return pid
		}
	}
	t.Fatal("every pid is taken")
	return 0
}

// checkUsageError checks the contract for bad input: exit code 2, nothing on
// stdout, exactly one line "telagent: ..." on stderr.
func checkUsageError(t *testing.T, res result) string {
	t.Helper()
	if res.code != 2 {
		t.Errorf("exit code %d, want 2", res.code)
	}
	if res.stdout != "" {
		t.Errorf("stdout is not empty:\n%s", res.stdout)
	}
	if !strings.HasPrefix(res.stderr, "telagent: ") || !strings.HasSuffix(res.stderr, "\n") ||
		strings.Count(res.stderr, "\n") != 1 {
		t.Errorf("stderr is not exactly one line \"telagent: ...\":\n%s", res.stderr)
	}
	return strings.TrimSuffix(res.stderr, "\n")
}

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.json")
	missing := absentPID(t)

	tests := []struct {
		name string
		args []string
		// want is the exact stderr line, or with substr a part of it.
		want   string
		substr bool
		// root: the check comes after the privilege check, so it is only
		// reachable as root.
		root bool
	}{
		{
			name: "unknown probe lists the valid ones",
			args: []string{"run", "--probes", "bogus"},
			want: `telagent: --probes: unknown probe "bogus" (valid: ` + validProbes() + `)`,
		},
		{
			name: "unknown probe among valid ones",
			args: []string{"run", "--probes", "syscalls,nope"},
			want: `telagent: --probes: unknown probe "nope" (valid: ` + validProbes() + `)`,
		},
		{
			name: "entity state interval below the bound",
			args: []string{"run", "--entity-events", "--entity-state-interval", "5s"},
			want: "telagent: --entity-state-interval 5s: must be whole seconds from 10s to 24h (entity.report.interval is in seconds), e.g. 5m",
		},
		{
			name: "entity state interval above the bound",
			args: []string{"run", "--entity-events", "--entity-state-interval", "25h"},
			want: "telagent: --entity-state-interval 25h0m0s: must be whole seconds from 10s to 24h (entity.report.interval is in seconds), e.g. 5m",
		},
		{
			name: "entity state interval not whole seconds",
			args: []string{"run", "--entity-events", "--entity-state-interval", "10.5s"},
			want: "telagent: --entity-state-interval 10.5s: must be whole seconds from 10s to 24h (entity.report.interval is in seconds), e.g. 5m",
		},
		{
			name: "entity state interval without entity events",
			args: []string{"run", "--entity-state-interval", "1m"},
			want: "telagent: --entity-state-interval 1m0s: only with --entity-events (add --entity-events, or drop the interval)",
		},
		{
			name: "pid beyond any pid",
			args: []string{"run", "--pid", "999999999"},
			want: "telagent: --pid 999999999: no such process",
		},
		{
			name: "pid that no process has",
			args: []string{"run", "--pid", strconv.Itoa(missing)},
			want: "telagent: --pid " + strconv.Itoa(missing) + ": no such process",
		},
		{
			name: "pid not a number",
			args: []string{"run", "--pid", "abc"},
			want: `telagent: --pid "abc": not a process id`,
		},
		{
			name: "pid zero",
			args: []string{"run", "--pid", "0"},
			want: `telagent: --pid "0": not a process id`,
		},
		{
			name: "unwritable output",
			args: []string{"run", "--exporter", "otlp-json", "--output", "/nonexistent/dir/x.json"},
			want: "telagent: --output /nonexistent/dir/x.json: no such file or directory",
			root: true,
		},
		{
			name: "otlp-json without output",
			args: []string{"run", "--exporter", "otlp-json"},
			want: "telagent: --exporter otlp-json needs --output FILE (or - for stdout)",
			root: true,
		},
		{
			name:   "interval not a duration",
			args:   []string{"run", "--interval", "abc"},
			want:   `telagent: invalid value "abc" for flag -interval`,
			substr: true,
		},
		{
			name: "interval zero",
			args: []string{"run", "--interval", "0"},
			want: "telagent: --interval 0s: must be positive, e.g. 10s",
		},
		{
			name: "interval below the minimum",
			args: []string{"run", "--interval", "1ns"},
			want: "telagent: --interval 1ns: must be at least 100ms (every interval reads each metric set and exports), e.g. 10s",
		},
		{
			name: "top interval below the minimum",
			args: []string{"top", "--interval", "99ms"},
			want: "telagent: --interval 99ms: must be at least 100ms (every interval reads each metric set and exports), e.g. 2s",
		},
		{
			name: "negative duration",
			args: []string{"run", "--duration", "-1s"},
			want: "telagent: --duration -1s: must not be negative",
		},
		{
			name: "bpf memory not a size",
			args: []string{"run", "--bpf-memory", "lots"},
			want: `telagent: --bpf-memory "lots": not a size, e.g. 48MiB`,
		},
		{
			name: "bpf memory unit",
			args: []string{"run", "--bpf-memory", "64MB"},
			want: `telagent: --bpf-memory "64MB": unknown unit "MB" (B, KiB, MiB, GiB), e.g. 48MiB`,
		},
		{
			name:   "bpf memory too small",
			args:   []string{"run", "--bpf-memory", "100KiB"},
			want:   "telagent: --bpf-memory 100KiB: too small for the 7 metric sets of the selected probes on this host (",
			substr: true,
		},
		{
			name:   "bpf memory too small for one probe",
			args:   []string{"run", "--probes", "syscalls", "--bpf-memory", "1KiB"},
			want:   "telagent: --bpf-memory 1KiB: too small for the 1 metric sets of the selected probes on this host (",
			substr: true,
		},
		{
			name: "syscalls max entries zero",
			args: []string{"run", "--syscalls-max-entries", "0"},
			want: "telagent: --syscalls-max-entries 0: must be between 1 and 1048576",
		},
		{
			name: "sched max entries too large",
			args: []string{"run", "--sched-max-entries", "2000000"},
			want: "telagent: --sched-max-entries 2000000: must be between 1 and 1048576",
		},
		{
			name: "unknown exporter",
			args: []string{"run", "--exporter", "bogus", "--output", out},
			want: `telagent: --exporter "bogus": want console, otlp or otlp-json`,
			root: true,
		},
		{
			name: "unknown log level",
			args: []string{"run", "--log-level", "loud"},
			want: `telagent: --log-level "loud": want debug, info, warn or error`,
		},
		{
			name:   "unknown flag",
			args:   []string{"run", "--no-such-flag"},
			want:   "telagent: flag provided but not defined: -no-such-flag",
			substr: true,
		},
		{
			name: "command not found",
			args: []string{"run", "--", "/nonexistent/telagent-cmd", "x"},
			want: `telagent: command "/nonexistent/telagent-cmd": not found or not executable`,
		},
		{
			name:   "unknown command",
			args:   []string{"runn"},
			want:   `telagent: unknown command "runn"`,
			substr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				requireRoot(t)
			}
			line := checkUsageError(t, runAgent(t, startOpts{}, tc.args...))
			if tc.substr {
				if !strings.Contains(line, tc.want) {
					t.Errorf("stderr %q does not contain %q", line, tc.want)
				}
			} else if line != tc.want {
				t.Errorf("stderr:\n got %q\nwant %q", line, tc.want)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a rejected command line created its output file %s (stat: %v)", out, err)
	}
}

func TestCLIMissingPrivileges(t *testing.T) {
	requireRoot(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	res := runAgent(t, startOpts{cred: nobody}, "run", "--interval", "1s")
	line := checkUsageError(t, res)
	if !strings.Contains(line, "missing capabilities CAP_BPF (") || !strings.Contains(line, "Run as root, or grant them") {
		t.Errorf("stderr %q does not say which privileges are needed", line)
	}
}

func TestProbesCommand(t *testing.T) {
	res := runAgent(t, startOpts{}, "probes")
	if res.code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if f := strings.Fields(lines[0]); len(f) < 2 || f[0] != "PROBE" || f[1] != "SUPPORTED" {
		t.Errorf("header %q, want PROBE SUPPORTED ...", lines[0])
	}
	found := false
	for _, l := range lines[1:] {
		if l == "" {
			break // the storage table follows
		}
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "syscalls" {
			found = true
			if f[1] != "yes" {
				t.Errorf("syscalls is not supported on this kernel: %q", l)
			}
		}
	}
	if !found {
		t.Errorf("no syscalls row in:\n%s", res.stdout)
	}
}

func TestVersionCommand(t *testing.T) {
	res := runAgent(t, startOpts{}, "version")
	if res.code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", res.code, res.stderr)
	}
	if !regexp.MustCompile(`^telagent \S+\n$`).MatchString(res.stdout) {
		t.Errorf("stdout %q, want one line \"telagent VERSION\"", res.stdout)
	}
}

// `probes` fits its lines into COLUMNS (80 when unset and not a terminal):
// the table it printed was 533 columns wide whatever the terminal. Every
// word of each probe's description is still there.
func TestProbesCommandWidth(t *testing.T) {
	for _, cols := range []string{"", "60", "200"} {
		t.Run("COLUMNS="+cols, func(t *testing.T) {
			t.Setenv("COLUMNS", cols)
			res := runAgent(t, startOpts{}, "probes")
			if res.code != 0 {
				t.Fatalf("exit code %d, stderr:\n%s", res.code, res.stderr)
			}
			width := 80
			if cols != "" {
				width, _ = strconv.Atoi(cols)
			}
			for _, l := range strings.Split(res.stdout, "\n") {
				if n := utf8.RuneCountInString(l); n > width {
					t.Errorf("line of %d columns, want at most %d: %q", n, width, l)
				}
			}
			words := strings.Join(strings.Fields(res.stdout), " ")
			for _, p := range all.New(all.Options{}) {
				for _, text := range []string{p.Info().Measures, p.Info().Hooks, p.Info().Requires} {
					if !strings.Contains(words, strings.Join(strings.Fields(text), " ")) {
						t.Errorf("output lacks %q", text)
					}
				}
			}
		})
	}
}

// As a user without privileges, `probes` says it could not check, not
// that the kernel is too old: the feature probes fail with EPERM.
func TestProbesCommandUnprivileged(t *testing.T) {
	requireRoot(t)
	res := runAgent(t, startOpts{cred: &syscall.Credential{Uid: 65534, Gid: 65534}}, "probes")
	if res.code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", res.code, res.stderr)
	}
	for _, l := range strings.Split(res.stdout, "\n") {
		if l == "" {
			break // the storage table follows
		}
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "syscalls" {
			if want := "unknown: not permitted to check;"; !strings.HasPrefix(strings.Join(f[1:], " "), want) {
				t.Errorf("syscalls row %q, want %q...", l, want)
			}
		}
	}
	if strings.Contains(res.stdout, "needs Linux") || strings.Contains(res.stdout, "operation not permitted") {
		t.Errorf("a permission error is reported as a kernel requirement:\n%s", res.stdout)
	}
}
