package main

import (
	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/entity"
)

// breakdownFlags are the schema's breakdowns as `telagent run` flags, so a
// breakdown declared in the registry needs no flag written by hand.
func breakdownFlags() []cli.Flag {
	var flags []cli.Flag
	for _, b := range entity.Breakdowns() {
		flags = append(flags, &cli.BoolFlag{Name: b.Flag,
			Usage: "split every per-CPU metric set's points by " + string(b.Attribute) + " (docs/telemetry.md, Breakdowns)"})
	}
	return flags
}
