package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/features"

	"github.com/telagent/telagent/export/otlptest"
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
		if otlptest.Attr(pt.sum.GetAttributes(), "code.function.name").GetStringValue() == "work" {
			calls = pt.sum.GetAsInt() // cumulative: the last is the total
		}
	}
	for _, pt := range points(reqs, "telagent.function.duration", pid, "") {
		if otlptest.Attr(pt.hist.GetAttributes(), "code.function.name").GetStringValue() == "work" {
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

// The agent with 256 --uprobe functions (512 probe sites) on the whole
// host stops within 5 s of SIGTERM, exports the final interval with every
// function's exact call count and leaves no program behind. With one
// perf-event uprobe per site the detach alone took 56 s, past the shipped
// TimeoutStopSec=40s (#18 item 4); uprobe_multi (Linux 6.6+) fixes it.
func TestUprobeManyFunctionsSIGTERM(t *testing.T) {
	requireRoot(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("the uprobe probe supports x86-64 only")
	}
	if err := features.HaveBPFLinkUprobeMulti(); err != nil {
		t.Skipf("kernel lacks uprobe_multi links (Linux 6.6+): %v", err)
	}
	bin := testutil.BuildC(t, "manyfuncs.c")
	out := filepath.Join(t.TempDir(), "out.json")
	args := []string{"run", "--probes", "uprobe", "--exporter", "otlp-json", "--output", out, "--interval", "1s"}
	for i := range 256 {
		args = append(args, "--uprobe", fmt.Sprintf("%s:f%03d", bin, i))
	}
	p := startAgent(t, startOpts{}, args...)
	p.waitAttached(20 * time.Second)
	if want := "uprobe_multi x2 (512 sites)"; !strings.Contains(p.stderr.String(), want) {
		t.Errorf("attached line does not say %q; stderr:\n%s", want, p.stderr)
	}

	// A workload the test starts itself: the whole host is observed.
	const rounds = 3
	w := exec.Command(bin, strconv.Itoa(rounds))
	w.Stdin = strings.NewReader("go\n")
	printed, err := w.Output()
	if err != nil {
		t.Fatalf("manyfuncs: %v", err)
	}
	var want int64
	for i := range 256 {
		want += rounds * int64(i%7+1)
	}
	if got := strings.TrimSpace(string(printed)); got != strconv.FormatInt(want, 10) {
		t.Fatalf("manyfuncs made %s calls, its arithmetic says %d", got, want)
	}

	sigterm := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.wait(40 * time.Second)
	took := time.Since(sigterm)
	t.Logf("exit %d %v after SIGTERM", code, took)
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr)
	}
	if took > 5*time.Second {
		t.Errorf("telagent exited %v after SIGTERM, want < 5 s", took)
	}
	assertNoLeakedPrograms(t, p.baseline)

	reqs := readOTLPJSON(t, out)
	calls := map[string]int64{}
	for _, pt := range points(reqs, "telagent.function.calls", int64(w.Process.Pid), "") {
		calls[otlptest.Attr(pt.sum.GetAttributes(), "code.function.name").GetStringValue()] = pt.sum.GetAsInt() // cumulative: the last is the total
	}
	for i := range 256 {
		name := fmt.Sprintf("f%03d", i)
		if got, w := calls[name], rounds*int64(i%7+1); got != w {
			t.Errorf("%s: %d calls exported, want %d", name, got, w)
		}
	}
	if len(calls) != 256 {
		t.Errorf("call series for %d functions, want 256", len(calls))
	}
}
