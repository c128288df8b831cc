package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/internal/agent"
	"github.com/telagent/telagent/internal/runconfig"
	"github.com/telagent/telagent/internal/top"
	"github.com/telagent/telagent/probes/all"
)

func topCommand() *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "live per-process view: on-CPU time, run-queue latency, syscalls, faults, disk, TCP retransmits",
		Description: "A full-screen view refreshed every interval. Keys: c r s e f d t p n sort by a column\n" +
			"(again: reverse), < > cycle the sort column, / filter by process name, up/down and Enter\n" +
			"show a process's histograms, Esc back, q quit. When stdout is no terminal, one text table\n" +
			"per interval is printed instead.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "probes", Usage: "comma-separated probes to run (default: every probe this kernel supports)"},
			&cli.StringSliceFlag{Name: "pid", Usage: "observe this process and its descendants (repeatable)"},
			&cli.StringSliceFlag{Name: "exe", Usage: "observe processes running this executable file (repeatable)"},
			&cli.StringSliceFlag{Name: "comm", Usage: "observe processes with this command name (repeatable)"},
			&cli.StringSliceFlag{Name: "cgroup", Usage: "observe processes in this cgroup v2 directory or below it (repeatable)"},
			&cli.DurationFlag{Name: "interval", Value: 2 * time.Second, Usage: "refresh interval (at least 100ms)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (default: until q, SIGINT or SIGTERM)"},
		},
		Action: topAction,
	}
}

func topAction(c *cli.Context) error {
	interval, pids, sel, err := parseTargets(c, "2s")
	if err != nil {
		return err
	}
	selected, err := runconfig.SelectProbes(runconfig.Flag, all.New(all.Options{}), c.String("probes"), c.IsSet("probes"))
	if err != nil {
		return usage(err)
	}
	if err := checkPrivileges(); err != nil {
		return err
	}

	// A full-screen view needs stdin and stdout to be the terminal (tests
	// and main pass os.Stdout as the app's writer); otherwise plain text.
	out, isFile := c.App.Writer.(*os.File)
	interactive := isFile && out == os.Stdout && top.IsTerminal(int(os.Stdout.Fd())) && top.IsTerminal(int(os.Stdin.Fd()))

	// The agent's log would tear the full-screen view: its last line is
	// shown in the view's status line instead, and the whole log is
	// printed on stderr after the terminal is restored.
	var logBuf lastLines
	logOut := io.Writer(c.App.ErrWriter)
	if interactive {
		logOut = &logBuf
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// q stops the agent through this context; SIGHUP (the terminal went
	// away) does too, like SIGINT and SIGTERM do through main's context.
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	ctx, stopHup := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stopHup()

	tracker := top.NewTracker()
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		_, runErr = agent.Run(ctx, agent.Config{
			Probes: selected, Pids: pids, Selectors: sel,
			Interval: interval, Duration: c.Duration("duration"),
			Exporter: tracker, Version: buildVersion(), Log: log,
			// Like run's default: keep only what reading /proc needs.
			Attached: dropCapabilities(capsKeep{auto: true}, log),
		})
	}()

	width := 120
	if interactive {
		viewErr := top.Screen{In: os.Stdin, Out: os.Stdout, Status: logBuf.last}.Run(ctx, tracker.Updates(), done)
		cancel()
		<-done // the agent detaches every probe before top returns
		io.WriteString(c.App.ErrWriter, logBuf.String())
		if runErr != nil {
			return runErr
		}
		return viewErr
	}
	if w, _, err := top.Size(int(os.Stdout.Fd())); err == nil && w > 0 {
		width = w
	}
	err = top.RunPlain(c.App.Writer, width, tracker.Updates(), done)
	<-done
	if runErr != nil {
		return runErr
	}
	return err
}

// lastLines keeps the agent's log while the view owns the terminal: the
// last line for the status line, all of it (bounded) for afterwards.
type lastLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lastLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 64<<10 { // a long session's warnings: keep the newest
		b := l.buf.Bytes()
		l.buf = *bytes.NewBuffer(append([]byte(nil), b[len(b)/2:]...))
	}
	return l.buf.Write(p)
}

func (l *lastLines) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimRight(l.buf.String(), "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
