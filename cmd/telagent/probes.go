package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/probes/all"
)

func probesCommand() *cli.Command {
	return &cli.Command{
		Name:  "probes",
		Usage: "list every probe, what it measures and whether this kernel supports it",
		Action: func(c *cli.Context) error {
			w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PROBE\tSUPPORTED\tMEASURES\tHOOKS\tREQUIRES")
			for _, p := range all.New(all.Options{}) {
				info := p.Info()
				status := "yes"
				if err := p.Supported(); err != nil {
					status = "no: " + err.Error()
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", info.Name, status, info.Measures, info.Hooks, info.Requires)
			}
			return w.Flush()
		},
	}
}
