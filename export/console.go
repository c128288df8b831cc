package export

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

// Attribute keys the console reads: the generated registry's, which the
// entity package puts on every resource and overflow point.
var (
	keyPID          = entity.AttrProcessPID
	keyCreationTime = entity.AttrProcessCreationTime
	keyExecutable   = entity.AttrProcessExecutableName
	keyCommand      = entity.AttrProcessCommand
	keyOverflow     = entity.AttrOtelMetricOverflow
)

// ConsoleOptions configures NewConsole.
type ConsoleOptions struct {
	// TopN is how many rows each histogram metric shows per interval
	// (default 20).
	TopN int
	// Processes is how many of the busiest processes get a block of
	// their own per interval: counters as rates and totals, histograms
	// drawn as bars (default 5; negative: none).
	Processes int
	// Width is the terminal width the output should fit in; the
	// histogram bars shrink to it. 0: the COLUMNS environment variable,
	// else 80.
	Width int
	// Interval is the collection interval (--interval). A rate is shown
	// only over a window of at least half of it (and at least
	// MinRateWindow): the last interval, cut short at shutdown or when
	// the command exits, is marked partial and shows counts and totals
	// only. 0: MinRateWindow alone.
	Interval time.Duration
}

// MinRateWindow is the shortest window the console computes a rate over,
// whatever the interval: the smallest --interval.
const MinRateWindow = 100 * time.Millisecond

// console prints, per interval, the busiest (process × attribute set)
// series of every histogram metric. The data is cumulative, so it keeps
// the previous interval's cumulative values to print what happened in this
// interval, which is what a person watching a terminal wants to see.
type console struct {
	w      io.Writer
	topN   int
	procsN int
	width  int
	// minRate is the shortest window in seconds a rate is shown for.
	minRate float64

	// series holds the last cumulative value of every series seen in the
	// previous Export, committed after each, so series of exited processes
	// are forgotten one interval after they stop appearing and memory stays
	// bounded by what is live.
	series   *metrics.Cumulatives[seriesKey]
	lastTime time.Time

	out bytes.Buffer
}

// resKey is a resource's identity: (pid, creation time) for a process, so a
// changed descriptive attribute (a new process.command after exec) does not
// look like a new series; the whole attribute set for anything else (the
// host-only resource of the overflow series).
type resKey struct {
	pid   int64
	ctime string
	other attribute.Distinct
}

type seriesKey struct {
	res    resKey
	metric string
	attrs  attribute.Distinct
}

// NewConsole returns the human-readable exporter writing to w. Each Export
// writes one block with a single Write call, so interleaving with other
// writers to the same terminal happens at block boundaries only. Safe for
// use from one goroutine.
func NewConsole(w io.Writer, opts ConsoleOptions) Exporter {
	n := opts.TopN
	if n <= 0 {
		n = 20
	}
	procs := opts.Processes
	switch {
	case procs == 0:
		procs = 5
	case procs < 0:
		procs = 0
	}
	width := opts.Width
	if width <= 0 {
		width, _ = strconv.Atoi(os.Getenv("COLUMNS"))
	}
	if width <= 0 {
		width = 80
	}
	return &console{
		w:       w,
		topN:    n,
		procsN:  procs,
		width:   width,
		minRate: max(opts.Interval/2, MinRateWindow).Seconds(),
		series:  metrics.NewCumulatives[seriesKey](),
	}
}

// consoleRow is one printed line: a series' activity during the interval.
type consoleRow struct {
	res      resKey
	pid      int64
	pidText  string // "1234", "overflow", or "-" for a non-process resource
	overflow bool
	exe      string
	attrs    *attribute.Set // the data point's attributes
	calls    uint64
	seconds  float64 // length of the interval this row's delta covers
	errors   float64
	hasErr   bool // an error counter exists for this metric and resource
	bounds   []float64
	buckets  []uint64 // delta counts, owned by the row
	sum      float64  // delta of the histogram sum, in unit
}

