// Command syscallbench measures the per-syscall overhead of telagent's
// syscalls probe against a bare run, against the floor of any eBPF approach
// (two empty programs on sys_enter/sys_exit), against the floors of exact
// syscall timing (two clock reads; two clock reads plus task storage) and
// against bpftrace doing the same measurement. All configurations run
// interleaved in one invocation; compare the numbers of one run only.
//
//	go run ./bench/syscallbench -agent ./bin/telagent [-calls 2000000] [-rounds 5] [-configs LIST] [-json FILE]
//
// It must run as root. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/telagent/telagent/bench/internal/benchproc"
)

type options struct {
	agent        string
	baseline     string
	calls        int
	rounds       int
	jsonOut      string
	workload     string
	readyTimeout time.Duration
	strict       bool
	configs      map[string]bool // selected configurations
}

func main() {
	var o options
	flag.StringVar(&o.agent, "agent", "./bin/telagent", "telagent binary; the agent configurations are skipped when it is missing")
	flag.StringVar(&o.baseline, "baseline", "./bin/telagent-percpu", "the agent before node_hash (per-CPU hash layout, make bench builds it); its configuration is skipped when it is missing")
	flag.IntVar(&o.calls, "calls", 2000000, "getppid calls per measurement")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; each round measures every configuration once")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.workload, "workload", "", "workload C source (default: bench/workload/getppid_loop.c of this repository)")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 30*time.Second, "how long to wait for the agent or bpftrace to attach")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 unless every ratio is PASS")
	configList := flag.String("configs", strings.Join(allConfigs, ","), "comma-separated configurations to run; the others are reported as not selected")
	flag.Parse()
	if flag.NArg() != 0 || o.calls <= 0 || o.rounds <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	if o.configs, err = parseConfigs(*configList); err != nil {
		fmt.Fprintln(os.Stderr, "syscallbench: -configs:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o)
	stop()
	os.Exit(code)
}

const (
	cfgBare         = "bare"
	cfgFloor        = "floor"
	cfgClock        = "clock"
	cfgClockStorage = "clock+storage"
	cfgAgentHost    = "agent-host"
	cfgAgentTarget  = "agent-target"
	cfgBpftrace     = "bpftrace"
	cfgBaselineHost = "percpu-host"
)

// allConfigs is every configuration, in the order of the table.
var allConfigs = []string{cfgBare, cfgFloor, cfgClock, cfgClockStorage, cfgAgentHost, cfgAgentTarget, cfgBaselineHost, cfgBpftrace}

const notSelected = "not selected (-configs)"

// parseConfigs parses the -configs list.
func parseConfigs(list string) (map[string]bool, error) {
	sel := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(allConfigs, name) {
			return nil, fmt.Errorf("unknown configuration %q (known: %s)", name, strings.Join(allConfigs, ","))
		}
		sel[name] = true
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("no configuration selected (known: %s)", strings.Join(allConfigs, ","))
	}
	return sel, nil
}

type config struct {
	name    string
	measure func(context.Context) (float64, error)
	skip    string // why it is not run at all
	failed  string // why it stopped being run
	round   int    // round in which it failed
	samples []float64
}

