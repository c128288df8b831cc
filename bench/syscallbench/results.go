package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/telagent/telagent/bench/internal/benchproc"
)

const (
	resultPass = "PASS"
	resultMiss = "MISS"
	resultNA   = "N/A"
)

// Targets for (agent - bare) / (reference - bare).
var targets = []struct {
	versus string
	max    float64
}{
	{cfgBpftrace, 0.25},
	{cfgFloor, 1.8},
	{cfgBaselineHost, 1.10}, // node_hash against the per-CPU layout it replaced
}

// infoPairs are the (of, versus) pairs of the ratios (of - bare) /
// (versus - bare) reported as information only: first the floor of exact
// timing against the empty floor (what the floor target leaves for
// everything else), then each agent mode against the floors of exact timing.
func infoPairs() [][2]string {
	pairs := [][2]string{{cfgClock, cfgFloor}}
	for _, agent := range []string{cfgAgentHost, cfgAgentTarget} {
		for _, versus := range []string{cfgClock, cfgClockStorage} {
			pairs = append(pairs, [2]string{agent, versus})
		}
	}
	return pairs
}

// The decomposition of the overhead: each step is the difference of the
// medians of two configurations, what the larger one adds.
var steps = []struct {
	upper, lower string
	what         string
}{
	{cfgFloor, cfgBare, "tracepoint dispatch + call of an empty BPF program, on entry and exit"},
	{cfgClock, cfgFloor, "two bpf_ktime_get_ns() (one on entry, one on exit) + per-CPU array stores"},
	{cfgClockStorage, cfgClock, "task storage get (create) on entry and get on exit, duration summed"},
	{cfgAgentHost, cfgClockStorage, "the agent's own work beyond exact per-thread timing (whole host)"},
	{cfgAgentTarget, cfgClockStorage, "the agent's own work beyond exact per-thread timing (target mode)"},
}

type configResult struct {
	Name    string    `json:"name"`
	Status  string    `json:"status"` // ok, skipped, failed
	Error   string    `json:"error,omitempty"`
	Samples []float64 `json:"samples_ns_per_call"`
	// Statistics over the samples, present when Status is ok.
	Median     *float64 `json:"median_ns_per_call,omitempty"`
	Min        *float64 `json:"min_ns_per_call,omitempty"`
	Max        *float64 `json:"max_ns_per_call,omitempty"`
	OverheadNs *float64 `json:"overhead_ns_per_call,omitempty"` // median - bare median
	XBare      *float64 `json:"x_bare,omitempty"`               // median / bare median
}

type ratioResult struct {
	Agent   string   `json:"agent"`
	Versus  string   `json:"versus"`
	Formula string   `json:"formula"`
	Value   *float64 `json:"value"`
	Target  float64  `json:"target_max"`
	Result  string   `json:"result"` // PASS, MISS, N/A
	Note    string   `json:"note,omitempty"`
}

// infoRatio is (of - bare) / (versus - bare), reported without a target.
type infoRatio struct {
	Of      string   `json:"of"`
	Versus  string   `json:"versus"`
	Formula string   `json:"formula"`
	Value   *float64 `json:"value"`
	Note    string   `json:"note,omitempty"`
}

// step is one line of the decomposition of the overhead.
type step struct {
	Formula string   `json:"formula"`
	Ns      *float64 `json:"ns_per_call"` // upper median - lower median
	What    string   `json:"what"`
	Note    string   `json:"note,omitempty"`
}

type results struct {
	Workload string         `json:"workload"`
	Calls    int            `json:"calls"`
	Rounds   int            `json:"rounds"`
	Kernel   string         `json:"kernel"`
	CPUs     int            `json:"cpus"`
	Agent    string         `json:"agent"`
	Time     string         `json:"time"`
	Configs  []configResult `json:"configurations"`
	Ratios   []ratioResult  `json:"ratios"`
	// Information only, no target.
	InfoRatios    []infoRatio `json:"info_ratios"`
	Decomposition []step      `json:"decomposition"`
}

// ptr rounds to 4 decimals (the workload prints 3) for readable JSON.
func ptr(f float64) *float64 {
	f = math.Round(f*1e4) / 1e4
	return &f
}