type consoleSection struct {
	name, unit string
	rows       []*consoleRow
}

// histPoint is a histogram data point of either number type.
type histPoint struct {
	attrs       *attribute.Set
	start, time time.Time
	count       uint64
	sum         float64
	bounds      []float64
	buckets     []uint64
}

func (c *console) Export(_ context.Context, rms []metricdata.ResourceMetrics) error {
	sections := map[string]*consoleSection{}
	counterSections := map[string]*counterSection{}
	var now, earliest time.Time // the newest point, the oldest start
	seen := func(start, t time.Time) {
		if t.After(now) {
			now = t
		}
		if earliest.IsZero() || start.Before(earliest) {
			earliest = start
		}
	}
	procs := map[resKey]string{} // process → its command, for the per-process blocks

	for i := range rms {
		rm := &rms[i]
		rk, pid, isProc, exe := resourceIdentity(rm.Resource)
		if isProc {
			cmd := ""
			if v, ok := rm.Resource.Set().Value(keyCommand); ok {
				cmd = v.Emit()
			}
			procs[rk] = cmd
		}
		// rows of this resource, per histogram metric, indexed by the
		// attribute-key signature and then by attribute set, for matching
		// error counters (which may carry extra attributes such as
		// error.type) to the histogram rows they belong to.
		type sigRows struct {
			keys []attribute.Key
			rows map[attribute.Distinct]*consoleRow
		}
		type rowIndex map[string]*sigRows
		byMetric := map[string]rowIndex{}

		for _, sm := range rm.ScopeMetrics {
			for mi := range sm.Metrics {
				m := &sm.Metrics[mi]
				points := histogramPointsOf(m.Data)
				if points == nil {
					continue
				}
				sec := sections[m.Name]
				if sec == nil {
					sec = &consoleSection{name: m.Name, unit: m.Unit}
					sections[m.Name] = sec
				}
				idx := rowIndex{}
				byMetric[m.Name] = idx
				for _, p := range points {
					seen(p.start, p.time)
					row := c.histogramRow(rk, m.Name, p)
					row.res, row.pid, row.exe = rk, pid, exe
					switch {
					case isOverflow(p.attrs):
						row.pidText, row.overflow, row.exe = "overflow", true, "-"
					case isProc:
						row.pidText = strconv.FormatInt(pid, 10)
					default:
						row.pidText = "-"
					}
					sec.rows = append(sec.rows, row)
					sig, keys := keySignature(p.attrs)
					sr := idx[sig]
					if sr == nil {
						sr = &sigRows{keys: keys, rows: map[attribute.Distinct]*consoleRow{}}
						idx[sig] = sr
					}
					sr.rows[p.attrs.Equivalent()] = row
				}
			}
		}
		// Every other monotonic counter gets its own section (context
		// switches, faults, on-CPU time, drops, ...); error counters that
		// belong to a histogram's rows are shown there instead.
		for _, sm := range rm.ScopeMetrics {
			for mi := range sm.Metrics {
				m := &sm.Metrics[mi]
				if !isMonotonicSum(m.Data) || byMetric[errorsOf(m)] != nil {
					continue
				}
				sec := counterSections[m.Name]
				if sec == nil {
					sec = &counterSection{name: m.Name, unit: m.Unit}
					counterSections[m.Name] = sec
				}
				forEachCounterPoint(m.Data, func(attrs *attribute.Set, start, t time.Time, v float64) {
					seen(start, t)
					row := &counterRow{res: rk, proc: isProc && !isOverflow(attrs), metric: m.Name, unit: m.Unit, pid: pid, exe: exe, attrs: attrs, total: v,
						delta: c.counterDelta(seriesKey{res: rk, metric: m.Name, attrs: attrs.Equivalent()}, start, t, v)}
					row.seconds = c.window(start, t)
					switch {
					case isOverflow(attrs):
						row.pidText, row.exe = "overflow", "-"
					case isProc:
						row.pidText = strconv.FormatInt(pid, 10)
					default:
						row.pidText = "-"
					}
					sec.rows = append(sec.rows, row)
				})
			}
		}
		if len(byMetric) == 0 {
			continue
		}

		// Error counters: the schema says which histogram's operations a
		// counter counts the failures of (telagent.syscall.errors of
		// telagent.syscall.duration); they are shown in its rows.
		for _, sm := range rm.ScopeMetrics {
			for mi := range sm.Metrics {
				m := &sm.Metrics[mi]
				hidx := byMetric[errorsOf(m)]
				if hidx == nil {
					continue
				}
				for _, sr := range hidx {
					for _, r := range sr.rows {
						r.hasErr = true
					}
				}
				targets := []rowIndex{hidx}
				forEachCounterPoint(m.Data, func(attrs *attribute.Set, start, t time.Time, v float64) {
					d := c.counterDelta(seriesKey{res: rk, metric: m.Name, attrs: attrs.Equivalent()}, start, t, v)
					for _, idx := range targets {
						for _, sr := range idx {
							if !hasKeys(attrs, sr.keys) {
								continue
							}
							sub, _ := attrs.Filter(func(kv attribute.KeyValue) bool {
								return slices.Contains(sr.keys, kv.Key)
							})
							if r := sr.rows[sub.Equivalent()]; r != nil {
								r.errors += d
							}
						}
					}
				})
			}
		}
	}

	if now.IsZero() {
		now = time.Now()
	}
	c.render(now, earliest, procs, sections, counterSections)
	c.series.Commit()
	c.lastTime = now

	_, err := c.w.Write(c.out.Bytes())
	if err != nil {
		return fmt.Errorf("console: write: %w", err)
	}
	return nil
}

