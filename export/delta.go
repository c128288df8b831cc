package export

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/metrics"
)

// deltaState turns the agent's cumulative intervals into delta ones for
// backends that want deltas. The baseline is the cumulative state of the
// last interval the backend acknowledged, not of the last one collected:
// when an interval is dropped from the queue or its export fails, the next
// delta simply spans both, so the deltas received always add up to the
// cumulative total (a delta the backend received but did not acknowledge,
// e.g. a response lost to a timeout, is counted twice: at-least-once).
//
// Monotonic sums and histograms become deltas; non-monotonic sums
// (UpDownCounters) and gauges stay as they are, as the OTel SDK's delta
// temporality preference does.
type deltaState struct {
	series *metrics.Cumulatives[deltaKey]
	// histogramsOnly leaves sums cumulative (lowmemory, QueueOptions).
	histogramsOnly bool
}

type deltaKey struct {
	res    attribute.Distinct
	metric string
	attrs  attribute.Distinct
}

func newDeltaState(histogramsOnly bool) *deltaState {
	return &deltaState{series: metrics.NewCumulatives[deltaKey](), histogramsOnly: histogramsOnly}
}

// toDelta returns a delta copy of the cumulative interval rms (which is
// not modified) and commit, which makes rms the new baseline; call it once
// the backend acknowledged the copy. Series absent from rms leave the
// baseline at commit (their process was exported for the last time).
func (d *deltaState) toDelta(rms []metricdata.ResourceMetrics) ([]metricdata.ResourceMetrics, func()) {
	d.series.Discard() // an attempt whose commit never came
	out := metrics.CloneResourceMetrics(rms)
	for i := range out {
		var res attribute.Distinct
		if out[i].Resource != nil {
			res = out[i].Resource.Equivalent()
		}
		for j := range out[i].ScopeMetrics {
			ms := out[i].ScopeMetrics[j].Metrics
			for k := range ms {
				ms[k].Data = d.metric(res, ms[k].Name, ms[k].Data)
			}
		}
	}
	return out, d.series.Commit
}

func (d *deltaState) metric(res attribute.Distinct, name string, a metricdata.Aggregation) metricdata.Aggregation {
	switch m := a.(type) {
	case metricdata.Sum[int64]:
		if !m.IsMonotonic || d.histogramsOnly {
			return a
		}
		m.Temporality = metricdata.DeltaTemporality
		for i := range m.DataPoints {
			p := &m.DataPoints[i]
			p.Value, p.StartTime, _ = d.series.Int(deltaKey{res, name, p.Attributes.Equivalent()}, p.StartTime, p.Time, p.Value)
		}
		return m
	case metricdata.Sum[float64]:
		if !m.IsMonotonic || d.histogramsOnly {
			return a
		}
		m.Temporality = metricdata.DeltaTemporality
		for i := range m.DataPoints {
			p := &m.DataPoints[i]
			p.Value, p.StartTime, _ = d.series.Float(deltaKey{res, name, p.Attributes.Equivalent()}, p.StartTime, p.Time, p.Value)
		}
		return m
	case metricdata.Histogram[float64]:
		m.Temporality = metricdata.DeltaTemporality
		for i := range m.DataPoints {
			// p.BucketCounts is the clone's own slice: its deltas are
			// written in place.
			p := &m.DataPoints[i]
			p.Count, p.Sum, p.StartTime, _ = d.series.Histogram(deltaKey{res, name, p.Attributes.Equivalent()},
				p.StartTime, p.Time, p.Count, p.Sum, p.BucketCounts, p.BucketCounts)
		}
		return m
	}
	return a
}
