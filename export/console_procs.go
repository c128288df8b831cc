package export

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"go.opentelemetry.io/otel/attribute"
)

// procBlock is one process's activity in the interval, for its block.
type procBlock struct {
	res      resKey
	pid      int64
	exe, cmd string
	events   uint64 // histogram counts in the interval: how busy it was
	counters []*counterRow
	hists    []*procHist
}

// procHist is one histogram metric of one process, its series (one per
// syscall, say) added together: the process's distribution.
type procHist struct {
	name, unit string
	series     int
	count      uint64
	sum        float64
	errors     float64
	hasErr     bool
	seconds    float64
	bounds     []float64
	buckets    []uint64
}

// renderProcesses prints a block for each of the busiest processes (most
// histogram events in the interval, then lowest pid): every counter that
// moved as a rate over the interval and its total, then each histogram
// metric over all its series drawn as bars.
func (c *console) renderProcesses(cmds map[resKey]string, sections map[string]*consoleSection, counters map[string]*counterSection) {
	if c.procsN == 0 {
		return
	}
	blocks := map[resKey]*procBlock{}
	block := func(rk resKey, pid int64, exe string) *procBlock {
		b := blocks[rk]
		if b == nil {
			b = &procBlock{res: rk, pid: pid, exe: exe, cmd: cmds[rk]}
			blocks[rk] = b
		}
		return b
	}
	for _, name := range sortedKeys(sections) {
		sec := sections[name]
		for _, r := range sec.rows {
			if _, isProc := cmds[r.res]; !isProc || r.overflow || r.calls == 0 {
				continue
			}
			b := block(r.res, r.pid, r.exe)
			b.events += r.calls
			var h *procHist
			if n := len(b.hists); n > 0 && b.hists[n-1].name == name {
				h = b.hists[n-1]
			} else {
				h = &procHist{name: name, unit: sec.unit, bounds: r.bounds, buckets: make([]uint64, len(r.buckets))}
				b.hists = append(b.hists, h)
			}
			if len(r.buckets) != len(h.buckets) {
				continue // another bucket layout cannot be added in
			}
			h.series++
			h.count += r.calls
			h.sum += r.sum
			h.errors += r.errors
			h.hasErr = h.hasErr || r.hasErr
			h.seconds = max(h.seconds, r.seconds)
			for i, n := range r.buckets {
				h.buckets[i] += n
			}
		}
	}
	for _, name := range sortedKeys(counters) {
		for _, r := range counters[name].rows {
			if !r.proc || r.delta <= 0 {
				continue
			}
			b := block(r.res, r.pid, r.exe)
			b.counters = append(b.counters, r)
		}
	}
	if len(blocks) == 0 {
		return
	}
	list := make([]*procBlock, 0, len(blocks))
	for _, b := range blocks {
		list = append(list, b)
	}
	slices.SortFunc(list, func(a, b *procBlock) int {
		if c := cmp.Compare(b.events, a.events); c != 0 {
			return c
		}
		if c := cmp.Compare(a.pid, b.pid); c != 0 {
			return c
		}
		return cmp.Compare(a.res.ctime, b.res.ctime)
	})
	shown := list[:min(c.procsN, len(list))]
	fmt.Fprintf(&c.out, "busiest processes: %d of %d active\n", len(shown), len(list))
	for _, b := range shown {
		head := fmt.Sprintf("process %d %s", b.pid, b.exe)
		if b.cmd != "" && b.cmd != b.exe {
			head += " (" + b.cmd + ")"
		}
		c.out.WriteString(truncate(head, max(c.width, 20)) + "\n")
		if len(b.counters) > 0 {
			tw := tabwriter.NewWriter(&c.out, 0, 0, 2, ' ', 0)
			for _, r := range b.counters {
				rate := c.rate(r.delta, r.seconds, func(v float64) string { return formatCounterRate(v, r.unit) + "/s" })
				writeCells(tw, []string{"  " + r.metric + attrSuffix(r.attrs), rate, "total " + formatCount(r.total, r.unit)})
			}
			tw.Flush()
		}
		for _, h := range b.hists {
			what := ""
			if h.series > 1 {
				what = fmt.Sprintf(", %d series added", h.series)
			}
			rate, errs := "", ""
			perSecond := func(v float64) string { return formatRate(v) + "/s" }
			if r := c.rate(float64(h.count), h.seconds, perSecond); r != "-" {
				rate = ", " + r
			}
			if h.hasErr {
				errs = ", errors " + strconv.FormatFloat(h.errors, 'f', -1, 64)
				if r := c.rate(h.errors, h.seconds, perSecond); r != "-" {
					errs += " (" + r + ")"
				}
			}
			fmt.Fprintf(&c.out, "  %s: %d in the interval%s%s%s, p50 %s, p99 %s\n", h.name, h.count, rate, errs, what,
				FormatQuantile(h.bounds, h.buckets, h.sum, 0.50, h.unit), FormatQuantile(h.bounds, h.buckets, h.sum, 0.99, h.unit))
			WriteHistogramBars(&c.out, h.bounds, h.buckets, h.unit, c.width, "    ")
		}
	}
}

// attrSuffix is " [v1 v2]" for a counter's attribute values (in key
// order), "" without attributes: the metric name already says what the
// attribute is about (process.context_switches [voluntary]).
func attrSuffix(s *attribute.Set) string {
	if s == nil || s.Len() == 0 {
		return ""
	}
	var vals []string
	for it := s.Iter(); it.Next(); {
		if kv := it.Attribute(); kv.Key != keyOverflow {
			vals = append(vals, truncate(kv.Value.Emit(), 24))
		}
	}
	if len(vals) == 0 {
		return ""
	}
	return " [" + strings.Join(vals, " ") + "]"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
