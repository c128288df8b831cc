package export

import (
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// Hand-written constructors for the expected protobuf, independent of the
// code under test.
func pbStr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func pbInt(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

func pbBool(k string, v bool) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}}
}

func anyStr(v string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}
}
func anyInt(v int64) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}
}
func anyDouble(v float64) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}
}
func anyBool(v bool) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}
}
func anyArr(vs ...*commonpb.AnyValue) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
}

func f64(v float64) *float64 { return &v }

func nanos(t time.Time) uint64 { return uint64(t.UnixNano()) }

func pbHostAttrs() []*commonpb.KeyValue {
	return []*commonpb.KeyValue{
		pbStr("host.id", "0123456789abcdef0123456789abcdef"),
		pbStr("host.name", "node-1"),
		pbStr("os.type", "linux"),
	}
}

// pbRef is an entity ref written out by hand: the oracle for what
// entity.Refs derives from the schema.
func pbRef(typ string, ids []string, desc ...string) *commonpb.EntityRef {
	return &commonpb.EntityRef{SchemaUrl: "https://telagent.dev/schemas/0.2.0", Type: typ, IdKeys: ids, DescriptionKeys: desc}
}

// pbHostRefs are the refs of pbHostAttrs: host (host.id, described by
// host.name) and os (os.type).
func pbHostRefs() []*commonpb.EntityRef {
	return []*commonpb.EntityRef{pbRef("host", []string{"host.id"}, "host.name"), pbRef("os", []string{"os.type"})}
}

// roundTripInput is two resources of syscall data (one process, one
// host-only holding the overflow series) plus one metric of every other
// aggregation, and data-point attributes of every attribute.Type.
func roundTripInput(now time.Time) []metricdata.ResourceMetrics {
	const schema = "https://opentelemetry.io/schemas/1.44.0"
	proc := resource.NewWithAttributes(schema, append(hostAttrs(),
		attribute.Int64("process.pid", 4242),
		attribute.String("process.creation.time", "2026-11-25T12:00:00.5Z"),
		attribute.String("process.executable.name", "nginx"),
		attribute.String("process.command", "nginx: worker process"),
	)...)

	read := hpoint(syscallAttrs("read"), now, 0.5, 1, 2, 3, 0, 4)
	read.Min = metricdata.NewExtrema(1e-7)
	read.Max = metricdata.NewExtrema(0.25)
	write := hpoint(syscallAttrs("write"), now, 0, 0, 0, 0, 0, 0)

	every := attribute.NewSet(
		attribute.Bool("a.bool", true),
		attribute.BoolSlice("a.bools", []bool{true, false}),
		attribute.ByteSlice("a.bytes", []byte{0, 1, 0xff}),
		attribute.KeyValue{Key: "a.empty"},
		attribute.Float64("a.float", 1.5),
		attribute.Float64Slice("a.floats", []float64{-0.5, 2}),
		attribute.Int64("a.int", -7),
		attribute.Int64Slice("a.ints", []int64{1, math.MaxInt64}),
		attribute.Map("a.map", attribute.String("k1", "v1"), attribute.Int64("k2", 2)),
		attribute.Slice("a.slice", attribute.StringValue("x"), attribute.Int64Value(3), attribute.SliceValue(attribute.BoolValue(false))),
		attribute.String("a.string", "s"),
		attribute.StringSlice("a.strings", []string{"p", "q"}),
	)

	hi := metricdata.HistogramDataPoint[int64]{
		Attributes: attribute.NewSet(), StartTime: testStart, Time: now,
		Count: 3, Bounds: []float64{10, 100}, BucketCounts: []uint64{1, 1, 1}, Sum: 160,
		Min: metricdata.NewExtrema[int64](5), Max: metricdata.NewExtrema[int64](150),
	}

	return []metricdata.ResourceMetrics{
		{
			Resource: proc,
			ScopeMetrics: []metricdata.ScopeMetrics{{
				Scope: instrumentation.Scope{
					Name: testScope, Version: "0.1.0", SchemaURL: schema,
					Attributes: attribute.NewSet(attribute.String("telagent.probe", "syscalls")),
				},
				Metrics: []metricdata.Metrics{
					{
						Name: "telagent.syscall.duration", Description: "Duration of system calls.", Unit: "s",
						Data: metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality,
							DataPoints: []metricdata.HistogramDataPoint[float64]{read, write}},
					},
					{
						Name: "telagent.syscall.errors", Description: "System calls that returned an error.", Unit: "{error}",
						Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
							DataPoints: []metricdata.DataPoint[int64]{cpoint(syscallAttrs("read"), now, 3)}},
					},
					{
						Name: "test.gauge.int", Unit: "1",
						Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{
							{Attributes: every, Time: now, Value: math.MinInt64}, // no StartTime: must stay unset
						}},
					},
					{
						Name: "test.gauge.float", Unit: "By",
						Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{Time: now, Value: -1.5}}},
					},
					{
						Name: "test.sum.float", Unit: "s",
						Data: metricdata.Sum[float64]{Temporality: metricdata.DeltaTemporality, IsMonotonic: false,
							DataPoints: []metricdata.DataPoint[float64]{{StartTime: testStart, Time: now, Value: 2.25}}},
					},
					{
						Name: "test.histogram.int", Unit: "By",
						Data: metricdata.Histogram[int64]{Temporality: metricdata.DeltaTemporality,
							DataPoints: []metricdata.HistogramDataPoint[int64]{hi}},
					},
					{Name: "test.nodata"}, // dropped: OTLP has no empty metric
				},
			}},
		},
		syscallRM(hostResource(),
			[]metricdata.HistogramDataPoint[float64]{hpoint(overflowAttrs(), now, 2, 0, 0, 0, 9, 1)},
			[]metricdata.DataPoint[int64]{cpoint(overflowAttrs(), now, 8)}),
	}
}

