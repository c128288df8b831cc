// Command schedbench measures the overhead of telagent's sched probe on a
// context-switch-heavy workload (two threads on one CPU handing a byte
// back and forth over pipes: two wakeups and two switches per round trip)
// against a bare run, against the floors of any eBPF scheduler probe
// (empty programs on the same four tracepoints; the same with one clock
// read per switch and per wakeup) and against bpftrace doing the same
// measurement (switch counts by type, on-CPU time, run-queue latency
// histogram, migrations). The configurations run interleaved in one
// invocation; compare the numbers of one run only.
//
//	go run ./bench/schedbench -agent ./bin/telagent [-roundtrips 200000] [-rounds 7] [-cpu 0] [-json FILE]
//
// It must run as root. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"

	"github.com/telagent/telagent/bench/internal/benchproc"
)

// bpftraceProg does the sched probe's job in bpftrace, on the same
// tracepoints: per process, context switches by type (voluntary when the
// switch is not a preemption and the task is not runnable; the tracepoint
// reports a preemption as prev_state 0x100, TASK_REPORT_MAX), on-CPU time,
// migrations, and a run-queue latency histogram from becoming runnable
// (wakeup, wakeup_new, switched out while runnable) to running. The
// tracepoint has no tgid for the task switched in, so the histogram is per
// thread.
const bpftraceProg = `
tracepoint:sched:sched_wakeup, tracepoint:sched:sched_wakeup_new { @qtime[args->pid] = nsecs; }
tracepoint:sched:sched_migrate_task /args->orig_cpu != args->dest_cpu/ { @migrations[args->pid] = count(); }
tracepoint:sched:sched_switch {
	$now = nsecs;
	if (args->prev_pid != 0) {
		@switches[pid, args->prev_state != 0 && args->prev_state != 256] = count();
		$start = @oncpu_start[args->prev_pid];
		if ($start) { @oncpu[pid] = sum($now - $start); }
		if (args->prev_state == 0 || args->prev_state == 256) { @qtime[args->prev_pid] = $now; }
	}
	if (args->next_pid != 0) {
		@oncpu_start[args->next_pid] = $now;
		$q = @qtime[args->next_pid];
		if ($q) { @runq[args->next_pid] = hist($now - $q); delete(@qtime[args->next_pid]); }
	}
}
END { clear(@qtime); clear(@oncpu_start); }
`

const (
	cfgBare     = "bare"
	cfgFloor    = "floor"
	cfgClock    = "clock"
	cfgAgent    = "agent"
	cfgBpftrace = "bpftrace"
	target      = 0.35 // (agent - bare) / (bpftrace - bare)
)

type options struct {
	agent        string
	roundtrips   int
	rounds       int
	cpu          int
	workload     string
	jsonOut      string
	readyTimeout time.Duration
	strict       bool
}

func main() {
	var o options
	flag.StringVar(&o.agent, "agent", "./bin/telagent", "telagent binary; the agent configuration is skipped when it is missing")
	flag.IntVar(&o.roundtrips, "roundtrips", 200000, "round trips per measurement")
	flag.IntVar(&o.rounds, "rounds", 7, "rounds; each round measures every configuration once")
	flag.IntVar(&o.cpu, "cpu", 0, "CPU both workload threads are pinned to")
	flag.StringVar(&o.workload, "workload", "", "workload C source (default: bench/workload/pingpong.c of this repository)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 30*time.Second, "how long to wait for the agent or bpftrace to attach")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 unless the ratio is PASS")
	flag.Parse()
	if flag.NArg() != 0 || o.roundtrips < 2 || o.rounds <= 0 || o.cpu < 0 || o.cpu >= runtime.NumCPU() {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o)
	stop()
	os.Exit(code)
}

// sample is one run of the workload: ns per round trip of wall-clock time
// and of CPU time of its two threads.
type sample struct{ wall, cpu float64 }

type config struct {
	name    string
	measure func(context.Context) (sample, error)
	skip    string // why it is not run at all
	failed  string // why it stopped being run
	samples []sample
}

type bench struct {
	loop         string
	roundtrips   int
	cpu          int
	agent        string
	tmp          string
	readyTimeout time.Duration
	seq          int
}

