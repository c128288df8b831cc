package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/internal/agent"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/all"
	"github.com/telagent/telagent/probes/targets"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "attach the probes and export metrics every interval",
		ArgsUsage: "[-- COMMAND ARGS...]",
		Description: "Without a target the whole host is observed. With --pid, or with a COMMAND after --,\n" +
			"only those processes and their descendants are. A COMMAND is started held before its\n" +
			"first instruction until the probes are attached, and telagent exits with its exit code.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "probes", Usage: "comma-separated probes to run (default: every probe this kernel supports)"},
			&cli.StringSliceFlag{Name: "pid", Usage: "observe this process and its descendants (repeatable)"},
			&cli.StringSliceFlag{Name: "exe", Usage: "observe processes running this executable file, from their exec, and their descendants (repeatable)"},
			&cli.StringSliceFlag{Name: "comm", Usage: "observe processes with this command name (at most 15 bytes), from their exec, and their descendants (repeatable)"},
			&cli.StringSliceFlag{Name: "cgroup", Usage: "observe processes in this cgroup v2 directory or below it, from their exec, and their descendants (repeatable)"},
			&cli.StringSliceFlag{Name: "uprobe", Usage: "count and time calls of a user-space function, `BINARY:SYMBOL` (BINARY a path, a library name such as libc, or pid:PID; repeatable)"},
			&cli.BoolFlag{Name: "process-command-args", Usage: "put each exec'd program's argv on exec events as process.command_args (off by default: argv can hold passwords and tokens)"},
			&cli.BoolFlag{Name: "fork-events", Usage: "report every fork on the host as an event (targets' forks are always reported)"},
			&cli.BoolFlag{Name: "entity-events", Usage: "emit the OpenTelemetry entity events: entity.state of the host and of each process (at discovery, after an exec, every --entity-state-interval), entity.delete at a process's exit"},
			&cli.DurationFlag{Name: "entity-state-interval", Value: agent.DefaultEntityStateInterval, Usage: "period of the entity.state events, whole seconds from 10s to 24h (with --entity-events)"},
			&cli.DurationFlag{Name: "interval", Value: 10 * time.Second, Usage: "collection and export interval (at least 100ms)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (default: until SIGINT/SIGTERM or the command exits)"},
			&cli.StringFlag{Name: "exporter", Value: "console", Usage: "console | otlp | otlp-json"},
			&cli.StringFlag{Name: "output", Usage: "file for --exporter otlp-json (- for stdout)"},
			&cli.StringFlag{Name: "endpoint", Usage: "OTLP HOST:PORT (plaintext) or URL for --exporter otlp (default: OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT or localhost:4317, 4318 for http)"},
			&cli.UintFlag{Name: "syscalls-max-entries", Value: 10240, Usage: "bound of (process, syscall) tuples; more go to the overflow series"},
			&cli.UintFlag{Name: "sched-max-entries", Value: 10240, Usage: "bound of processes in the sched probe's set; more go to the overflow series"},
			&cli.UintFlag{Name: "memory-max-entries", Value: 10240, Usage: "bound of processes in the memory probe's page-fault set; more go to the overflow series"},
			&cli.UintFlag{Name: "blockio-max-entries", Value: 10240, Usage: "bound of (process, disk, direction) tuples in the blockio probe's set; more go to the overflow series"},
			&cli.UintFlag{Name: "tcp-max-entries", Value: 10240, Usage: "bound of (process, connection direction) tuples in the tcp probe's set; more go to the overflow series"},
			&cli.StringFlag{Name: "bpf-memory", Value: fmt.Sprintf("%dMiB", probes.DefaultBPFMemory>>20), Usage: "kernel memory the metric sets' storage may use (B, KiB, MiB, GiB); each set's capacity is sized from it on this host at start"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug | info | warn | error"},
			capsKeepFlag, // caps.go
		}, append(breakdownFlags(), exportFlags()...)...), // breakdown.go, exportflags.go
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	// SIGHUP reopens the output file (logrotate, systemctl reload); caught
	// first, so that one arriving while the agent starts does not kill it.
	hangups := make(chan os.Signal, 1)
	signal.Notify(hangups, syscall.SIGHUP)
	defer signal.Stop(hangups)
	log, err := newLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	interval, pids, sel, err := parseTargets(c, "10s")
	if err != nil {
		return err
	}
	uprobes, err := parseUprobes(c, pids) // uprobe.go
	if err != nil {
		return err
	}
	breakdown, err := parseBreakdown(c) // breakdown.go
	if err != nil {
		return err
	}
	var bounds [5]uint32 // --<probe>-max-entries, in this order
	for i, probe := range []string{"syscalls", "sched", "memory", "blockio", "tcp"} {
		if bounds[i], err = maxEntries(c, probe); err != nil {
			return err
		}
	}
	selected, err := selectProbes(all.New(all.Options{SyscallsMaxEntries: bounds[0], SchedMaxEntries: bounds[1], MemoryMaxEntries: bounds[2], BlockioMaxEntries: bounds[3], TCPMaxEntries: bounds[4], ForkEvents: c.Bool("fork-events"), CommandArgs: c.Bool("process-command-args"), Uprobes: uprobes}), c.String("probes"), c.IsSet("probes"))
	if err != nil {
		return err
	}
	storage, err := planStorage(c, selected, map[string]uint32{"syscalls": bounds[0], "sched": bounds[1], "memory": bounds[2], "blockio": bounds[3], "tcp_conn": bounds[4]})
	if err != nil {
		return err
	}
	log.Debug("metric-set storage", "budget", export.FormatBytes(float64(storage.Budget)), "planned", export.FormatBytes(float64(storage.Total)), "entries", storage.Entries)
	command := c.Args().Slice()
	if len(command) > 0 {
		if _, err := exec.LookPath(command[0]); err != nil {
			return usagef("command %q: not found or not executable", command[0])
		}
	}
	keepCaps, err := parseCapsKeep(c.String("capabilities-keep")) // caps.go
	if err != nil {
		return err
	}
	xs, err := parseExport(c) // exportflags.go
	if err != nil {
		return err
	}
	entityEvents, entityPeriod, err := parseEntityEvents(c)
	if err != nil {
		return err
	}
	if err := checkPrivileges(); err != nil { // caps.go
		return err
	}

	// With a command, its stdout is the user's: the console summary goes to stderr.
	consoleOut := c.App.Writer
	if len(command) > 0 {
		consoleOut = c.App.ErrWriter
	}
	exp, err := newExporter(c, consoleOut, interval)
	if err != nil {
		return err
	}

	events, err := newEventExporter(c, exp, consoleOut) // targets.go
	if err != nil {
		return err
	}

	code, err := agent.Run(c.Context, agent.Config{
		ExportQueueSize: xs.queueSize, Temporality: xs.temporality, LowMemoryTemporality: xs.lowMemory, ResourceAttributes: xs.resource, PrometheusListen: xs.prometheus,
		Probes: selected, Pids: pids, Command: command,
		Selectors: sel, Events: events, Breakdown: breakdown, Storage: storage.Entries,
		EntityEvents: entityEvents, EntityStateInterval: entityPeriod,
		Interval: interval, Duration: c.Duration("duration"),
		Exporter: exp, Version: buildVersion(), Log: log,
		Stdout: c.App.Writer, Stderr: c.App.ErrWriter,
		Attached: dropCapabilities(keepCaps, log), // caps.go
		Hangups:  hangups,
	})
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

