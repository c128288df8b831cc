// Package agent wires probes, the entity resolver and an exporter into the
// collection loop behind `telagent run`.
package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/shared"
)

// Config is everything `telagent run` decided from its flags.
type Config struct {
	Probes   []probes.Probe
	Pids     []uint32 // existing processes to observe
	Command  []string // a command to start held, observe and wait for
	Interval time.Duration
	Duration time.Duration // 0: until a signal (or the command's exit)
	Exporter export.Exporter
	Version  string
	Log      *slog.Logger

	// Where the command's standard streams go (the agent's own by default).
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// SysRoot and ProcRoot are "/sys" and "/proc" except in tests.
	SysRoot, ProcRoot, Root string

	// Selectors choose targets by executable, command name or cgroup
	// (targets.go); running processes that match are found in /proc.
	Selectors Selectors
	// Events receives the probes' events (events.go); nil exports none,
	// exits still drive the eviction of dead processes' series.
	Events export.EventExporter
}

// keepGenerations is how many intervals a process's identity is remembered
// after its last data point.
const keepGenerations = 30

// Run attaches the probes, collects every interval until ctx ends, the
// duration passes or the command exits, then does a final collection and
// export, detaches everything and returns the command's exit code (0
// without a command).
func Run(ctx context.Context, cfg Config) (int, error) {
	cfg.defaults()
	log := cfg.Log
	if err := rlimit.RemoveMemlock(); err != nil {
		return 0, fmt.Errorf("raise RLIMIT_MEMLOCK for BPF maps: %w", err)
	}
	topo, err := aggregator.DiscoverTopology(cfg.SysRoot)
	if err != nil {
		return 0, fmt.Errorf("CPU topology: %w", err)
	}
	hostAttrs, err := entity.HostAttributes(cfg.Root)
	if err != nil {
		return 0, err
	}
	resolver, err := entity.NewProcessResolver(cfg.ProcRoot, hostAttrs)
	if err != nil {
		return 0, err
	}

	tset, err := shared.Load(topo.PossibleCPUs, len(cfg.Pids) > 0 || len(cfg.Command) > 0 || !cfg.Selectors.Empty())
	if err != nil {
		return 0, err
	}
	defer tset.Close()
	for _, pid := range cfg.Pids {
		if err := tset.Add(pid); err != nil {
			return 0, err
		}
	}
	if err := applySelectors(tset, cfg.Selectors, cfg.ProcRoot, log); err != nil {
		return 0, err
	}
	resolver.Kernel = tset.Process
	env := probes.Env{Topology: topo, Log: log, Shared: tset.Replacements(), FilterTargets: tset.Filtering()}

	var held *heldCommand
	if len(cfg.Command) > 0 {
		if held, err = startHeld(cfg.Command, cfg.Stdin, cfg.Stdout, cfg.Stderr); err != nil {
			return 0, err
		}
		if err := tset.Add(held.Pid()); err != nil {
			held.Kill()
			return 0, err
		}
	}

	events := newEventPipeline(cfg.Probes, cfg.Events, cfg.Version, hostAttrs, resolver.CreationTime, log)
	running, err := startProbes(ctx, cfg.Probes, env, log)
	defer func() {
		for _, p := range running {
			if err := p.Close(); err != nil {
				log.Warn("detach probe", "probe", p.Info().Name, "err", err)
			}
		}
	}()
	if err != nil {
		if held != nil {
			held.Kill()
		}
		return 0, err
	}
	// The command gets the signals the agent gets (the agent exports and
	// exits once the command has exited). Registered before "attached" is
	// logged, so no signal sent after that line can miss the command.
	sigs := make(chan os.Signal, 1)
	if held != nil {
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sigs)
	}
	start := time.Now()
	events.start()
	if err := tset.RunForgetLast(); err != nil { // after the probes' exit handlers
		log.Warn("target set", "err", err)
	}
	log.Info("attached", "probes", describe(running), "targets", targetDesc(cfg))

	var exited chan struct{}
	exitCode := 0
	var waitErr error
	if held != nil {
		if err := held.Release(); err != nil {
			held.Kill()
			return 0, err
		}
		exited = make(chan struct{})
		go func() {
			exitCode, waitErr = held.Wait()
			close(exited)
		}()
	}

	c := &collector{
		events: events,
		probes: running, exporter: cfg.Exporter, resolver: resolver, log: log,
		builder: export.NewBuilder(cfg.Version, start),
	}
	loop(ctx, cfg, c, exited, held, sigs)

	// Final export: everything counted up to now, including a command's
	// last syscalls, is delivered before detaching, within a deadline so a
	// dead backend cannot hold up shutdown.
	events.sync(ctx) // the command's exit is exported with its final values
	c.collect(ctx, finalExportTimeout)
	events.close(ctx)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cfg.Exporter.Shutdown(shutdownCtx); err != nil {
		log.Warn("exporter shutdown", "err", err)
	}
	if d := tset.Drops(); d > 0 {
		log.Warn("target set full: descendants not followed", "dropped", d)
	}
	if waitErr != nil {
		return exitCode, fmt.Errorf("wait for %s: %w", cfg.Command[0], waitErr)
	}
	return exitCode, nil
}

