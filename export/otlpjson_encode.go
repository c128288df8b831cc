package export

import (
	"encoding/base64"
	"math"
	"strconv"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

// This file encodes metricdata as OTLP/JSON by hand, appending to a
// caller-owned buffer. It replaces ToProto + protojson on the otlp-json
// path: protojson is reflection-based (~16 µs and ~85 allocations per data
// point), and going through ToProto first builds the whole interval a
// second time as proto messages. Here nothing is allocated per data point
// (except for slice- and map-valued attributes, which the agent does not
// emit: attribute.Value's As*Slice accessors copy).
//
// The output is, by construction, what protojson.Unmarshal turns into a
// message proto.Equal to ToProto's for the same input (the oracle of
// otlpjson_encode_test.go and FuzzOTLPJSONEncode), with the OTLP/JSON rules
// (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
// lowerCamelCase keys, 64-bit integers as decimal strings, enums as
// integers, bytes as standard base64. Presence is mirrored field by field:
// where ToProto always sets a message or optional field (resource, scope,
// histogram sum, exponential histogram buckets, an attribute's value) it is
// always written, even empty or zero; scalars at their default are left out,
// as protojson does.
//
// One deliberate difference from protojson: a string that is not valid
// UTF-8 (process command lines can be anything) is written with each
// invalid byte replaced by U+FFFD, where protojson fails the whole
// interval with an error.

// appendRequest appends rms as one ExportMetricsServiceRequest
// object (no trailing newline). The exporter streams instead (it writes
// appendResourceMetrics' output resource by resource); this whole form is
// what the tests compare.
func (e *otlpJSONEncoder) appendRequest(b []byte, rms []metricdata.ResourceMetrics) []byte {
	e.reset()
	b = append(b, otlpJSONRequestHead...)
	for i := range rms {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.appendResourceMetrics(b, &rms[i])
	}
	return append(b, otlpJSONRequestTail...)
}

const (
	otlpJSONRequestHead = `{"resourceMetrics":[`
	otlpJSONRequestTail = `]}`
)

// otlpJSONEncoder holds what one request's encoding reuses. Call reset
// before each request: the memo assumes the data does not change while
// one request is encoded, nothing more.
type otlpJSONEncoder struct {
	// The encoded text of the last histogram bounds slice, by identity
	// (first element's address and length): the agent's histogram points
	// all share entity.HistBoundsSeconds, and formatting its floats
	// (shortest round-trip decimal) was most of a point's encoding time.
	boundsPtr  *float64
	boundsLen  int
	boundsText []byte
}

func (e *otlpJSONEncoder) reset() { e.boundsPtr, e.boundsLen = nil, 0 }

// appendBounds appends the explicitBounds array of non-empty bounds.
func (e *otlpJSONEncoder) appendBounds(b []byte, bounds []float64) []byte {
	if &bounds[0] == e.boundsPtr && len(bounds) == e.boundsLen {
		return append(b, e.boundsText...)
	}
	start := len(b)
	b = append(b, '[')
	for j, x := range bounds {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendJSONFloat(b, x)
	}
	b = append(b, ']')
	e.boundsPtr, e.boundsLen = &bounds[0], len(bounds)
	e.boundsText = append(e.boundsText[:0], b[start:]...)
	return b
}

// appendResourceMetrics appends one ResourceMetrics object.
func (e *otlpJSONEncoder) appendResourceMetrics(b []byte, rm *metricdata.ResourceMetrics) []byte {
	b = openJSONResourceMetrics(b, rm.Resource)
	for i := range rm.ScopeMetrics {
		if i == 0 {
			b = append(b, `,"scopeMetrics":[`...)
		} else {
			b = append(b, ',')
		}
		sm := &rm.ScopeMetrics[i]
		b = openJSONScopeMetrics(b, &sm.Scope)
		arr := len(b)
		for i := range sm.Metrics {
			b = e.appendMetric(b, arr, &sm.Metrics[i])
		}
		b = closeJSONScopeMetrics(b, &sm.Scope)
	}
	if len(rm.ScopeMetrics) > 0 {
		b = append(b, ']')
	}
	return closeJSONResourceMetrics(b, rm.Resource)
}

// openJSONResourceMetrics opens a ResourceMetrics object and writes its
// resource, always (ToProto always sets it, even empty). Both the
// metricdata and the Interval paths go through this and the three below,
// so they cannot drift apart.
func openJSONResourceMetrics(b []byte, res *resource.Resource) []byte {
	b = append(b, `{"resource":`...)
	obj := len(b)
	b = append(b, '{')
	if res != nil {
		b = appendJSONAttrs(b, obj, res.Set())
		b = appendJSONEntityRefs(b, obj, res.Set())
	}
	return append(b, '}')
}

// closeJSONResourceMetrics appends the resource's schema URL, if any, and
// closes the object.
func closeJSONResourceMetrics(b []byte, res *resource.Resource) []byte {
	if res != nil {
		if u := res.SchemaURL(); u != "" {
			b = append(b, `,"schemaUrl":`...)
			b = appendJSONString(b, u)
		}
	}
	return append(b, '}')
}

// openJSONScopeMetrics opens a ScopeMetrics object with its scope, up to
// the metrics array's '['.
func openJSONScopeMetrics(b []byte, s *instrumentation.Scope) []byte {
	b = append(b, `{"scope":`...)
	b = appendJSONScope(b, s)
	return append(b, `,"metrics":[`...)
}

// closeJSONScopeMetrics closes the metrics array, appends the scope's
// schema URL, if any, and closes the object.
func closeJSONScopeMetrics(b []byte, s *instrumentation.Scope) []byte {
	b = append(b, ']')
	if s.SchemaURL != "" {
		b = append(b, `,"schemaUrl":`...)
		b = appendJSONString(b, s.SchemaURL)
	}
	return append(b, '}')
}

func appendJSONScope(b []byte, s *instrumentation.Scope) []byte {
	obj := len(b)
	b = append(b, '{')
	if s.Name != "" {
		b = jsonKey(b, obj, "name")
		b = appendJSONString(b, s.Name)
	}
	if s.Version != "" {
		b = jsonKey(b, obj, "version")
		b = appendJSONString(b, s.Version)
	}
	b = appendJSONAttrs(b, obj, &s.Attributes)
	return append(b, '}')
}

// jsonKey appends `"name":`, preceded by a comma unless it is the first
// member of the object whose '{' is at b[obj].
func jsonKey(b []byte, obj int, name string) []byte {
	if len(b) != obj+1 {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendMetric appends m unless ToProto drops it (nil or unknown Data);
// arr is the index just after the metrics array's '['.
func (e *otlpJSONEncoder) appendMetric(b []byte, arr int, m *metricdata.Metrics) []byte {
	mark := len(b)
	if len(b) != arr {
		b = append(b, ',')
	}
	obj := len(b)
	b = appendJSONMetricHead(b, m.Name, m.Description, m.Unit)
	switch a := m.Data.(type) {
	case metricdata.Gauge[int64]:
		b = jsonKey(b, obj, "gauge")
		b = appendJSONNumberData(b, a.DataPoints, true, metricdata.Temporality(0), false)
	case metricdata.Gauge[float64]:
		b = jsonKey(b, obj, "gauge")
		b = appendJSONNumberData(b, a.DataPoints, false, metricdata.Temporality(0), false)
	case metricdata.Sum[int64]:
		b = jsonKey(b, obj, "sum")
		b = appendJSONNumberData(b, a.DataPoints, true, a.Temporality, a.IsMonotonic)
	case metricdata.Sum[float64]:
		b = jsonKey(b, obj, "sum")
		b = appendJSONNumberData(b, a.DataPoints, false, a.Temporality, a.IsMonotonic)
	case metricdata.Histogram[int64]:
		b = jsonKey(b, obj, "histogram")
		b = appendJSONHistogram(e, b, a.DataPoints, a.Temporality)
	case metricdata.Histogram[float64]:
		b = jsonKey(b, obj, "histogram")
		b = appendJSONHistogram(e, b, a.DataPoints, a.Temporality)
	case metricdata.ExponentialHistogram[int64]:
		b = jsonKey(b, obj, "exponentialHistogram")
		b = appendJSONExpHistogram(b, a.DataPoints, a.Temporality)
	case metricdata.ExponentialHistogram[float64]:
		b = jsonKey(b, obj, "exponentialHistogram")
		b = appendJSONExpHistogram(b, a.DataPoints, a.Temporality)
	case metricdata.Summary:
		b = jsonKey(b, obj, "summary")
		b = appendJSONSummary(b, a.DataPoints)
	default:
		return b[:mark] // as ToProto: nothing OTLP can represent
	}
	return append(b, '}')
}

// appendJSONMetricHead opens a metric object with its non-empty name,
// description and unit.
func appendJSONMetricHead(b []byte, name, description, unit string) []byte {
	obj := len(b)
	b = append(b, '{')
	for _, f := range [...][2]string{{"name", name}, {"description", description}, {"unit", unit}} {
		if f[1] != "" {
			b = jsonKey(b, obj, f[0])
			b = appendJSONString(b, f[1])
		}
	}
	return b
}

// appendJSONDataHead appends a data object's "dataPoints" key and opening
// bracket when there are points; the returned bool says whether it did.
func appendJSONDataHead(b []byte, n int) ([]byte, bool) {
	b = append(b, '{')
	if n == 0 {
		return b, false
	}
	return append(b, `"dataPoints":[`...), true
}

// appendJSONDataTail closes the points and appends the data's temporality
// (an enum: an integer, left out when unspecified) and monotonicity.
func appendJSONDataTail(b []byte, obj int, open bool, t metricdata.Temporality, monotonic bool) []byte {
	if open {
		b = append(b, ']')
	}
	if v := temporalityToProto(t); v != 0 {
		b = jsonKey(b, obj, "aggregationTemporality")
		b = strconv.AppendInt(b, int64(v), 10)
	}
	if monotonic {
		b = jsonKey(b, obj, "isMonotonic")
		b = append(b, "true"...)
	}
	return append(b, '}')
}

// appendJSONNumberData appends a Gauge (t zero, monotonic false) or Sum.
// isInt picks asInt over asDouble: the oneof ToProto sets from Data's type.
func appendJSONNumberData[N int64 | float64](b []byte, dps []metricdata.DataPoint[N], isInt bool, t metricdata.Temporality, monotonic bool) []byte {
	obj := len(b)
	b, open := appendJSONDataHead(b, len(dps))
	for i := range dps {
		dp := &dps[i]
		if i > 0 {
			b = append(b, ',')
		}
		p := len(b)
		b = append(b, '{')
		b = appendJSONPointHead(b, p, &dp.Attributes, unixNano(dp.StartTime), unixNano(dp.Time))
		// A oneof member is present even at zero: always written.
		if isInt {
			b = jsonKey(b, p, "asInt")
			b = appendJSONInt(b, int64(dp.Value))
		} else {
			b = jsonKey(b, p, "asDouble")
			b = appendJSONFloat(b, float64(dp.Value))
		}
		b = append(b, '}')
	}
	return appendJSONDataTail(b, obj, open, t, monotonic)
}

// appendJSONPointHead appends the members every data point starts with.
func appendJSONPointHead(b []byte, p int, attrs *attribute.Set, start, at uint64) []byte {
	b = appendJSONAttrs(b, p, attrs)
	if start != 0 {
		b = jsonKey(b, p, "startTimeUnixNano")
		b = appendJSONUint(b, start)
	}
	if at != 0 {
		b = jsonKey(b, p, "timeUnixNano")
		b = appendJSONUint(b, at)
	}
	return b
}

func appendJSONHistogram[N int64 | float64](e *otlpJSONEncoder, b []byte, dps []metricdata.HistogramDataPoint[N], t metricdata.Temporality) []byte {
	obj := len(b)
	b, open := appendJSONDataHead(b, len(dps))
	for i := range dps {
		dp := &dps[i]
		if i > 0 {
			b = append(b, ',')
		}
		p := len(b)
		b = append(b, '{')
		b = appendJSONPointHead(b, p, &dp.Attributes, unixNano(dp.StartTime), unixNano(dp.Time))
		if dp.Count != 0 {
			b = jsonKey(b, p, "count")
			b = appendJSONUint(b, dp.Count)
		}
		// sum is optional and ToProto always sets it: written even at 0.
		b = jsonKey(b, p, "sum")
		b = appendJSONFloat(b, float64(dp.Sum))
		if len(dp.BucketCounts) > 0 {
			b = jsonKey(b, p, "bucketCounts")
			b = appendJSONUints(b, dp.BucketCounts)
		}
		if len(dp.Bounds) > 0 {
			b = jsonKey(b, p, "explicitBounds")
			b = e.appendBounds(b, dp.Bounds)
		}
		b = appendJSONExtrema(b, p, "min", dp.Min)
		b = appendJSONExtrema(b, p, "max", dp.Max)
		b = append(b, '}')
	}
	return appendJSONDataTail(b, obj, open, t, false)
}

// appendJSONExtrema writes a defined extremum only: the field is optional,
// and an undefined one stays absent (see extremaToProto).
func appendJSONExtrema[N int64 | float64](b []byte, p int, name string, e metricdata.Extrema[N]) []byte {
	v, ok := e.Value()
	if !ok {
		return b
	}
	b = jsonKey(b, p, name)
	return appendJSONFloat(b, float64(v))
}

func appendJSONExpHistogram[N int64 | float64](b []byte, dps []metricdata.ExponentialHistogramDataPoint[N], t metricdata.Temporality) []byte {
	obj := len(b)
	b, open := appendJSONDataHead(b, len(dps))
	for i := range dps {
		dp := &dps[i]
		if i > 0 {
			b = append(b, ',')
		}
		p := len(b)
		b = append(b, '{')
		b = appendJSONPointHead(b, p, &dp.Attributes, unixNano(dp.StartTime), unixNano(dp.Time))
		if dp.Count != 0 {
			b = jsonKey(b, p, "count")
			b = appendJSONUint(b, dp.Count)
		}
		b = jsonKey(b, p, "sum")
		b = appendJSONFloat(b, float64(dp.Sum))
		if dp.Scale != 0 {
			b = jsonKey(b, p, "scale")
			b = strconv.AppendInt(b, int64(dp.Scale), 10) // int32: a JSON number
		}
		if dp.ZeroCount != 0 {
			b = jsonKey(b, p, "zeroCount")
			b = appendJSONUint(b, dp.ZeroCount)
		}
		b = jsonKey(b, p, "positive")
		b = appendJSONBuckets(b, dp.PositiveBucket)
		b = jsonKey(b, p, "negative")
		b = appendJSONBuckets(b, dp.NegativeBucket)
		b = appendJSONExtrema(b, p, "min", dp.Min)
		b = appendJSONExtrema(b, p, "max", dp.Max)
		if dp.ZeroThreshold != 0 || math.Signbit(dp.ZeroThreshold) {
			b = jsonKey(b, p, "zeroThreshold")
			b = appendJSONFloat(b, dp.ZeroThreshold)
		}
		b = append(b, '}')
	}
	return appendJSONDataTail(b, obj, open, t, false)
}

// appendJSONBuckets always writes the object: ToProto always sets both.
func appendJSONBuckets(b []byte, bk metricdata.ExponentialBucket) []byte {
	obj := len(b)
	b = append(b, '{')
	if bk.Offset != 0 {
		b = jsonKey(b, obj, "offset")
		b = strconv.AppendInt(b, int64(bk.Offset), 10)
	}
	if len(bk.Counts) > 0 {
		b = jsonKey(b, obj, "bucketCounts")
		b = appendJSONUints(b, bk.Counts)
	}
	return append(b, '}')
}

func appendJSONSummary(b []byte, dps []metricdata.SummaryDataPoint) []byte {
	obj := len(b)
	b, open := appendJSONDataHead(b, len(dps))
	for i := range dps {
		dp := &dps[i]
		if i > 0 {
			b = append(b, ',')
		}
		p := len(b)
		b = append(b, '{')
		b = appendJSONPointHead(b, p, &dp.Attributes, unixNano(dp.StartTime), unixNano(dp.Time))
		if dp.Count != 0 {
			b = jsonKey(b, p, "count")
			b = appendJSONUint(b, dp.Count)
		}
		if dp.Sum != 0 || math.Signbit(dp.Sum) || math.IsNaN(dp.Sum) {
			b = jsonKey(b, p, "sum")
			b = appendJSONFloat(b, dp.Sum)
		}
		if len(dp.QuantileValues) > 0 {
			b = jsonKey(b, p, "quantileValues")
			b = append(b, '[')
			for j, q := range dp.QuantileValues {
				if j > 0 {
					b = append(b, ',')
				}
				o := len(b)
				b = append(b, '{')
				if q.Quantile != 0 || math.Signbit(q.Quantile) || math.IsNaN(q.Quantile) {
					b = jsonKey(b, o, "quantile")
					b = appendJSONFloat(b, q.Quantile)
				}
				if q.Value != 0 || math.Signbit(q.Value) || math.IsNaN(q.Value) {
					b = jsonKey(b, o, "value")
					b = appendJSONFloat(b, q.Value)
				}
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return appendJSONDataTail(b, obj, open, 0, false)
}

// appendJSONAttrs appends an "attributes" member to the object at b[obj]
// when s has any.
func appendJSONAttrs(b []byte, obj int, s *attribute.Set) []byte {
	if s == nil || s.Len() == 0 {
		return b
	}
	b = jsonKey(b, obj, "attributes")
	b = append(b, '[')
	for it := s.Iter(); it.Next(); {
		i, kv := it.IndexedAttribute()
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONKeyValue(b, kv)
	}
	return append(b, ']')
}

// appendJSONEntityRefs appends the Resource's "entityRefs" as protojson
// writes entityRefsToProto's, if it has any (the JSON twin of
// appendEntityRefs, without allocating).
func appendJSONEntityRefs(b []byte, obj int, s *attribute.Set) []byte {
	n := 0
	for _, ent := range entity.RefEntities() {
		if !ent.HasRef(s) {
			continue
		}
		if n == 0 {
			b = jsonKey(b, obj, "entityRefs")
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"schemaUrl":`...)
		b = appendJSONString(b, entity.SchemaURL)
		b = append(b, `,"type":`...)
		b = appendJSONString(b, ent.Name)
		b = append(b, `,"idKeys":[`...)
		for i, k := range ent.RefIDKeys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, string(k))
		}
		b = append(b, ']')
		d := 0
		for _, k := range ent.RefDescriptionKeys {
			if !s.HasValue(k) {
				continue
			}
			if d == 0 {
				b = append(b, `,"descriptionKeys":[`...)
			} else {
				b = append(b, ',')
			}
			d++
			b = appendJSONString(b, string(k))
		}
		if d > 0 {
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if n > 0 {
		b = append(b, ']')
	}
	return b
}

func appendJSONKeyValue(b []byte, kv attribute.KeyValue) []byte {
	b = append(b, `{"key":`...)
	b = appendJSONString(b, string(kv.Key))
	// ToProto always sets value, even for an EMPTY one: `"value":{}`.
	b = append(b, `,"value":`...)
	b = appendJSONAnyValue(b, kv.Value)
	return append(b, '}')
}

// appendJSONAnyValue mirrors valueToProto for every attribute.Type.
func appendJSONAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		if v.AsBool() {
			return append(b, `{"boolValue":true}`...)
		}
		return append(b, `{"boolValue":false}`...)
	case attribute.INT64:
		b = append(b, `{"intValue":`...)
		b = appendJSONInt(b, v.AsInt64())
	case attribute.FLOAT64:
		b = append(b, `{"doubleValue":`...)
		b = appendJSONFloat(b, v.AsFloat64())
	case attribute.STRING:
		b = append(b, `{"stringValue":`...)
		b = appendJSONString(b, v.AsString())
	case attribute.BOOLSLICE:
		return appendJSONArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		return appendJSONArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		return appendJSONArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		return appendJSONArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.BYTESLICE:
		b = append(b, `{"bytesValue":"`...)
		b = base64.StdEncoding.AppendEncode(b, v.AsByteSlice())
		b = append(b, '"')
	case attribute.SLICE:
		return appendJSONArray(b, v.AsSlice(), func(x attribute.Value) attribute.Value { return x })
	case attribute.MAP:
		b = append(b, `{"kvlistValue":{"values":[`...)
		for i, kv := range v.AsMap() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONKeyValue(b, kv)
		}
		b = append(b, "]}"...)
	default: // EMPTY and any future type: an AnyValue with no variant
		return append(b, "{}"...)
	}
	return append(b, '}')
}

// appendJSONArray writes an arrayValue AnyValue whose elements are the
// AnyValues of xs (each through value).
func appendJSONArray[T any](b []byte, xs []T, value func(T) attribute.Value) []byte {
	b = append(b, `{"arrayValue":{"values":[`...)
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONAnyValue(b, value(x))
	}
	return append(b, "]}}"...)
}

// appendJSONInt writes an int64 as a decimal string, as the proto3 JSON
// mapping requires for 64-bit integers (JavaScript numbers lose precision
// beyond 2^53).
func appendJSONInt(b []byte, v int64) []byte {
	b = append(b, '"')
	b = strconv.AppendInt(b, v, 10)
	return append(b, '"')
}

func appendJSONUint(b []byte, v uint64) []byte {
	b = append(b, '"')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '"')
}

func appendJSONUints(b []byte, vs []uint64) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONUint(b, v)
	}
	return append(b, ']')
}

// appendJSONFloat writes a double the way the proto3 JSON mapping spells
// it: the non-finite values as the strings "NaN", "Infinity" and
// "-Infinity" (JSON has no literal for them), everything else as the
// shortest decimal that parses back to the same float64, in exponent form
// only for very small or very large magnitudes.
func appendJSONFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

// appendJSONString writes s as a JSON string: '"' and '\' escaped, control
// characters as \n, \t, ... or \u00XX, U+2028 and U+2029 escaped (they end
// lines in JavaScript), and each byte that is not part of valid UTF-8
// replaced by U+FFFD, since JSON text must be UTF-8.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is pending, copied verbatim
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendIntervalResource appends resource i of iv exactly as
// appendResourceMetrics appends its metricdata (the same text), reading the
// typed points from m without boxing them into metricdata.Aggregation.
func (e *otlpJSONEncoder) appendIntervalResource(b []byte, iv *metrics.Interval, i int, m *metrics.Materializer) []byte {
	res, pts := iv.ResourcePoints(i, m)
	scope := iv.Scope()
	b = openJSONResourceMetrics(b, res)
	b = append(b, `,"scopeMetrics":[`...)
	b = openJSONScopeMetrics(b, &scope)
	arr := len(b)
	for j := range pts {
		b = e.appendBuiltMetric(b, arr, &pts[j])
	}
	b = closeJSONScopeMetrics(b, &scope)
	b = append(b, ']')
	return closeJSONResourceMetrics(b, res)
}

// appendBuiltMetric is appendMetric for one of the builder's metrics.
func (e *otlpJSONEncoder) appendBuiltMetric(b []byte, arr int, p *metrics.MetricPoints) []byte {
	if len(b) != arr {
		b = append(b, ',')
	}
	obj := len(b)
	b = appendJSONMetricHead(b, p.Name, p.Description, p.Unit)
	switch p.Kind {
	case metrics.KindHistogram:
		b = jsonKey(b, obj, "histogram")
		b = appendJSONHistogram(e, b, p.Hist, p.Temporality)
	case metrics.KindSumFloat:
		b = jsonKey(b, obj, "sum")
		b = appendJSONNumberData(b, p.Floats, false, p.Temporality, p.Monotonic)
	case metrics.KindGaugeFloat:
		b = jsonKey(b, obj, "gauge")
		b = appendJSONNumberData(b, p.Floats, false, 0, false)
	case metrics.KindGaugeInt:
		b = jsonKey(b, obj, "gauge")
		b = appendJSONNumberData(b, p.Ints, true, 0, false)
	default:
		b = jsonKey(b, obj, "sum")
		b = appendJSONNumberData(b, p.Ints, true, p.Temporality, p.Monotonic)
	}
	return append(b, '}')
}
