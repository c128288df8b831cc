// Command uprobebench measures the per-call overhead of telagent's uprobe
// probe on an empty C function against a bare run, against the floor of
// any uprobe+uretprobe design (the same two probes with empty programs)
// and against bpftrace doing the same measurement (per-process call count
// and latency histogram). The configurations run interleaved in one
// invocation; compare the numbers of one run only.
//
//	go run ./bench/uprobebench -agent ./bin/telagent [-calls 50000] [-rounds 5] [-json FILE]
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

	"github.com/telagent/telagent/bench/internal/benchproc"
)

const (
	cfgBare        = "bare"
	cfgFloor       = "floor"
	cfgAgentHost   = "agent-host"
	cfgAgentTarget = "agent-target"
	cfgBpftrace    = "bpftrace"
)

// bpftraceProg does the probe's job: calls per process counted at entry,
// a latency histogram per process from entry to return, paired per thread.
const bpftraceProg = `
uprobe:%[1]s:empty { @calls[pid] = count(); @start[tid] = nsecs; }
uretprobe:%[1]s:empty /@start[tid]/ { @lat[pid] = hist(nsecs - @start[tid]); delete(@start[tid]); }
END { clear(@start); }
`

// floorProg: the same two probes with empty programs, the cost of the
// breakpoint, the return trampoline and one BPF call each.
const floorProg = `uprobe:%[1]s:empty { } uretprobe:%[1]s:empty { }`

// sample is one run of the loop: wall-clock ns per call, and the BPF
// programs' own run time per call (kernel BPF stats; NaN when not read).
type sample struct{ wall, bpf float64 }

type config struct {
	name    string
	measure func(context.Context) (sample, error)
	skip    string
	failed  string
	samples []sample
}

type bench struct {
	loop, agent, tmp string
	calls            int
	seq              int
}

func main() {
	agent := flag.String("agent", "./bin/telagent", "telagent binary; the agent configurations are skipped when it is missing")
	calls := flag.Int("calls", 50000, "calls of the empty function per measurement")
	rounds := flag.Int("rounds", 5, "rounds; each round measures every configuration once")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	flag.Parse()
	if flag.NArg() != 0 || *calls < 1 || *rounds < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, *agent, *calls, *rounds, *jsonOut)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, agentPath string, calls, rounds int, jsonOut string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "uprobebench:", err); return 1 }
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "uprobebench: warning: not running as root; every probed configuration will fail")
	}
	tmp, err := os.MkdirTemp("", "uprobebench-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "workload", "cfunc.c")
	loop := filepath.Join(tmp, "cfunc")
	if out, err := exec.CommandContext(ctx, "gcc", "-O2", "-o", loop, src).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("gcc -O2 %s: %v\n%s", src, err, out))
	}
	b := &bench{loop: loop, tmp: tmp, calls: calls}
	agentReason := ""
	if b.agent, err = exec.LookPath(agentPath); errors.Is(err, fs.ErrNotExist) {
		agentReason = "agent binary " + agentPath + " not found (build it first)"
	} else if err != nil {
		agentReason = err.Error()
	}
	btReason, _ := benchproc.BpftraceUnavailable("")
	configs := []*config{
		{name: cfgBare, measure: b.bare},
		{name: cfgFloor, measure: func(ctx context.Context) (sample, error) { return b.bpftrace(ctx, floorProg) }, skip: btReason},
		{name: cfgAgentHost, measure: b.agentHost, skip: agentReason},
		{name: cfgAgentTarget, measure: b.agentTarget, skip: agentReason},
		{name: cfgBpftrace, measure: func(ctx context.Context) (sample, error) { return b.bpftrace(ctx, bpftraceProg) }, skip: btReason},
	}
	fmt.Printf("uprobebench: empty C function, %d calls x %d rounds, configurations interleaved (order rotates each round)\n", calls, rounds)
	fmt.Printf("kernel %s, %d CPUs, agent %s, started %s\n", benchproc.KernelRelease(), runtime.NumCPU(), agentPath, time.Now().Format(time.RFC3339))
	var active []*config
	for _, c := range configs {
		if c.skip != "" {
			fmt.Printf("%s: skipped: %s\n", c.name, c.skip)
			continue
		}
		active = append(active, c)
	}
	if _, err := b.bare(ctx); err != nil { // warm-up, not recorded
		return fail(fmt.Errorf("workload does not run: %w", err))
	}
	// Kernel BPF stats time every program run (two clock reads each, in
	// every probed configuration alike): the programs' own cost per call,
	// apart from the breakpoint and trampoline, which dominate here.
	if restore, err := benchproc.EnableBPFStats(); err != nil {
		fmt.Println("note: BPF run-time stats unavailable:", err)
	} else {
		defer restore()
	}
	for r := 0; r < rounds && ctx.Err() == nil; r++ {
		var line []string
		for i := range active {
			c := active[(r+i)%len(active)]
			if c.failed != "" {
				continue
			}
			v, err := c.measure(ctx)
			if ctx.Err() != nil {
				break
			}
			if err != nil {
				c.failed = fmt.Sprintf("round %d: %v", r+1, err)
				fmt.Printf("%s: FAILED in round %d, not run again: %v\n", c.name, r+1, err)
				continue
			}
			c.samples = append(c.samples, v)
			line = append(line, fmt.Sprintf("%s %.1f", c.name, v.wall))
		}
		fmt.Printf("round %d/%d: %s\n", r+1, rounds, strings.Join(line, "  "))
	}
	if ctx.Err() != nil {
		return 130
	}
	return report(configs, calls, rounds, jsonOut)
}

