package benchproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Sample is one measured run of a workload: wall-clock ns per operation,
// the workload's own CPU time per operation (user + system, from
// getrusage; NaN when the workload does not report it), and the tracer's
// BPF programs' own run time and runs per operation (kernel BPF stats; NaN
// when not read).
type Sample struct{ Wall, CPU, BPF, Runs float64 }

// Config is one side of an overhead comparison: what runs while the
// workload runs. Measure runs the workload once under it.
type Config struct {
	Name    string
	Measure func(context.Context) (Sample, error)
	Skip    string // why the configuration does not run; "" when it does
	failed  string
	samples []Sample
}

// Interleave measures every configuration once per round, the starting
// configuration rotating each round, so that slow drifts of a noisy
// machine spread over all of them. A configuration that fails is reported
// and not run again; the others continue. It returns ctx's error when
// interrupted.
func Interleave(ctx context.Context, configs []*Config, rounds int) error {
	var active []*Config
	for _, c := range configs {
		if c.Skip != "" {
			fmt.Printf("%s: skipped: %s\n", c.Name, c.Skip)
			continue
		}
		active = append(active, c)
	}
	for r := 0; r < rounds && ctx.Err() == nil; r++ {
		var line []string
		for i := range active {
			c := active[(r+i)%len(active)]
			if c.failed != "" {
				continue
			}
			v, err := c.Measure(ctx)
			if ctx.Err() != nil {
				break
			}
			if err != nil {
				c.failed = fmt.Sprintf("round %d: %v", r+1, err)
				fmt.Printf("%s: FAILED in round %d, not run again: %v\n", c.Name, r+1, err)
				continue
			}
			c.samples = append(c.samples, v)
			line = append(line, fmt.Sprintf("%s %.0f", c.Name, v.Wall))
		}
		fmt.Printf("round %d/%d: %s\n", r+1, rounds, strings.Join(line, "  "))
	}
	return ctx.Err()
}

// Result is one configuration's outcome over all rounds.
type Result struct {
	Name       string    `json:"name"`
	Status     string    `json:"status"` // ok, skipped, failed
	Error      string    `json:"error,omitempty"`
	Samples    []float64 `json:"samples_ns_per_op,omitempty"`
	Median     float64   `json:"median_ns_per_op,omitempty"`
	Min        float64   `json:"min_ns_per_op,omitempty"`
	Max        float64   `json:"max_ns_per_op,omitempty"`
	OverheadNs float64   `json:"overhead_ns_per_op,omitempty"`
	CPUSamples []float64 `json:"samples_cpu_ns_per_op,omitempty"`
	CPUMedian  float64   `json:"median_cpu_ns_per_op,omitempty"`
	CPUOverNs  float64   `json:"overhead_cpu_ns_per_op,omitempty"`
	// BPFNs is the median run time of the tracer's BPF programs per
	// operation, BPFRuns their runs per operation; 0 when not measured.
	BPFSamples []float64 `json:"samples_bpf_ns_per_op,omitempty"`
	BPFNs      float64   `json:"median_bpf_ns_per_op,omitempty"`
	BPFRuns    float64   `json:"median_bpf_runs_per_op,omitempty"`
}

// Ratio is (Of − bare) / (Versus − bare) on medians.
type Ratio struct {
	Formula string   `json:"formula"`
	Value   *float64 `json:"value"`
	Result  string   `json:"result"` // INFO or N/A
}