func run(ctx context.Context, o options) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "syscallbench: warning: not running as root; floor, agent and bpftrace will fail")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		fmt.Fprintln(os.Stderr, "syscallbench: warning: remove memlock rlimit:", err)
	}
	tmp, err := os.MkdirTemp("", "syscallbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "syscallbench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	src, err := findWorkload(o.workload)
	if err != nil {
		fmt.Fprintln(os.Stderr, "syscallbench:", err)
		return 1
	}
	loop := filepath.Join(tmp, "getppid_loop")
	if out, err := exec.CommandContext(ctx, "gcc", "-O2", "-o", loop, src).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "syscallbench: gcc -O2 %s: %v\n%s", src, err, out)
		return 1
	}

	b := &bench{loop: loop, calls: o.calls, tmp: tmp, readyTimeout: o.readyTimeout, stopTimeout: 20 * time.Second}
	var agentReason, baseReason, btReason string
	if o.configs[cfgAgentHost] || o.configs[cfgAgentTarget] {
		b.agent, agentReason = resolveAgent(o.agent)
	}
	if o.configs[cfgBaselineHost] {
		b.baseline, baseReason = resolveAgent(o.baseline)
	}
	if o.configs[cfgBpftrace] {
		var btNote string
		btReason, btNote = benchproc.BpftraceUnavailable("raw_syscalls")
		if btNote != "" {
			fmt.Println("note:", btNote)
		}
	}
	configs := []*config{
		{name: cfgBare, measure: b.bare},
		{name: cfgFloor, measure: b.floor},
		{name: cfgClock, measure: b.clock},
		{name: cfgClockStorage, measure: b.clockStorage},
		{name: cfgAgentHost, measure: b.agentHost, skip: agentReason},
		{name: cfgAgentTarget, measure: b.agentTarget, skip: agentReason},
		{name: cfgBaselineHost, measure: b.baselineHost, skip: baseReason},
		{name: cfgBpftrace, measure: b.bpftrace, skip: btReason},
	}
	var unselected []string
	var active []*config // run in the rounds, rotated
	for _, c := range configs {
		if !o.configs[c.name] {
			c.skip = notSelected
			unselected = append(unselected, c.name)
			continue
		}
		if c.skip == "" {
			active = append(active, c)
		}
	}

	fmt.Printf("syscallbench: getppid loop, %d calls x %d rounds, configurations interleaved (order rotates each round)\n", o.calls, o.rounds)
	fmt.Printf("kernel %s, %d CPUs, agent %s, started %s\n", benchproc.KernelRelease(), runtime.NumCPU(), o.agent, time.Now().Format(time.RFC3339))
	if len(unselected) > 0 {
		fmt.Printf("not selected (-configs): %s\n", strings.Join(unselected, ", "))
	}
	for _, c := range configs {
		if c.skip != "" && c.skip != notSelected {
			fmt.Printf("%s: skipped: %s\n", c.name, c.skip)
		}
	}

	// Warm-up, not recorded: page cache, CPU frequency, first exec.
	if _, err := b.runLoop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "syscallbench: workload does not run:", err)
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
			ns, err := c.measure(ctx)
			if ctx.Err() != nil {
				break
			}
			if err != nil {
				c.failed, c.round = err.Error(), r+1
				fmt.Printf("%s: FAILED in round %d, not run again: %v\n", c.name, r+1, err)
				continue
			}
			c.samples = append(c.samples, ns)
			line = append(line, fmt.Sprintf("%s %.1f", c.name, ns))
		}
		fmt.Printf("round %d/%d: %s\n", r+1, o.rounds, strings.Join(line, "  "))
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "syscallbench: interrupted")
		return 130
	}
	fmt.Printf("measured in %s\n\n", time.Since(start).Round(100*time.Millisecond))

	res := summarize(o, configs)
	printResults(os.Stdout, res)
	if o.jsonOut != "" {
		if err := writeJSON(o.jsonOut, res); err != nil {
			fmt.Fprintln(os.Stderr, "syscallbench:", err)
			return 1
		}
	}
	if configs[0].failed != "" {
		return 1
	}
	if o.strict {
		for _, r := range res.Ratios {
			if r.Result != resultPass {
				return 1
			}
		}
	}
	return 0
}

// findWorkload locates the workload source: the flag, else relative to the
// working directory (the repository root under make), else next to this
// source file.
func findWorkload(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	candidates := []string{filepath.Join("bench", "workload", "getppid_loop.c")}
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "workload", "getppid_loop.c"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", errors.New("cannot find bench/workload/getppid_loop.c; run from the repository root or pass -workload")
}