// parseTargets checks what run and top share: the interval (example: a
// sensible value for the command), the duration, --pid and the selectors.
func parseTargets(c *cli.Context, example string) (time.Duration, []uint32, targets.Selectors, error) {
	interval := c.Duration("interval")
	if interval <= 0 {
		return 0, nil, targets.Selectors{}, usagef("--interval %s: must be positive, e.g. %s", interval, example)
	}
	if interval < minInterval {
		return 0, nil, targets.Selectors{}, usagef("--interval %s: must be at least %s (every interval reads each metric set and exports), e.g. %s", interval, minInterval, example)
	}
	if d := c.Duration("duration"); d < 0 {
		return 0, nil, targets.Selectors{}, usagef("--duration %s: must not be negative", d)
	}
	pids, err := parsePids(c.StringSlice("pid"))
	if err != nil {
		return 0, nil, targets.Selectors{}, err
	}
	sel, err := parseSelectors(c) // targets.go
	return interval, pids, sel, err
}

// planStorage sizes every metric set of the selected probes from
// --bpf-memory on this host's topology, each weighted by its series bound
// (bounds by set name, the schema's where absent).
func planStorage(c *cli.Context, selected []probes.Probe, bounds map[string]uint32) (probes.StoragePlan, error) {
	budget, err := parseBytes(c.String("bpf-memory"))
	if err != nil {
		return probes.StoragePlan{}, usagef("--bpf-memory %q: %v, e.g. 48MiB", c.String("bpf-memory"), err)
	}
	topo, err := aggregator.DiscoverTopology("/sys")
	if err != nil {
		return probes.StoragePlan{}, fmt.Errorf("CPU topology: %w", err)
	}
	var sets []entity.MetricSetDesc
	for _, p := range selected {
		for _, s := range p.Info().Sets {
			if b := bounds[s.Name]; b > 0 {
				s.MaxEntries = b
			}
			sets = append(sets, s)
		}
	}
	plan, err := probes.PlanStorage(budget, sets, topo)
	var small *probes.BudgetError
	if errors.As(err, &small) {
		return plan, usagef("--bpf-memory %s: too small for the %d metric sets of the selected probes on this host "+
			"(%d possible CPUs, NUMA nodes: %d): they need at least %s; raise it or select fewer probes",
			export.FormatBytes(float64(budget)), small.Sets, small.PossibleCPUs, small.Nodes, export.FormatBytes(float64(small.Need)))
	}
	return plan, err
}

