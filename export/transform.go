package export

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/telagent/telagent/entity"
)

// ToProto converts one interval of metric data into a single OTLP export
// request holding every resource.
//
// The result owns all of its memory: slices (bucket counts, bounds, byte
// attribute values) are copied, because the caller reuses the buffers behind
// rms for the next interval while the request may still be in use.
//
// Exemplars are deliberately omitted: the agent records none, and leaving
// them out keeps the OTLP/JSON output free of trace/span ids, which OTLP/JSON
// would require hex-encoded instead of protojson's base64.
//
// A metric whose Data is nil carries nothing OTLP can represent (a Metric
// without data is invalid), so it is dropped rather than sent empty.
func ToProto(rms []metricdata.ResourceMetrics) *colmetricspb.ExportMetricsServiceRequest {
	req := &colmetricspb.ExportMetricsServiceRequest{
		ResourceMetrics: make([]*metricspb.ResourceMetrics, 0, len(rms)),
	}
	for i := range rms {
		req.ResourceMetrics = append(req.ResourceMetrics, resourceMetricsToProto(&rms[i]))
	}
	return req
}

func resourceMetricsToProto(rm *metricdata.ResourceMetrics) *metricspb.ResourceMetrics {
	out := &metricspb.ResourceMetrics{
		Resource:     &resourcepb.Resource{},
		ScopeMetrics: make([]*metricspb.ScopeMetrics, 0, len(rm.ScopeMetrics)),
	}
	if rm.Resource != nil {
		out.Resource.Attributes = setToProto(rm.Resource.Set())
		out.Resource.EntityRefs = entityRefsToProto(rm.Resource.Set())
		out.SchemaUrl = rm.Resource.SchemaURL()
	}
	for i := range rm.ScopeMetrics {
		out.ScopeMetrics = append(out.ScopeMetrics, scopeMetricsToProto(&rm.ScopeMetrics[i]))
	}
	return out
}

func scopeMetricsToProto(sm *metricdata.ScopeMetrics) *metricspb.ScopeMetrics {
	out := &metricspb.ScopeMetrics{
		Scope:     scopeToProto(sm.Scope),
		SchemaUrl: sm.Scope.SchemaURL,
		Metrics:   make([]*metricspb.Metric, 0, len(sm.Metrics)),
	}
	for i := range sm.Metrics {
		if m := metricToProto(&sm.Metrics[i]); m != nil {
			out.Metrics = append(out.Metrics, m)
		}
	}
	return out
}

func scopeToProto(s instrumentation.Scope) *commonpb.InstrumentationScope {
	return &commonpb.InstrumentationScope{
		Name:       s.Name,
		Version:    s.Version,
		Attributes: setToProto(&s.Attributes),
	}
}

func metricToProto(m *metricdata.Metrics) *metricspb.Metric {
	out := &metricspb.Metric{Name: m.Name, Description: m.Description, Unit: m.Unit}
	switch a := m.Data.(type) {
	case metricdata.Gauge[int64]:
		out.Data = &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: numberPoints(a.DataPoints, intValue)}}
	case metricdata.Gauge[float64]:
		out.Data = &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: numberPoints(a.DataPoints, doubleValue)}}
	case metricdata.Sum[int64]:
		out.Data = &metricspb.Metric_Sum{Sum: &metricspb.Sum{
			DataPoints:             numberPoints(a.DataPoints, intValue),
			AggregationTemporality: temporalityToProto(a.Temporality),
			IsMonotonic:            a.IsMonotonic,
		}}
	case metricdata.Sum[float64]:
		out.Data = &metricspb.Metric_Sum{Sum: &metricspb.Sum{
			DataPoints:             numberPoints(a.DataPoints, doubleValue),
			AggregationTemporality: temporalityToProto(a.Temporality),
			IsMonotonic:            a.IsMonotonic,
		}}
	case metricdata.Histogram[int64]:
		out.Data = &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
			DataPoints:             histogramPoints(a.DataPoints),
			AggregationTemporality: temporalityToProto(a.Temporality),
		}}
	case metricdata.Histogram[float64]:
		out.Data = &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
			DataPoints:             histogramPoints(a.DataPoints),
			AggregationTemporality: temporalityToProto(a.Temporality),
		}}
	case metricdata.ExponentialHistogram[int64]:
		out.Data = &metricspb.Metric_ExponentialHistogram{ExponentialHistogram: &metricspb.ExponentialHistogram{
			DataPoints:             expHistogramPoints(a.DataPoints),
			AggregationTemporality: temporalityToProto(a.Temporality),
		}}
	case metricdata.ExponentialHistogram[float64]:
		out.Data = &metricspb.Metric_ExponentialHistogram{ExponentialHistogram: &metricspb.ExponentialHistogram{
			DataPoints:             expHistogramPoints(a.DataPoints),
			AggregationTemporality: temporalityToProto(a.Temporality),
		}}
	case metricdata.Summary:
		out.Data = &metricspb.Metric_Summary{Summary: &metricspb.Summary{DataPoints: summaryPoints(a.DataPoints)}}
	default:
		// nil Data, or an aggregation added to the SDK after this was written.
		return nil
	}
	return out
}

