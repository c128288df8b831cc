package export

import (
	"encoding/binary"
	"math"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

// This file encodes metricdata as an OTLP/protobuf ExportMetricsServiceRequest
// by hand, appending to a caller-owned buffer. It replaces ToProto +
// proto.Marshal on the otlp (gRPC, http/protobuf) path: ToProto builds the
// whole interval a second time as proto messages (tens of allocations per
// data point), which proto.Marshal then walks. Here nothing is allocated per
// data point (except for slice- and map-valued attributes, which the agent
// does not emit: attribute.Value's As*Slice accessors copy).
//
// The output is, by construction, byte for byte what proto.Marshal writes
// for ToProto's message of the same input (the oracle of
// otlpproto_encode_test.go and FuzzOTLPProtoEncode): fields in field-number
// order except that a real oneof comes after the other fields, as protobuf-go
// writes them, and presence mirrored field by field.
// Where ToProto always sets a message, a oneof member or an optional field
// (resource, scope, a metric's data, histogram sum, exponential histogram
// buckets, a point's asInt/asDouble, an attribute's value) it is written even
// empty or zero; other scalars are left out at their default, and a float
// default is +0 only (-0 is written, as protobuf-go does).
//
// One deliberate difference from proto.Marshal: a string that is not valid
// UTF-8 (process command lines can be anything) is written with each invalid
// byte replaced by U+FFFD, where proto.Marshal fails the whole interval (and
// a receiver's proto.Unmarshal would reject it).
//
// Lengths: a nested message's length prefix comes before its content, which
// is not known until the content is written. Each message is written in
// place after a length prefix of a guessed width; when the content is done
// and its length needs a different width, the content is moved by the
// difference (one copy) and the minimal varint is written. The guess is the
// width the previous message at the same nesting level needed, so in steady
// state (the agent's resources, metrics and points are of similar sizes from
// one to the next) almost nothing moves. Non-minimal varints (a fixed-width
// prefix padded with 0x80 bytes) would avoid the copy, but not every
// decoder is known to accept them; minimal ones are what proto.Marshal
// writes.

// Field numbers of the OTLP messages written here (opentelemetry-proto
// v1.x; the same as the generated code in go.opentelemetry.io/proto/otlp).
const (
	pbRequestResourceMetrics = 1

	pbResourceMetricsResource     = 1
	pbResourceMetricsScopeMetrics = 2
	pbResourceMetricsSchemaURL    = 3

	pbResourceAttributes = 1
	pbResourceEntityRefs = 3

	pbEntityRefSchemaURL       = 1
	pbEntityRefType            = 2
	pbEntityRefIDKeys          = 3
	pbEntityRefDescriptionKeys = 4

	pbScopeMetricsScope     = 1
	pbScopeMetricsMetrics   = 2
	pbScopeMetricsSchemaURL = 3

	pbScopeName       = 1
	pbScopeVersion    = 2
	pbScopeAttributes = 3

	pbMetricName                 = 1
	pbMetricDescription          = 2
	pbMetricUnit                 = 3
	pbMetricGauge                = 5
	pbMetricSum                  = 7
	pbMetricHistogram            = 9
	pbMetricExponentialHistogram = 10
	pbMetricSummary              = 11

	// Gauge, Sum, Histogram, ExponentialHistogram and Summary share these.
	pbDataDataPoints             = 1
	pbDataAggregationTemporality = 2
	pbSumIsMonotonic             = 3

	// Every data point kind has start and time as 2 and 3 (and count as 4,
	// sum as 5 where it has them); attributes differ.
	pbPointStartTime = 2
	pbPointTime      = 3
	pbPointCount     = 4
	pbPointSum       = 5

	pbNumberAsDouble   = 4
	pbNumberAsInt      = 6
	pbNumberAttributes = 7

	pbHistBucketCounts   = 6
	pbHistExplicitBounds = 7
	pbHistAttributes     = 9
	pbHistMin            = 11
	pbHistMax            = 12

	pbExpAttributes    = 1
	pbExpScale         = 6
	pbExpZeroCount     = 7
	pbExpPositive      = 8
	pbExpNegative      = 9
	pbExpMin           = 12
	pbExpMax           = 13
	pbExpZeroThreshold = 14

	pbBucketsOffset       = 1
	pbBucketsBucketCounts = 2

	pbSummaryQuantileValues = 6
	pbSummaryAttributes     = 7
	pbQuantileQuantile      = 1
	pbQuantileValue         = 2

	pbKeyValueKey   = 1
	pbKeyValueValue = 2

	pbAnyString = 1
	pbAnyBool   = 2
	pbAnyInt    = 3
	pbAnyDouble = 4
	pbAnyArray  = 5
	pbAnyKvlist = 6
	pbAnyBytes  = 7

	pbArrayValues  = 1 // ArrayValue.values
	pbKvlistValues = 1 // KeyValueList.values
)

// Nesting levels, each with its own length-width guess.
const (
	pbLevelResourceMetrics = iota
	pbLevelResource
	pbLevelScopeMetrics
	pbLevelScope
	pbLevelMetric
	pbLevelData
	pbLevelPoint
	pbLevelPart // a point's sub-message: buckets, quantile
	pbLevelKeyValue
	pbLevelAnyValue
	pbLevelList // ArrayValue, KeyValueList
	pbLevelEntityRef
	pbLevels
)

// otlpProtoEncoder holds what encoding reuses. Call reset before each
// request: the memo assumes the data does not change while one request is
// encoded, nothing more. The zero value is ready to use.
type otlpProtoEncoder struct {
	// The encoded explicit_bounds field (tag, length, values) of the last
	// histogram bounds slice, by identity (first element's address and
	// length): the agent's histogram points all share entity.HistBoundsSeconds.
	boundsPtr *float64
	boundsLen int
	boundsPB  []byte

	// width[level] is the length-prefix width the last message at that
	// nesting level needed: the guess for the next one. 0 means 1.
	width [pbLevels]uint8
}

// reset forgets the bounds memo. The width guesses stay: they are only
// guesses, and the next interval is shaped like the last.
func (e *otlpProtoEncoder) reset() { e.boundsPtr, e.boundsLen = nil, 0 }

// appendRequest appends rms as one ExportMetricsServiceRequest.
func (e *otlpProtoEncoder) appendRequest(b []byte, rms []metricdata.ResourceMetrics) []byte {
	e.reset()
	for i := range rms {
		b = e.appendResourceMetrics(b, &rms[i])
	}
	return b
}

// pbMsg is an open nested message: its content starts at start, after a
// length prefix of w bytes.
type pbMsg struct {
	start int
	w     uint8
	level uint8
}

// pbZeros is the placeholder a length prefix is reserved with (at most a
// varint's maximum).
var pbZeros [binary.MaxVarintLen64]byte

// open appends the tag of message field num and reserves its length prefix.
func (e *otlpProtoEncoder) open(b []byte, num protowire.Number, level int) ([]byte, pbMsg) {
	b = appendPBTag(b, num, protowire.BytesType)
	w := max(e.width[level], 1)
	b = append(b, pbZeros[:w]...)
	return b, pbMsg{start: len(b), w: w, level: uint8(level)}
}

// close writes m's length prefix, moving the content when the length needs a
// width other than the one reserved.
func (e *otlpProtoEncoder) close(b []byte, m pbMsg) []byte {
	n := len(b) - m.start
	w := protowire.SizeVarint(uint64(n))
	e.width[m.level] = uint8(w)
	switch d := w - int(m.w); {
	case d > 0:
		b = append(b, pbZeros[:d]...)
		copy(b[m.start+d:], b[m.start:m.start+n])
	case d < 0:
		copy(b[m.start+d:], b[m.start:])
		b = b[:len(b)+d]
	}
	putVarint(b[m.start-int(m.w):], uint64(n))
	return b
}

// appendPBTag appends a field's key. Every field number here is below 16,
// so a key is one byte; protowire.AppendTag's general varint is not inlined
// and was a tenth of the encoding time.
func appendPBTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return append(b, byte(num)<<3|byte(typ))
}

