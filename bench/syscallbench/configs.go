package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/telagent/telagent/bench/floor"
	"github.com/telagent/telagent/bench/internal/benchproc"
)

// bpftraceProg does the job of the syscalls probe in bpftrace: per (pid,
// syscall) call count and latency histogram.
const bpftraceProg = `tracepoint:raw_syscalls:sys_enter { @start[tid] = nsecs; } ` +
	`tracepoint:raw_syscalls:sys_exit /@start[tid]/ { @calls[pid, args->id] = count(); ` +
	`@lat[pid, args->id] = hist(nsecs - @start[tid]); delete(@start[tid]); }`

// bench holds what every configuration needs.
type bench struct {
	loop         string // compiled workload
	calls        int
	agent        string // resolved agent path, "" when unavailable
	baseline     string // resolved baseline agent path (the per-CPU layout), "" when unavailable
	tmp          string
	readyTimeout time.Duration
	stopTimeout  time.Duration
	seq          int // numbers the agent's output files
}

func (b *bench) loopTimeout() time.Duration {
	return 30*time.Second + time.Duration(b.calls)*10*time.Microsecond
}

func (b *bench) loopArgv() []string { return []string{b.loop, strconv.Itoa(b.calls)} }

// runLoop runs the workload as a child of the harness.
func (b *bench) runLoop(ctx context.Context) (float64, error) {
	onOut, lines := benchproc.Collect("ns_per_call=")
	p, err := benchproc.Start(ctx, "workload", b.loopArgv(), onOut, nil)
	if err != nil {
		return 0, err
	}
	if err := p.Wait(ctx, b.loopTimeout()); err != nil {
		return 0, err
	}
	return benchproc.ParseValue(lines(), "ns_per_call")
}

func (b *bench) bare(ctx context.Context) (float64, error) { return b.runLoop(ctx) }

func (b *bench) floor(ctx context.Context) (float64, error) {
	return b.runFloor(ctx, floor.Empty)
}

func (b *bench) clock(ctx context.Context) (float64, error) {
	return b.runFloor(ctx, floor.Clock)
}

func (b *bench) clockStorage(ctx context.Context) (float64, error) {
	return b.runFloor(ctx, floor.ClockStorage)
}

// runFloor runs the loop with one pair of floor programs attached in
// process. Variants that write a map must leave a trace there, or the
// programs did not run and the number would be a bare one.
func (b *bench) runFloor(ctx context.Context, v floor.Variant) (float64, error) {
	f, err := floor.AttachVariant(v)
	if err != nil {
		return 0, err
	}
	ns, err := b.runLoop(ctx)
	if err == nil {
		ran, rerr := f.Ran()
		switch {
		case rerr != nil:
			err = rerr
		case !ran:
			err = fmt.Errorf("%s floor programs were attached but left no trace in their map: they did not run", v)
		}
	}
	if cerr := f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("detach %s floor programs: %w", v, cerr)
	}
	return ns, err
}

func (b *bench) agentArgv() []string { return b.argvOf(b.agent) }

func (b *bench) argvOf(bin string) []string {
	b.seq++
	out := filepath.Join(b.tmp, fmt.Sprintf("out-%d.json", b.seq))
	return []string{bin, "run", "--probes", "syscalls", "--exporter", "otlp-json",
		"--output", out, "--interval", "1s"}
}

func (b *bench) agentHost(ctx context.Context) (float64, error) { return b.hostRun(ctx, b.agentArgv()) }

// baselineHost is agentHost with the baseline agent: the syscalls probe
// on the per-CPU hash layout that node_hash replaced.
func (b *bench) baselineHost(ctx context.Context) (float64, error) {
	return b.hostRun(ctx, b.argvOf(b.baseline))
}

func (b *bench) hostRun(ctx context.Context, argv []string) (float64, error) {
	onErr, attached := benchproc.SignalWhen("attached")
	p, err := benchproc.Start(ctx, "agent", argv, nil, onErr)
	if err != nil {
		return 0, err
	}
	if err := p.WaitReady(ctx, attached, `"attached" on stderr`, b.readyTimeout); err != nil {
		return 0, err
	}
	ns, lerr := b.runLoop(ctx)
	if err := p.Interrupt(ctx, b.stopTimeout); err != nil {
		return 0, err
	}
	return ns, lerr
}

func (b *bench) agentTarget(ctx context.Context) (float64, error) {
	onErr, attached := benchproc.SignalWhen("attached")
	onOut, lines := benchproc.Collect("ns_per_call=")
	argv := append(append(b.agentArgv(), "--"), b.loopArgv()...)
	p, err := benchproc.Start(ctx, "agent", argv, onOut, onErr)
	if err != nil {
		return 0, err
	}
	if err := p.Wait(ctx, b.readyTimeout+b.loopTimeout()+b.stopTimeout); err != nil {
		return 0, err
	}
	select {
	case <-attached:
	default:
		// Without it the loop may have run before (or without) the probes.
		return 0, fmt.Errorf(`agent exited 0 but never printed "attached" on stderr; stderr:`+"\n    %s", p.Stderr.Tail())
	}
	return benchproc.ParseValue(lines(), "ns_per_call")
}

func (b *bench) bpftrace(ctx context.Context) (float64, error) {
	onOut, attaching := benchproc.SignalWhen("Attaching")
	p, err := benchproc.Start(ctx, "bpftrace", []string{"bpftrace", "-e", bpftraceProg}, onOut, nil)
	if err != nil {
		return 0, err
	}
	if err := p.WaitReady(ctx, attaching, `"Attaching N probes" on stdout`, b.readyTimeout); err != nil {
		return 0, err
	}
	ns, lerr := b.runLoop(ctx)
	if err := p.Interrupt(ctx, b.stopTimeout); err != nil {
		return 0, err
	}
	return ns, lerr
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