// parseBytes reads a size: a whole number of bytes with an optional
// binary unit (B, KiB, MiB, GiB, or Ki, Mi, Gi, K, M, G).
func parseBytes(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, errors.New("not a size")
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil {
		return 0, errors.New("not a size")
	}
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KI": 10, "KIB": 10, "M": 20, "MI": 20, "MIB": 20, "G": 30, "GI": 30, "GIB": 30}
	sh, ok := shift[strings.ToUpper(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (B, KiB, MiB, GiB)", strings.TrimSpace(t[i:]))
	}
	if n > math.MaxUint64>>sh {
		return 0, errors.New("too large")
	}
	if n<<sh == 0 {
		return 0, errors.New("must be positive")
	}
	return n << sh, nil
}

// minInterval bounds --interval from below: each interval reads every
// metric set and exports one request (one line), so a tiny interval burns
// CPU and disk for nothing (--interval 1ns: 183 % CPU, 1.9 GB of output
// in 6 s). 100 ms still gives tests and stress runs fast intervals.
const minInterval = 100 * time.Millisecond

// maxEntries is the --<probe>-max-entries bound of a probe's metric set.
func maxEntries(c *cli.Context, probe string) (uint32, error) {
	const most = 1 << 20
	v := c.Uint(probe + "-max-entries")
	if v < 1 || v > most {
		return 0, usagef("--%s-max-entries %d: must be between 1 and %d", probe, v, most)
	}
	return uint32(v), nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func parsePids(vals []string) ([]uint32, error) {
	var pids []uint32
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 31)
			if err != nil || n == 0 {
				return nil, usagef("--pid %q: not a process id", s)
			}
			if _, err := os.Stat("/proc/" + strconv.FormatUint(n, 10)); err != nil {
				return nil, usagef("--pid %d: no such process", n)
			}
			pids = append(pids, uint32(n))
		}
	}
	return pids, nil
}

// selectProbes resolves --probes. Named probes that this kernel cannot run
// are errors; by default unsupported probes are skipped by the agent with
// their reason.
func selectProbes(known []probes.Probe, spec string, set bool) ([]probes.Probe, error) {
	if !set {
		return known, nil
	}
	var names []string
	for _, p := range known {
		names = append(names, p.Info().Name)
	}
	var out []probes.Probe
	for _, want := range strings.Split(spec, ",") {
		want = strings.TrimSpace(want)
		i := slices.Index(names, want)
		if i < 0 {
			return nil, usagef("--probes: unknown probe %q (valid: %s)", want, strings.Join(names, ", "))
		}
		if !slices.Contains(out, known[i]) {
			out = append(out, known[i])
		}
	}
	return out, nil
}

func newExporter(c *cli.Context, consoleOut interface{ Write([]byte) (int, error) }, interval time.Duration) (export.Exporter, error) {
	switch kind := c.String("exporter"); kind {
	case "console":
		return export.NewConsole(consoleOut, export.ConsoleOptions{Interval: interval}), nil
	case "otlp-json":
		out := c.String("output")
		if out == "" {
			return nil, usagef("--exporter otlp-json needs --output FILE (or - for stdout)")
		}
		e, err := export.NewOTLPJSON(out)
		if err != nil {
			return nil, usagef("--output %s: %v", out, errors.Unwrap(err))
		}
		return e, nil
	case "otlp":
		e, err := export.NewOTLP(c.Context, otlpOptions(c))
		// parseExport checked the settings: a failure here is bad input still.
		if err != nil {
			return nil, usagef("otlp exporter: %v", err)
		}
		return e, nil
	default:
		return nil, usagef("--exporter %q: want console, otlp or otlp-json", kind)
	}
}

// Bounds of --entity-state-interval: entity.report.interval is whole
// seconds, and each period announces every tracked process again.
const (
	minEntityStateInterval = 10 * time.Second
	maxEntityStateInterval = 24 * time.Hour
)

// parseEntityEvents reads --entity-events and --entity-state-interval.
func parseEntityEvents(c *cli.Context) (bool, time.Duration, error) {
	on, d := c.Bool("entity-events"), c.Duration("entity-state-interval")
	if c.IsSet("entity-state-interval") && !on {
		return false, 0, usagef("--entity-state-interval %s: only with --entity-events (add --entity-events, or drop the interval)", d)
	}
	if d < minEntityStateInterval || d > maxEntityStateInterval || d%time.Second != 0 {
		return false, 0, usagef("--entity-state-interval %s: must be whole seconds from 10s to 24h (entity.report.interval is in seconds), e.g. 5m", d)
	}
	return on, d, nil
}
