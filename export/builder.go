package export

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
)

// ScopeName is the instrumentation scope of everything the agent emits.
const ScopeName = "github.com/telagent/telagent"

// Builder assembles one interval's map reads into OTLP metric data: one
// ResourceMetrics per entity resource, one Metric per descriptor, cumulative
// since the probe attached. Probes add points; they never touch the SDK's
// instruments, so values are exported exactly as the kernel counted them.
//
// The builder keeps its point slices (and each histogram point's bucket
// counts) from one interval to the next and writes over them, so a steady
// state adds points without allocating per point. That is what the
// Exporter contract allows: the data Result returns is valid until the
// next Begin, and an exporter that needs it later copies it.
type Builder struct {
	scope instrumentation.Scope
	start time.Time
	now   time.Time
	gen   uint64 // interval number, bumped by Begin

	byRes map[*resource.Resource]*resourceBuilder
	order []*resourceBuilder // this interval's resources, in first-use order
	out   []metricdata.ResourceMetrics
	last  *resourceBuilder // of the previous point: a key's points share it
}

type resourceBuilder struct {
	res     *resource.Resource
	gen     uint64           // last interval it had a point in
	metrics []*metricBuilder // a handful per resource: scanned, not hashed
	order   []*metricBuilder // this interval's metrics, in first-use order
	ms      []metricdata.Metrics
	sms     []metricdata.ScopeMetrics
}

// metricBuilder holds one metric's points of one resource. Its aggregation
// is decided per interval, on first use, from the descriptor (and
// CounterFloat may turn a still empty int sum into a float sum), exactly
// as a fresh metricdata.Metrics would be; the point slices are typed so
// that adding a point does not box an aggregation into an interface.
type metricBuilder struct {
	name, description, unit string
	gen                     uint64
	kind                    aggKind
	temporality             metricdata.Temporality
	monotonic               bool
	hist                    []metricdata.HistogramDataPoint[float64]
	ints                    []metricdata.DataPoint[int64]
	floats                  []metricdata.DataPoint[float64]
}

type aggKind uint8

const (
	kindHistogram aggKind = iota
	kindSumInt
	kindSumFloat
	kindGaugeInt
	kindGaugeFloat
)

// NewBuilder returns a builder whose points start at start (attach time).
func NewBuilder(version string, start time.Time) *Builder {
	return &Builder{
		scope: instrumentation.Scope{Name: ScopeName, Version: version},
		start: start,
		byRes: make(map[*resource.Resource]*resourceBuilder),
	}
}

// Begin starts an interval ending at now and forgets the previous one. A
// resource that had no point in the previous interval is dropped, so the
// builder holds on to no resource the resolver has forgotten.
func (b *Builder) Begin(now time.Time) {
	b.now = now
	b.gen++
	for res, rb := range b.byRes {
		if rb.gen+1 < b.gen {
			delete(b.byRes, res)
		}
	}
	b.order = b.order[:0]
	b.last = nil
}

func (b *Builder) metric(res *resource.Resource, d entity.MetricDesc) *metricBuilder {
	rb := b.last
	if rb == nil || rb.res != res {
		if rb = b.byRes[res]; rb == nil {
			rb = &resourceBuilder{res: res}
			b.byRes[res] = rb
		}
		b.last = rb
	}
	if rb.gen != b.gen {
		rb.gen = b.gen
		rb.order = rb.order[:0]
		b.order = append(b.order, rb)
	}
	var m *metricBuilder
	for _, x := range rb.metrics {
		if x.name == d.Name {
			m = x
			break
		}
	}
	if m == nil {
		m = &metricBuilder{name: d.Name}
		rb.metrics = append(rb.metrics, m)
	}
	if m.gen != b.gen {
		m.gen = b.gen
		m.reset(d)
		rb.order = append(rb.order, m)
	}
	return m
}

// reset starts the metric's interval as a new metricdata.Metrics for d.
func (m *metricBuilder) reset(d entity.MetricDesc) {
	m.name, m.description, m.unit = d.Name, d.Description, d.Unit
	m.temporality, m.monotonic = metricdata.CumulativeTemporality, false
	switch d.Instrument {
	case entity.InstrumentHistogram:
		m.kind = kindHistogram
	case entity.InstrumentCounter:
		m.kind, m.monotonic = kindSumInt, true
	case entity.InstrumentUpDownCounter:
		m.kind = kindSumInt
	default:
		m.kind, m.temporality = kindGaugeInt, 0
	}
	m.hist, m.ints, m.floats = m.hist[:0], m.ints[:0], m.floats[:0]
}

