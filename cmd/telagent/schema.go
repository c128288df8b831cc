package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/internal/schemagen"
	"github.com/telagent/telagent/schema"
)

// schemaCommand is `telagent schema check [DIR]`: the registry's conventions
// (internal/schemagen.Rules) checked offline, on the registry built into the
// binary or on DIR.
func schemaCommand() *cli.Command {
	var rules strings.Builder
	for _, r := range schemagen.Rules {
		fmt.Fprintf(&rules, "  %-18s %s\n", r.Name, r.Doc)
	}
	onUsage := func(_ *cli.Context, err error, _ bool) error { return usageError{err.Error()} }
	return &cli.Command{
		Name:         "schema",
		Usage:        "check the telemetry registry (schema/)",
		OnUsageError: onUsage,
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "check a registry against the telemetry conventions (default: the one built into this binary)",
			ArgsUsage: "[DIR]",
			Description: "DIR holds manifest.yaml and model/ (OpenTelemetry Weaver format); without it the\n" +
				"registry this binary was built from is checked. Every finding is one line\n" +
				"\"FILE: group ID: MESSAGE [RULE]\" on stderr; the exit status is 1 when there is\n" +
				"any, 2 for bad usage. The semconv v1.44.0 items it resolves against are a\n" +
				"pinned excerpt: no network is used. What only the real Weaver checks (and\n" +
				"how to run it): docs/schema.md. Rules:\n\n" + rules.String(),
			OnUsageError: onUsage,
			Action:       schemaCheckAction,
		}},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("schema: unknown command %q (valid: check)", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
	}
}

func schemaCheckAction(c *cli.Context) error {
	if c.NArg() > 1 {
		return usagef("schema check: one registry directory at most, got %q", c.Args().Slice())
	}
	var (
		r        *schemagen.Registry
		findings []schemagen.Finding
		what     string
	)
	if dir := c.Args().First(); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "manifest.yaml")); err != nil {
			return usagef("schema check %s: not a registry directory (no manifest.yaml)", dir)
		}
		r, findings = schemagen.CheckDir(dir)
		what = dir
	} else {
		r, findings = schemagen.Check(schema.FS, schema.Display)
		what = "built-in registry (" + schema.Display + "/)"
	}
	for _, f := range findings {
		fmt.Fprintln(c.App.ErrWriter, f)
	}
	if len(findings) > 0 {
		return fmt.Errorf("schema check: %s: %d %s", what, len(findings), plural(len(findings), "problem", "problems"))
	}
	fmt.Fprintf(c.App.Writer, "schema check: %s: ok (registry %s %s, semconv %s; %d entities, %d metrics, %d metric sets, %d attributes; %d rules)\n",
		what, r.Manifest.Name, r.Manifest.Version, r.SemconvVersion, len(r.Entities), len(r.Metrics), len(r.MetricSets), len(r.Attributes), len(schemagen.Rules))
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