func intValue(p *metricspb.NumberDataPoint, v int64) {
	p.Value = &metricspb.NumberDataPoint_AsInt{AsInt: v}
}

func doubleValue(p *metricspb.NumberDataPoint, v float64) {
	p.Value = &metricspb.NumberDataPoint_AsDouble{AsDouble: v}
}

// numberPoints takes a setter for the value because the oneof wrapper type
// is what keeps OTLP's int/double distinction, and a type parameter cannot
// pick it.
func numberPoints[N int64 | float64](dps []metricdata.DataPoint[N], set func(*metricspb.NumberDataPoint, N)) []*metricspb.NumberDataPoint {
	out := make([]*metricspb.NumberDataPoint, 0, len(dps))
	for i := range dps {
		dp := &dps[i]
		p := &metricspb.NumberDataPoint{
			Attributes:        setToProto(&dp.Attributes),
			StartTimeUnixNano: unixNano(dp.StartTime),
			TimeUnixNano:      unixNano(dp.Time),
		}
		set(p, dp.Value)
		out = append(out, p)
	}
	return out
}

func histogramPoints[N int64 | float64](dps []metricdata.HistogramDataPoint[N]) []*metricspb.HistogramDataPoint {
	out := make([]*metricspb.HistogramDataPoint, 0, len(dps))
	for i := range dps {
		dp := &dps[i]
		sum := float64(dp.Sum)
		p := &metricspb.HistogramDataPoint{
			Attributes:        setToProto(&dp.Attributes),
			StartTimeUnixNano: unixNano(dp.StartTime),
			TimeUnixNano:      unixNano(dp.Time),
			Count:             dp.Count,
			Sum:               &sum,
			BucketCounts:      cloneSlice(dp.BucketCounts),
			ExplicitBounds:    cloneSlice(dp.Bounds),
			Min:               extremaToProto(dp.Min),
			Max:               extremaToProto(dp.Max),
		}
		out = append(out, p)
	}
	return out
}

func expHistogramPoints[N int64 | float64](dps []metricdata.ExponentialHistogramDataPoint[N]) []*metricspb.ExponentialHistogramDataPoint {
	out := make([]*metricspb.ExponentialHistogramDataPoint, 0, len(dps))
	for i := range dps {
		dp := &dps[i]
		sum := float64(dp.Sum)
		out = append(out, &metricspb.ExponentialHistogramDataPoint{
			Attributes:        setToProto(&dp.Attributes),
			StartTimeUnixNano: unixNano(dp.StartTime),
			TimeUnixNano:      unixNano(dp.Time),
			Count:             dp.Count,
			Sum:               &sum,
			Scale:             dp.Scale,
			ZeroCount:         dp.ZeroCount,
			Positive: &metricspb.ExponentialHistogramDataPoint_Buckets{
				Offset:       dp.PositiveBucket.Offset,
				BucketCounts: cloneSlice(dp.PositiveBucket.Counts),
			},
			Negative: &metricspb.ExponentialHistogramDataPoint_Buckets{
				Offset:       dp.NegativeBucket.Offset,
				BucketCounts: cloneSlice(dp.NegativeBucket.Counts),
			},
			Min:           extremaToProto(dp.Min),
			Max:           extremaToProto(dp.Max),
			ZeroThreshold: dp.ZeroThreshold,
		})
	}
	return out
}