func roundTripExpected(now time.Time) *colmetricspb.ExportMetricsServiceRequest {
	const schema = "https://opentelemetry.io/schemas/1.44.0"
	start, at := nanos(testStart), nanos(now)
	cumulative := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	delta := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	syscall := func(name string) []*commonpb.KeyValue {
		return []*commonpb.KeyValue{pbStr("telagent.syscall.name", name)}
	}
	overflow := []*commonpb.KeyValue{pbBool("otel.metric.overflow", true)}

	every := []*commonpb.KeyValue{
		pbBool("a.bool", true),
		{Key: "a.bools", Value: anyArr(anyBool(true), anyBool(false))},
		{Key: "a.bytes", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1, 0xff}}}},
		{Key: "a.empty", Value: &commonpb.AnyValue{}},
		{Key: "a.float", Value: anyDouble(1.5)},
		{Key: "a.floats", Value: anyArr(anyDouble(-0.5), anyDouble(2))},
		pbInt("a.int", -7),
		{Key: "a.ints", Value: anyArr(anyInt(1), anyInt(math.MaxInt64))},
		{Key: "a.map", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
			Values: []*commonpb.KeyValue{pbStr("k1", "v1"), pbInt("k2", 2)},
		}}}},
		{Key: "a.slice", Value: anyArr(anyStr("x"), anyInt(3), anyArr(anyBool(false)))},
		pbStr("a.string", "s"),
		{Key: "a.strings", Value: anyArr(anyStr("p"), anyStr("q"))},
	}

	scope := &commonpb.InstrumentationScope{Name: testScope, Version: "0.1.0"}
	return &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{
		{
			Resource: &resourcepb.Resource{Attributes: append(pbHostAttrs(),
				pbStr("process.command", "nginx: worker process"),
				pbStr("process.creation.time", "2026-11-25T12:00:00.5Z"),
				pbStr("process.executable.name", "nginx"),
				pbInt("process.pid", 4242),
			), EntityRefs: append(pbHostRefs(), pbRef("process", []string{"process.pid", "process.creation.time"}, "process.command"))},
			SchemaUrl: schema,
			ScopeMetrics: []*metricspb.ScopeMetrics{{
				Scope: &commonpb.InstrumentationScope{
					Name: testScope, Version: "0.1.0",
					Attributes: []*commonpb.KeyValue{pbStr("telagent.probe", "syscalls")},
				},
				SchemaUrl: schema,
				Metrics: []*metricspb.Metric{
					{
						Name: "telagent.syscall.duration", Description: "Duration of system calls.", Unit: "s",
						Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
							AggregationTemporality: cumulative,
							DataPoints: []*metricspb.HistogramDataPoint{
								{
									Attributes: syscall("read"), StartTimeUnixNano: start, TimeUnixNano: at,
									Count: 10, Sum: f64(0.5), BucketCounts: []uint64{1, 2, 3, 0, 4},
									ExplicitBounds: []float64{1.024e-6, 2.048e-6, 4.096e-6, 8.192e-6},
									Min:            f64(1e-7), Max: f64(0.25),
								},
								{
									Attributes: syscall("write"), StartTimeUnixNano: start, TimeUnixNano: at,
									Count: 0, Sum: f64(0), BucketCounts: []uint64{0, 0, 0, 0, 0},
									ExplicitBounds: []float64{1.024e-6, 2.048e-6, 4.096e-6, 8.192e-6},
								},
							},
						}},
					},
					{
						Name: "telagent.syscall.errors", Description: "System calls that returned an error.", Unit: "{error}",
						Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
							AggregationTemporality: cumulative, IsMonotonic: true,
							DataPoints: []*metricspb.NumberDataPoint{{
								Attributes: syscall("read"), StartTimeUnixNano: start, TimeUnixNano: at,
								Value: &metricspb.NumberDataPoint_AsInt{AsInt: 3},
							}},
						}},
					},
					{
						Name: "test.gauge.int", Unit: "1",
						Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{{
							Attributes: every, TimeUnixNano: at,
							Value: &metricspb.NumberDataPoint_AsInt{AsInt: math.MinInt64},
						}}}},
					},
					{
						Name: "test.gauge.float", Unit: "By",
						Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{{
							TimeUnixNano: at, Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: -1.5},
						}}}},
					},
					{
						Name: "test.sum.float", Unit: "s",
						Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
							AggregationTemporality: delta, IsMonotonic: false,
							DataPoints: []*metricspb.NumberDataPoint{{
								StartTimeUnixNano: start, TimeUnixNano: at,
								Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: 2.25},
							}},
						}},
					},
					{
						Name: "test.histogram.int", Unit: "By",
						Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
							AggregationTemporality: delta,
							DataPoints: []*metricspb.HistogramDataPoint{{
								StartTimeUnixNano: start, TimeUnixNano: at,
								Count: 3, Sum: f64(160), BucketCounts: []uint64{1, 1, 1}, ExplicitBounds: []float64{10, 100},
								Min: f64(5), Max: f64(150),
							}},
						}},
					},
				},
			}},
		},
		{
			Resource: &resourcepb.Resource{Attributes: pbHostAttrs(), EntityRefs: pbHostRefs()},
			ScopeMetrics: []*metricspb.ScopeMetrics{{
				Scope: scope,
				Metrics: []*metricspb.Metric{
					{
						Name: "telagent.syscall.duration", Description: "Duration of system calls.", Unit: "s",
						Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
							AggregationTemporality: cumulative,
							DataPoints: []*metricspb.HistogramDataPoint{{
								Attributes: overflow, StartTimeUnixNano: start, TimeUnixNano: at,
								Count: 10, Sum: f64(2), BucketCounts: []uint64{0, 0, 0, 9, 1},
								ExplicitBounds: []float64{1.024e-6, 2.048e-6, 4.096e-6, 8.192e-6},
							}},
						}},
					},
					{
						Name: "telagent.syscall.errors", Description: "System calls that returned an error.", Unit: "{error}",
						Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
							AggregationTemporality: cumulative, IsMonotonic: true,
							DataPoints: []*metricspb.NumberDataPoint{{
								Attributes: overflow, StartTimeUnixNano: start, TimeUnixNano: at,
								Value: &metricspb.NumberDataPoint_AsInt{AsInt: 8},
							}},
						}},
					},
				},
			}},
		},
	}}
}