type result struct {
	Name       string    `json:"name"`
	Status     string    `json:"status"`
	Error      string    `json:"error,omitempty"`
	Samples    []float64 `json:"samples_ns_per_call,omitempty"`
	Median     float64   `json:"median_ns_per_call,omitempty"`
	OverheadNs float64   `json:"overhead_ns_per_call,omitempty"`
	// BPFNs is the median of the programs' own run time per call (entry
	// and return together), from kernel BPF stats; 0 when not measured.
	BPFSamples []float64 `json:"samples_bpf_ns_per_call,omitempty"`
	BPFNs      float64   `json:"median_bpf_ns_per_call,omitempty"`
}

type ratio struct {
	Formula string   `json:"formula"`
	Value   *float64 `json:"value"`
	Target  *float64 `json:"target_max,omitempty"`
	Result  string   `json:"result"`
}

func report(configs []*config, calls, rounds int, jsonOut string) int {
	byName := map[string]*result{}
	var res []result
	for _, c := range configs {
		r := result{Name: c.name, Status: "ok"}
		switch {
		case c.skip != "":
			r.Status, r.Error = "skipped", c.skip
		case c.failed != "":
			r.Status, r.Error = "failed", c.failed
		case len(c.samples) == 0:
			r.Status = "failed"
		default:
			for _, smp := range c.samples {
				r.Samples = append(r.Samples, smp.wall)
				if !math.IsNaN(smp.bpf) {
					r.BPFSamples = append(r.BPFSamples, smp.bpf)
				}
			}
			r.Median = benchproc.Median(r.Samples)
			if len(r.BPFSamples) > 0 {
				r.BPFNs = benchproc.Median(r.BPFSamples)
			}
		}
		res = append(res, r)
	}
	for i := range res {
		byName[res[i].Name] = &res[i]
	}
	bare := byName[cfgBare]
	fmt.Printf("\n%-13s %12s %12s %14s\n", "configuration", "ns/call", "overhead", "BPF ns/call")
	for i := range res {
		r := &res[i]
		if r.Status != "ok" {
			fmt.Printf("%-13s %s: %s\n", r.Name, r.Status, r.Error)
			continue
		}
		if bare.Status == "ok" {
			r.OverheadNs = r.Median - bare.Median
		}
		bpf := "-"
		if r.BPFNs > 0 {
			bpf = fmt.Sprintf("%.1f", r.BPFNs)
		}
		fmt.Printf("%-13s %12.1f %+12.1f %14s\n", r.Name, r.Median, r.OverheadNs, bpf)
	}
	// Wall-clock ratios are information only: each call pays a breakpoint
	// trap and a return trampoline (tens of µs on VMs) that any uprobe
	// tool pays alike, so they measure the machine more than the probe.
	var ratios []ratio
	for _, q := range []struct {
		of, versus string
		target     *float64
	}{{cfgAgentHost, cfgBpftrace, nil}, {cfgAgentTarget, cfgBpftrace, nil}, {cfgAgentHost, cfgFloor, nil}, {cfgAgentTarget, cfgFloor, nil}} {
		rt := ratio{Formula: fmt.Sprintf("(%s - bare) / (%s - bare), medians", q.of, q.versus), Target: q.target, Result: "N/A"}
		of, versus := byName[q.of], byName[q.versus]
		if bare.Status == "ok" && of.Status == "ok" && versus.Status == "ok" && versus.OverheadNs > 0 {
			v := of.OverheadNs / versus.OverheadNs
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
		ratios = append(ratios, rt)
		val := "N/A"
		if rt.Value != nil {
			val = fmt.Sprintf("%.3f", *rt.Value)
		}
		tgt := ""
		if rt.Target != nil {
			tgt = fmt.Sprintf(" (target <= %.2f)", *rt.Target)
		}
		fmt.Printf("%s = %s%s %s\n", rt.Formula, val, tgt, rt.Result)
	}
	// The programs' own cost, without the trap both designs pay alike.
	for _, q := range [][2]string{{cfgAgentHost, cfgBpftrace}, {cfgAgentHost, cfgFloor}} {
		of, versus := byName[q[0]], byName[q[1]]
		rt := ratio{Formula: fmt.Sprintf("%s / %s, BPF program run time per call, medians", q[0], q[1]), Result: "N/A"}
		if of.BPFNs > 0 && versus.BPFNs > 0 {
			v := of.BPFNs / versus.BPFNs
			rt.Value, rt.Result = &v, "INFO"
			fmt.Printf("%s = %.3f INFO\n", rt.Formula, v)
		} else {
			fmt.Printf("%s = N/A\n", rt.Formula)
		}
		ratios = append(ratios, rt)
	}
	if jsonOut != "" {
		out, _ := json.MarshalIndent(map[string]any{
			"workload": "empty C function, uprobe + uretprobe", "calls": calls, "rounds": rounds,
			"kernel": benchproc.KernelRelease(), "cpus": runtime.NumCPU(), "configurations": res, "ratios": ratios,
		}, "", "  ")
		if err := os.WriteFile(jsonOut, append(out, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "uprobebench:", err)
			return 1
		}
	}
	if bare.Status != "ok" {
		return 1
	}
	return 0
}

func (b *bench) loopArgv() []string { return []string{b.loop, "bench", strconv.Itoa(b.calls)} }

func (b *bench) loopTimeout() time.Duration {
	return 30*time.Second + time.Duration(b.calls)*20*time.Microsecond
}

func (b *bench) bare(ctx context.Context) (sample, error) {
	onOut, lines := benchproc.Collect("")
	p, err := benchproc.Start(ctx, "workload", b.loopArgv(), onOut, nil)
	if err != nil {
		return sample{}, err
	}
	if err := p.Wait(ctx, b.loopTimeout()); err != nil {
		return sample{}, err
	}
	v, err := benchproc.ParseValue(lines(), "ns_per_call")
	return sample{wall: v, bpf: math.NaN()}, err
}

// runUnder runs the loop once p reported ready, reads the run time of the
// programs named progs, then stops p.
func (b *bench) runUnder(ctx context.Context, p *benchproc.Proc, ready <-chan struct{}, what string, progs ...string) (sample, error) {
	if err := p.WaitReady(ctx, ready, what, 30*time.Second); err != nil {
		return sample{}, err
	}
	before := bpfRunTime(progs)
	v, lerr := b.bare(ctx)
	if after := bpfRunTime(progs); lerr == nil && !math.IsNaN(before) && !math.IsNaN(after) && after > before {
		v.bpf = (after - before) / float64(b.calls)
	}
	if err := p.Interrupt(ctx, 30*time.Second); err != nil {
		return sample{}, err
	}
	return v, lerr
}

// bpfRunTime sums run_time_ns of the loaded programs with these names (the
// bench runs one configuration at a time; other tools' programs have other
// names). NaN when bpftool fails.
func bpfRunTime(names []string) float64 {
	if len(names) == 0 {
		return math.NaN()
	}
	out, err := exec.Command("bpftool", "prog", "show", "-j").Output()
	if err != nil {
		return math.NaN()
	}
	var progs []struct {
		Name      string  `json:"name"`
		RunTimeNs float64 `json:"run_time_ns"`
	}
	if err := json.Unmarshal(out, &progs); err != nil {
		return math.NaN()
	}
	var sum float64
	for _, pr := range progs {
		if slices.Contains(names, pr.Name) {
			sum += pr.RunTimeNs
		}
	}
	return sum
}

func (b *bench) agentArgv() ([]string, string) {
	b.seq++
	out := filepath.Join(b.tmp, fmt.Sprintf("out-%d.json", b.seq))
	return []string{b.agent, "run", "--probes", "uprobe", "--uprobe", b.loop + ":empty",
		"--exporter", "otlp-json", "--output", out, "--interval", "1s"}, out
}

// agentHost: the agent observes the whole host, started before and
// stopped (SIGINT, exit 0) after the loop.
func (b *bench) agentHost(ctx context.Context) (sample, error) {
	argv, out := b.agentArgv()
	onErr, attached := benchproc.SignalWhen("attached")
	p, err := benchproc.Start(ctx, "agent", argv, nil, onErr)
	if err != nil {
		return sample{}, err
	}
	v, err := b.runUnder(ctx, p, attached, `"attached" on stderr`, "native_entry", "native_return")
	if err != nil {
		return sample{}, err
	}
	return v, b.checkRecorded(out)
}

// agentTarget: the agent starts the loop as its held command and passes
// its stdout through. Its programs are gone when the loop's time is known,
// so no BPF run time is read.
func (b *bench) agentTarget(ctx context.Context) (sample, error) {
	argv, out := b.agentArgv()
	argv = append(append(argv, "--"), b.loopArgv()...)
	onOut, lines := benchproc.Collect("")
	p, err := benchproc.Start(ctx, "agent", argv, onOut, nil)
	if err != nil {
		return sample{}, err
	}
	if err := p.Wait(ctx, b.loopTimeout()); err != nil {
		return sample{}, err
	}
	v, err := benchproc.ParseValue(lines(), "ns_per_call")
	if err != nil {
		return sample{}, err
	}
	return sample{wall: v, bpf: math.NaN()}, b.checkRecorded(out)
}

// checkRecorded fails a run whose export does not carry the function's
// calls: an agent that attached nothing would look free.
func (b *bench) checkRecorded(out string) error {
	data, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	if !strings.Contains(string(data), "telagent.function.calls") || !strings.Contains(string(data), `"stringValue":"empty"`) {
		return fmt.Errorf("%s has no telagent.function.calls of empty: the probe recorded nothing", out)
	}
	return nil
}

// bpftrace runs prog. It prints "Attaching N probes" before it attaches
// them, and ignores SIGINT until it is done, so the loop starts only once
// bpftool lists both of its uprobe perf events.
func (b *bench) bpftrace(ctx context.Context, prog string) (sample, error) {
	onOut, attaching := benchproc.SignalWhen("Attaching")
	p, err := benchproc.Start(ctx, "bpftrace", []string{"bpftrace", "-e", fmt.Sprintf(prog, b.loop)}, onOut, nil)
	if err != nil {
		return sample{}, err
	}
	if err := p.WaitReady(ctx, attaching, `"Attaching N probes" on stdout`, 30*time.Second); err != nil {
		return sample{}, err
	}
	attached := make(chan struct{})
	go func() {
		marker := fmt.Sprintf("pid %d ", p.Cmd.Process.Pid)
		for ctx.Err() == nil {
			out, _ := exec.CommandContext(ctx, "bpftool", "perf", "list").Output()
			if strings.Count(string(out), marker) >= 2 {
				close(attached)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// bpftrace names both programs after the probed function.
	return b.runUnder(ctx, p, attached, "both uprobes attached (bpftool perf list)", "empty")
}
