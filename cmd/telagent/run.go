package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/internal/agent"
	"github.com/telagent/telagent/internal/runconfig"
	"github.com/telagent/telagent/metrics"
	"github.com/telagent/telagent/probes"
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
			&cli.StringFlag{Name: "bpf-memory", Value: fmt.Sprintf("%dMiB", probes.DefaultBPFMemory>>20), Usage: "kernel memory the metric sets' storage may use (B, KiB, MiB, GiB); each set's capacity is sized from it on this host at start"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug | info | warn | error"},
			capsKeepFlag, // caps.go
		}, slices.Concat(maxEntriesFlags(), breakdownFlags(), exportFlags())...), // schemaflags.go, exportflags.go
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
	st, err := resolveRun(c)
	if err != nil {
		return err
	}
	storage, selected := st.Storage, st.Probes
	log.Debug("metric-set storage", "budget", metrics.FormatBytes(float64(storage.Budget)), "planned", metrics.FormatBytes(float64(storage.Total)), "entries", storage.Entries)
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
	if err := checkPrivileges(); err != nil { // caps.go
		return err
	}

	// With a command, its stdout is the user's: the console summary goes to stderr.
	consoleOut := c.App.Writer
	if len(command) > 0 {
		consoleOut = c.App.ErrWriter
	}
	exp, err := newExporter(c, consoleOut, st.Interval)
	if err != nil {
		return err
	}

	events, err := newEventExporter(c, exp, consoleOut) // targets.go
	if err != nil {
		return err
	}

	code, err := agent.Run(c.Context, agent.Config{
		ExportQueueSize: xs.queueSize, Temporality: xs.temporality, LowMemoryTemporality: xs.lowMemory, ResourceAttributes: xs.resource, PrometheusListen: xs.prometheus,
		Probes: selected, Pids: st.Pids, Command: command,
		Selectors: st.Selectors, Events: events, Breakdown: st.Breakdown, Storage: storage.Entries,
		EntityEvents: st.EntityEvents, EntityStateInterval: st.EntityStateInterval,
		Interval: st.Interval, Duration: st.Duration,
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

// resolveRun checks the options `telagent run` shares with the Collector
// receiver (internal/runconfig), with their messages spelled as flags.
func resolveRun(c *cli.Context) (runconfig.Settings, error) {
	o := runconfig.Options{
		Interval: c.Duration("interval"), IntervalExample: "10s", Duration: c.Duration("duration"),
		Pids: c.StringSlice("pid"), Exes: c.StringSlice("exe"), Comms: c.StringSlice("comm"), Cgroups: c.StringSlice("cgroup"),
		Uprobes: c.StringSlice("uprobe"), Probes: c.String("probes"), ProbesSet: c.IsSet("probes"),
		MaxEntries: map[string]uint{}, BPFMemory: c.String("bpf-memory"), Breakdowns: map[string]bool{},
		ForkEvents: c.Bool("fork-events"), CommandArgs: c.Bool("process-command-args"),
		EntityEvents: c.Bool("entity-events"), EntityStateInterval: c.Duration("entity-state-interval"),
		EntityStateIntervalSet: c.IsSet("entity-state-interval"),
	}
	for _, set := range runconfig.MaxEntriesSets() {
		o.MaxEntries[set.Flag] = c.Uint(set.Flag)
	}
	for _, b := range entity.Breakdowns() {
		o.Breakdowns[b.Flag] = c.Bool(b.Flag)
	}
	st, err := runconfig.Resolve(runconfig.Flag, o)
	return st, usage(err)
}

// parseTargets checks what run and top share: the interval (example: a
// sensible value for the command), the duration, --pid and the selectors.
func parseTargets(c *cli.Context, example string) (time.Duration, []uint32, targets.Selectors, error) {
	interval := c.Duration("interval")
	if err := runconfig.Interval(runconfig.Flag, interval, example); err != nil {
		return 0, nil, targets.Selectors{}, usage(err)
	}
	if err := runconfig.Duration(runconfig.Flag, c.Duration("duration")); err != nil {
		return 0, nil, targets.Selectors{}, usage(err)
	}
	pids, err := parsePids(c.StringSlice("pid"))
	if err != nil {
		return 0, nil, targets.Selectors{}, err
	}
	sel, err := runconfig.Selectors(runconfig.Flag, c.StringSlice("exe"), c.StringSlice("comm"), c.StringSlice("cgroup"))
	return interval, pids, sel, usage(err)
}

// usage turns runconfig's bad-input error into the CLI's usage error
// (exit 2); other errors pass unchanged.
func usage(err error) error {
	var bad *runconfig.Error
	if errors.As(err, &bad) {
		return usageError{bad.Msg}
	}
	return err
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func parsePids(vals []string) ([]uint32, error) {
	pids, err := runconfig.Pids(runconfig.Flag, vals)
	return pids, usage(err)
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