// histogramRow computes the interval's delta for one histogram point and
// records its cumulative state for the next interval.
func (c *console) histogramRow(rk resKey, metric string, p histPoint) *consoleRow {
	// bounds may alias the caller's buffers; rows live only until Export
	// returns, so that is fine. buckets is a delta and needs its own slice.
	row := &consoleRow{attrs: p.attrs, bounds: p.bounds, buckets: make([]uint64, len(p.buckets))}
	var from time.Time
	var ok bool
	row.calls, row.sum, from, ok = c.series.Histogram(seriesKey{res: rk, metric: metric, attrs: p.attrs.Equivalent()},
		p.start, p.time, p.count, p.sum, p.buckets, row.buckets)
	if ok {
		row.seconds = p.time.Sub(from).Seconds()
	} else {
		row.seconds = c.window(p.start, p.time)
	}
	return row
}

// window is the seconds a value with no previous one to subtract covers:
// from its stream's start, or from the previous export if that is later (a
// series met for the first time moved since then, as every live series is
// in every export).
func (c *console) window(start, t time.Time) float64 {
	if !c.lastTime.IsZero() && c.lastTime.After(start) {
		start = c.lastTime
	}
	return t.Sub(start).Seconds()
}

// rate prints n/seconds with format, or "-" over a window too short for a
// rate to mean anything (see ConsoleOptions.Interval): 22 calls in the
// 2 ms between the last interval and the exit are not 10167/s.
func (c *console) rate(n, seconds float64, format func(float64) string) string {
	if seconds < c.minRate || seconds <= 0 {
		return "-"
	}
	return format(n / seconds)
}

func (c *console) counterDelta(key seriesKey, start, t time.Time, v float64) float64 {
	d, _, _ := c.series.Float(key, start, t, v)
	return d
}