func summarize(o options, configs []*config) *results {
	res := &results{
		Workload: "syscall(SYS_getppid) loop",
		Calls:    o.calls,
		Rounds:   o.rounds,
		Kernel:   benchproc.KernelRelease(),
		CPUs:     runtime.NumCPU(),
		Agent:    o.agent,
		Time:     time.Now().Format(time.RFC3339),
	}
	medians := map[string]float64{}
	reasons := map[string]string{}
	for _, c := range configs {
		cr := configResult{Name: c.name, Samples: c.samples}
		if cr.Samples == nil {
			cr.Samples = []float64{}
		}
		switch {
		case c.skip != "":
			cr.Status, cr.Error = "skipped", c.skip
			reasons[c.name] = "skipped"
			if c.skip == notSelected {
				reasons[c.name] = "not selected"
			}
		case c.failed != "":
			cr.Status, cr.Error = "failed", fmt.Sprintf("round %d: %s", c.round, c.failed)
			reasons[c.name] = "failed"
		default:
			cr.Status = "ok"
			m := benchproc.Median(c.samples)
			medians[c.name] = m
			cr.Median, cr.Min, cr.Max = ptr(m), ptr(slices.Min(c.samples)), ptr(slices.Max(c.samples))
		}
		res.Configs = append(res.Configs, cr)
	}
	if bare, ok := medians[cfgBare]; ok {
		for i := range res.Configs {
			if m := res.Configs[i].Median; m != nil {
				res.Configs[i].OverheadNs, res.Configs[i].XBare = ptr(*m-bare), ptr(*m/bare)
			}
		}
	}

	// ratio computes (of - bare) / (versus - bare), or says why not.
	ratio := func(of, versus string) (*float64, string) {
		bare, okB := medians[cfgBare]
		a, okA := medians[of]
		v, okV := medians[versus]
		switch {
		case !okB:
			return nil, "bare " + reasons[cfgBare]
		case !okA:
			return nil, of + " " + reasons[of]
		case !okV:
			return nil, versus + " " + reasons[versus]
		case v-bare <= 0:
			return nil, fmt.Sprintf("%s not slower than bare (%.1f ns): too noisy to divide by", versus, v-bare)
		}
		return ptr((a - bare) / (v - bare)), ""
	}
	for _, agent := range []string{cfgAgentHost, cfgAgentTarget} {
		for _, t := range targets {
			if t.versus == cfgBaselineHost && agent != cfgAgentHost {
				continue // the baseline runs on the whole host only
			}
			r := ratioResult{
				Agent:   agent,
				Versus:  t.versus,
				Formula: fmt.Sprintf("(%s - bare) / (%s - bare)", agent, t.versus),
				Target:  t.max,
				Result:  resultNA,
			}
			r.Value, r.Note = ratio(agent, t.versus)
			if r.Value != nil {
				r.Result = resultMiss
				if *r.Value <= t.max {
					r.Result = resultPass
				}
			}
			res.Ratios = append(res.Ratios, r)
		}
	}
	for _, p := range infoPairs() {
		r := infoRatio{
			Of:      p[0],
			Versus:  p[1],
			Formula: fmt.Sprintf("(%s - bare) / (%s - bare)", p[0], p[1]),
		}
		r.Value, r.Note = ratio(p[0], p[1])
		res.InfoRatios = append(res.InfoRatios, r)
	}
	for _, st := range steps {
		d := step{Formula: fmt.Sprintf("%s - %s", st.upper, st.lower), What: st.what}
		u, okU := medians[st.upper]
		l, okL := medians[st.lower]
		switch {
		case !okU:
			d.Note = st.upper + " " + reasons[st.upper]
		case !okL:
			d.Note = st.lower + " " + reasons[st.lower]
		default:
			d.Ns = ptr(u - l)
		}
		res.Decomposition = append(res.Decomposition, d)
	}
	return res
}

func printResults(w io.Writer, res *results) {
	const row = "%-14s %15s %9s %9s %17s %7s\n"
	fmt.Fprintf(w, row, "configuration", "median ns/call", "min", "max", "overhead ns/call", "x bare")
	for _, c := range res.Configs {
		if c.Median == nil {
			msg := c.Error
			if c.Status == "failed" {
				msg, _, _ = strings.Cut(msg, "; stderr:")
				msg, _, _ = strings.Cut(msg, "\n")
				msg += " (details above)"
			}
			fmt.Fprintf(w, "%-14s %s: %s\n", c.Name, strings.ToUpper(c.Status), msg)
			continue
		}
		fmt.Fprintf(w, row, c.Name, fmt.Sprintf("%.1f", *c.Median), fmt.Sprintf("%.1f", *c.Min),
			fmt.Sprintf("%.1f", *c.Max), fmt.Sprintf("%+.1f", *c.OverheadNs), fmt.Sprintf("%.2f", *c.XBare))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio (medians)\tvalue\ttarget\tresult")
	for _, r := range res.Ratios {
		val := "-"
		if r.Value != nil {
			val = fmt.Sprintf("%.3f", *r.Value)
		}
		result := r.Result
		if r.Note != "" {
			result += " (" + r.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t<= %.2f\t%s\n", r.Formula, val, r.Target, result)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio (medians), information only\tvalue\tnote")
	for _, r := range res.InfoRatios {
		val := "-"
		if r.Value != nil {
			val = fmt.Sprintf("%.3f", *r.Value)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Formula, val, r.Note)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "decomposition (medians)\tns/call\twhat the first adds to the second")
	for _, d := range res.Decomposition {
		val, what := "-", d.What
		if d.Ns != nil {
			val = fmt.Sprintf("%+.1f", *d.Ns)
		} else {
			what = "N/A (" + d.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Formula, val, what)
	}
	tw.Flush()
}

func writeJSON(path string, res *results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
