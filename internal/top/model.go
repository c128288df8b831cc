// Package top is `telagent top`: a live terminal view of the agent's
// per-process metrics. It is an export.Exporter, so the agent's own
// collection loop (internal/agent) feeds it every interval exactly as it
// feeds OTLP; this package only turns the cumulative data into per-interval
// rates and draws them.
package top

import (
	"context"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/metrics"
)

// Schema names of the metrics the columns read, from the generated
// registry. Columns whose metrics no running probe emits show "-" (blockio
// and tcp may be absent or skipped).
var (
	metricOnCPU     = entity.MetricTelagentProcessOnCPUTime.Name
	metricRunqueue  = entity.MetricTelagentSchedRunqueueDuration.Name
	metricSyscalls  = entity.MetricTelagentSyscallDuration.Name
	metricSysErrors = entity.MetricTelagentSyscallErrors.Name
	metricFaults    = entity.MetricProcessPagingFaults.Name
	metricDiskIO    = entity.MetricProcessDiskIO.Name // on a process resource: that process's bytes
	metricRetrans   = entity.MetricTelagentTCPRetransmits.Name

	keyPID          = entity.AttrProcessPID
	keyCreationTime = entity.AttrProcessCreationTime
	keyExecutable   = entity.AttrProcessExecutableName
	keyCommand      = entity.AttrProcessCommand
	keyOverflow     = entity.AttrOtelMetricOverflow

	// The agent reports every running probe's metric sets in this
	// self-metric (on the host resource), even when they counted nothing.
	metricSetOverflows = entity.MetricTelagentMetricSetOverflows.Name
	keyMetricSetName   = entity.AttrTelagentMetricSetName
)

// columnOf maps the metrics the columns read to their columns.
var columnOf = map[string][]Column{
	metricOnCPU:     {ColCPU},
	metricRunqueue:  {ColRunqP50, ColRunqP99},
	metricSyscalls:  {ColSyscalls},
	metricSysErrors: {ColErrors},
	metricFaults:    {ColFaults},
	metricDiskIO:    {ColDisk},
	metricRetrans:   {ColRetrans},
}

// runningColumns marks the columns whose metric set a running probe
// reports, so that a column reads 0 (not "-") when its probe runs but the
// shown processes did nothing it counts.
func runningColumns(rm *metricdata.ResourceMetrics, has *[numColumns]bool) {
	for _, sm := range rm.ScopeMetrics {
		for mi := range sm.Metrics {
			m := &sm.Metrics[mi]
			if m.Name != metricSetOverflows {
				continue
			}
			d, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, p := range d.DataPoints {
				v, ok := p.Attributes.Value(keyMetricSetName)
				if !ok {
					continue
				}
				for _, set := range entity.MetricSets() {
					if set.Name != v.AsString() {
						continue
					}
					for _, val := range set.Values {
						for _, c := range columnOf[val.Metric] {
							has[c] = true
						}
					}
				}
			}
		}
	}
}

// Column identifies a value of a process row.
type Column int

// The columns, in display order.
const (
	ColPID Column = iota
	ColName
	ColCPU
	ColRunqP50
	ColRunqP99
	ColSyscalls
	ColErrors
	ColFaults
	ColDisk
	ColRetrans
	numColumns
)

// Hist is one histogram's counts over an interval (its series added up).
type Hist struct {
	Name, Unit string
	Bounds     []float64
	Counts     []uint64
	Sum        float64 // of the values in Counts; it bounds the quantiles
}

// Row is one process's activity in the last interval. Rates are per
// second; a value is meaningful only where Has says its metric was present.
type Row struct {
	PID          int64
	Name, Cmd    string
	CPU          float64 // on-CPU seconds per second (1 = one CPU)
	RunqP50      float64 // seconds; RunqOK false when no wait was measured
	RunqP99      float64
	RunqOK       bool
	Syscalls     float64
	Errors       float64
	Faults       float64
	Disk         float64 // bytes/s
	Retrans      float64
	Hists        []Hist // histograms of the interval, by metric name
	ResourceAttr []attribute.KeyValue
}

