package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telagent/telagent/internal/testutil"
)

// buildCfunc builds testdata/workload/cfunc.c (the uprobe probe's
// workload) with -O2, as the probe's own tests do.
func buildCfunc(t *testing.T) string {
	t.Helper()
	return testutil.BuildC(t, "cfunc.c")
}

// A --uprobe function of a held command, end to end: exact calls and
// paired returns in the OTLP/JSON output, on the command's Resource.
func TestUprobeCommand(t *testing.T) {
	requireRoot(t)
	bin := buildCfunc(t)
	out := filepath.Join(t.TempDir(), "out.json")
	p := startAgent(t, startOpts{stdin: "go\n"}, "run", "--probes", "uprobe", "--uprobe", bin+":work",
		"--exporter", "otlp-json", "--output", out, "--interval", "1s", "--", bin, "work", "40", "10")
	if code := p.wait(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
	}
	reqs := readOTLPJSON(t, out)
	pid := onlyProcess(t, reqs, p.cmd.Process.Pid)
	var calls int64 = -1
	var returns uint64
	for _, pt := range points(reqs, "telagent.function.calls", pid, "") {
		if attr(pt.sum.GetAttributes(), "code.function.name").GetStringValue() == "work" {
			calls = pt.sum.GetAsInt() // cumulative: the last is the total
		}
	}
	for _, pt := range points(reqs, "telagent.function.duration", pid, "") {
		if attr(pt.hist.GetAttributes(), "code.function.name").GetStringValue() == "work" {
			returns = pt.hist.GetCount()
		}
	}
	if calls != 40 || returns != 40 {
		t.Errorf("work: calls %d, paired returns %d; want 40 each", calls, returns)
	}
}

// Bad --uprobe input is one line and exit 2.
func TestUprobeUsageErrors(t *testing.T) {
	bin := buildCfunc(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--uprobe", "nocolon"}, `telagent: --uprobe "nocolon": no ':' between binary and symbol`},
		{[]string{"--uprobe", bin + ":wrk"}, `no function "wrk" in .symtab and .dynsym; close matches: work`},
		{[]string{"--uprobe", "/nonexistent:f"}, "no such file or directory"},
		{[]string{"--probes", "uprobe"}, "give the functions to probe with --uprobe"},
		{[]string{"--probes", "syscalls", "--uprobe", bin + ":work"}, "--uprobe needs the uprobe probe"},
	} {
		res := runAgent(t, startOpts{}, append([]string{"run"}, tc.args...)...)
		if line := checkUsageError(t, res); !strings.Contains(line, tc.want) {
			t.Errorf("%v: %q, want it to contain %q", tc.args, line, tc.want)
		}
	}
}
