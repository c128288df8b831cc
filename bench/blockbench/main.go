// Command blockbench measures the per-request overhead of telagent's
// blockio probe: an O_DIRECT loop of 4 KiB random writes and reads on a
// loop device, bare, under the agent (whole host, and with the loop as its
// target) and under bpftrace doing a biolatency-style measurement. The
// configurations run interleaved in one invocation; compare the numbers of
// one run only.
//
//	go run ./bench/blockbench -agent ./bin/telagent [-ops 40000] [-rounds 9] [-json FILE]
//
// It must run as root. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/bench/internal/benchproc"
)

const (
	cfgBare        = "bare"
	cfgAgentHost   = "agent-host"
	cfgAgentTarget = "agent-target"
	cfgBpftrace    = "bpftrace"
)

// bpftraceProg is biolatency on tracepoints: the device time of every
// request, issue to completion, in one histogram, plus requests per device
// and direction. bpftrace 0.17 has no raw tracepoints, so the request is
// keyed by (device, sector), the tracepoints' own identity of it.
const bpftraceProg = `
tracepoint:block:block_rq_issue { @start[args->dev, args->sector] = nsecs; }
tracepoint:block:block_rq_complete /@start[args->dev, args->sector]/ {
	@usecs = hist((nsecs - @start[args->dev, args->sector]) / 1000);
	@ops[args->dev, args->rwbs] = count();
	delete(@start[args->dev, args->sector]);
}
BEGIN { printf("ready\n"); }
END { clear(@start); }
`

// loopSize is the loop device's size: large enough that random 4 KiB
// offsets rarely repeat, small enough for tmpfs.
const loopSize = 64 << 20

type bench struct {
	dev   string
	work  benchproc.Workload
	agent benchproc.Agent
}

func main() {
	agent := flag.String("agent", "./bin/telagent", "telagent binary; the agent configurations are skipped when it is missing")
	ops := flag.Int("ops", 40000, "4 KiB O_DIRECT operations (half writes, half reads) per measurement")
	rounds := flag.Int("rounds", 9, "rounds; each round measures every configuration once")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	flag.Parse()
	if flag.NArg() != 0 || *ops < 1 || *rounds < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, *agent, *ops, *rounds, *jsonOut)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, agentPath string, ops, rounds int, jsonOut string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "blockbench:", err); return 1 }
	if os.Geteuid() != 0 {
		return fail(errors.New("must run as root (loop devices, BPF)"))
	}
	tmp, err := os.MkdirTemp("", "blockbench-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "workload", "dio_loop.c")
	b := &bench{}
	loop, err := benchproc.BuildC(ctx, tmp, src)
	if err != nil {
		return fail(err)
	}
	dev, detach, err := attachLoop()
	if err != nil {
		return fail(err)
	}
	defer detach()
	b.dev = dev
	b.work = benchproc.Workload{Argv: []string{loop, dev, strconv.Itoa(ops)}, Ops: ops,
		Timeout: 30*time.Second + time.Duration(ops)*time.Millisecond, WallKey: "ns_per_op", CPUKey: "cpu_ns_per_op"}
	var agentReason string
	b.agent.Bin, agentReason = benchproc.FindAgent(agentPath)
	b.agent.Probe, b.agent.Dir, b.agent.Check = "blockio", tmp, b.checkRecorded
	btReason, _ := benchproc.BpftraceUnavailable("")
	configs := []*benchproc.Config{
		{Name: cfgBare, Measure: b.work.Run},
		{Name: cfgAgentHost, Measure: func(ctx context.Context) (benchproc.Sample, error) { return b.agent.Host(ctx, b.work) }, Skip: agentReason},
		{Name: cfgAgentTarget, Measure: func(ctx context.Context) (benchproc.Sample, error) { return b.agent.Target(ctx, b.work) }, Skip: agentReason},
		{Name: cfgBpftrace, Measure: b.bpftrace, Skip: btReason},
	}
	fmt.Printf("blockbench: O_DIRECT 4 KiB random write+read on %s (loop over tmpfs, %d MiB), %d ops x %d rounds, configurations interleaved (order rotates each round)\n",
		dev, loopSize>>20, ops, rounds)
	fmt.Printf("kernel %s, %d CPUs, agent %s, started %s\n", benchproc.KernelRelease(), runtime.NumCPU(), agentPath, time.Now().Format(time.RFC3339))
	if _, err := b.work.Run(ctx); err != nil { // warm-up: fills the backing file's pages
		return fail(fmt.Errorf("workload does not run: %w", err))
	}
	if restore, err := benchproc.EnableBPFStats(); err != nil {
		fmt.Println("note: BPF run-time stats unavailable:", err)
	} else {
		defer restore()
	}
	if err := benchproc.Interleave(ctx, configs, rounds); err != nil {
		return 130
	}
	pairs := [][2]string{{cfgAgentHost, cfgBpftrace}, {cfgAgentTarget, cfgBpftrace}}
	meta := map[string]any{"workload": "O_DIRECT 4 KiB random write+read on a loop device", "ops": ops, "rounds": rounds}
	return benchproc.Report(configs, cfgBare, pairs, "op", meta, jsonOut)
}

// attachLoop makes a loop device over a file on tmpfs (/dev/shm), so that
// a request costs the block layer and the loop driver but no real disk,
// whose noise would bury the probe's cost. The device has autoclear set
// (the kernel detaches it when the last descriptor closes, so also when
// this process dies); detach clears it explicitly.
func attachLoop() (dev string, detach func(), err error) {
	bf, err := os.CreateTemp("/dev/shm", "blockbench-*.img")
	if err != nil {
		return "", nil, fmt.Errorf("backing file: %w", err)
	}
	// The loop holds its own reference to the file: it can go from the
	// namespace and from this process now.
	defer os.Remove(bf.Name())
	defer bf.Close()
	if err := bf.Truncate(loopSize); err != nil {
		return "", nil, fmt.Errorf("backing file: %w", err)
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("no loop devices: %w", err)
	}
	defer ctl.Close()
	// Another process may take the free device between the two calls: retry.
	for range 10 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		path := "/dev/loop" + strconv.Itoa(n)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return "", nil, fmt.Errorf("open %s: %w", path, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(bf.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) {
			f.Close()
			continue
		}
		if err != nil {
			f.Close()
			return "", nil, fmt.Errorf("LOOP_CONFIGURE %s: %w", path, err)
		}
		return path, func() {
			// With autoclear set, LOOP_CLR_FD on an open device detaches
			// it at the last close, which is this one.
			if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
				fmt.Fprintf(os.Stderr, "blockbench: LOOP_CLR_FD %s: %v\n", path, err)
			}
			f.Close()
		}, nil
	}
	return "", nil, errors.New("no free loop device after 10 attempts")
}

// checkRecorded fails a run whose export has no operations on the loop
// device: an agent that attached nothing would look free.
func (b *bench) checkRecorded(out string) error {
	data, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	name := filepath.Base(b.dev)
	if !strings.Contains(string(data), "process.disk.operations") || !strings.Contains(string(data), `"stringValue":"`+name+`"`) {
		return fmt.Errorf("%s has no process.disk.operations on %s: the probe recorded nothing", out, name)
	}
	return nil
}

func (b *bench) bpftrace(ctx context.Context) (benchproc.Sample, error) {
	return benchproc.Under(ctx, "bpftrace", []string{"bpftrace", "-e", bpftraceProg}, "ready", true, b.work.Ops, b.work.Run)
}