// Snapshot is one interval as the view shows it.
type Snapshot struct {
	Time     time.Time
	Interval time.Duration
	Rows     []Row
	// Has says which columns some process had data for (a column whose
	// probe is absent shows "-" everywhere).
	Has [numColumns]bool
}

// Tracker is the exporter behind the view: it keeps each series'
// previous cumulative value to compute the interval's deltas, and hands
// the newest Snapshot to Updates.
type Tracker struct {
	updates chan Snapshot

	mu       sync.Mutex
	series   *metrics.Cumulatives[seriesKey]
	lastTime time.Time
}

type resKey struct {
	pid   int64
	ctime string
}

type seriesKey struct {
	res    resKey
	metric string
	attrs  attribute.Distinct
}

// NewTracker returns a Tracker; Updates delivers its snapshots.
func NewTracker() *Tracker {
	return &Tracker{
		updates: make(chan Snapshot, 1),
		series:  metrics.NewCumulatives[seriesKey](),
	}
}

// Updates delivers the newest snapshot. Only the latest is kept: a view
// that is slow to draw skips intervals rather than holding up collection.
func (t *Tracker) Updates() <-chan Snapshot { return t.updates }

// Shutdown implements export.Exporter.
func (t *Tracker) Shutdown(context.Context) error { return nil }

// Export implements export.Exporter: it must not keep rms, and does not.
func (t *Tracker) Export(_ context.Context, rms []metricdata.ResourceMetrics) error {
	s := t.Snapshot(rms)
	select {
	case <-t.updates: // drop the unread older one
	default:
	}
	t.updates <- s
	return nil
}

// Snapshot computes the interval's rows from one cumulative export.
func (t *Tracker) Snapshot(rms []metricdata.ResourceMetrics) Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	var snap Snapshot
	for i := range rms {
		rm := &rms[i]
		rk, row, ok := processOf(rm.Resource)
		if !ok {
			runningColumns(rm, &snap.Has) // host-level data: not a process row
			continue
		}
		active := false
		hists := map[string]*Hist{}
		var order []string
		for _, sm := range rm.ScopeMetrics {
			for mi := range sm.Metrics {
				m := &sm.Metrics[mi]
				switch d := m.Data.(type) {
				case metricdata.Histogram[float64]:
					for pi := range d.DataPoints {
						p := &d.DataPoints[pi]
						if overflow(&p.Attributes) {
							continue
						}
						if snap.Time.Before(p.Time) {
							snap.Time = p.Time
						}
						counts, sum, secs := t.histDelta(seriesKey{rk, m.Name, p.Attributes.Equivalent()}, p)
						h := hists[m.Name]
						if h == nil {
							h = &Hist{Name: m.Name, Unit: m.Unit, Bounds: p.Bounds, Counts: make([]uint64, len(counts))}
							hists[m.Name] = h
							order = append(order, m.Name)
						}
						if len(h.Counts) != len(counts) {
							continue
						}
						h.Sum += sum
						var n uint64
						for bi, c := range counts {
							h.Counts[bi] += c
							n += c
						}
						if n > 0 {
							active = true
						}
						if m.Name == metricSyscalls && secs > 0 {
							row.Syscalls += float64(n) / secs
							snap.Has[ColSyscalls] = true
						}
					}
				case metricdata.Sum[int64]:
					for pi := range d.DataPoints {
						p := &d.DataPoints[pi]
						t.counter(&snap, &row, &active, rk, m.Name, &p.Attributes, p.StartTime, p.Time, float64(p.Value))
					}
				case metricdata.Sum[float64]:
					for pi := range d.DataPoints {
						p := &d.DataPoints[pi]
						t.counter(&snap, &row, &active, rk, m.Name, &p.Attributes, p.StartTime, p.Time, p.Value)
					}
				}
			}
		}
		for _, name := range order {
			h := hists[name]
			row.Hists = append(row.Hists, *h)
			if name == metricRunqueue {
				snap.Has[ColRunqP50], snap.Has[ColRunqP99] = true, true
				p50, _, _, ok50 := export.HistogramQuantile(h.Bounds, h.Counts, h.Sum, 0.50)
				p99, _, _, _ := export.HistogramQuantile(h.Bounds, h.Counts, h.Sum, 0.99)
				row.RunqP50, row.RunqP99, row.RunqOK = p50, p99, ok50
			}
		}
		if active {
			snap.Rows = append(snap.Rows, row)
		}
	}
	snap.Has[ColPID], snap.Has[ColName] = true, true
	if snap.Time.IsZero() {
		snap.Time = time.Now() // no process had a point: an idle interval
	}
	if !t.lastTime.IsZero() && snap.Time.After(t.lastTime) {
		snap.Interval = snap.Time.Sub(t.lastTime)
	}
	t.lastTime = snap.Time
	t.series.Commit()
	return snap
}