func run(ctx context.Context, o options) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "schedbench: warning: not running as root; floor, agent and bpftrace will fail")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		fmt.Fprintln(os.Stderr, "schedbench: warning: remove memlock rlimit:", err)
	}
	tmp, err := os.MkdirTemp("", "schedbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "schedbench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	src, err := findWorkload(o.workload)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schedbench:", err)
		return 1
	}
	loop := filepath.Join(tmp, "pingpong")
	if out, err := exec.CommandContext(ctx, "gcc", "-O2", "-pthread", "-o", loop, src).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "schedbench: gcc -O2 -pthread %s: %v\n%s", src, err, out)
		return 1
	}
	b := &bench{loop: loop, roundtrips: o.roundtrips, cpu: o.cpu, tmp: tmp, readyTimeout: o.readyTimeout}
	var agentReason string
	b.agent, agentReason = resolveAgent(o.agent)
	btReason, btNote := benchproc.BpftraceUnavailable("sched")
	if btNote != "" {
		fmt.Println("note:", btNote)
	}
	configs := []*config{
		{name: cfgBare, measure: b.bare},
		{name: cfgFloor, measure: func(ctx context.Context) (sample, error) { return b.runFloor(ctx, false) }},
		{name: cfgClock, measure: func(ctx context.Context) (sample, error) { return b.runFloor(ctx, true) }},
		{name: cfgAgent, measure: b.agentHost, skip: agentReason},
		{name: cfgBpftrace, measure: b.bpftrace, skip: btReason},
	}
	fmt.Printf("schedbench: pipe ping-pong, 2 threads pinned to CPU %d, %d round trips x %d rounds, configurations interleaved (order rotates each round)\n",
		o.cpu, o.roundtrips, o.rounds)
	fmt.Printf("kernel %s, %d CPUs, agent %s, started %s\n", benchproc.KernelRelease(), runtime.NumCPU(), o.agent, time.Now().Format(time.RFC3339))
	var active []*config
	for _, c := range configs {
		if c.skip != "" {
			fmt.Printf("%s: skipped: %s\n", c.name, c.skip)
			continue
		}
		active = append(active, c)
	}
	// Warm-up, not recorded: page cache, CPU frequency, first exec.
	if _, err := b.runLoop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "schedbench: workload does not run:", err)
		return 1
	}
	start := time.Now()
	for r := 0; r < o.rounds && ctx.Err() == nil; r++ {
		var line []string
		for i := range active {
			c := active[(r+i)%len(active)]
			if c.failed != "" {
				continue
			}
			smp, err := c.measure(ctx)
			if ctx.Err() != nil {
				break
			}
			if err != nil {
				c.failed = fmt.Sprintf("round %d: %v", r+1, err)
				fmt.Printf("%s: FAILED in round %d, not run again: %v\n", c.name, r+1, err)
				continue
			}
			c.samples = append(c.samples, smp)
			line = append(line, fmt.Sprintf("%s %.1f (cpu %.1f)", c.name, smp.wall, smp.cpu))
		}
		fmt.Printf("round %d/%d: %s\n", r+1, o.rounds, strings.Join(line, "  "))
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "schedbench: interrupted")
		return 130
	}
	fmt.Printf("measured in %s\n\n", time.Since(start).Round(100*time.Millisecond))
	res := summarize(o, configs)
	res.print()
	if o.jsonOut != "" {
		if err := res.writeJSON(o.jsonOut); err != nil {
			fmt.Fprintln(os.Stderr, "schedbench:", err)
			return 1
		}
	}
	if configs[0].failed != "" || (o.strict && res.Ratios[0].Result != "PASS") {
		return 1
	}
	return 0
}

func (b *bench) loopArgv() []string {
	return []string{b.loop, strconv.Itoa(b.roundtrips), strconv.Itoa(b.cpu)}
}

func (b *bench) loopTimeout() time.Duration {
	return 30*time.Second + time.Duration(b.roundtrips)*100*time.Microsecond
}

// runLoop runs the workload as a child of the harness.
func (b *bench) runLoop(ctx context.Context) (sample, error) {
	onOut, lines := benchproc.Collect("")
	p, err := benchproc.Start(ctx, "workload", b.loopArgv(), onOut, nil)
	if err != nil {
		return sample{}, err
	}
	if err := p.Wait(ctx, b.loopTimeout()); err != nil {
		return sample{}, err
	}
	var s sample
	if s.wall, err = benchproc.ParseValue(lines(), "ns_per_roundtrip"); err != nil {
		return sample{}, err
	}
	if s.cpu, err = benchproc.ParseValue(lines(), "cpu_ns_per_roundtrip"); err != nil {
		return sample{}, err
	}
	return s, nil
}

func (b *bench) bare(ctx context.Context) (sample, error) { return b.runLoop(ctx) }

// agentHost runs the loop under `telagent run --probes sched` observing the
// whole host, started before and stopped (SIGINT, exit 0) after it.
func (b *bench) agentHost(ctx context.Context) (sample, error) {
	b.seq++
	argv := []string{b.agent, "run", "--probes", "sched", "--exporter", "otlp-json",
		"--output", filepath.Join(b.tmp, fmt.Sprintf("out-%d.json", b.seq)), "--interval", "1s"}
	onErr, attached := benchproc.SignalWhen("attached")
	p, err := benchproc.Start(ctx, "agent", argv, nil, onErr)
	if err != nil {
		return sample{}, err
	}
	return b.runUnder(ctx, p, attached, `"attached" on stderr`)
}

