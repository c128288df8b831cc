package export

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// genReader turns fuzz bytes into choices; when they run out every choice
// is zero, so any input yields a finite, valid metricdata value.
type genReader struct {
	b []byte
	// bounds is the last histogram's bounds: points may share it, or a
	// prefix of it, as the builder's points share one slice (the
	// encoder memoises bounds by slice identity).
	bounds []float64
}

func (g *genReader) u8() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *genReader) n(max int) int { return int(g.u8()) % (max + 1) }

func (g *genReader) u64() uint64 {
	var x [8]byte
	for i := range x {
		x[i] = g.u8()
	}
	return binary.LittleEndian.Uint64(x[:])
}

// f64 favours the values an encoder gets wrong: zeros of both signs, the
// non-finite ones, exponent-form magnitudes and integers beyond 2^53.
func (g *genReader) f64() float64 {
	switch g.n(9) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return math.NaN()
	case 3:
		return math.Inf(1)
	case 4:
		return math.Inf(-1)
	case 5:
		return 1e-7 * float64(g.u8())
	case 6:
		return 3e21 * float64(int8(g.u8()))
	case 7:
		return float64(1<<53 + 1)
	default:
		return math.Float64frombits(g.u64())
	}
}

func (g *genReader) str() string {
	pool := []string{"", "a", `quote"back\slash`, "ctl\x00\x01\x1f\n\r\t\b\f", "bad\xff\xfeutf8\xc3", "é漢🙂", "\u2028\u2029", "\xed\xa0\x80", "\ufffd"}
	if k := g.n(len(pool)); k < len(pool) {
		return pool[k]
	}
	n := g.n(12)
	s := make([]byte, n)
	for i := range s {
		s[i] = g.u8()
	}
	return string(s)
}

func (g *genReader) value(depth int) attribute.Value {
	k := g.n(11)
	if depth > 1 && k >= 9 {
		k = 4
	}
	switch k {
	case 0:
		return attribute.Value{} // EMPTY
	case 1:
		return attribute.BoolValue(g.u8()&1 == 1)
	case 2:
		return attribute.Int64Value(int64(g.u64()))
	case 3:
		return attribute.Float64Value(g.f64())
	case 4:
		return attribute.StringValue(g.str())
	case 5:
		s := make([]bool, g.n(3))
		for i := range s {
			s[i] = g.u8()&1 == 1
		}
		return attribute.BoolSliceValue(s)
	case 6:
		s := make([]int64, g.n(3))
		for i := range s {
			s[i] = int64(g.u64())
		}
		return attribute.Int64SliceValue(s)
	case 7:
		s := make([]float64, g.n(3))
		for i := range s {
			s[i] = g.f64()
		}
		return attribute.Float64SliceValue(s)
	case 8:
		s := make([]string, g.n(3))
		for i := range s {
			s[i] = g.str()
		}
		return attribute.StringSliceValue(s)
	case 9:
		return attribute.ByteSliceValue([]byte(g.str()))
	case 10:
		s := make([]attribute.Value, g.n(3))
		for i := range s {
			s[i] = g.value(depth + 1)
		}
		return attribute.SliceValue(s...)
	default:
		return attribute.MapValue(g.attrs(depth+1, 3)...)
	}
}

func (g *genReader) attrs(depth, max int) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, g.n(max))
	for i := range kvs {
		kvs[i] = attribute.KeyValue{Key: attribute.Key(g.str()), Value: g.value(depth)}
	}
	return kvs
}

func (g *genReader) set() attribute.Set { return attribute.NewSet(g.attrs(0, 4)...) }

func (g *genReader) time() time.Time {
	switch g.n(3) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(-5, 0) // before the epoch: OTLP's 0
	default:
		return time.Unix(0, int64(g.u64()>>1))
	}
}

func (g *genReader) temporality() metricdata.Temporality { return metricdata.Temporality(g.n(2)) }

func (g *genReader) uints() []uint64 {
	s := make([]uint64, g.n(4))
	if g.u8()&1 == 1 && len(s) == 0 {
		s = nil
	}
	for i := range s {
		s[i] = g.u64()
	}
	return s
}

func numberDPs[N int64 | float64](g *genReader, val func() N) []metricdata.DataPoint[N] {
	dps := make([]metricdata.DataPoint[N], g.n(3))
	for i := range dps {
		dps[i] = metricdata.DataPoint[N]{Attributes: g.set(), StartTime: g.time(), Time: g.time(), Value: val()}
	}
	return dps
}

