package main

// docs/probes.md is this command's --markdown output (TestDocsProbes
// fails when it is stale).
//go:generate sh -c "go run . probes --markdown > ../../docs/probes.md"

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/top"
	"github.com/telagent/telagent/metrics"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/all"
)

func probesCommand() *cli.Command {
	return &cli.Command{
		Name:  "probes",
		Usage: "list every probe, what it measures and whether this kernel supports it",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "markdown", Usage: "print the probe reference (docs/probes.md) instead: hooks, kernel requirements and metrics from the schema"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("markdown") {
				return writeProbesMarkdown(c.App.Writer, all.New(all.Options{}))
			}
			if err := writeProbesList(c.App.Writer, all.New(all.Options{}), outputWidth(c.App.Writer)); err != nil {
				return err
			}
			return writeStorageTable(c.App.Writer, all.New(all.Options{}), outputWidth(c.App.Writer))
		},
	}
}

// writeStorageTable prints what the default --bpf-memory gives each
// metric set on this host: entries per hash, hashes, kernel memory; the
// heading wrapped to width.
func writeStorageTable(out io.Writer, ps []probes.Probe, width int) error {
	topo, err := aggregator.DiscoverTopology("/sys")
	if err != nil {
		return fmt.Errorf("CPU topology: %w", err)
	}
	var sets []entity.MetricSetDesc
	owner := map[string]string{}
	for _, p := range ps {
		for _, s := range p.Info().Sets {
			sets = append(sets, s)
			owner[s.Name] = p.Info().Name
		}
	}
	plan, err := probes.PlanStorage(probes.DefaultBPFMemory, sets, topo)
	if err != nil {
		return err
	}
	head := fmt.Sprintf("Metric-set storage with the default --bpf-memory %s on this host (%d possible CPUs, NUMA nodes: %d): %s in all",
		metrics.FormatBytes(float64(plan.Budget)), topo.PossibleCPUs, plan.Nodes, metrics.FormatBytes(float64(plan.Total)))
	fmt.Fprintf(out, "\n%s\n", strings.Join(wrapWords(head, width), "\n"))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SET\tPROBE\tENTRIES/HASH\tHASHES\tMEMORY")
	for _, s := range sets {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\n", s.Name, owner[s.Name], plan.Entries[s.Name], 2*plan.Nodes, metrics.FormatBytes(float64(plan.Bytes[s.Name])))
	}
	return w.Flush()
}

// writeProbesList prints each probe's name and whether this kernel
// supports it, then what it measures, hooks and requires, wrapped to
// width: a table of those columns was over 500 columns wide.
//
//	PROBE     SUPPORTED
//	syscalls  yes
//	          measures  system calls per process and syscall: calls,
//	                    errors, duration histogram
func writeProbesList(w io.Writer, ps []probes.Probe, width int) error {
	indent := len("PROBE") + 2
	for _, p := range ps {
		indent = max(indent, len(p.Info().Name)+2)
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", max(n-len(s), 1)) }
	var b strings.Builder
	b.WriteString(pad("PROBE", indent) + "SUPPORTED\n")
	const label = len("requires  ")
	for _, p := range ps {
		info := p.Info()
		for i, l := range wrapWords(probeStatus(p), width-indent) {
			if i == 0 {
				b.WriteString(pad(info.Name, indent) + l + "\n")
			} else {
				b.WriteString(strings.Repeat(" ", indent) + l + "\n")
			}
		}
		for _, f := range [][2]string{{"measures", info.Measures}, {"hooks", info.Hooks}, {"requires", info.Requires}} {
			for i, l := range wrapWords(f[1], width-indent-label) {
				head := ""
				if i == 0 {
					head = f[0]
				}
				b.WriteString(strings.Repeat(" ", indent) + pad(head, label) + l + "\n")
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// probeStatus is "yes", "no: REASON", or, when the check itself was not
// permitted (an unprivileged user cannot create the BPF maps it tries),
// "unknown" with what to do: the probe's reason would blame the kernel.
func probeStatus(p probes.Probe) string {
	err := p.Supported()
	switch {
	case err == nil:
		return "yes"
	case errors.Is(err, fs.ErrPermission):
		return "unknown: not permitted to check; run as root, or with CAP_BPF and CAP_PERFMON, to see whether this kernel supports it"
	}
	return "no: " + err.Error()
}

// outputWidth is the width to fit text into: COLUMNS when set, else the
// terminal's width when w is one, else 80.
func outputWidth(w io.Writer) int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	if f, ok := w.(*os.File); ok && top.IsTerminal(int(f.Fd())) {
		if n, _, err := top.Size(int(f.Fd())); err == nil && n > 0 {
			return n
		}
	}
	return 80
}

// wrapWords breaks s into lines of at most width bytes at spaces (a word
// longer than width gets a line of its own); width below 20 is taken as 20
// so that a tiny COLUMNS still gives readable lines.
func wrapWords(s string, width int) []string {
	width = max(width, 20)
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	return append(lines, line)
}

// writeProbesMarkdown writes docs/probes.md: every probe's Info and, for
// each metric it emits, the schema's instrument, unit, attributes and
// description. It depends on nothing but the code (not on this kernel),
// so the committed file can be checked for staleness (TestDocsProbes).
func writeProbesMarkdown(w io.Writer, ps []probes.Probe) error {
	descs := map[string]entity.MetricDesc{}
	for _, d := range entity.Metrics() {
		descs[d.Name] = d
	}
	var b strings.Builder
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("<!-- Generated by `telagent probes --markdown` (make generate) from each probe's Info and the schema; DO NOT EDIT. -->\n\n")
	b.WriteString("# Probes\n\n")
	b.WriteString("Every probe the agent has, what it measures, where it hooks into the kernel and what the kernel must offer. ")
	b.WriteString("`telagent probes` prints the same list with whether *this* kernel supports each one; ")
	b.WriteString("`telagent run --probes a,b` picks some (default: every supported one). A probe whose requirements are missing ")
	b.WriteString("is skipped with a one-line reason and the others keep running. The metrics' full definitions are in ")
	b.WriteString("[telemetry.md](telemetry.md).\n\n")
	b.WriteString("| probe | measures | kernel requirement |\n|---|---|---|\n")
	for _, p := range ps {
		i := p.Info()
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s | %s |\n", i.Name, i.Name, cell(i.Measures), cell(i.Requires))
	}
	for _, p := range ps {
		i := p.Info()
		fmt.Fprintf(&b, "\n## %s\n\n", i.Name)
		fmt.Fprintf(&b, "- **Measures:** %s\n- **Hooks:** %s\n- **Requires:** %s\n", i.Measures, i.Hooks, i.Requires)
		if len(i.Metrics) == 0 {
			continue
		}
		b.WriteString("\n| metric | instrument | unit | attributes | description |\n|---|---|---|---|---|\n")
		for _, name := range i.Metrics {
			d, ok := descs[name]
			if !ok {
				return fmt.Errorf("probe %s: metric %s is not in the schema", i.Name, name)
			}
			attrs := make([]string, len(d.Attributes))
			for k, a := range d.Attributes {
				attrs[k] = "`" + string(a) + "`"
			}
			a := strings.Join(attrs, ", ")
			if a == "" {
				a = "—"
			}
			fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s |\n", d.Name, d.Instrument, d.Unit, a, cell(d.Description))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