// loop collects on every tick until the context ends, the duration passes
// or the command exits. A command outlives the duration: collection stops,
// the command is waited for.
func loop(ctx context.Context, cfg Config, c *collector, exited chan struct{}, held *heldCommand, sigs <-chan os.Signal) {
	ticker := time.NewTicker(cfg.Interval)
	defer ticker.Stop()
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case <-ticker.C:
			c.collect(ctx, exportTimeout(cfg.Interval))
		case <-c.events.earlyC(): // many exits: evict their keys now
			c.collect(ctx, exportTimeout(cfg.Interval))
		case <-exited:
			return
		case s := <-sigs:
			_ = held.cmd.Process.Signal(s)
		case <-deadline:
			if exited != nil {
				deadline = nil
				continue
			}
			return
		case <-ctx.Done():
			if exited == nil {
				return
			}
			// The agent was told to stop, so the command is too: with the
			// signal that did it when sigs has it (the agent's own signal
			// context and sigs see the same signal, in either order), else
			// SIGTERM. Then keep forwarding until the command has exited.
			select {
			case s := <-sigs:
				_ = held.cmd.Process.Signal(s)
			default:
				_ = held.cmd.Process.Signal(syscall.SIGTERM)
			}
			for {
				select {
				case s := <-sigs:
					_ = held.cmd.Process.Signal(s)
				case <-exited:
					return
				}
			}
		}
	}
}

func startProbes(ctx context.Context, ps []probes.Probe, env probes.Env, log *slog.Logger) ([]probes.Probe, error) {
	var running []probes.Probe
	var reasons []string
	for _, p := range ps {
		name := p.Info().Name
		if err := p.Supported(); err != nil {
			log.Warn("probe skipped", "probe", name, "reason", err.Error())
			reasons = append(reasons, name+": "+err.Error())
			continue
		}
		if err := p.Start(ctx, env); err != nil {
			log.Warn("probe skipped", "probe", name, "reason", err.Error())
			reasons = append(reasons, name+": "+err.Error())
			continue
		}
		running = append(running, p)
	}
	if len(running) == 0 {
		return nil, fmt.Errorf("no probe could start (%s)", strings.Join(reasons, "; "))
	}
	return running, nil
}

func describe(ps []probes.Probe) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, p.Info().Name+"("+p.Stats().Attach+")")
	}
	return strings.Join(parts, ",")
}

func targetDesc(cfg Config) string {
	switch {
	case len(cfg.Command) > 0 && len(cfg.Pids) > 0:
		return fmt.Sprintf("command %s and %d pids", cfg.Command[0], len(cfg.Pids))
	case len(cfg.Command) > 0:
		return "command " + cfg.Command[0]
	case len(cfg.Pids) > 0:
		return fmt.Sprintf("%d pids", len(cfg.Pids))
	case !cfg.Selectors.Empty():
		return "processes selected by --exe/--comm/--cgroup"
	}
	return "whole host"
}

func (cfg *Config) defaults() {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Stdin == nil {
		cfg.Stdin = os.Stdin
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.SysRoot == "" {
		cfg.SysRoot = "/sys"
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
}

// collector reads every probe and hands the interval to the exporter. An
// export failure is logged and collection goes on: values are cumulative,
// so the next successful export carries everything.
type collector struct {
	probes   []probes.Probe
	exporter export.Exporter
	resolver *entity.ProcessResolver
	builder  *export.Builder
	log      *slog.Logger
	failing  bool
	sets     map[string]attribute.Set // metric-set name attribute, built once
	events   *eventPipeline           // nil without event probes
}

func (c *collector) setAttrs(name string) attribute.Set {
	s, ok := c.sets[name]
	if !ok {
		if c.sets == nil {
			c.sets = map[string]attribute.Set{}
		}
		s = attribute.NewSet(entity.AttrTelagentMetricSetName.String(name))
		c.sets[name] = s
	}
	return s
}

// finalExportTimeout bounds the export at shutdown.
const finalExportTimeout = 10 * time.Second

// exportTimeout bounds one interval's export: a stalled backend delays the
// next collection by at most this long, and since values are cumulative the
// next export still carries everything.
func exportTimeout(interval time.Duration) time.Duration {
	return min(max(interval, 5*time.Second), 30*time.Second)
}

func (c *collector) collect(ctx context.Context, timeout time.Duration) {
	now := time.Now()
	c.resolver.NextGeneration(keepGenerations)
	c.builder.Begin(now)
	c.events.beforeCollect(c.resolver, c.builder)
	col := &probes.Collection{Metrics: c.builder, Processes: c.resolver}
	for _, p := range c.probes {
		if err := p.Collect(ctx, col); err != nil {
			c.log.Warn("collect", "probe", p.Info().Name, "err", err)
		}
		for _, ms := range p.Stats().MetricSets {
			c.builder.Counter(c.resolver.Host(), entity.MetricTelagentMetricSetOverflows,
				c.setAttrs(ms.Name), int64(ms.OverflowFolds))
		}
	}
	exportCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := c.exporter.Export(exportCtx, c.builder.Result())
	if err == nil {
		// Delivered: exited processes' final values are out, their keys can go.
		for _, p := range c.probes {
			if err := p.Evict(); err != nil {
				c.log.Warn("evict", "probe", p.Info().Name, "err", err)
			}
		}
	}
	switch {
	case err != nil && !c.failing:
		c.failing = true
		c.log.Warn("export failed; collection continues and the next export carries the totals", "err", err)
	case err == nil && c.failing:
		c.failing = false
		c.log.Info("export recovered")
	}
}