// Histogram adds one cumulative histogram point of count values. counts
// are per bucket of entity.HistBoundsSeconds (copied); sum is in the
// metric's unit.
func (b *Builder) Histogram(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, n uint64, counts []uint64, sum float64) {
	m := b.metric(res, d)
	if m.kind != kindHistogram {
		// As before: a histogram point replaces a metric of another kind
		// with a histogram of unspecified temporality.
		m.kind, m.temporality = kindHistogram, 0
		m.hist = m.hist[:0]
	}
	i := len(m.hist)
	if i < cap(m.hist) {
		m.hist = m.hist[:i+1] // last interval's point in this slot: reuse its bucket counts
	} else {
		m.hist = append(m.hist, metricdata.HistogramDataPoint[float64]{})
	}
	// Field by field, in place: no temporary of the whole point.
	p := &m.hist[i]
	p.Attributes = attrs
	p.StartTime, p.Time = b.start, b.now
	p.Count, p.Sum = n, sum
	p.Bounds = entity.HistBoundsSeconds
	p.BucketCounts = append(p.BucketCounts[:0], counts...)
	p.Min, p.Max, p.Exemplars = metricdata.Extrema[float64]{}, metricdata.Extrema[float64]{}, nil
}

// Counter adds one cumulative sum point (monotonic or not, as d says).
func (b *Builder) Counter(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, v int64) {
	m := b.metric(res, d)
	switch m.kind {
	case kindSumInt:
		m.ints = append(m.ints, metricdata.DataPoint[int64]{
			Attributes: attrs, StartTime: b.start, Time: b.now, Value: v,
		})
	case kindGaugeInt:
		m.ints = append(m.ints, metricdata.DataPoint[int64]{Attributes: attrs, Time: b.now, Value: v})
	}
}

// CounterFloat adds one cumulative float sum point, for counters whose
// unit needs a conversion (nanoseconds counted, seconds exported).
func (b *Builder) CounterFloat(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, v float64) {
	m := b.metric(res, d)
	if m.kind == kindSumInt && len(m.ints) == 0 {
		m.kind = kindSumFloat
	}
	if m.kind == kindSumFloat {
		m.floats = append(m.floats, metricdata.DataPoint[float64]{
			Attributes: attrs, StartTime: b.start, Time: b.now, Value: v,
		})
	}
}

// Gauge adds one float gauge point (a ratio, a fill level) to a metric
// declared as a gauge.
func (b *Builder) Gauge(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, v float64) {
	m := b.metric(res, d)
	if m.kind == kindGaugeInt && len(m.ints) == 0 {
		m.kind = kindGaugeFloat
	}
	if m.kind == kindGaugeFloat {
		m.floats = append(m.floats, metricdata.DataPoint[float64]{Attributes: attrs, Time: b.now, Value: v})
	}
}

// data boxes the metric's points into the aggregation exporters expect:
// one allocation per metric and resource per interval, not per point.
func (m *metricBuilder) data() metricdata.Aggregation {
	switch m.kind {
	case kindHistogram:
		return metricdata.Histogram[float64]{Temporality: m.temporality, DataPoints: m.hist}
	case kindSumFloat:
		return metricdata.Sum[float64]{Temporality: m.temporality, IsMonotonic: m.monotonic, DataPoints: m.floats}
	case kindGaugeInt:
		return metricdata.Gauge[int64]{DataPoints: m.ints}
	case kindGaugeFloat:
		return metricdata.Gauge[float64]{DataPoints: m.floats}
	default:
		return metricdata.Sum[int64]{Temporality: m.temporality, IsMonotonic: m.monotonic, DataPoints: m.ints}
	}
}

// Result returns the interval's data in the order resources and metrics
// were first added (deterministic for a deterministic map read). It is
// valid until the next Begin: the next interval reuses its memory.
func (b *Builder) Result() []metricdata.ResourceMetrics {
	if b.out == nil {
		b.out = make([]metricdata.ResourceMetrics, 0, len(b.order))
	}
	b.out = b.out[:0]
	for _, rb := range b.order {
		rb.ms = rb.ms[:0]
		for _, m := range rb.order {
			rb.ms = append(rb.ms, metricdata.Metrics{Name: m.name, Description: m.description, Unit: m.unit, Data: m.data()})
		}
		rb.sms = append(rb.sms[:0], metricdata.ScopeMetrics{Scope: b.scope, Metrics: rb.ms})
		b.out = append(b.out, metricdata.ResourceMetrics{Resource: rb.res, ScopeMetrics: rb.sms})
	}
	return b.out
}
