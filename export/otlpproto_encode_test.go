package export

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// checkProtoEncodeEquivalence is the oracle: proto.Unmarshal reads the
// hand-written encoder's output back into what ToProto builds from the same
// data (strings made valid UTF-8), and the bytes are exactly proto.Marshal's
// of that message. The byte comparison is the stricter one: proto.Equal
// takes -0 for +0 and any NaN for any other, and cannot tell a field
// written at its default from one left out.
func checkProtoEncodeEquivalence(t *testing.T, enc *otlpProtoEncoder, rms []metricdata.ResourceMetrics) {
	t.Helper()
	out := enc.appendRequest(nil, rms)
	var got colmetricspb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(out, &got); err != nil {
		t.Fatalf("proto.Unmarshal: %v\n%x", err, out)
	}
	want := ToProto(rms)
	validUTF8(want.ProtoReflect())
	if !proto.Equal(want, &got) {
		t.Fatalf("encoder output decodes to\n%s\nwant (ToProto)\n%s", prototext.Format(&got), prototext.Format(want))
	}
	wantB, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatalf("proto.Marshal of ToProto: %v", err)
	}
	if !bytes.Equal(out, wantB) {
		i := 0
		for i < len(out) && i < len(wantB) && out[i] == wantB[i] {
			i++
		}
		t.Fatalf("encoder output differs from proto.Marshal's at byte %d of %d/%d\n got %x\nwant %x\nmessage:\n%s",
			i, len(out), len(wantB), out[i:min(i+32, len(out))], wantB[i:min(i+32, len(wantB))], prototext.Format(want))
	}
}

// One encoder for every interval: what it carries from one request to the
// next (length-width guesses, the bounds memo) must not leak into the output.
func TestOTLPProtoEncodeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	buf := make([]byte, 4096)
	var enc otlpProtoEncoder
	for range 1500 {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		checkProtoEncodeEquivalence(t, &enc, genRMs(buf[:rng.IntN(len(buf))]))
	}
}

func TestOTLPProtoEncodeCases(t *testing.T) {
	var enc otlpProtoEncoder
	check := func(rms []metricdata.ResourceMetrics) {
		t.Helper()
		checkProtoEncodeEquivalence(t, &enc, rms)
	}
	ivs := twoIntervals()
	check(ivs[0])
	check(ivs[1])
	check(agentShapedInterval())
	check(nil)
	// A nil resource with no scope: an empty resource is still written.
	check([]metricdata.ResourceMetrics{{}})
	if out := enc.appendRequest(nil, []metricdata.ResourceMetrics{{}}); !bytes.Equal(out, []byte{0x0a, 0x02, 0x0a, 0x00}) {
		t.Errorf("empty ResourceMetrics encodes as %x, want 0a020a00", out)
	}
	// Empty and zero everything where presence matters: resource and scope
	// messages, histogram sum 0, empty bucket slices, a zero int gauge, an
	// empty Sum, a nil Data dropped, -0 and NaN where written.
	z := time.Time{}
	check([]metricdata.ResourceMetrics{{
		Resource: resource.Empty(),
		ScopeMetrics: []metricdata.ScopeMetrics{{}, {Metrics: []metricdata.Metrics{
			{Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Time: z}}}},
			{Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{}, {Value: math.Copysign(0, -1)}, {Value: math.NaN()}}}},
			{Data: metricdata.Histogram[float64]{DataPoints: []metricdata.HistogramDataPoint[float64]{{Bounds: []float64{}, BucketCounts: []uint64{}}}}},
			{Data: metricdata.Histogram[int64]{DataPoints: []metricdata.HistogramDataPoint[int64]{{Min: metricdata.NewExtrema[int64](0), Max: metricdata.NewExtrema[int64](-1)}}}},
			{Data: metricdata.ExponentialHistogram[int64]{DataPoints: []metricdata.ExponentialHistogramDataPoint[int64]{{}, {
				Scale: -20, ZeroThreshold: math.Copysign(0, -1),
				PositiveBucket: metricdata.ExponentialBucket{Offset: math.MinInt32, Counts: []uint64{0, 1 << 63}},
				NegativeBucket: metricdata.ExponentialBucket{Offset: -1},
			}}}},
			{Data: metricdata.Sum[int64]{}},
			{Data: nil},
			{Name: "nil-data", Data: nil},
			{Data: metricdata.Summary{DataPoints: []metricdata.SummaryDataPoint{{}, {Sum: math.Copysign(0, -1), QuantileValues: []metricdata.QuantileValue{{}, {Quantile: 1, Value: math.Inf(-1)}}}}}},
		}}},
	}})
	// Only a dropped metric: the scope stays, with no metrics.
	check([]metricdata.ResourceMetrics{{ScopeMetrics: []metricdata.ScopeMetrics{{
		Scope:   instrumentation.Scope{Name: "s", Version: "v", SchemaURL: "u", Attributes: attribute.NewSet(attribute.Bool("b", false))},
		Metrics: []metricdata.Metrics{{Name: "dropped"}},
	}}}})
	// Every attribute type, invalid UTF-8 in keys and values, and
	// attributes long enough that lengths need two- and three-byte varints.
	long := string(bytes.Repeat([]byte("x\xff"), 10000))
	check([]metricdata.ResourceMetrics{{
		Resource: resource.NewWithAttributes("https://schema\xc3",
			attribute.String("s", "a\x00\xff\xed\xa0\x80\ufffd"), attribute.String("k\xfe", ""),
			attribute.String("long", long), attribute.Int64("i", -1<<63), attribute.Float64("f", math.Inf(1)),
			attribute.Bool("t", true), attribute.ByteSlice("b", []byte{0xfb, 0xff}), attribute.ByteSlice("e", nil),
			attribute.BoolSlice("bs", []bool{false, true}), attribute.Int64Slice("is", []int64{-1, 0}),
			attribute.Float64Slice("fs", []float64{math.NaN(), -0.0}), attribute.StringSlice("ss", []string{"", "\xff", long}),
			attribute.StringSlice("empty", []string{}),
			attribute.KeyValue{Key: "empty-value"},
			attribute.Slice("sl", attribute.IntValue(1), attribute.Value{}, attribute.MapValue()),
			attribute.Map("m", attribute.String("x", "y"), attribute.Slice("z")),
		),
		ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{{
			Name: long, Description: "d", Unit: "By",
			Data: metricdata.Sum[float64]{Temporality: metricdata.CumulativeTemporality, DataPoints: []metricdata.DataPoint[float64]{
				{Attributes: attribute.NewSet(attribute.String("cmd", long)), StartTime: testStart, Time: testStart.Add(time.Second), Value: 1.5},
			}},
		}}}},
	}})
}