// appendPBVarint is protowire.AppendVarint with the one-byte case inlined.
func appendPBVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// putVarint writes v as a minimal varint at the start of b, which has room.
func putVarint(b []byte, v uint64) {
	i := 0
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
}

// appendResourceMetrics appends rm as one resource_metrics field (1,
// length-delimited) of an ExportMetricsServiceRequest: a request body is the
// concatenation of these.
func (e *otlpProtoEncoder) appendResourceMetrics(b []byte, rm *metricdata.ResourceMetrics) []byte {
	b, m := e.openResourceMetrics(b, rm.Resource)
	for i := range rm.ScopeMetrics {
		sm := &rm.ScopeMetrics[i]
		var s pbMsg
		b, s = e.openScopeMetrics(b, &sm.Scope)
		for i := range sm.Metrics {
			b = e.appendMetric(b, &sm.Metrics[i])
		}
		b = e.closeScopeMetrics(b, &sm.Scope, s)
	}
	return e.closeResourceMetrics(b, rm.Resource, m)
}

// openResourceMetrics opens a resource_metrics field and writes its
// resource, always (ToProto always sets it, even empty). Both the
// metricdata and the Interval paths go through this and the three below,
// so they cannot drift apart.
func (e *otlpProtoEncoder) openResourceMetrics(b []byte, res *resource.Resource) ([]byte, pbMsg) {
	b, m := e.open(b, pbRequestResourceMetrics, pbLevelResourceMetrics)
	b, r := e.open(b, pbResourceMetricsResource, pbLevelResource)
	if res != nil {
		b = e.appendAttrs(b, pbResourceAttributes, res.Set())
		b = e.appendEntityRefs(b, res.Set())
	}
	return e.close(b, r), m
}