func summaryPoints(dps []metricdata.SummaryDataPoint) []*metricspb.SummaryDataPoint {
	out := make([]*metricspb.SummaryDataPoint, 0, len(dps))
	for i := range dps {
		dp := &dps[i]
		p := &metricspb.SummaryDataPoint{
			Attributes:        setToProto(&dp.Attributes),
			StartTimeUnixNano: unixNano(dp.StartTime),
			TimeUnixNano:      unixNano(dp.Time),
			Count:             dp.Count,
			Sum:               dp.Sum,
			QuantileValues:    make([]*metricspb.SummaryDataPoint_ValueAtQuantile, 0, len(dp.QuantileValues)),
		}
		for _, q := range dp.QuantileValues {
			p.QuantileValues = append(p.QuantileValues, &metricspb.SummaryDataPoint_ValueAtQuantile{Quantile: q.Quantile, Value: q.Value})
		}
		out = append(out, p)
	}
	return out
}

// extremaToProto returns nil for an undefined extremum so the optional field
// stays absent; sending 0 would claim a minimum that was never observed.
func extremaToProto[N int64 | float64](e metricdata.Extrema[N]) *float64 {
	v, ok := e.Value()
	if !ok {
		return nil
	}
	f := float64(v)
	return &f
}

func temporalityToProto(t metricdata.Temporality) metricspb.AggregationTemporality {
	switch t {
	case metricdata.CumulativeTemporality:
		return metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	case metricdata.DeltaTemporality:
		return metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	default:
		return metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_UNSPECIFIED
	}
}

// unixNano maps the zero time (and anything before the epoch) to 0, OTLP's
// "unset"; time.Time{}.UnixNano() is outside int64's range and its result
// is undefined.
func unixNano(t time.Time) uint64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

func cloneSlice[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	out := make([]T, len(s))
	copy(out, s)
	return out
}

func setToProto(s *attribute.Set) []*commonpb.KeyValue {
	if s == nil || s.Len() == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, s.Len())
	for it := s.Iter(); it.Next(); {
		kv := it.Attribute()
		out = append(out, keyValueToProto(kv))
	}
	return out
}

func keyValueToProto(kv attribute.KeyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: string(kv.Key), Value: valueToProto(kv.Value)}
}

// valueToProto covers every attribute.Type. EMPTY becomes an AnyValue with
// no variant set, which is how OTLP spells an empty value.
func valueToProto(v attribute.Value) *commonpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return stringAny(v.AsString())
	case attribute.BOOLSLICE:
		return arrayAny(v.AsBoolSlice(), func(b bool) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: b}}
		})
	case attribute.INT64SLICE:
		return arrayAny(v.AsInt64Slice(), func(i int64) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}}
		})
	case attribute.FLOAT64SLICE:
		return arrayAny(v.AsFloat64Slice(), func(f float64) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: f}}
		})
	case attribute.STRINGSLICE:
		return arrayAny(v.AsStringSlice(), stringAny)
	case attribute.BYTESLICE:
		// AsByteSlice already returns a fresh copy.
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}}
	case attribute.SLICE:
		return arrayAny(v.AsSlice(), valueToProto)
	case attribute.MAP:
		kvs := v.AsMap()
		list := &commonpb.KeyValueList{Values: make([]*commonpb.KeyValue, 0, len(kvs))}
		for _, kv := range kvs {
			list.Values = append(list.Values, keyValueToProto(kv))
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: list}}
	default: // attribute.EMPTY and any future type: an empty AnyValue
		return &commonpb.AnyValue{}
	}
}

func stringAny(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

func arrayAny[T any](vs []T, conv func(T) *commonpb.AnyValue) *commonpb.AnyValue {
	arr := &commonpb.ArrayValue{Values: make([]*commonpb.AnyValue, 0, len(vs))}
	for _, v := range vs {
		arr.Values = append(arr.Values, conv(v))
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: arr}}
}

// entityRefsToProto is the Resource's entity refs (entity.Refs), each with
// the registry's schema URL: which of its attributes identify which entity
// and which describe it.
func entityRefsToProto(set *attribute.Set) []*commonpb.EntityRef {
	var out []*commonpb.EntityRef
	for _, r := range entity.Refs(set) {
		ref := &commonpb.EntityRef{SchemaUrl: entity.SchemaURL, Type: r.Type}
		for _, k := range r.IDKeys {
			ref.IdKeys = append(ref.IdKeys, string(k))
		}
		for _, k := range r.DescriptionKeys {
			ref.DescriptionKeys = append(ref.DescriptionKeys, string(k))
		}
		out = append(out, ref)
	}
	return out
}