func (b *bench) bpftrace(ctx context.Context) (sample, error) {
	onOut, attaching := benchproc.SignalWhen("Attaching")
	p, err := benchproc.Start(ctx, "bpftrace", []string{"bpftrace", "-e", bpftraceProg}, onOut, nil)
	if err != nil {
		return sample{}, err
	}
	return b.runUnder(ctx, p, attaching, `"Attaching N probes" on stdout`)
}

// runUnder runs the loop once p reported ready, then stops p.
func (b *bench) runUnder(ctx context.Context, p *benchproc.Proc, ready <-chan struct{}, what string) (sample, error) {
	if err := p.WaitReady(ctx, ready, what, b.readyTimeout); err != nil {
		return sample{}, err
	}
	s, lerr := b.runLoop(ctx)
	if err := p.Interrupt(ctx, 30*time.Second); err != nil {
		return sample{}, err
	}
	return s, lerr
}

// stats summarise one metric's samples of one configuration.
type stats struct {
	Samples    []float64 `json:"samples_ns_per_roundtrip"`
	Median     float64   `json:"median_ns_per_roundtrip"`
	Min        float64   `json:"min_ns_per_roundtrip"`
	Max        float64   `json:"max_ns_per_roundtrip"`
	OverheadNs *float64  `json:"overhead_ns_per_roundtrip,omitempty"` // median - bare median
}

// result is one configuration's summary; Wall and CPU are present when
// Status is ok.
type result struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, skipped, failed
	Error  string `json:"error,omitempty"`
	Wall   *stats `json:"wall,omitempty"`
	CPU    *stats `json:"cpu,omitempty"`
}

type ratio struct {
	Formula string   `json:"formula"`
	Value   *float64 `json:"value"`
	Target  *float64 `json:"target_max,omitempty"` // nil: information only
	Result  string   `json:"result"`               // PASS, MISS, N/A, INFO
	Note    string   `json:"note,omitempty"`
}

type results struct {
	Workload   string   `json:"workload"`
	Roundtrips int      `json:"roundtrips"`
	Rounds     int      `json:"rounds"`
	CPU        int      `json:"cpu"`
	Kernel     string   `json:"kernel"`
	CPUs       int      `json:"cpus"`
	Time       string   `json:"time"`
	Configs    []result `json:"configurations"`
	// Ratios[0] is the target, on wall-clock medians; the others
	// (CPU-time medians) are information only.
	Ratios []ratio `json:"ratios"`
}

func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }

func summarize(o options, configs []*config) *results {
	res := &results{
		Workload: "pipe ping-pong, 2 threads on one CPU", Roundtrips: o.roundtrips, Rounds: o.rounds, CPU: o.cpu,
		Kernel: benchproc.KernelRelease(), CPUs: runtime.NumCPU(), Time: time.Now().Format(time.RFC3339),
	}
	why := map[string]string{}
	byName := map[string]*result{}
	for _, c := range configs {
		r := result{Name: c.name}
		switch {
		case c.skip != "":
			r.Status, r.Error, why[c.name] = "skipped", c.skip, "skipped"
		case c.failed != "":
			r.Status, r.Error, why[c.name] = "failed", c.failed, "failed"
		case len(c.samples) == 0:
			r.Status, why[c.name] = "failed", "no samples"
		default:
			r.Status = "ok"
			r.Wall = summarizeOne(c.samples, func(s sample) float64 { return s.wall })
			r.CPU = summarizeOne(c.samples, func(s sample) float64 { return s.cpu })
		}
		res.Configs = append(res.Configs, r)
	}
	for i := range res.Configs {
		byName[res.Configs[i].Name] = &res.Configs[i]
	}
	for _, name := range []string{cfgBare, cfgFloor, cfgClock, cfgAgent, cfgBpftrace} {
		if byName[name] == nil {
			byName[name] = &result{Name: name}
		}
	}
	if bare := byName[cfgBare]; bare.Wall != nil {
		for _, r := range res.Configs {
			if r.Wall != nil {
				w, c := round4(r.Wall.Median-bare.Wall.Median), round4(r.CPU.Median-bare.CPU.Median)
				r.Wall.OverheadNs, r.CPU.OverheadNs = &w, &c
			}
		}
	}
	t := target
	for _, q := range []struct {
		of, versus, what string
		get              func(*result) *stats
		target           *float64
	}{
		{cfgAgent, cfgBpftrace, "wall", wallOf, &t},
		{cfgAgent, cfgBpftrace, "cpu", cpuOf, nil},
		{cfgAgent, cfgFloor, "cpu", cpuOf, nil},
		{cfgAgent, cfgClock, "cpu", cpuOf, nil},
		{cfgClock, cfgFloor, "cpu", cpuOf, nil},
	} {
		rt := ratio{Formula: fmt.Sprintf("(%s - bare) / (%s - bare), %s-time medians", q.of, q.versus, q.what), Target: q.target, Result: "N/A"}
		bare, of, versus := byName[cfgBare], byName[q.of], byName[q.versus]
		switch {
		case q.get(bare) == nil:
			rt.Note = "bare " + why[cfgBare]
		case q.get(of) == nil:
			rt.Note = q.of + " " + why[q.of]
		case q.get(versus) == nil:
			rt.Note = q.versus + " " + why[q.versus]
		case q.get(versus).Median-q.get(bare).Median <= 0:
			rt.Note = fmt.Sprintf("%s not slower than bare (%.1f ns): too noisy to divide by", q.versus, q.get(versus).Median-q.get(bare).Median)
		default:
			v := round4((q.get(of).Median - q.get(bare).Median) / (q.get(versus).Median - q.get(bare).Median))
			rt.Value = &v
			switch {
			case q.target == nil:
				rt.Result = "INFO"
			case v <= *q.target:
				rt.Result = "PASS"
			default:
				rt.Result = "MISS"
			}
		}
		res.Ratios = append(res.Ratios, rt)
	}
	return res
}

