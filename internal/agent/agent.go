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
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/metrics"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/shared"
	"github.com/telagent/telagent/probes/targets"
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
	Selectors targets.Selectors
	// Events receives the probes' events (events.go); nil exports none,
	// exits still drive the eviction of dead processes' series.
	Events export.EventExporter
	// EntityEvents turns on the specification's entity events
	// (entityevents.go): entity.state of the host and of each process at
	// discovery, after an exec and every EntityStateInterval (default 5
	// minutes), entity.delete at a process's exit. They need Events.
	EntityEvents        bool
	EntityStateInterval time.Duration
	// Breakdown splits per-CPU metric sets by NUMA node or CPU; nil: totals.
	Breakdown *entity.BreakdownDesc
	// Storage is each metric set's kernel storage in entries per hash, by
	// set name (probes.PlanStorage sizes it from the BPF memory budget);
	// nil: the schema's max_entries.
	Storage map[string]uint32

	// Export queue (export.Queue): intervals waiting for the exporter
	// (default 8), the temporality sent (cumulative by default), and the
	// longest wait between retries while the backend fails (default: the
	// interval, within 1 s..30 s).
	ExportQueueSize int
	Temporality     metricdata.Temporality
	// LowMemoryTemporality, with delta Temporality, is OTel's lowmemory
	// preference: histograms as deltas, sums cumulative.
	LowMemoryTemporality bool
	ExportRetryMax       time.Duration
	// ResourceAttributes are added to every resource (metrics and events),
	// e.g. from OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
	// (export.ResourceFromEnv); the agent's own host attributes win on a
	// clash, so an entity's identity cannot be overridden.
	ResourceAttributes []attribute.KeyValue
	// PrometheusListen, when set, serves every interval for scraping at
	// http://ADDR/metrics (export.Prometheus), besides the exporter.
	PrometheusListen string
	// Attached, if set, runs once every probe is attached and before a
	// held command is released (`telagent run` drops capabilities there);
	// an error ends the run.
	Attached func() error
	// Hangups receives SIGHUP (the caller registers it before anything
	// slow, so that no SIGHUP kills the agent while it starts): each one
	// reopens the exporter's output file by name (export.Reopener), as
	// logrotate's postrotate and systemd's ExecReload expect. The agent
	// keeps running either way.
	Hangups <-chan os.Signal
}

