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
type Builder struct {
	scope instrumentation.Scope
	start time.Time
	now   time.Time

	byRes map[*resource.Resource]*resourceBuilder
	order []*resourceBuilder
}

type resourceBuilder struct {
	res     *resource.Resource
	metrics map[string]*metricdata.Metrics
	order   []string
}

// NewBuilder returns a builder whose points start at start (attach time).
func NewBuilder(version string, start time.Time) *Builder {
	return &Builder{
		scope: instrumentation.Scope{Name: ScopeName, Version: version},
		start: start,
		byRes: make(map[*resource.Resource]*resourceBuilder),
	}
}

// Begin starts an interval ending at now and forgets the previous one.
func (b *Builder) Begin(now time.Time) {
	b.now = now
	clear(b.byRes)
	b.order = b.order[:0]
}

func (b *Builder) metric(res *resource.Resource, d entity.MetricDesc) *metricdata.Metrics {
	rb := b.byRes[res]
	if rb == nil {
		rb = &resourceBuilder{res: res, metrics: make(map[string]*metricdata.Metrics)}
		b.byRes[res] = rb
		b.order = append(b.order, rb)
	}
	m := rb.metrics[d.Name]
	if m == nil {
		m = &metricdata.Metrics{Name: d.Name, Description: d.Description, Unit: d.Unit}
		switch d.Instrument {
		case entity.InstrumentHistogram:
			m.Data = metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality}
		case entity.InstrumentCounter:
			m.Data = metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true}
		case entity.InstrumentUpDownCounter:
			m.Data = metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality}
		default:
			m.Data = metricdata.Gauge[int64]{}
		}
		rb.metrics[d.Name] = m
		rb.order = append(rb.order, d.Name)
	}
	return m
}

// Histogram adds one cumulative histogram point of count values. counts
// are per bucket of entity.HistBoundsSeconds (copied); sum is in the
// metric's unit.
func (b *Builder) Histogram(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, n uint64, counts []uint64, sum float64) {
	m := b.metric(res, d)
	h, _ := m.Data.(metricdata.Histogram[float64])
	h.DataPoints = append(h.DataPoints, metricdata.HistogramDataPoint[float64]{
		Attributes:   attrs,
		StartTime:    b.start,
		Time:         b.now,
		Count:        n,
		Bounds:       entity.HistBoundsSeconds,
		BucketCounts: append([]uint64(nil), counts...),
		Sum:          sum,
	})
	m.Data = h
}

// Counter adds one cumulative sum point (monotonic or not, as d says).
func (b *Builder) Counter(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, v int64) {
	m := b.metric(res, d)
	switch s := m.Data.(type) {
	case metricdata.Sum[int64]:
		s.DataPoints = append(s.DataPoints, metricdata.DataPoint[int64]{
			Attributes: attrs, StartTime: b.start, Time: b.now, Value: v,
		})
		m.Data = s
	case metricdata.Gauge[int64]:
		s.DataPoints = append(s.DataPoints, metricdata.DataPoint[int64]{Attributes: attrs, Time: b.now, Value: v})
		m.Data = s
	}
}

// CounterFloat adds one cumulative float sum point, for counters whose
// unit needs a conversion (nanoseconds counted, seconds exported).
func (b *Builder) CounterFloat(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, v float64) {
	m := b.metric(res, d)
	if _, ok := m.Data.(metricdata.Sum[int64]); ok && len(m.Data.(metricdata.Sum[int64]).DataPoints) == 0 {
		s := m.Data.(metricdata.Sum[int64])
		m.Data = metricdata.Sum[float64]{Temporality: s.Temporality, IsMonotonic: s.IsMonotonic}
	}
	if s, ok := m.Data.(metricdata.Sum[float64]); ok {
		s.DataPoints = append(s.DataPoints, metricdata.DataPoint[float64]{
			Attributes: attrs, StartTime: b.start, Time: b.now, Value: v,
		})
		m.Data = s
	}
}

// Result returns the interval's data in the order resources and metrics
// were first added (deterministic for a deterministic map read).
func (b *Builder) Result() []metricdata.ResourceMetrics {
	out := make([]metricdata.ResourceMetrics, 0, len(b.order))
	for _, rb := range b.order {
		ms := make([]metricdata.Metrics, 0, len(rb.order))
		for _, name := range rb.order {
			ms = append(ms, *rb.metrics[name])
		}
		out = append(out, metricdata.ResourceMetrics{
			Resource:     rb.res,
			ScopeMetrics: []metricdata.ScopeMetrics{{Scope: b.scope, Metrics: ms}},
		})
	}
	return out
}