func wallOf(r *result) *stats { return r.Wall }
func cpuOf(r *result) *stats  { return r.CPU }

func summarizeOne(samples []sample, get func(sample) float64) *stats {
	st := &stats{}
	for _, s := range samples {
		st.Samples = append(st.Samples, get(s))
	}
	st.Median = round4(benchproc.Median(st.Samples))
	st.Min, st.Max = round4(slices.Min(st.Samples)), round4(slices.Max(st.Samples))
	return st
}

func (res *results) print() {
	const row = "%-9s %-5s %14s %9s %9s %15s %7s\n"
	fmt.Printf(row, "config", "time", "median ns/rt", "min", "max", "overhead ns/rt", "x bare")
	var bare *result
	for i := range res.Configs {
		if res.Configs[i].Name == cfgBare {
			bare = &res.Configs[i]
		}
	}
	for _, c := range res.Configs {
		if c.Wall == nil {
			msg, _, _ := strings.Cut(c.Error, "; stderr:")
			msg, _, _ = strings.Cut(msg, "\n")
			fmt.Printf("%-9s %s: %s\n", c.Name, strings.ToUpper(c.Status), msg)
			continue
		}
		for _, m := range []struct {
			what       string
			st, stBare *stats
		}{{"wall", c.Wall, bare.Wall}, {"cpu", c.CPU, bare.CPU}} {
			over, x := "-", "-"
			if m.st.OverheadNs != nil && m.stBare != nil && m.stBare.Median > 0 {
				over, x = fmt.Sprintf("%+.1f", *m.st.OverheadNs), fmt.Sprintf("%.2f", m.st.Median/m.stBare.Median)
			}
			fmt.Printf(row, c.Name, m.what, fmt.Sprintf("%.1f", m.st.Median), fmt.Sprintf("%.1f", m.st.Min), fmt.Sprintf("%.1f", m.st.Max), over, x)
		}
	}
	fmt.Println()
	for _, r := range res.Ratios {
		val := "-"
		if r.Value != nil {
			val = fmt.Sprintf("%.3f", *r.Value)
		}
		tgt := "information only"
		if r.Target != nil {
			tgt = fmt.Sprintf("target <= %.2f", *r.Target)
		}
		result := r.Result
		if r.Note != "" {
			result += " (" + r.Note + ")"
		}
		fmt.Printf("%s = %s, %s: %s\n", r.Formula, val, tgt, result)
	}
}

func (res *results) writeJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// findWorkload locates the workload source: the flag, else relative to the
// working directory (the repository root under make), else next to this
// source file.
func findWorkload(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	candidates := []string{filepath.Join("bench", "workload", "pingpong.c")}
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "workload", "pingpong.c"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", errors.New("cannot find bench/workload/pingpong.c; run from the repository root or pass -workload")
}

// resolveAgent returns the agent's path, or why it cannot be run.
func resolveAgent(path string) (resolved, reason string) {
	if path == "" {
		return "", "no -agent given"
	}
	resolved, err := exec.LookPath(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Sprintf("agent binary %s not found (build it first)", path)
	}
	if err != nil {
		return "", fmt.Sprintf("agent binary %s: %v", path, err)
	}
	return resolved, ""
}