func extrema[N int64 | float64](g *genReader, val func() N) metricdata.Extrema[N] {
	if g.u8()&1 == 0 {
		return metricdata.Extrema[N]{}
	}
	return metricdata.NewExtrema(val())
}

func histDPs[N int64 | float64](g *genReader, val func() N) []metricdata.HistogramDataPoint[N] {
	dps := make([]metricdata.HistogramDataPoint[N], g.n(3))
	for i := range dps {
		var bounds []float64
		switch k := g.n(3); {
		case k == 0 && len(g.bounds) > 0:
			bounds = g.bounds
		case k == 1 && len(g.bounds) > 0:
			bounds = g.bounds[:len(g.bounds)-1]
		default:
			bounds = make([]float64, g.n(4))
			for j := range bounds {
				bounds[j] = g.f64()
			}
			g.bounds = bounds
		}
		dps[i] = metricdata.HistogramDataPoint[N]{
			Attributes: g.set(), StartTime: g.time(), Time: g.time(), Count: g.u64(),
			Bounds: bounds, BucketCounts: g.uints(), Min: extrema(g, val), Max: extrema(g, val), Sum: val(),
		}
	}
	return dps
}

func expDPs[N int64 | float64](g *genReader, val func() N) []metricdata.ExponentialHistogramDataPoint[N] {
	dps := make([]metricdata.ExponentialHistogramDataPoint[N], g.n(2))
	for i := range dps {
		dps[i] = metricdata.ExponentialHistogramDataPoint[N]{
			Attributes: g.set(), StartTime: g.time(), Time: g.time(), Count: g.u64(),
			Min: extrema(g, val), Max: extrema(g, val), Sum: val(),
			Scale: int32(g.u64()), ZeroCount: g.u64(), ZeroThreshold: g.f64(),
			PositiveBucket: metricdata.ExponentialBucket{Offset: int32(g.u64()), Counts: g.uints()},
			NegativeBucket: metricdata.ExponentialBucket{Offset: int32(int8(g.u8())), Counts: g.uints()},
		}
	}
	return dps
}

func (g *genReader) metric() metricdata.Metrics {
	m := metricdata.Metrics{Name: g.str(), Description: g.str(), Unit: g.str()}
	i64 := func() int64 { return int64(g.u64()) }
	switch g.n(9) {
	case 0: // nil Data: dropped
	case 1:
		m.Data = metricdata.Gauge[int64]{DataPoints: numberDPs(g, i64)}
	case 2:
		m.Data = metricdata.Gauge[float64]{DataPoints: numberDPs(g, g.f64)}
	case 3:
		m.Data = metricdata.Sum[int64]{DataPoints: numberDPs(g, i64), Temporality: g.temporality(), IsMonotonic: g.u8()&1 == 1}
	case 4:
		m.Data = metricdata.Sum[float64]{DataPoints: numberDPs(g, g.f64), Temporality: g.temporality(), IsMonotonic: g.u8()&1 == 1}
	case 5:
		m.Data = metricdata.Histogram[int64]{DataPoints: histDPs(g, i64), Temporality: g.temporality()}
	case 6:
		m.Data = metricdata.Histogram[float64]{DataPoints: histDPs(g, g.f64), Temporality: g.temporality()}
	case 7:
		m.Data = metricdata.ExponentialHistogram[int64]{DataPoints: expDPs(g, i64), Temporality: g.temporality()}
	case 8:
		m.Data = metricdata.ExponentialHistogram[float64]{DataPoints: expDPs(g, g.f64), Temporality: g.temporality()}
	default:
		dps := make([]metricdata.SummaryDataPoint, g.n(2))
		for i := range dps {
			qs := make([]metricdata.QuantileValue, g.n(3))
			for j := range qs {
				qs[j] = metricdata.QuantileValue{Quantile: g.f64(), Value: g.f64()}
			}
			dps[i] = metricdata.SummaryDataPoint{Attributes: g.set(), StartTime: g.time(), Time: g.time(), Count: g.u64(), Sum: g.f64(), QuantileValues: qs}
		}
		m.Data = metricdata.Summary{DataPoints: dps}
	}
	return m
}