// Report prints each configuration's median, range and overhead over the
// configuration named bare, then the ratios (of − bare) / (versus − bare)
// for every pair, on wall-clock and on CPU-time medians. All ratios are
// information: N/A when a side did not run or the reference was not
// slower than bare. unit names one operation ("op", "roundtrip"). With
// jsonOut it also writes everything, plus meta, as JSON. It returns 1 when
// bare failed or the JSON cannot be written.
func Report(configs []*Config, bare string, pairs [][2]string, unit string, meta map[string]any, jsonOut string) int {
	byName := map[string]*Result{}
	res := make([]Result, 0, len(configs))
	for _, c := range configs {
		r := Result{Name: c.Name, Status: "ok"}
		switch {
		case c.Skip != "":
			r.Status, r.Error = "skipped", c.Skip
		case c.failed != "":
			r.Status, r.Error = "failed", c.failed
		case len(c.samples) == 0:
			r.Status, r.Error = "failed", "no samples"
		default:
			var runs []float64
			for _, s := range c.samples {
				r.Samples = append(r.Samples, s.Wall)
				if !math.IsNaN(s.CPU) {
					r.CPUSamples = append(r.CPUSamples, s.CPU)
				}
				if !math.IsNaN(s.BPF) {
					r.BPFSamples = append(r.BPFSamples, s.BPF)
					runs = append(runs, s.Runs)
				}
			}
			r.Median, r.Min, r.Max = Median(r.Samples), minOf(r.Samples), maxOf(r.Samples)
			if len(r.CPUSamples) > 0 {
				r.CPUMedian = Median(r.CPUSamples)
			}
			if len(r.BPFSamples) > 0 {
				r.BPFNs, r.BPFRuns = Median(r.BPFSamples), Median(runs)
			}
		}
		res = append(res, r)
	}
	for i := range res {
		byName[res[i].Name] = &res[i]
	}
	b := byName[bare]
	bareOK := b != nil && b.Status == "ok"
	fmt.Printf("\n%-13s %14s %9s %9s %10s %18s %12s %18s %18s\n", "configuration", "ns/"+unit, "min", "max", "overhead",
		"cpu ns/"+unit, "cpu overhead", "BPF ns/"+unit, "BPF runs/"+unit)
	for i := range res {
		r := &res[i]
		if r.Status != "ok" {
			fmt.Printf("%-13s %s: %s\n", r.Name, r.Status, r.Error)
			continue
		}
		if bareOK {
			r.OverheadNs = r.Median - b.Median
			r.CPUOverNs = r.CPUMedian - b.CPUMedian
		}
		bpf, runs := "-", "-"
		if r.BPFNs > 0 {
			bpf, runs = fmt.Sprintf("%.0f", r.BPFNs), fmt.Sprintf("%.2f", r.BPFRuns)
		}
		fmt.Printf("%-13s %14.0f %9.0f %9.0f %+10.0f %18.0f %+12.0f %18s %18s\n", r.Name, r.Median, r.Min, r.Max, r.OverheadNs,
			r.CPUMedian, r.CPUOverNs, bpf, runs)
	}
	fmt.Println()
	var ratios []Ratio
	for _, kind := range []string{"wall-clock", "CPU-time", "BPF run time"} {
		for _, p := range pairs {
			formula := fmt.Sprintf("(%s - %s) / (%s - %s), %s medians", p[0], bare, p[1], bare, kind)
			if kind == "BPF run time" {
				formula = fmt.Sprintf("%s / %s, BPF program run time per %s, medians", p[0], p[1], unit)
			}
			rt := Ratio{Formula: formula, Result: "N/A"}
			of, versus := byName[p[0]], byName[p[1]]
			if (bareOK || kind == "BPF run time") && of != nil && versus != nil && of.Status == "ok" && versus.Status == "ok" {
				num, den := of.OverheadNs, versus.OverheadNs
				switch kind {
				case "CPU-time":
					num, den = of.CPUOverNs, versus.CPUOverNs
				case "BPF run time":
					num, den = of.BPFNs, versus.BPFNs
					if num <= 0 {
						den = 0 // not measured
					}
				}
				if den > 0 {
					v := num / den
					rt.Value, rt.Result = &v, "INFO"
				}
			}
			val := "N/A"
			if rt.Value != nil {
				val = fmt.Sprintf("%.3f", *rt.Value)
			}
			fmt.Printf("%s = %s\n", rt.Formula, val)
			ratios = append(ratios, rt)
		}
	}
	if jsonOut != "" {
		doc := map[string]any{"kernel": KernelRelease(), "cpus": runtime.NumCPU(), "configurations": res, "ratios": ratios}
		for k, v := range meta {
			doc[k] = v
		}
		out, _ := json.MarshalIndent(doc, "", "  ")
		if err := os.WriteFile(jsonOut, append(out, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if !bareOK {
		return 1
	}
	return 0
}

func minOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// RunWorkload runs argv to completion (exit 0 within timeout) and parses
// its `<wallKey>=` and, when cpuKey is not "", `<cpuKey>=` lines.
func RunWorkload(ctx context.Context, name string, argv []string, timeout time.Duration, wallKey, cpuKey string) (Sample, error) {
	onOut, lines := Collect("")
	p, err := Start(ctx, name, argv, onOut, nil)
	if err != nil {
		return Sample{}, err
	}
	if err := p.Wait(ctx, timeout); err != nil {
		return Sample{}, err
	}
	return ParseSample(lines(), wallKey, cpuKey)
}

// ParseSample reads a Sample from a workload's output lines.
func ParseSample(lines []string, wallKey, cpuKey string) (Sample, error) {
	s := Sample{CPU: math.NaN(), BPF: math.NaN(), Runs: math.NaN()}
	var err error
	if s.Wall, err = ParseValue(lines, wallKey); err != nil {
		return Sample{}, err
	}
	if cpuKey != "" {
		if s.CPU, err = ParseValue(lines, cpuKey); err != nil {
			return Sample{}, err
		}
	}
	return s, nil
}

// BuildC compiles the C source src into dir with gcc -O2 and extra flags,
// returning the binary's path.
func BuildC(ctx context.Context, dir, src string, flags ...string) (string, error) {
	bin := filepath.Join(dir, strings.TrimSuffix(filepath.Base(src), ".c"))
	args := append([]string{"-O2", "-Wall", "-o", bin, src}, flags...)
	if out, err := exec.CommandContext(ctx, "gcc", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// BpftraceUnavailable checks bpftrace and tracefs, mounting tracefs when
// needed (and leaving it mounted), and that tracefs has the tracepoint
// directory events/<group> a bench's bpftrace script uses ("" for any).
// It returns why bpftrace cannot run ("" when it can) and a note to print
// when it had to mount tracefs.
func BpftraceUnavailable(group string) (reason, note string) {
	if _, err := exec.LookPath("bpftrace"); err != nil {
		return "bpftrace not installed: " + err.Error(), ""
	}
	const tracefs = "/sys/kernel/tracing"
	events := filepath.Join(tracefs, "events", group)
	if _, err := os.Stat(events); err == nil {
		return "", ""
	}
	if err := unix.Mount("tracefs", tracefs, "tracefs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Sprintf("tracefs not mounted and mount -t tracefs tracefs %s failed: %v", tracefs, err), ""
	}
	if _, err := os.Stat(events); err != nil {
		return fmt.Sprintf("no %s tracepoints in %s: %v", group, tracefs, err), ""
	}
	return "", "mounted tracefs at " + tracefs + " for bpftrace (left mounted)"
}

// KernelRelease is the running kernel's release, or "unknown".
func KernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// Under starts argv (an agent or a bpftrace), waits until marker appears
// on its stderr (or its stdout with markerOnStdout), runs work, then stops
// it with SIGINT and requires exit status 0: a tracer that failed or
// crashed during the run fails the measurement. Around work it reads the
// run time of the BPF programs the tracer holds (see BPFRunTime) and
// divides it by opsPerRun, the operations work does.
func Under(ctx context.Context, name string, argv []string, marker string, markerOnStdout bool, opsPerRun int, work func(context.Context) (Sample, error)) (Sample, error) {
	onLine, ready := SignalWhen(marker)
	var onOut, onErr func(string)
	if markerOnStdout {
		onOut = onLine
	} else {
		onErr = onLine
	}
	p, err := Start(ctx, name, argv, onOut, onErr)
	if err != nil {
		return Sample{}, err
	}
	if err := p.WaitReady(ctx, ready, fmt.Sprintf("%q", marker), 60*time.Second); err != nil {
		return Sample{}, err
	}
	pid := p.Cmd.Process.Pid
	ns0, runs0, err0 := BPFRunTime(pid)
	s, werr := work(ctx)
	if ns1, runs1, err1 := BPFRunTime(pid); werr == nil && err0 == nil && err1 == nil && runs1 > runs0 && opsPerRun > 0 {
		s.BPF, s.Runs = float64(ns1-ns0)/float64(opsPerRun), float64(runs1-runs0)/float64(opsPerRun)
	}
	if err := p.Interrupt(ctx, 30*time.Second); err != nil {
		return Sample{}, err
	}
	return s, werr
}

// EnableBPFStats turns kernel.bpf_stats_enabled on and returns what puts
// the old value back. The stats add two clock reads to every program run,
// in every traced configuration alike.
func EnableBPFStats() (func(), error) {
	const path = "/proc/sys/kernel/bpf_stats_enabled"
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return nil, err
	}
	return func() { _ = os.WriteFile(path, old, 0o644) }, nil
}

// BPFRunTime sums run_time_ns and run_cnt over the BPF programs that
// process pid holds, directly or through a link, each program once. The
// programs are found from the descriptors in /proc/PID/fdinfo (prog_id of
// program and link descriptors), so other tools' programs, or tests
// loading the same probe meanwhile, do not count; their stats come from
// bpftool, since a program whose descriptor was closed after attaching
// has its stats only there.
func BPFRunTime(pid int) (ns, runs uint64, err error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	ids := map[uint64]bool{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "prog_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
					ids[id] = true
				}
			}
		}
	}
	if len(ids) == 0 {
		return 0, 0, fmt.Errorf("process %d holds no BPF program", pid)
	}
	out, err := exec.Command("bpftool", "prog", "show", "-j").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("bpftool prog show: %w", err)
	}
	var progs []struct {
		ID        uint64 `json:"id"`
		RunTimeNs uint64 `json:"run_time_ns"`
		RunCnt    uint64 `json:"run_cnt"`
	}
	if err := json.Unmarshal(out, &progs); err != nil {
		return 0, 0, fmt.Errorf("bpftool prog show: %w", err)
	}
	for _, p := range progs {
		if ids[p.ID] {
			ns += p.RunTimeNs
			runs += p.RunCnt
		}
	}
	return ns, runs, nil
}
