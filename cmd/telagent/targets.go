package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/probes/shared"
	"github.com/telagent/telagent/probes/targets"
)

// parseSelectors resolves --exe, --comm and --cgroup. A selector that can
// never match (a missing or non-executable file, a command name longer
// than the kernel keeps, a path that is no cgroup v2 directory) is a usage
// error: the run would otherwise observe nothing, silently.
func parseSelectors(c *cli.Context) (targets.Selectors, error) {
	var sel targets.Selectors
	for _, p := range c.StringSlice("exe") {
		if p == "" {
			return sel, usagef("--exe empty path: name an executable file, e.g. /usr/sbin/nginx")
		}
		e, err := targets.ResolveExe(p)
		if err != nil {
			return sel, usagef("--exe %s", describePathError(err))
		}
		sel.Exes = append(sel.Exes, e)
	}
	for _, name := range c.StringSlice("comm") {
		if err := targets.CheckComm(name); err != nil {
			return sel, usagef("--comm %v", err)
		}
		sel.Comms = append(sel.Comms, name)
	}
	for _, p := range c.StringSlice("cgroup") {
		cg, err := targets.ResolveCgroup(p, "/proc")
		if err != nil {
			return sel, usagef("--cgroup %s", describePathError(err))
		}
		sel.Cgroups = append(sel.Cgroups, cg)
	}
	for what, n := range map[string]int{"--exe": len(sel.Exes), "--comm": len(sel.Comms), "--cgroup": len(sel.Cgroups)} {
		if n > shared.MaxSelectors {
			return sel, usagef("%s: at most %d values", what, shared.MaxSelectors)
		}
	}
	return sel, nil
}

// describePathError says "PATH: no such file" rather than Go's wording.
func describePathError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%v (no such file or directory)", trimErrno(err))
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%v (permission denied)", trimErrno(err))
	}
	return err.Error()
}

// trimErrno drops a trailing ": <errno text>" that describePathError
// restates in its own words.
func trimErrno(err error) string {
	s := err.Error()
	if u := errors.Unwrap(err); u != nil {
		if t := ": " + u.Error(); len(s) > len(t) && s[len(s)-len(t):] == t {
			return s[:len(s)-len(t)]
		}
	}
	return s
}

// newEventExporter is where events go for each --exporter: console lines
// next to the summary, OTLP/JSON log requests in the same file as the
// metric requests, or OTLP/gRPC logs to the same endpoint as the metrics.
func newEventExporter(c *cli.Context, metrics export.Exporter, consoleOut io.Writer) (export.EventExporter, error) {
	switch c.String("exporter") {
	case "console":
		return export.NewConsoleEvents(consoleOut), nil
	case "otlp-json":
		return export.OTLPJSONEvents(metrics)
	case "otlp":
		e, err := export.NewOTLPLogs(c.Context, otlpOptions(c)) // exportflags.go
		// parseExport checked the settings: a failure here is bad input still.
		if err != nil {
			return nil, usagef("otlp log exporter: %v", err)
		}
		return e, nil
	}
	return nil, nil
}
