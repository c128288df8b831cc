package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/probes/uprobe"
)

// parseUprobes resolves --uprobe BINARY:SYMBOL: the file, the symbol's
// offsets, a Go function's RET sites. Any failure (bad syntax, no such
// file or process, a missing symbol with its close matches) is a usage
// error. Attachments are never restricted to the --pid processes: a
// PID-restricted uprobe does not follow fork, and targets include their
// descendants, so the in-kernel target filter decides at the first
// instruction (a non-target process pays the trap, not the map work).
func parseUprobes(c *cli.Context, pids []uint32) ([]uprobe.Function, error) {
	specs := c.StringSlice("uprobe")
	named := slices.ContainsFunc(strings.Split(c.String("probes"), ","), func(s string) bool {
		return strings.TrimSpace(s) == uprobe.ProbeName
	})
	switch {
	case len(specs) == 0 && c.IsSet("probes") && named:
		return nil, usagef("--probes %s: give the functions to probe with --uprobe BINARY:SYMBOL", uprobe.ProbeName)
	case len(specs) == 0:
		return nil, nil
	case c.IsSet("probes") && !named:
		return nil, usagef("--uprobe needs the %s probe: add it to --probes", uprobe.ProbeName)
	}
	fns, err := uprobe.Resolve(specs, pids)
	if err != nil {
		return nil, usagef("--uprobe %v", err)
	}
	return fns, nil
}
