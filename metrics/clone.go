package metrics

import (
	"slices"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// CloneResourceMetrics deep-copies one interval's data: slices of
// resources, scopes, metrics, data points and histogram bucket counts (and
// exemplars, shallowly). Exporters may not keep rms after Export returns
// because the Builder writes the next interval over it; one that needs the
// data later (a retry queue, a test recorder) keeps a clone instead.
// Resources, attribute sets and the shared bucket bounds are immutable and
// are not copied.
func CloneResourceMetrics(rms []metricdata.ResourceMetrics) []metricdata.ResourceMetrics {
	out := slices.Clone(rms)
	for i := range out {
		out[i].ScopeMetrics = slices.Clone(out[i].ScopeMetrics)
		for j := range out[i].ScopeMetrics {
			sm := &out[i].ScopeMetrics[j]
			sm.Metrics = slices.Clone(sm.Metrics)
			for k := range sm.Metrics {
				sm.Metrics[k].Data = cloneAggregation(sm.Metrics[k].Data)
			}
		}
	}
	return out
}

func cloneAggregation(a metricdata.Aggregation) metricdata.Aggregation {
	switch d := a.(type) {
	case metricdata.Histogram[float64]:
		d.DataPoints = cloneHistPoints(d.DataPoints)
		return d
	case metricdata.Histogram[int64]:
		d.DataPoints = cloneHistPoints(d.DataPoints)
		return d
	case metricdata.Sum[int64]:
		d.DataPoints = clonePoints(d.DataPoints)
		return d
	case metricdata.Sum[float64]:
		d.DataPoints = clonePoints(d.DataPoints)
		return d
	case metricdata.Gauge[int64]:
		d.DataPoints = clonePoints(d.DataPoints)
		return d
	case metricdata.Gauge[float64]:
		d.DataPoints = clonePoints(d.DataPoints)
		return d
	}
	return a // not built by the Builder: left as is
}

func clonePoints[N int64 | float64](ps []metricdata.DataPoint[N]) []metricdata.DataPoint[N] {
	out := slices.Clone(ps)
	for i := range out {
		out[i].Exemplars = slices.Clone(out[i].Exemplars)
	}
	return out
}

func cloneHistPoints[N int64 | float64](ps []metricdata.HistogramDataPoint[N]) []metricdata.HistogramDataPoint[N] {
	out := slices.Clone(ps)
	for i := range out {
		out[i].BucketCounts = slices.Clone(out[i].BucketCounts)
		out[i].Exemplars = slices.Clone(out[i].Exemplars)
	}
	return out
}