// counter adds one cumulative sum point's rate to its column.
func (t *Tracker) counter(snap *Snapshot, row *Row, active *bool, rk resKey, metric string, attrs *attribute.Set, start, at time.Time, v float64) {
	var col Column
	switch metric {
	case metricOnCPU:
		col = ColCPU
	case metricSysErrors:
		col = ColErrors
	case metricFaults:
		col = ColFaults
	case metricDiskIO:
		col = ColDisk
	case metricRetrans:
		col = ColRetrans
	default:
		return
	}
	if overflow(attrs) {
		return
	}
	if snap.Time.Before(at) {
		snap.Time = at
	}
	d, secs := t.sumDelta(seriesKey{rk, metric, attrs.Equivalent()}, start, at, v)
	snap.Has[col] = true
	if secs <= 0 {
		return
	}
	if d > 0 {
		*active = true
	}
	r := d / secs
	switch col {
	case ColCPU:
		row.CPU += r
	case ColErrors:
		row.Errors += r
	case ColFaults:
		row.Faults += r
	case ColDisk:
		row.Disk += r
	case ColRetrans:
		row.Retrans += r
	}
}

// sumDelta is the change of a cumulative sum since the previous interval
// and the seconds it covers; the whole value over its start time when the
// series is new or restarted.
func (t *Tracker) sumDelta(k seriesKey, start, at time.Time, v float64) (float64, float64) {
	d, from, _ := t.series.Float(k, start, at, v)
	return d, at.Sub(from).Seconds()
}

func (t *Tracker) histDelta(k seriesKey, p *metricdata.HistogramDataPoint[float64]) ([]uint64, float64, float64) {
	out := make([]uint64, len(p.BucketCounts))
	_, sum, from, _ := t.series.Histogram(k, p.StartTime, p.Time, p.Count, p.Sum, p.BucketCounts, out)
	return out, sum, p.Time.Sub(from).Seconds()
}

func overflow(s *attribute.Set) bool {
	v, ok := s.Value(keyOverflow)
	return ok && v.Type() == attribute.BOOL && v.AsBool()
}

// processOf reads a process resource's identity and names; ok is false for
// a resource that is no process (the host's).
func processOf(r *resource.Resource) (resKey, Row, bool) {
	if r == nil {
		return resKey{}, Row{}, false
	}
	set := r.Set()
	v, ok := set.Value(keyPID)
	if !ok {
		return resKey{}, Row{}, false
	}
	pid := v.AsInt64()
	if v.Type() == attribute.STRING {
		pid, _ = strconv.ParseInt(v.AsString(), 10, 64)
	}
	row := Row{PID: pid, Name: "?", ResourceAttr: set.ToSlice()}
	k := resKey{pid: pid}
	if ct, ok := set.Value(keyCreationTime); ok {
		k.ctime = ct.Emit()
	}
	if n, ok := set.Value(keyExecutable); ok {
		row.Name = n.Emit()
	}
	if c, ok := set.Value(keyCommand); ok {
		row.Cmd = c.Emit()
	}
	return k, row, true
}