// genRMs builds one interval from fuzz bytes.
func genRMs(data []byte) []metricdata.ResourceMetrics {
	g := &genReader{b: data}
	rms := make([]metricdata.ResourceMetrics, g.n(3))
	for i := range rms {
		switch g.n(2) {
		case 0: // nil resource
		case 1:
			rms[i].Resource = resource.NewSchemaless(g.attrs(0, 4)...)
		default:
			rms[i].Resource = resource.NewWithAttributes(g.str(), g.attrs(0, 4)...)
		}
		sms := make([]metricdata.ScopeMetrics, g.n(2))
		for j := range sms {
			sms[j].Scope = instrumentation.Scope{Name: g.str(), Version: g.str(), SchemaURL: g.str(), Attributes: g.set()}
			sms[j].Metrics = make([]metricdata.Metrics, g.n(3))
			for k := range sms[j].Metrics {
				sms[j].Metrics[k] = g.metric()
			}
		}
		rms[i].ScopeMetrics = sms
	}
	return rms
}

// validUTF8 replaces every string field's invalid bytes by U+FFFD, one per
// byte, as the encoder promises: []rune conversion decodes exactly so.
func validUTF8(m protoreflect.Message) {
	type set struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var sets []set
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				switch fd.Kind() {
				case protoreflect.MessageKind:
					validUTF8(l.Get(i).Message())
				case protoreflect.StringKind:
					l.Set(i, protoreflect.ValueOfString(string([]rune(l.Get(i).String()))))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			validUTF8(v.Message())
		case fd.Kind() == protoreflect.StringKind:
			sets = append(sets, set{fd, protoreflect.ValueOfString(string([]rune(v.String())))})
		}
		return true
	})
	for _, s := range sets {
		m.Set(s.fd, s.v)
	}
}

// checkEncodeEquivalence is the oracle: the hand-written encoder's output is
// valid JSON on one line, and protojson reads it back into what ToProto
// builds from the same data (strings made valid UTF-8).
func checkEncodeEquivalence(t *testing.T, rms []metricdata.ResourceMetrics) {
	t.Helper()
	var enc otlpJSONEncoder
	out := enc.appendRequest(nil, rms)
	if !json.Valid(out) {
		t.Fatalf("invalid JSON:\n%s", out)
	}
	if strings.ContainsAny(string(out), "\n\r") {
		t.Fatalf("output spans lines:\n%q", out)
	}
	var got colmetricspb.ExportMetricsServiceRequest
	if err := protojson.Unmarshal(out, &got); err != nil {
		t.Fatalf("protojson: %v\n%s", err, out)
	}
	want := ToProto(rms)
	validUTF8(want.ProtoReflect())
	if !proto.Equal(want, &got) {
		t.Fatalf("encoder output decodes to\n%s\nwant (ToProto)\n%s\nJSON: %s", prototext.Format(&got), prototext.Format(want), out)
	}
}

func TestOTLPJSONEncodeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	buf := make([]byte, 4096)
	for range 1000 {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		checkEncodeEquivalence(t, genRMs(buf[:rng.IntN(len(buf))]))
	}
}