// DefaultEntityStateInterval is the period of the entity.state events.
const DefaultEntityStateInterval = 5 * time.Minute

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
	hostAttrs = mergeAttributes(hostAttrs, cfg.ResourceAttributes)
	var prom *export.Prometheus
	if cfg.PrometheusListen != "" {
		// Before anything is attached: a port in use is a start-up error.
		if prom, err = export.NewPrometheus(cfg.PrometheusListen, hostAttrs); err != nil {
			return 0, err
		}
		defer prom.Shutdown(context.Background()) // early returns; a no-op after the shutdown below
		log.Info("prometheus endpoint", "url", "http://"+prom.Addr()+"/metrics")
	}
	resolver, err := entity.NewProcessResolver(cfg.ProcRoot, hostAttrs)
	if err != nil {
		return 0, err
	}

	tset, err := shared.Load(topo, len(cfg.Pids) > 0 || len(cfg.Command) > 0 || !cfg.Selectors.Empty())
	if err != nil {
		return 0, err
	}
	defer tset.Close()
	for _, pid := range cfg.Pids {
		if err := tset.Add(pid); err != nil {
			return 0, err
		}
	}
	if err := targets.Apply(tset, cfg.Selectors, cfg.ProcRoot, log); err != nil {
		return 0, err
	}
	resolver.Kernel = tset.Process
	env := probes.Env{Topology: topo, Log: log, Shared: tset.Replacements(), FilterTargets: tset.Filtering(),
		NodesFromTopology: filepath.Clean(cfg.SysRoot) != "/sys", Storage: cfg.Storage}
	if cfg.Breakdown != nil {
		if env.Breakdown, err = probes.NewBreakdown(*cfg.Breakdown, topo); err != nil {
			return 0, err
		}
	}

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
	if cfg.EntityEvents && cfg.Events != nil {
		if events == nil { // no probe reports events: the pipeline carries the entity events alone
			events = newPipeline(cfg.Events, cfg.Version, hostAttrs, resolver.CreationTime, log)
		}
		events.enableEntityEvents(cfg.EntityStateInterval, cfg.ProcRoot)
		resolver.Discovered = events.discovered
		// The targets as they are now (a held command: its first program,
		// stopped before its first instruction), before any of their events.
		known := slices.Clone(cfg.Pids)
		if held != nil {
			known = append(known, held.Pid())
		}
		events.discoverPids(cfg.ProcRoot, known)
	}
	running, skipped, err := startProbes(ctx, cfg.Probes, env, log)
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
	// Everything that needs privilege is done: the probes are attached and
	// the command (still held) is a target. Dropping before "attached"
	// is logged means no target runs while the agent still holds more.
	if cfg.Attached != nil {
		if err := cfg.Attached(); err != nil {
			if held != nil {
				held.Kill()
			}
			return 0, err
		}
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

	queue := export.NewQueue(cfg.Exporter, export.QueueOptions{
		Size: cfg.ExportQueueSize, Temporality: cfg.Temporality, LowMemory: cfg.LowMemoryTemporality, Log: log,
		Timeout: exportTimeout(cfg.Interval), RetryMax: retryMax(cfg),
	})
	c := &collector{
		events: events,
		probes: running, skipped: skipped, queue: queue, prom: prom, resolver: resolver, log: log, shared: tset,
		builder: metrics.NewBuilder(cfg.Version, start),
	}
	loop(ctx, cfg, c, exited, held, sigs)

	// Final export: everything counted up to now, including a command's
	// last syscalls, is delivered before detaching. One deadline covers
	// draining the rings, the final collection, flushing events and the
	// queue and shutting the exporters down, so a dead or stalled backend
	// holds up the exit by at most shutdownBudget in all.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownBudget)
	defer cancel()
	events.sync(shutdownCtx) // the command's exit is exported with its final values
	// No generation follows: what the resolver would defer is final now.
	resolver.FinalGeneration()
	c.collect(shutdownCtx)
	// Events and metrics are delivered side by side; the metric exporter
	// is shut down only after the events, which may share its file.
	var wg sync.WaitGroup
	wg.Go(func() { events.close(shutdownCtx) })
	queue.Drain(shutdownCtx)
	wg.Wait()
	if err := queue.Shutdown(shutdownCtx); err != nil {
		log.Warn("exporter shutdown", "err", err)
	}
	if prom != nil {
		if err := prom.Shutdown(shutdownCtx); err != nil {
			log.Warn("prometheus endpoint shutdown", "err", err)
		}
	}
	if st := queue.Stats(); st.Abandoned > 0 {
		log.Warn("final metrics not delivered before the shutdown deadline", "deadline", shutdownBudget)
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
			c.collect(ctx)
		case <-c.events.earlyC(): // many exits: evict their keys now
			c.collect(ctx)
		case <-c.queue.DeliveredC(): // the last interval is out: its exited processes' keys can go
			c.evictDelivered()
		case <-cfg.Hangups:
			reopenOutput(cfg.Exporter, c.log)
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

// reopenOutput opens the exporter's output file again by name (SIGHUP):
// after a rotation the agent writes to the new file, the old one is
// closed and whole. If the open fails the old file stays in use.
func reopenOutput(exp export.Exporter, log *slog.Logger) {
	r, ok := exp.(export.Reopener)
	if !ok {
		log.Info("SIGHUP: the exporter writes no file, nothing to reopen")
		return
	}
	file, err := r.Reopen()
	switch {
	case !file:
		log.Info("SIGHUP: the exporter writes no file, nothing to reopen")
	case err != nil:
		log.Warn("reopen the output file on SIGHUP failed; still writing to the old one", "err", err)
	default:
		log.Info("output file reopened")
	}
}

func startProbes(ctx context.Context, ps []probes.Probe, env probes.Env, log *slog.Logger) (running []probes.Probe, skipped []string, err error) {
	var reasons []string
	for _, p := range ps {
		name := p.Info().Name
		if err := p.Supported(); err != nil {
			log.Warn("probe skipped", "probe", name, "reason", err.Error())
			reasons = append(reasons, name+": "+err.Error())
			skipped = append(skipped, name)
			continue
		}
		if err := p.Start(ctx, env); err != nil {
			log.Warn("probe skipped", "probe", name, "reason", err.Error())
			reasons = append(reasons, name+": "+err.Error())
			skipped = append(skipped, name)
			continue
		}
		running = append(running, p)
	}
	if len(running) == 0 {
		return nil, skipped, fmt.Errorf("no probe could start (%s)", strings.Join(reasons, "; "))
	}
	return running, skipped, nil
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
	if cfg.EntityStateInterval <= 0 {
		cfg.EntityStateInterval = DefaultEntityStateInterval
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

// collector reads every probe and hands the interval to the export queue,
// which sends it apart from collection: a slow or dead backend never delays
// the next read. Values are cumulative, so the next interval delivered
// carries everything.
type collector struct {
	probes   []probes.Probe
	skipped  []string
	queue    *export.Queue
	prom     *export.Prometheus // nil unless --prometheus
	resolver *entity.ProcessResolver
	builder  *metrics.Builder
	log      *slog.Logger
	events   *eventPipeline // nil without event probes
	shared   *shared.State  // flips the metric-set storage's epoch

	// lastSeq is the queue's number of the last interval collected;
	// evicted says its exited processes' keys were deleted.
	lastSeq  uint64
	evicted  bool
	self     selfTelemetry
	overflow overflowWatch // logs each episode of a full metric set
}

// shutdownBudget bounds everything after the last interval: the final
// collection and the flushes and shutdowns of both exporters.
const shutdownBudget = 10 * time.Second

// retryMax is the longest wait between export attempts while the backend
// fails: about an interval, so a backend that comes back gets data within
// an interval or so, and a dead one is not hammered.
func retryMax(cfg Config) time.Duration {
	if cfg.ExportRetryMax > 0 {
		return cfg.ExportRetryMax
	}
	return min(max(cfg.Interval, time.Second), 30*time.Second)
}

// exportTimeout bounds one export attempt: a stalled backend holds the
// queue's head by at most this long before it is retried.
func exportTimeout(interval time.Duration) time.Duration {
	return min(max(interval, 5*time.Second), 30*time.Second)
}

// collect reads every probe into one interval and queues it. Before the
// read, the keys of processes that exited are evicted if the interval that
// carried their final values was delivered; otherwise they are read again
// and go out with this interval (so no count is lost to an outage).
func (c *collector) collect(ctx context.Context) {
	c.evictDelivered()
	begin := time.Now()
	c.resolver.NextGeneration(keepGenerations)
	c.builder.Begin(begin)
	c.events.beforeCollect(c.resolver, c.builder)
	col := &probes.Collection{Metrics: c.builder, Processes: c.resolver}
	// One flip and one grace period for every probe's storage: after it
	// the idle epoch's entries are complete and the agent's to drain.
	if err := c.shared.Flip(); err != nil {
		c.log.Warn("collect", "err", err)
	}
	for _, p := range c.probes {
		if err := p.Collect(ctx, col); err != nil {
			c.log.Warn("collect", "probe", p.Info().Name, "err", err)
		}
	}
	c.self.add(c, time.Since(begin))
	iv := c.builder.Finish()
	if c.prom != nil {
		_ = c.prom.ExportInterval(ctx, iv) // keeps a copy; cannot fail
	}
	seq, err := c.queue.EnqueueInterval(iv) // the queue owns iv now
	if err != nil {
		c.log.Warn("export", "err", err)
		return
	}
	c.lastSeq, c.evicted = seq, false
}

// evictDelivered deletes the keys the last collection found dead, once
// that interval was delivered; Probe.Evict deletes what the last Collect
// scheduled, so it must run before the next Collect or not at all.
func (c *collector) evictDelivered() {
	if c.evicted || c.lastSeq == 0 || c.queue.Stats().Delivered < c.lastSeq {
		return
	}
	c.evicted = true
	for _, p := range c.probes {
		if err := p.Evict(); err != nil {
			c.log.Warn("evict", "probe", p.Info().Name, "err", err)
		}
	}
}