// TestOTLPProtoEncodeBoundsReuse: the bounds memo lives for one request; a
// caller that rewrites its bounds slice between intervals (same address)
// gets the new values.
func TestOTLPProtoEncodeBoundsReuse(t *testing.T) {
	bounds := []float64{1, 2, 3}
	rms := []metricdata.ResourceMetrics{{ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{{
		Data: metricdata.Histogram[float64]{DataPoints: []metricdata.HistogramDataPoint[float64]{{Bounds: bounds}, {Bounds: bounds}, {Bounds: bounds[:2]}}},
	}}}}}}
	var enc otlpProtoEncoder
	var buf []byte
	for _, x := range []float64{1, 7} {
		bounds[0] = x
		buf = enc.appendRequest(buf[:0], rms)
		var got colmetricspb.ExportMetricsServiceRequest
		if err := proto.Unmarshal(buf, &got); err != nil {
			t.Fatal(err)
		}
		if want := ToProto(rms); !proto.Equal(want, &got) {
			t.Fatalf("bounds[0]=%v: got\n%s\nwant\n%s", x, prototext.Format(&got), prototext.Format(want))
		}
	}
}

// TestOTLPProtoEncodeAppends: appendResourceMetrics appends after what the
// buffer holds, and a request is the concatenation of its resources (so a
// caller can cut an interval into requests at any resource).
func TestOTLPProtoEncodeAppends(t *testing.T) {
	rms := agentShapedInterval()
	var enc otlpProtoEncoder
	whole := enc.appendRequest(nil, rms)
	b := []byte("prefix")
	enc.reset()
	for i := range rms {
		b = enc.appendResourceMetrics(b, &rms[i])
	}
	if string(b[:6]) != "prefix" || !bytes.Equal(b[6:], whole) {
		t.Fatal("resource by resource differs from the whole request")
	}
	var first colmetricspb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(enc.appendResourceMetrics(nil, &rms[0]), &first); err != nil {
		t.Fatal(err)
	}
	if want := ToProto(rms[:1]); !proto.Equal(want, &first) {
		t.Fatal("one resource alone is not a request of that resource")
	}
}

// BenchmarkOTLPProtoEncode compares the hand-written encoder with the path
// it replaces (ToProto, then proto.Marshal into a reused buffer), per data
// point.
func BenchmarkOTLPProtoEncode(b *testing.B) {
	rms := agentShapedInterval()
	const points = 400
	b.Run("hand", func(b *testing.B) {
		var enc otlpProtoEncoder
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = enc.appendRequest(buf[:0], rms)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*points), "ns/point")
		b.ReportMetric(float64(len(buf)), "bytes/request")
	})
	b.Run("toproto", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			var err error
			buf, err = proto.MarshalOptions{}.MarshalAppend(buf[:0], ToProto(rms))
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*points), "ns/point")
		b.ReportMetric(float64(len(buf)), "bytes/request")
	})
}

func FuzzOTLPProtoEncode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 2, 1, 4, 4, 3, 3, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Add([]byte("\x03\x02\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\xff\xfe\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"))
	f.Add([]byte("\x01\x02\x01\x00\x01\x02\x03\x07\x07\x02\x02\x05\x05\x03\x03\x03\x03\x03\x03\x03\x03\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var enc otlpProtoEncoder
		checkProtoEncodeEquivalence(t, &enc, genRMs(data))
	})
}
