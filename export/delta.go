package export

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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
	base map[deltaKey]baseline
	// histogramsOnly leaves sums cumulative (lowmemory, QueueOptions).
	histogramsOnly bool
}

type deltaKey struct {
	res    attribute.Distinct
	metric string
	attrs  attribute.Distinct
}

// baseline is one series' last acknowledged cumulative value.
type baseline struct {
	t       time.Time
	start   time.Time // the cumulative start: a different one is a reset
	i       int64
	f       float64
	count   uint64
	buckets []uint64
}

func newDeltaState(histogramsOnly bool) *deltaState {
	return &deltaState{base: map[deltaKey]baseline{}, histogramsOnly: histogramsOnly}
}

// toDelta returns a delta copy of the cumulative interval rms (which is
// not modified) and commit, which makes rms the new baseline; call it once
// the backend acknowledged the copy. Series absent from rms leave the
// baseline at commit (their process was exported for the last time).
func (d *deltaState) toDelta(rms []metricdata.ResourceMetrics) ([]metricdata.ResourceMetrics, func()) {
	out := CloneResourceMetrics(rms)
	next := make(map[deltaKey]baseline, len(d.base))
	for i := range out {
		var res attribute.Distinct
		if out[i].Resource != nil {
			res = out[i].Resource.Equivalent()
		}
		for j := range out[i].ScopeMetrics {
			ms := out[i].ScopeMetrics[j].Metrics
			for k := range ms {
				ms[k].Data = d.metric(res, ms[k].Name, ms[k].Data, next)
			}
		}
	}
	return out, func() { d.base = next }
}

func (d *deltaState) metric(res attribute.Distinct, name string, a metricdata.Aggregation, next map[deltaKey]baseline) metricdata.Aggregation {
	switch m := a.(type) {
	case metricdata.Sum[int64]:
		if !m.IsMonotonic || d.histogramsOnly {
			return a
		}
		m.Temporality = metricdata.DeltaTemporality
		for i := range m.DataPoints {
			p := &m.DataPoints[i]
			k := deltaKey{res, name, p.Attributes.Equivalent()}
			next[k] = baseline{t: p.Time, start: p.StartTime, i: p.Value}
			if b, ok := d.base[k]; ok && b.start.Equal(p.StartTime) && p.Value >= b.i {
				p.Value -= b.i
				p.StartTime = b.t
			}
		}
		return m
	case metricdata.Sum[float64]:
		if !m.IsMonotonic || d.histogramsOnly {
			return a
		}
		m.Temporality = metricdata.DeltaTemporality
		for i := range m.DataPoints {
			p := &m.DataPoints[i]
			k := deltaKey{res, name, p.Attributes.Equivalent()}
			next[k] = baseline{t: p.Time, start: p.StartTime, f: p.Value}
			if b, ok := d.base[k]; ok && b.start.Equal(p.StartTime) && p.Value >= b.f {
				p.Value -= b.f
				p.StartTime = b.t
			}
		}
		return m
	case metricdata.Histogram[float64]:
		m.Temporality = metricdata.DeltaTemporality
		for i := range m.DataPoints {
			p := &m.DataPoints[i]
			k := deltaKey{res, name, p.Attributes.Equivalent()}
			// p.BucketCounts is the clone's own slice; keep a copy of the
			// cumulative counts before subtracting in place.
			next[k] = baseline{t: p.Time, start: p.StartTime, f: p.Sum, count: p.Count, buckets: append([]uint64(nil), p.BucketCounts...)}
			b, ok := d.base[k]
			if !ok || !b.start.Equal(p.StartTime) || p.Count < b.count || len(b.buckets) != len(p.BucketCounts) {
				continue // first sight or a reset: the cumulative value is the delta
			}
			p.Count -= b.count
			p.Sum -= b.f
			for j := range p.BucketCounts {
				p.BucketCounts[j] -= b.buckets[j]
			}
			p.StartTime = b.t
		}
		return m
	}
	return a
}