// closeResourceMetrics appends the resource's schema URL and closes m.
func (e *otlpProtoEncoder) closeResourceMetrics(b []byte, res *resource.Resource, m pbMsg) []byte {
	if res != nil {
		b = appendPBString(b, pbResourceMetricsSchemaURL, res.SchemaURL())
	}
	return e.close(b, m)
}

// openScopeMetrics opens a scope_metrics field and writes its scope.
func (e *otlpProtoEncoder) openScopeMetrics(b []byte, s *instrumentation.Scope) ([]byte, pbMsg) {
	b, m := e.open(b, pbResourceMetricsScopeMetrics, pbLevelScopeMetrics)
	return e.appendScope(b, s), m
}

// closeScopeMetrics appends the scope's schema URL and closes m.
func (e *otlpProtoEncoder) closeScopeMetrics(b []byte, s *instrumentation.Scope, m pbMsg) []byte {
	b = appendPBString(b, pbScopeMetricsSchemaURL, s.SchemaURL)
	return e.close(b, m)
}

// openMetric opens a metrics field and writes its name, description and
// unit.
func (e *otlpProtoEncoder) openMetric(b []byte, name, description, unit string) ([]byte, pbMsg) {
	b, m := e.open(b, pbScopeMetricsMetrics, pbLevelMetric)
	b = appendPBString(b, pbMetricName, name)
	b = appendPBString(b, pbMetricDescription, description)
	return appendPBString(b, pbMetricUnit, unit), m
}

// appendScope always writes the scope: ToProto always sets it.
func (e *otlpProtoEncoder) appendScope(b []byte, s *instrumentation.Scope) []byte {
	b, m := e.open(b, pbScopeMetricsScope, pbLevelScope)
	b = appendPBString(b, pbScopeName, s.Name)
	b = appendPBString(b, pbScopeVersion, s.Version)
	b = e.appendAttrs(b, pbScopeAttributes, &s.Attributes)
	return e.close(b, m)
}

// appendMetric appends m unless ToProto drops it (nil or unknown Data).
func (e *otlpProtoEncoder) appendMetric(b []byte, m *metricdata.Metrics) []byte {
	mark := len(b)
	b, msg := e.openMetric(b, m.Name, m.Description, m.Unit)
	// The data message is a oneof member: written even without points.
	switch a := m.Data.(type) {
	case metricdata.Gauge[int64]:
		b = appendPBNumberData(e, b, pbMetricGauge, a.DataPoints, true, 0, false)
	case metricdata.Gauge[float64]:
		b = appendPBNumberData(e, b, pbMetricGauge, a.DataPoints, false, 0, false)
	case metricdata.Sum[int64]:
		b = appendPBNumberData(e, b, pbMetricSum, a.DataPoints, true, a.Temporality, a.IsMonotonic)
	case metricdata.Sum[float64]:
		b = appendPBNumberData(e, b, pbMetricSum, a.DataPoints, false, a.Temporality, a.IsMonotonic)
	case metricdata.Histogram[int64]:
		b = appendPBHistogram(e, b, a.DataPoints, a.Temporality)
	case metricdata.Histogram[float64]:
		b = appendPBHistogram(e, b, a.DataPoints, a.Temporality)
	case metricdata.ExponentialHistogram[int64]:
		b = appendPBExpHistogram(e, b, a.DataPoints, a.Temporality)
	case metricdata.ExponentialHistogram[float64]:
		b = appendPBExpHistogram(e, b, a.DataPoints, a.Temporality)
	case metricdata.Summary:
		b = e.appendSummary(b, a.DataPoints)
	default:
		return b[:mark] // as ToProto: nothing OTLP can represent
	}
	return e.close(b, msg)
}