func TestOTLPJSONEncodeCases(t *testing.T) {
	ivs := twoIntervals()
	checkEncodeEquivalence(t, ivs[0])
	checkEncodeEquivalence(t, ivs[1])
	checkEncodeEquivalence(t, nil)
	checkEncodeEquivalence(t, []metricdata.ResourceMetrics{{}})
	// Empty and zero everything where presence matters: resource and scope
	// objects, histogram sum 0, empty bucket slices, a zero int gauge.
	z := time.Time{}
	checkEncodeEquivalence(t, []metricdata.ResourceMetrics{{
		Resource: resource.Empty(),
		ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{
			{Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Time: z}}}},
			{Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{}}}},
			{Data: metricdata.Histogram[float64]{DataPoints: []metricdata.HistogramDataPoint[float64]{{Bounds: []float64{}, BucketCounts: []uint64{}}}}},
			{Data: metricdata.ExponentialHistogram[int64]{DataPoints: []metricdata.ExponentialHistogramDataPoint[int64]{{}}}},
			{Data: metricdata.Sum[int64]{}},
			{Data: nil},
		}}},
	}})

	// The exact text of the OTLP/JSON specifics.
	var enc otlpJSONEncoder
	out := string(enc.appendRequest(nil, []metricdata.ResourceMetrics{{
		Resource: resource.NewSchemaless(attribute.String("s", "a\"\\\n\x01\xff"), attribute.Int64("i", -1<<63), attribute.ByteSlice("b", []byte{0xfb, 0xff})),
		ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{{Name: "m", Data: metricdata.Sum[int64]{
			Temporality: metricdata.DeltaTemporality, IsMonotonic: true,
			DataPoints: []metricdata.DataPoint[int64]{{StartTime: testStart, Value: 1 << 60}},
		}}}}},
	}}))
	for _, want := range []string{
		`{"key":"s","value":{"stringValue":"a\"\\\n\u0001\ufffd"}}`,
		`{"key":"i","value":{"intValue":"-9223372036854775808"}}`,
		`{"key":"b","value":{"bytesValue":"+/8="}}`,
		`"startTimeUnixNano":"1700000000123456789"`,
		`"asInt":"1152921504606846976"`,
		`"aggregationTemporality":1,"isMonotonic":true`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

// TestOTLPJSONEncodeBoundsReuse: the bounds memo lives for one request; a
// caller that rewrites its bounds slice between intervals (same address)
// gets the new values.
func TestOTLPJSONEncodeBoundsReuse(t *testing.T) {
	bounds := []float64{1, 2, 3}
	rms := []metricdata.ResourceMetrics{{ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{{
		Data: metricdata.Histogram[float64]{DataPoints: []metricdata.HistogramDataPoint[float64]{{Bounds: bounds}, {Bounds: bounds}}},
	}}}}}}
	var enc otlpJSONEncoder
	var buf []byte
	for _, x := range []float64{1, 7} {
		bounds[0] = x
		buf = enc.appendRequest(buf[:0], rms)
		var got colmetricspb.ExportMetricsServiceRequest
		if err := protojson.Unmarshal(buf, &got); err != nil {
			t.Fatal(err)
		}
		if want := ToProto(rms); !proto.Equal(want, &got) {
			t.Fatalf("bounds[0]=%v: %s", x, buf)
		}
	}
}

// TestOTLPEncodeAllocs: encoding the agent's shape of data (string and
// int attributes, histograms and counters) into a buffer that already has
// room allocates nothing at all, so nothing per data point, as JSON and as
// protobuf.
func TestOTLPEncodeAllocs(t *testing.T) {
	rms := agentShapedInterval()
	var js otlpJSONEncoder
	var pb otlpProtoEncoder
	for name, appendRequest := range map[string]func([]byte, []metricdata.ResourceMetrics) []byte{
		"json": js.appendRequest, "protobuf": pb.appendRequest,
	} {
		buf := appendRequest(nil, rms)
		if n := testing.AllocsPerRun(20, func() { buf = appendRequest(buf[:0], rms) }); n != 0 {
			t.Errorf("%s: %.1f allocations per encode of 400 points into a warm buffer, want 0", name, n)
		}
	}
}

// BenchmarkOTLPJSONEncode compares the hand-written encoder with the path
// it replaced (ToProto, protojson, json.Compact), per data point.
func BenchmarkOTLPJSONEncode(b *testing.B) {
	rms := agentShapedInterval()
	const points = 400
	b.Run("hand", func(b *testing.B) {
		var enc otlpJSONEncoder
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = enc.appendRequest(buf[:0], rms)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*points), "ns/point")
	})
	b.Run("protojson", func(b *testing.B) {
		var line bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			raw, err := otlpJSONMarshal.Marshal(ToProto(rms))
			if err != nil {
				b.Fatal(err)
			}
			line.Reset()
			if err := json.Compact(&line, raw); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*points), "ns/point")
	})
}

// agentShapedInterval is 50 processes with 4 syscalls each, a histogram
// and a counter per syscall: 400 data points.
func agentShapedInterval() []metricdata.ResourceMetrics {
	var rms []metricdata.ResourceMetrics
	for pid := range int64(50) {
		var hs []metricdata.HistogramDataPoint[float64]
		var cs []metricdata.DataPoint[int64]
		for _, name := range []string{"read", "write", "openat", "futex"} {
			hs = append(hs, hpoint(syscallAttrs(name), testStart.Add(time.Second), 0.25, 1, 2, 3, 4, 5))
			cs = append(cs, cpoint(syscallAttrs(name), testStart.Add(time.Second), pid))
		}
		rms = append(rms, syscallRM(processResource(4000+pid, "nginx"), hs, cs))
	}
	return rms
}

func FuzzOTLPJSONEncode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 2, 1, 4, 4, 3, 3, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Add([]byte("\x03\x02\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\xff\xfe\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkEncodeEquivalence(t, genRMs(data))
	})
}