func TestToProtoRoundTrip(t *testing.T) {
	now := testStart.Add(10 * time.Second)
	in := roundTripInput(now)
	got := ToProto(in)

	wire, err := proto.Marshal(got)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var back colmetricspb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(wire, &back); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	want := roundTripExpected(now)
	if !proto.Equal(want, &back) {
		t.Fatalf("round trip mismatch\n got: %s\nwant: %s", prototext.Format(&back), prototext.Format(want))
	}

	// The caller reuses its buffers after Export; the request must not
	// share memory with the input.
	h := in[0].ScopeMetrics[0].Metrics[0].Data.(metricdata.Histogram[float64])
	h.DataPoints[0].BucketCounts[0] = 999
	h.DataPoints[0].Bounds[0] = 999
	if !proto.Equal(want, got) {
		t.Fatalf("ToProto result aliases the input's slices:\n%s", prototext.Format(got))
	}
}

func TestToProtoTimesAndTemporality(t *testing.T) {
	// Spot checks with literal numbers, so a mistake shared by the
	// transform and the expected-value builder above cannot hide.
	now := time.Unix(1_700_000_010, 5)
	req := ToProto(roundTripInput(now))
	hp := req.ResourceMetrics[0].ScopeMetrics[0].Metrics[0].GetHistogram()
	if got := hp.DataPoints[0].StartTimeUnixNano; got != 1_700_000_000_123_456_789 {
		t.Errorf("start = %d", got)
	}
	if got := hp.DataPoints[0].TimeUnixNano; got != 1_700_000_010_000_000_005 {
		t.Errorf("time = %d", got)
	}
	if hp.AggregationTemporality != 2 {
		t.Errorf("temporality = %d, want 2 (cumulative)", hp.AggregationTemporality)
	}
	if n := len(req.ResourceMetrics[0].ScopeMetrics[0].Metrics); n != 6 {
		t.Errorf("metrics = %d, want 6 (the one without data dropped)", n)
	}
	if got := ToProto(nil).GetResourceMetrics(); len(got) != 0 {
		t.Errorf("ToProto(nil) has %d resources", len(got))
	}
}