// appendPBDataTail appends a data message's temporality (an enum, left out
// when unspecified) and monotonicity (left out when false).
func appendPBDataTail(b []byte, t metricdata.Temporality, monotonic bool) []byte {
	if v := temporalityToProto(t); v != 0 {
		b = appendPBTag(b, pbDataAggregationTemporality, protowire.VarintType)
		b = appendPBVarint(b, uint64(v))
	}
	if monotonic {
		b = appendPBTag(b, pbSumIsMonotonic, protowire.VarintType)
		b = append(b, 1)
	}
	return b
}

// appendPBNumberData appends a Gauge (t zero, monotonic false) or Sum as
// field num of a Metric. isInt picks asInt over asDouble: the oneof ToProto
// sets from Data's type.
func appendPBNumberData[N int64 | float64](e *otlpProtoEncoder, b []byte, num protowire.Number, dps []metricdata.DataPoint[N], isInt bool, t metricdata.Temporality, monotonic bool) []byte {
	b, data := e.open(b, num, pbLevelData)
	for i := range dps {
		dp := &dps[i]
		var p pbMsg
		b, p = e.open(b, pbDataDataPoints, pbLevelPoint)
		b = appendPBTimes(b, unixNano(dp.StartTime), unixNano(dp.Time))
		b = e.appendAttrs(b, pbNumberAttributes, &dp.Attributes)
		// A oneof member is present even at zero: always written, and
		// last, after attributes (7), as protobuf-go orders oneofs.
		if isInt {
			b = appendPBTag(b, pbNumberAsInt, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, uint64(int64(dp.Value)))
		} else {
			b = appendPBTag(b, pbNumberAsDouble, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, math.Float64bits(float64(dp.Value)))
		}
		b = e.close(b, p)
	}
	b = appendPBDataTail(b, t, monotonic)
	return e.close(b, data)
}

// appendPBTimes appends the start and time fields every point kind has.
func appendPBTimes(b []byte, start, at uint64) []byte {
	b = appendPBFixed64(b, pbPointStartTime, start)
	return appendPBFixed64(b, pbPointTime, at)
}

func appendPBHistogram[N int64 | float64](e *otlpProtoEncoder, b []byte, dps []metricdata.HistogramDataPoint[N], t metricdata.Temporality) []byte {
	b, data := e.open(b, pbMetricHistogram, pbLevelData)
	for i := range dps {
		dp := &dps[i]
		var p pbMsg
		b, p = e.open(b, pbDataDataPoints, pbLevelPoint)
		b = appendPBTimes(b, unixNano(dp.StartTime), unixNano(dp.Time))
		b = appendPBFixed64(b, pbPointCount, dp.Count)
		// sum is optional and ToProto always sets it: written even at 0.
		b = appendPBDoubleAlways(b, pbPointSum, float64(dp.Sum))
		if len(dp.BucketCounts) > 0 {
			b = appendPBTag(b, pbHistBucketCounts, protowire.BytesType)
			b = appendPBVarint(b, uint64(8*len(dp.BucketCounts)))
			for _, c := range dp.BucketCounts {
				b = protowire.AppendFixed64(b, c)
			}
		}
		if len(dp.Bounds) > 0 {
			b = e.appendBounds(b, dp.Bounds)
		}
		b = e.appendAttrs(b, pbHistAttributes, &dp.Attributes)
		b = appendPBExtrema(b, pbHistMin, dp.Min)
		b = appendPBExtrema(b, pbHistMax, dp.Max)
		b = e.close(b, p)
	}
	b = appendPBDataTail(b, t, false)
	return e.close(b, data)
}