func (c *console) render(now, earliest time.Time, procCmds map[resKey]string, sections map[string]*consoleSection, counters map[string]*counterSection) {
	procs := len(procCmds)
	c.out.Reset()
	// The interval is partial when too short for rates: the last one, cut
	// short by the shutdown or the command's exit, usually is.
	var interval string
	var length time.Duration
	if c.lastTime.IsZero() {
		interval = "first interval"
		if !earliest.IsZero() {
			length = now.Sub(earliest)
		}
	} else {
		length = now.Sub(c.lastTime)
		interval = "interval " + length.Round(time.Millisecond).String()
	}
	if length > 0 && length.Seconds() < c.minRate {
		if c.lastTime.IsZero() {
			interval += " " + length.Round(time.Millisecond).String()
		}
		interval += " (partial, no rates)"
	}
	noun := "processes"
	if procs == 1 {
		noun = "process"
	}
	fmt.Fprintf(&c.out, "--- %s  %d %s  %s ---\n", now.UTC().Format(time.RFC3339), procs, noun, interval)

	names := make([]string, 0, len(sections))
	for n := range sections {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c.renderSection(sections[n])
	}
	names = names[:0]
	for n := range counters {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c.renderCounters(counters[n])
	}
	c.renderProcesses(procCmds, sections, counters)
}

// counterRow is one printed line of a counter section.
type counterRow struct {
	res          resKey
	proc         bool // a process's own series (not the host's or overflow)
	metric, unit string
	pid          int64
	pidText, exe string
	attrs        *attribute.Set
	delta, total float64
	seconds      float64
}

type counterSection struct {
	name, unit string
	rows       []*counterRow
}

