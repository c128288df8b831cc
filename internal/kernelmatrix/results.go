package kernelmatrix

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Status of a package (or a test) on one kernel.
type Status string

const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// TestResult is one test (or subtest) as test2json reported it.
type TestResult struct {
	Name   string
	Status Status
	Output []string // the test's own lines, without the "=== RUN"/"--- X" framing
}

// Reason is the test's last logged line before it ended, which for a
// skipped test is its t.Skip message, without the file:line prefix.
func (t TestResult) Reason() string {
	for i := len(t.Output) - 1; i >= 0; i-- {
		l := strings.TrimSpace(t.Output[i])
		if l == "" || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			continue
		}
		if _, rest, ok := strings.Cut(l, ": "); ok && strings.Contains(l[:len(l)-len(rest)], ".go:") {
			return rest
		}
		return l
	}
	return ""
}

// PackageResult is one test binary's run on one kernel.
type PackageResult struct {
	ImportPath string
	Status     Status
	Note       string // why, when the binary itself failed or did not finish
	Tests      []TestResult
}

// Count returns how many top-level tests ended with s.
func (p PackageResult) Count(s Status) int {
	n := 0
	for _, t := range p.Tests {
		if t.Status == s && !strings.Contains(t.Name, "/") {
			n++
		}
	}
	return n
}

// KernelRun is what one boot produced.
type KernelRun struct {
	Kernel   Kernel
	Accel    string
	Release  string // uname -r inside the guest
	Packages []PackageResult
	Setup    []string // setup steps and modules that failed in the guest
	Seconds  float64
	Err      string   // boot failure or timeout
	Bench    []string // benchmark result lines, with -bench
}

// benchLines are the benchmark results in a guest's output stream.
func benchLines(stream []byte) []string {
	var out []string
	for _, l := range strings.Split(string(stream), "\n") {
		l = strings.TrimLeft(strings.TrimRight(l, "\r"), "\x16 \t")
		if strings.HasPrefix(l, "Benchmark") && strings.Contains(l, "ns/op") {
			out = append(out, l)
		}
	}
	return out
}

// section is the raw test2json-framed output of one package.
type section struct {
	pkg   string
	text  []byte
	exit  int
	ended bool
}

// ParseResults splits the guest's ttyS1 stream into per-package results,
// decoding each package's -test.v=test2json output with test2json. pkgs
// lists the packages the guest was to run, so a package that never started
// (the guest died or timed out before) is reported too.
func ParseResults(stream []byte, pkgs []string, test2json []string) (release string, setup []string, results []PackageResult, err error) {
	secs := map[string]*section{}
	var cur *section
	sc := bufio.NewScanner(bytes.NewReader(stream))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, markKernel):
			release = strings.TrimPrefix(line, markKernel)
		case strings.HasPrefix(line, markModule):
			setup = append(setup, "insmod "+strings.TrimPrefix(line, markModule)+" failed")
		case strings.HasPrefix(line, markSetup):
			setup = append(setup, strings.TrimPrefix(line, markSetup)+" failed")
		case strings.HasPrefix(line, markBegin):
			cur = &section{pkg: strings.TrimPrefix(line, markBegin)}
			secs[cur.pkg] = cur
		case strings.HasPrefix(line, markEnd) && cur != nil:
			f := strings.Fields(strings.TrimPrefix(line, markEnd))
			if len(f) == 2 && f[0] == cur.pkg {
				cur.exit, _ = strconv.Atoi(f[1])
				cur.ended = true
				cur = nil
			}
		case cur != nil:
			cur.text = append(append(cur.text, line...), '\n')
		}
	}
	for _, pkg := range pkgs {
		s := secs[pkg]
		if s == nil {
			results = append(results, PackageResult{ImportPath: pkg, Status: Fail, Note: "did not run: the guest stopped before it"})
			continue
		}
		tests, err := decode(s.pkg, s.text, test2json)
		if err != nil {
			return "", nil, nil, err
		}
		r := PackageResult{ImportPath: pkg, Tests: tests}
		switch {
		case !s.ended:
			r.Status, r.Note = Fail, "did not finish: the guest stopped or timed out during it"
		case s.exit != 0 && r.Count(Fail) == 0:
			r.Status, r.Note = Fail, fmt.Sprintf("test binary exited with %d%s", s.exit, lastLines(s.text))
		case r.Count(Fail) > 0 || s.exit != 0:
			r.Status = Fail
		case r.Count(Pass) == 0:
			r.Status = Skip
		default:
			r.Status = Pass
		}
		results = append(results, r)
	}
	return release, setup, results, nil
}

// lastLines is the end of a failed binary's output (a panic, a timeout).
func lastLines(text []byte) string {
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(text), "\x16", "")), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	if len(lines) == 0 || lines[0] == "" {
		return ""
	}
	return ": " + strings.Join(lines, " | ")
}

// isBenchResult reports whether line is a benchmark's result line
// ("BenchmarkX-2   20   123 ns/op ...").
func isBenchResult(line string) bool {
	f := strings.Fields(line)
	return len(f) >= 4 && strings.HasPrefix(f[0], "Benchmark") && f[3] == "ns/op"
}

// decode runs test2json over one package's output and gathers each
// test's final action and output lines.
func decode(pkg string, text []byte, test2json []string) ([]TestResult, error) {
	cmd := exec.Command(test2json[0], append(append([]string{}, test2json[1:]...), "-p", pkg)...)
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(test2json, " "), err)
	}
	byName := map[string]*TestResult{}
	var order []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var ev struct {
			Action, Test, Output string
		}
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("test2json output of %s: %w", pkg, err)
		}
		if ev.Test == "" {
			continue
		}
		t := byName[ev.Test]
		if t == nil {
			t = &TestResult{Name: ev.Test}
			byName[ev.Test] = t
			order = append(order, ev.Test)
		}
		switch ev.Action {
		case "pass":
			t.Status = Pass
		case "fail":
			t.Status = Fail
		case "skip":
			t.Status = Skip
		case "output":
			l := strings.TrimRight(ev.Output, "\n")
			if !strings.HasPrefix(l, "=== ") && !strings.HasPrefix(strings.TrimSpace(l), "--- ") {
				t.Output = append(t.Output, l)
			}
		}
	}
	// A benchmark that ends well prints its result line and no "--- PASS"
	// (test2json then gives it no final action): it passed when it
	// printed a result, and a parent when its sub-benchmarks all passed.
	for _, n := range order {
		if t := byName[n]; t.Status == "" && strings.HasPrefix(n, "Benchmark") && slices.ContainsFunc(t.Output, isBenchResult) {
			t.Status = Pass
		}
	}
	for _, n := range order {
		t := byName[n]
		if t.Status != "" || !strings.HasPrefix(n, "Benchmark") {
			continue
		}
		passed, failed := 0, 0
		for _, c := range order {
			if strings.HasPrefix(c, n+"/") {
				switch byName[c].Status {
				case Pass:
					passed++
				case Fail, "":
					failed++
				}
			}
		}
		if passed > 0 && failed == 0 {
			t.Status = Pass
		}
	}
	var tests []TestResult
	for _, n := range order {
		t := byName[n]
		if t.Status == "" {
			t.Status = Fail // started, never ended: the binary died during it
		}
		tests = append(tests, *t)
	}
	sort.SliceStable(tests, func(i, j int) bool { return tests[i].Name < tests[j].Name })
	return tests, nil
}