// appendBounds appends the explicit_bounds field of non-empty bounds.
func (e *otlpProtoEncoder) appendBounds(b []byte, bounds []float64) []byte {
	if &bounds[0] == e.boundsPtr && len(bounds) == e.boundsLen {
		return append(b, e.boundsPB...)
	}
	start := len(b)
	b = appendPBTag(b, pbHistExplicitBounds, protowire.BytesType)
	b = appendPBVarint(b, uint64(8*len(bounds)))
	for _, x := range bounds {
		b = protowire.AppendFixed64(b, math.Float64bits(x))
	}
	e.boundsPtr, e.boundsLen = &bounds[0], len(bounds)
	e.boundsPB = append(e.boundsPB[:0], b[start:]...)
	return b
}

// appendPBExtrema writes a defined extremum only: the field is optional,
// and an undefined one stays absent (see extremaToProto).
func appendPBExtrema[N int64 | float64](b []byte, num protowire.Number, x metricdata.Extrema[N]) []byte {
	v, ok := x.Value()
	if !ok {
		return b
	}
	return appendPBDoubleAlways(b, num, float64(v))
}

func appendPBExpHistogram[N int64 | float64](e *otlpProtoEncoder, b []byte, dps []metricdata.ExponentialHistogramDataPoint[N], t metricdata.Temporality) []byte {
	b, data := e.open(b, pbMetricExponentialHistogram, pbLevelData)
	for i := range dps {
		dp := &dps[i]
		var p pbMsg
		b, p = e.open(b, pbDataDataPoints, pbLevelPoint)
		b = e.appendAttrs(b, pbExpAttributes, &dp.Attributes)
		b = appendPBTimes(b, unixNano(dp.StartTime), unixNano(dp.Time))
		b = appendPBFixed64(b, pbPointCount, dp.Count)
		b = appendPBDoubleAlways(b, pbPointSum, float64(dp.Sum))
		if dp.Scale != 0 { // sint32: zigzag
			b = appendPBTag(b, pbExpScale, protowire.VarintType)
			b = appendPBVarint(b, protowire.EncodeZigZag(int64(dp.Scale)))
		}
		b = appendPBFixed64(b, pbExpZeroCount, dp.ZeroCount)
		// ToProto always sets both bucket messages.
		b = e.appendBuckets(b, pbExpPositive, dp.PositiveBucket)
		b = e.appendBuckets(b, pbExpNegative, dp.NegativeBucket)
		b = appendPBExtrema(b, pbExpMin, dp.Min)
		b = appendPBExtrema(b, pbExpMax, dp.Max)
		b = appendPBDouble(b, pbExpZeroThreshold, dp.ZeroThreshold)
		b = e.close(b, p)
	}
	b = appendPBDataTail(b, t, false)
	return e.close(b, data)
}

func (e *otlpProtoEncoder) appendBuckets(b []byte, num protowire.Number, bk metricdata.ExponentialBucket) []byte {
	b, m := e.open(b, num, pbLevelPart)
	if bk.Offset != 0 { // sint32: zigzag
		b = appendPBTag(b, pbBucketsOffset, protowire.VarintType)
		b = appendPBVarint(b, protowire.EncodeZigZag(int64(bk.Offset)))
	}
	if len(bk.Counts) > 0 { // packed uint64 varints: the size is summed first
		n := 0
		for _, c := range bk.Counts {
			n += protowire.SizeVarint(c)
		}
		b = appendPBTag(b, pbBucketsBucketCounts, protowire.BytesType)
		b = appendPBVarint(b, uint64(n))
		for _, c := range bk.Counts {
			b = appendPBVarint(b, c)
		}
	}
	return e.close(b, m)
}