// renderCounters prints the series of one counter that moved in the
// interval, busiest first, with the rate and the cumulative total.
func (c *console) renderCounters(sec *counterSection) {
	active := sec.rows[:0:0]
	for _, r := range sec.rows {
		if r.delta > 0 {
			active = append(active, r)
		}
	}
	if len(active) == 0 {
		return
	}
	slices.SortStableFunc(active, func(a, b *counterRow) int {
		switch {
		case a.delta != b.delta:
			if a.delta > b.delta {
				return -1
			}
			return 1
		case a.pid != b.pid:
			return int(a.pid - b.pid)
		}
		return strings.Compare(a.attrs.Encoded(attribute.DefaultEncoder()), b.attrs.Encoded(attribute.DefaultEncoder()))
	})
	shown := active[:min(c.topN, len(active))]
	var keys []attribute.Key
	for _, r := range shown {
		for it := r.attrs.Iter(); it.Next(); {
			if k := it.Attribute().Key; k != keyOverflow && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	fmt.Fprintf(&c.out, "%s: top %d of %d active series\n", sec.name, len(shown), len(active))
	tw := tabwriter.NewWriter(&c.out, 0, 0, 2, ' ', 0)
	hdr := append([]string{"PID", "EXE"}, columnHeaders(keys)...)
	writeCells(tw, append(hdr, "DELTA", "RATE/S", "TOTAL"))
	for _, r := range shown {
		cells := []string{r.pidText, truncate(r.exe, 15)}
		for _, k := range keys {
			v := "-"
			if val, ok := r.attrs.Value(k); ok {
				v = truncate(val.Emit(), 24)
			}
			cells = append(cells, v)
		}
		rate := c.rate(r.delta, r.seconds, func(v float64) string { return formatCounterRate(v, sec.unit) })
		writeCells(tw, append(cells, formatCount(r.delta, sec.unit), rate, formatCount(r.total, sec.unit)))
	}
	tw.Flush()
}

func isMonotonicSum(data metricdata.Aggregation) bool {
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		return d.IsMonotonic
	case metricdata.Sum[float64]:
		return d.IsMonotonic
	}
	return false
}

func (c *console) renderSection(sec *consoleSection) {
	active := sec.rows[:0:0]
	for _, r := range sec.rows {
		if r.calls > 0 {
			active = append(active, r)
		}
	}
	if len(active) == 0 {
		fmt.Fprintf(&c.out, "%s: no activity\n", sec.name)
		return
	}
	sortRows(active)
	shown := active[:min(c.topN, len(active))]

	// Attribute columns: the union of the shown rows' keys, in key order,
	// minus the overflow marker (the pid column already says "overflow").
	var keys []attribute.Key
	for _, r := range shown {
		for it := r.attrs.Iter(); it.Next(); {
			k := it.Attribute().Key
			if k != keyOverflow && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)

	fmt.Fprintf(&c.out, "%s: top %d of %d active series\n", sec.name, len(shown), len(active))
	tw := tabwriter.NewWriter(&c.out, 0, 0, 2, ' ', 0)
	hdr := append([]string{"PID", "EXE"}, columnHeaders(keys)...)
	hdr = append(hdr, "COUNT", "COUNT/S", "ERRORS", "P50", "P99", "TOTAL")
	writeCells(tw, hdr)
	for _, r := range shown {
		cells := []string{r.pidText, truncate(r.exe, 15)}
		for _, k := range keys {
			v := "-"
			if val, ok := r.attrs.Value(k); ok {
				v = truncate(val.Emit(), 24)
			}
			cells = append(cells, v)
		}
		rate := c.rate(float64(r.calls), r.seconds, formatRate)
		errs := "-"
		if r.hasErr {
			errs = strconv.FormatFloat(r.errors, 'f', -1, 64)
		}
		cells = append(cells,
			strconv.FormatUint(r.calls, 10), rate, errs,
			FormatQuantile(r.bounds, r.buckets, r.sum, 0.50, sec.unit),
			FormatQuantile(r.bounds, r.buckets, r.sum, 0.99, sec.unit),
			metrics.FormatValue(r.sum, sec.unit),
		)
		writeCells(tw, cells)
	}
	tw.Flush()
}

// writeCells writes one tabwriter line. The last cell is not tab-terminated
// so it is not padded and lines carry no trailing blanks.
func writeCells(w io.Writer, cells []string) {
	io.WriteString(w, strings.Join(cells, "\t")+"\n")
}

// sortRows orders by calls in the interval (busiest first), then by pid
// (overflow after every real process), executable and attribute values, so
// equal counts print in the same order every time.
func sortRows(rows []*consoleRow) {
	slices.SortFunc(rows, func(a, b *consoleRow) int {
		if c := cmp.Compare(b.calls, a.calls); c != 0 {
			return c
		}
		if a.overflow != b.overflow {
			if a.overflow {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(a.pid, b.pid); c != 0 {
			return c
		}
		if c := cmp.Compare(a.exe, b.exe); c != 0 {
			return c
		}
		return cmp.Compare(a.attrs.Encoded(attribute.DefaultEncoder()), b.attrs.Encoded(attribute.DefaultEncoder()))
	})
}

// columnHeaders names attribute columns by the key's last segment, or the
// one before it when the last is "name" (telagent.syscall.name → SYSCALL),
// and falls back to the full key where two columns would share a header.
func columnHeaders(keys []attribute.Key) []string {
	short := make([]string, len(keys))
	seen := map[string]int{}
	for i, k := range keys {
		segs := strings.Split(string(k), ".")
		s := segs[len(segs)-1]
		if s == "name" && len(segs) > 1 {
			s = segs[len(segs)-2]
		}
		short[i] = strings.ToUpper(s)
		seen[short[i]]++
	}
	for i, k := range keys {
		if seen[short[i]] > 1 {
			short[i] = strings.ToUpper(string(k))
		}
	}
	return short
}

// formatCount prints a counter's value: durations and bytes as FormatValue
// does, counts of things as whole numbers (1520, not 1.52e+03).
func formatCount(v float64, unit string) string {
	if isTimeUnit(unit) || unit == "By" || v != math.Trunc(v) || math.Abs(v) >= 1e15 {
		return metrics.FormatValue(v, unit)
	}
	s := strconv.FormatFloat(v, 'f', 0, 64)
	if unit == "" || unit == "1" || strings.HasPrefix(unit, "{") {
		return s
	}
	return s + unit
}

// formatCounterRate prints a counter's rate per second: time per second in
// µs/ms/s, bytes per second in B/KiB/MiB..., counts with one decimal below
// 100.
func formatCounterRate(v float64, unit string) string {
	if isTimeUnit(unit) || unit == "By" {
		return metrics.FormatValue(v, unit)
	}
	s := formatRate(v)
	if unit == "" || unit == "1" || strings.HasPrefix(unit, "{") {
		return s
	}
	return s + unit
}

func isTimeUnit(unit string) bool {
	switch unit {
	case "s", "ms", "us", "ns":
		return true
	}
	return false
}

func formatRate(r float64) string {
	if r >= 99.95 {
		return strconv.FormatFloat(r, 'f', 0, 64)
	}
	return strconv.FormatFloat(r, 'f', 1, 64)
}

func truncate(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func (c *console) Shutdown(context.Context) error { return nil }

// resourceIdentity extracts what the console needs from a resource.
func resourceIdentity(r *resource.Resource) (k resKey, pid int64, isProc bool, exe string) {
	if r == nil {
		return resKey{other: attribute.EmptySet().Equivalent()}, 0, false, "-"
	}
	set := r.Set()
	exe = "-"
	if v, ok := set.Value(keyExecutable); ok {
		exe = v.Emit()
	}
	v, ok := set.Value(keyPID)
	if !ok {
		return resKey{other: set.Equivalent()}, 0, false, exe
	}
	pid = v.AsInt64()
	if v.Type() == attribute.STRING {
		pid, _ = strconv.ParseInt(v.AsString(), 10, 64)
	}
	k = resKey{pid: pid}
	if ct, ok := set.Value(keyCreationTime); ok {
		k.ctime = ct.Emit()
	}
	return k, pid, true, exe
}

func isOverflow(s *attribute.Set) bool {
	v, ok := s.Value(keyOverflow)
	return ok && v.Type() == attribute.BOOL && v.AsBool()
}

// errorsOf is the histogram whose failed operations m counts, from the
// schema (annotations.telagent.errors_of), "" when m is no such monotonic
// counter.
func errorsOf(m *metricdata.Metrics) string {
	if !isMonotonicSum(m.Data) {
		return ""
	}
	d, _ := entity.MetricByName(m.Name)
	return d.ErrorsOf
}

func forEachCounterPoint(data metricdata.Aggregation, fn func(attrs *attribute.Set, start, t time.Time, v float64)) {
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for i := range d.DataPoints {
			p := &d.DataPoints[i]
			fn(&p.Attributes, p.StartTime, p.Time, float64(p.Value))
		}
	case metricdata.Sum[float64]:
		for i := range d.DataPoints {
			p := &d.DataPoints[i]
			fn(&p.Attributes, p.StartTime, p.Time, p.Value)
		}
	}
}

func histogramPointsOf(data metricdata.Aggregation) []histPoint {
	switch d := data.(type) {
	case metricdata.Histogram[float64]:
		out := make([]histPoint, 0, len(d.DataPoints))
		for i := range d.DataPoints {
			p := &d.DataPoints[i]
			out = append(out, histPoint{&p.Attributes, p.StartTime, p.Time, p.Count, p.Sum, p.Bounds, p.BucketCounts})
		}
		return out
	case metricdata.Histogram[int64]:
		out := make([]histPoint, 0, len(d.DataPoints))
		for i := range d.DataPoints {
			p := &d.DataPoints[i]
			out = append(out, histPoint{&p.Attributes, p.StartTime, p.Time, p.Count, float64(p.Sum), p.Bounds, p.BucketCounts})
		}
		return out
	}
	return nil
}

// keySignature identifies which attribute keys a set has; rows with the same
// keys can be looked up by attribute set in one map.
func keySignature(s *attribute.Set) (string, []attribute.Key) {
	keys := make([]attribute.Key, 0, s.Len())
	var b strings.Builder
	for it := s.Iter(); it.Next(); {
		k := it.Attribute().Key
		keys = append(keys, k)
		b.WriteString(string(k))
		b.WriteByte(0)
	}
	return b.String(), keys
}

func hasKeys(s *attribute.Set, keys []attribute.Key) bool {
	for _, k := range keys {
		if !s.HasValue(k) {
			return false
		}
	}
	return true
}
