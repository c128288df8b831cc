package main

import (
	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/runconfig"
)

// The `telagent run` flags the schema declares, so a breakdown or a
// metric set's bound added to the registry needs no flag written by hand.

// breakdownFlags are the schema's breakdowns.
func breakdownFlags() []cli.Flag {
	var flags []cli.Flag
	for _, b := range entity.Breakdowns() {
		flags = append(flags, &cli.BoolFlag{Name: b.Flag,
			Usage: "split every per-CPU metric set's points by " + string(b.Attribute) + " (docs/telemetry.md, Breakdowns)"})
	}
	return flags
}

// maxEntriesFlags are the metric sets' bounds (max_entries_flag), with the
// schema's max_entries as their default.
func maxEntriesFlags() []cli.Flag {
	var flags []cli.Flag
	for _, s := range runconfig.MaxEntriesSets() {
		flags = append(flags, &cli.UintFlag{Name: s.Flag, Value: uint(s.MaxEntries), Usage: s.FlagUsage})
	}
	return flags
}