func (e *otlpProtoEncoder) appendSummary(b []byte, dps []metricdata.SummaryDataPoint) []byte {
	b, data := e.open(b, pbMetricSummary, pbLevelData)
	for i := range dps {
		dp := &dps[i]
		var p pbMsg
		b, p = e.open(b, pbDataDataPoints, pbLevelPoint)
		b = appendPBTimes(b, unixNano(dp.StartTime), unixNano(dp.Time))
		b = appendPBFixed64(b, pbPointCount, dp.Count)
		b = appendPBDouble(b, pbPointSum, dp.Sum) // not optional in Summary
		for _, q := range dp.QuantileValues {
			var qm pbMsg
			b, qm = e.open(b, pbSummaryQuantileValues, pbLevelPart)
			b = appendPBDouble(b, pbQuantileQuantile, q.Quantile)
			b = appendPBDouble(b, pbQuantileValue, q.Value)
			b = e.close(b, qm)
		}
		b = e.appendAttrs(b, pbSummaryAttributes, &dp.Attributes)
		b = e.close(b, p)
	}
	return e.close(b, data)
}

// appendAttrs appends each attribute of s as a KeyValue in field num.
func (e *otlpProtoEncoder) appendAttrs(b []byte, num protowire.Number, s *attribute.Set) []byte {
	if s == nil {
		return b
	}
	for it := s.Iter(); it.Next(); { // an empty set: no iteration
		b = e.appendKeyValue(b, num, it.Attribute())
	}
	return b
}

// appendEntityRefs appends the Resource's entity_refs as entityRefsToProto
// has them (entity.Refs), without allocating: for each entity whose ref id
// keys are all in s, its schema URL, type, id keys and the descriptive keys
// s has.
func (e *otlpProtoEncoder) appendEntityRefs(b []byte, s *attribute.Set) []byte {
	for _, ent := range entity.RefEntities() {
		if !ent.HasRef(s) {
			continue
		}
		var m pbMsg
		b, m = e.open(b, pbResourceEntityRefs, pbLevelEntityRef)
		b = appendPBString(b, pbEntityRefSchemaURL, entity.SchemaURL)
		b = appendPBString(b, pbEntityRefType, ent.Name)
		for _, k := range ent.RefIDKeys {
			b = appendPBStringAlways(b, pbEntityRefIDKeys, string(k))
		}
		for _, k := range ent.RefDescriptionKeys {
			if s.HasValue(k) {
				b = appendPBStringAlways(b, pbEntityRefDescriptionKeys, string(k))
			}
		}
		b = e.close(b, m)
	}
	return b
}

func (e *otlpProtoEncoder) appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	b, m := e.open(b, num, pbLevelKeyValue)
	b = appendPBString(b, pbKeyValueKey, string(kv.Key))
	// ToProto always sets value, even for an EMPTY one: an empty message.
	b = e.appendAnyValue(b, pbKeyValueValue, kv.Value)
	return e.close(b, m)
}

// appendAnyValue appends v as the AnyValue in field num, mirroring
// valueToProto for every attribute.Type. The variant is a oneof member:
// written even at its zero value.
func (e *otlpProtoEncoder) appendAnyValue(b []byte, num protowire.Number, v attribute.Value) []byte {
	b, m := e.open(b, num, pbLevelAnyValue)
	switch v.Type() {
	case attribute.BOOL:
		b = appendPBTag(b, pbAnyBool, protowire.VarintType)
		b = appendPBVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = appendPBTag(b, pbAnyInt, protowire.VarintType)
		b = appendPBVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = appendPBDoubleAlways(b, pbAnyDouble, v.AsFloat64())
	case attribute.STRING:
		b = appendPBStringAlways(b, pbAnyString, v.AsString())
	case attribute.BOOLSLICE:
		b = appendPBArray(e, b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		b = appendPBArray(e, b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		b = appendPBArray(e, b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		b = appendPBArray(e, b, v.AsStringSlice(), attribute.StringValue)
	case attribute.BYTESLICE:
		b = appendPBTag(b, pbAnyBytes, protowire.BytesType)
		b = protowire.AppendBytes(b, v.AsByteSlice())
	case attribute.SLICE:
		b = appendPBArray(e, b, v.AsSlice(), func(x attribute.Value) attribute.Value { return x })
	case attribute.MAP:
		var l pbMsg
		b, l = e.open(b, pbAnyKvlist, pbLevelList)
		for _, kv := range v.AsMap() {
			b = e.appendKeyValue(b, pbKvlistValues, kv)
		}
		b = e.close(b, l)
	default: // EMPTY and any future type: an AnyValue with no variant
	}
	return e.close(b, m)
}

// appendPBArray appends an array_value whose elements are the AnyValues of
// xs (each through value).
func appendPBArray[T any](e *otlpProtoEncoder, b []byte, xs []T, value func(T) attribute.Value) []byte {
	b, m := e.open(b, pbAnyArray, pbLevelList)
	for _, x := range xs {
		b = e.appendAnyValue(b, pbArrayValues, value(x))
	}
	return e.close(b, m)
}

// appendPBFixed64 appends a proto3 fixed64 field unless it is 0.
func appendPBFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendPBTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

// appendPBDouble appends a proto3 double field unless it is +0, its
// default (-0 is written: protobuf-go compares the bits).
func appendPBDouble(b []byte, num protowire.Number, f float64) []byte {
	return appendPBFixed64(b, num, math.Float64bits(f))
}

// appendPBDoubleAlways appends a double field that has presence (optional,
// or a oneof member), so it is written even at zero.
func appendPBDoubleAlways(b []byte, num protowire.Number, f float64) []byte {
	b = appendPBTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(f))
}

// appendPBString appends a proto3 string field unless it is empty.
func appendPBString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendPBStringAlways(b, num, s)
}

// appendPBStringAlways appends a string field with presence (a oneof
// member), so even an empty one, each byte that is not part of valid UTF-8
// replaced by U+FFFD: proto3 strings must be UTF-8.
func appendPBStringAlways(b []byte, num protowire.Number, s string) []byte {
	b = appendPBTag(b, num, protowire.BytesType)
	if utf8.ValidString(s) {
		b = appendPBVarint(b, uint64(len(s)))
		return append(b, s...)
	}
	n := 0 // the replaced length: U+FFFD is 3 bytes
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += 3
		} else {
			n += size
		}
		i += size
	}
	b = appendPBVarint(b, uint64(n))
	start := 0 // s[start:i] is pending, copied verbatim
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			start = i + 1
		}
		i += size
	}
	return append(b, s[start:]...)
}

