// Command soak runs the built agent for a long time (default 10 minutes)
// under process churn, disk and loopback TCP traffic, exporting with OTLP
// to a Collector that goes down and comes back, and checks that the agent's
// resident memory, open file descriptors and threads stay flat after a
// warm-up. It also reports the agent's own drop counters as the Collector
// delivered them.
//
//	go run ./bench/soak -agent ./bin/telagent [-duration 10m] [-warmup 2m]
//
// It must run as root. It exits 1 when a series is not flat. See
// bench/README.md.
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
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/telagent/telagent/bench/internal/benchproc"
	"github.com/telagent/telagent/internal/collectortest"
	"github.com/telagent/telagent/internal/testutil"
)

type options struct {
	agent, collector, rawsysSrc string
	duration, warmup, every     time.Duration
	interval                    time.Duration
	flapUp, flapDown            time.Duration
	rate                        int
	lim                         limits
	keep                        bool
}

func main() {
	var o options
	flag.StringVar(&o.agent, "agent", "./bin/telagent", "telagent binary")
	flag.StringVar(&o.collector, "collector", collectortest.BinaryPath(), "test Collector binary (make collector builds it)")
	flag.StringVar(&o.rawsysSrc, "rawsys", "testdata/workload/rawsys.c", "rawsys workload source")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the agent runs")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Minute, "samples before this are the baseline, not checked")
	flag.DurationVar(&o.every, "sample", 10*time.Second, "sampling period")
	flag.DurationVar(&o.interval, "interval", 2*time.Second, "the agent's --interval")
	flag.DurationVar(&o.flapUp, "flap-up", 40*time.Second, "the Collector runs this long…")
	flag.DurationVar(&o.flapDown, "flap-down", 20*time.Second, "…then is killed for this long, over and over")
	flag.IntVar(&o.rate, "rate", 200, "short-lived processes started per second")
	flag.Float64Var(&o.lim.rssRatio, "rss-ratio", 1.2, "max RSS after warm-up ≤ warm-up RSS × this + -rss-slack")
	rssSlack := flag.Int("rss-slack-mib", 8, "absolute RSS slack, MiB")
	flag.Float64Var(&o.lim.countGrowth, "count-growth", 4, "FDs and threads: the most the fitted line may grow over the checked window")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (Collector log, config)")
	flag.Parse()
	o.lim.rssSlackKiB = float64(*rssSlack) * 1024
	if flag.NArg() != 0 || o.duration <= o.warmup || o.every <= 0 || o.rate <= 0 || o.flapUp <= 0 || o.flapDown <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	// The warm-up peak is the RSS baseline: without an outage and its
	// recovery in it, every later recovery's spike fails the check.
	if o.warmup < o.flapUp+o.flapDown+20*time.Second {
		fmt.Fprintf(os.Stderr, "soak: warning: -warmup %s does not cover one Collector outage and its recovery (%s); the rss verdict will be meaningless\n",
			o.warmup, o.flapUp+o.flapDown+20*time.Second)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, o options) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	if os.Geteuid() != 0 {
		return fail(errors.New("must run as root (the agent loads BPF programs)"))
	}
	if runtime.GOARCH != "amd64" {
		return fail(errors.New("the rawsys workload is x86-64 only"))
	}
	for _, f := range []struct{ what, path string }{{"agent", o.agent}, {"Collector", o.collector}, {"rawsys source", o.rawsysSrc}} {
		if _, err := os.Stat(f.path); err != nil {
			hint := ""
			if f.what == "Collector" {
				hint = " (make collector builds it)"
			}
			return fail(fmt.Errorf("%s: %w%s", f.what, err, hint))
		}
	}
	// Not /tmp: it may be a tmpfs, and the disk load must reach a disk.
	dir, err := os.MkdirTemp("/var/tmp", "telagent-soak-")
	if err != nil {
		return fail(err)
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "soak: work directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	rawsys := filepath.Join(dir, "rawsys")
	if out, err := exec.Command("gcc", append(testutil.RawsysFlags(), "-o", rawsys, o.rawsysSrc)...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("gcc rawsys: %w\n%s", err, out))
	}

	recv, err := startReceiver()
	if err != nil {
		return fail(err)
	}
	defer recv.stop()
	col, err := newCollector(o.collector, dir, recv.addr())
	if err != nil {
		return fail(err)
	}
	if err := col.start(); err != nil {
		return fail(err)
	}

	logs := &logCounter{byMsg: map[string]int{}}
	ready, attached := benchproc.SignalWhen("attached")
	agent, err := benchproc.Start(ctx, "telagent", []string{o.agent, "run",
		"--exporter", "otlp", "--endpoint", col.grpc, "--interval", o.interval.String(), "--fork-events"},
		nil, func(l string) { ready(l); logs.line(l) })
	if err != nil {
		col.kill()
		return fail(err)
	}
	if err := agent.WaitReady(ctx, attached, "attached", 2*time.Minute); err != nil {
		col.kill()
		return fail(err)
	}
	pid := agent.Cmd.Process.Pid
	t0 := time.Now()
	fmt.Printf("soak: agent pid %d attached; %s, warm-up %s, sample every %s, --interval %s, Collector up %s / down %s, %d processes/s\n",
		pid, o.duration, o.warmup, o.every, o.interval, o.flapUp, o.flapDown, o.rate)

	loadCtx, stopLoad := context.WithCancel(ctx)
	var load loadCounters
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, f := range []func() error{
		func() error { churn(loadCtx, rawsys, o.rate, &load); return nil },
		func() error { return disk(loadCtx, dir, &load) },
		func() error { return tcp(loadCtx, &load) },
		func() error { return col.flap(loadCtx, o.flapUp, o.flapDown) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
	}

	samples, runErr := sampleLoop(ctx, o, pid, t0, agent, col, &load, recv, errs)
	stopLoad()
	wg.Wait()
	if runErr == nil {
		select {
		case runErr = <-errs:
		default:
		}
	}
	// A Collector that is up takes the agent's final flush.
	if !col.up.Load() && runErr == nil {
		if err := col.start(); err != nil {
			runErr = err
		}
	}
	var stopErr error
	if runErr == nil {
		stopErr = agent.Interrupt(ctx, time.Minute)
	} else {
		agent.Kill()
	}
	// Let the Collector's batch (100 ms) and export reach the receiver.
	time.Sleep(2 * time.Second)
	col.kill()

	fmt.Println()
	procs := load.procs.Load()
	fmt.Printf("load: %d processes (%.0f/s, %d failed), %.0f MiB disk written+read, %d loopback TCP connections (+ rawsys tcp), %d Collector outages\n",
		procs, float64(procs)/time.Since(t0).Seconds(), load.procErrs.Load(), float64(load.diskBytes.Load())/(1<<20), load.tcpConns.Load(), col.flaps.Load())
	reqs, nlogs, series := recv.snapshot()
	fmt.Printf("delivered through the Collector: %d metric requests, %d log records", reqs, nlogs)
	// The Collector's own failures (to the receiver) would make the
	// delivered numbers incomplete: say so.
	if b, err := os.ReadFile(filepath.Join(dir, "collector.log")); err == nil {
		fmt.Printf("; Collector log: %d error lines", strings.Count(string(b), "\terror\t"))
	}
	fmt.Println()
	fmt.Println("agent self-telemetry (last cumulative value delivered):")
	keys := make([]string, 0, len(series))
	for k := range series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, name := range selfMetrics {
		found := false
		for _, k := range keys {
			if strings.HasPrefix(k, name+"{") || k == name {
				fmt.Printf("  %-75s %.0f\n", k, series[k])
				found = true
			}
		}
		if !found {
			fmt.Printf("  %-75s (no point: never incremented, or not delivered)\n", name)
		}
	}
	logs.print()

	if runErr != nil {
		return fail(runErr)
	}
	code := 0
	if stopErr != nil {
		fmt.Println("FAIL agent stop:", stopErr)
		code = 1
	} else {
		fmt.Println("PASS agent stop: exited 0 on SIGINT")
	}
	for _, v := range check(samples, o.warmup.Seconds(), o.lim) {
		word := "PASS"
		if !v.pass {
			word, code = "FAIL", 1
		}
		fmt.Printf("%s %-7s %s\n", word, v.series, v.detail)
	}
	return code
}

// sampleLoop samples the agent every o.every until o.duration has passed,
// printing one table row per sample.
func sampleLoop(ctx context.Context, o options, pid int, t0 time.Time, agent *benchproc.Proc, col *collector,
	load *loadCounters, recv *receiver, errs <-chan error) ([]sample, error) {
	fmt.Printf("%6s %9s %9s %7s %5s %6s %9s %9s %6s %9s\n", "t(s)", "rss(MiB)", "peak(MiB)", "threads", "fds", "cpu%", "collector", "procs/s", "reqs", "phase")
	tick := time.NewTicker(o.every)
	defer tick.Stop()
	end := time.NewTimer(o.duration)
	defer end.Stop()
	var samples []sample
	var lastProcs int64
	var last sample
	lastAt := t0
	hz := 100.0 // USER_HZ on Linux
	take := func() error {
		s, err := readSample(pid)
		if err != nil {
			return err
		}
		now := time.Now()
		s.at = now.Sub(t0).Seconds()
		cpu := 0.0
		if len(samples) > 0 {
			cpu = float64(s.cpuTick-last.cpuTick) / hz / now.Sub(lastAt).Seconds() * 100
		}
		procs := load.procs.Load()
		rate := float64(procs-lastProcs) / now.Sub(lastAt).Seconds()
		reqs, _, _ := recv.snapshot()
		state := "down"
		if col.up.Load() {
			state = "up"
		}
		phase := "check"
		if s.at < o.warmup.Seconds() {
			phase = "warm-up"
		}
		fmt.Printf("%6.0f %9.1f %9.1f %7d %5d %6.1f %9s %9.0f %6d %9s\n", s.at, mib(s.rssKiB), mib(s.peakKiB), s.threads, s.fds, cpu, state, rate, reqs, phase)
		samples = append(samples, s)
		last, lastAt, lastProcs = s, now, procs
		return nil
	}
	if err := take(); err != nil {
		return samples, err
	}
	for {
		select {
		case <-ctx.Done():
			return samples, ctx.Err()
		case err := <-errs:
			return samples, err
		case <-agent.Done():
			return samples, fmt.Errorf("agent exited during the soak: %v", agent.ExitErr())
		case <-end.C:
			// The last sample at the end, unless a tick just took one.
			if time.Since(lastAt) < o.every/2 {
				return samples, nil
			}
			return samples, take()
		case <-tick.C:
			if err := take(); err != nil {
				return samples, err
			}
		}
	}
}

// logCounter counts the agent's WARN and ERROR log lines by message.
type logCounter struct {
	mu    sync.Mutex
	byMsg map[string]int
}

func (c *logCounter) line(l string) {
	if !strings.Contains(l, "level=WARN") && !strings.Contains(l, "level=ERROR") {
		return
	}
	msg := l
	if i := strings.Index(l, "msg="); i >= 0 {
		msg = l[i+4:]
		// The message alone, without its attributes (which vary).
		if strings.HasPrefix(msg, `"`) {
			if j := strings.Index(msg[1:], `"`); j >= 0 {
				msg = msg[:j+2]
			}
		} else if j := strings.IndexByte(msg, ' '); j >= 0 {
			msg = msg[:j]
		}
		if strings.Contains(l, "level=ERROR") {
			msg = "ERROR " + msg
		} else {
			msg = "WARN " + msg
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Bounded: a flood of distinct messages must not grow the harness.
	if _, ok := c.byMsg[msg]; ok || len(c.byMsg) < 50 {
		c.byMsg[msg]++
	}
}

func (c *logCounter) print() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byMsg) == 0 {
		fmt.Println("agent log: no WARN or ERROR line")
		return
	}
	fmt.Println("agent log, WARN/ERROR lines by message:")
	msgs := make([]string, 0, len(c.byMsg))
	for m := range c.byMsg {
		msgs = append(msgs, m)
	}
	slices.Sort(msgs)
	for _, m := range msgs {
		fmt.Printf("  %6d  %s\n", c.byMsg[m], m)
	}
}