// ProtoEncoder encodes intervals as OTLP/protobuf ExportMetricsServiceRequest
// bodies exactly as the otlp exporter does before sending, split at the
// same bound: for tools and benchmarks that measure or keep the wire
// format. The zero value is ready; it reuses its memory between calls.
type ProtoEncoder struct {
	enc requestEncoder
	mat metrics.Materializer
}

// EncodeInterval hands each request body of iv to emit, valid during the
// call.
func (p *ProtoEncoder) EncodeInterval(iv *metrics.Interval, emit func(req []byte)) {
	p.enc.encode(resources{iv: iv, mat: &p.mat}, false, maxRequestBytes, emit)
}

// appendIntervalResource appends resource i of iv exactly as
// appendResourceMetrics appends its metricdata (the same bytes), reading the
// typed points from m without boxing them into metricdata.Aggregation.
func (e *otlpProtoEncoder) appendIntervalResource(b []byte, iv *metrics.Interval, i int, m *metrics.Materializer) []byte {
	res, pts := iv.ResourcePoints(i, m)
	scope := iv.Scope()
	b, msg := e.openResourceMetrics(b, res)
	b, sm := e.openScopeMetrics(b, &scope)
	for j := range pts {
		b = e.appendBuiltMetric(b, &pts[j])
	}
	b = e.closeScopeMetrics(b, &scope, sm)
	return e.closeResourceMetrics(b, res, msg)
}

// appendBuiltMetric is appendMetric for one of the builder's metrics.
func (e *otlpProtoEncoder) appendBuiltMetric(b []byte, p *metrics.MetricPoints) []byte {
	b, msg := e.openMetric(b, p.Name, p.Description, p.Unit)
	switch p.Kind {
	case metrics.KindHistogram:
		b = appendPBHistogram(e, b, p.Hist, p.Temporality)
	case metrics.KindSumFloat:
		b = appendPBNumberData(e, b, pbMetricSum, p.Floats, false, p.Temporality, p.Monotonic)
	case metrics.KindGaugeFloat:
		b = appendPBNumberData(e, b, pbMetricGauge, p.Floats, false, 0, false)
	case metrics.KindGaugeInt:
		b = appendPBNumberData(e, b, pbMetricGauge, p.Ints, true, 0, false)
	default:
		b = appendPBNumberData(e, b, pbMetricSum, p.Ints, true, p.Temporality, p.Monotonic)
	}
	return e.close(b, msg)
}
