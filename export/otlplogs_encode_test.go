package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// checkLogsEncodeEquivalence is the oracle of both encoders: the protobuf
// output is byte for byte proto.Marshal's of LogsToProto's message
// (strings made valid UTF-8), which proto.Unmarshal also reads back equal;
// the JSON output is valid JSON on one line that protojson reads back into
// a message proto.Equal to it. enc is shared across calls: what it carries
// from one batch to the next (width guesses, grouping scratch) must not
// leak into the output.
func checkLogsEncodeEquivalence(t *testing.T, enc *otlpLogsEncoder, records []sdklog.Record) {
	t.Helper()
	want := LogsToProto(records)
	validUTF8(want.ProtoReflect())

	out := enc.appendProto(nil, records)
	var got collogspb.ExportLogsServiceRequest
	if err := proto.Unmarshal(out, &got); err != nil {
		t.Fatalf("proto.Unmarshal: %v\n%x", err, out)
	}
	if !proto.Equal(want, &got) {
		t.Fatalf("protobuf output decodes to\n%s\nwant (LogsToProto)\n%s", prototext.Format(&got), prototext.Format(want))
	}
	wantB, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatalf("proto.Marshal of LogsToProto: %v", err)
	}
	if !bytes.Equal(out, wantB) {
		i := 0
		for i < len(out) && i < len(wantB) && out[i] == wantB[i] {
			i++
		}
		t.Fatalf("protobuf output differs from proto.Marshal's at byte %d of %d/%d\n got %x\nwant %x\nmessage:\n%s",
			i, len(out), len(wantB), out[i:min(i+32, len(out))], wantB[i:min(i+32, len(wantB))], prototext.Format(want))
	}

	js, err := enc.appendJSON(nil, records, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(js) {
		t.Fatalf("invalid JSON:\n%s", js)
	}
	if strings.ContainsAny(string(js), "\n\r") {
		t.Fatalf("JSON spans lines:\n%q", js)
	}
	var gotJ collogspb.ExportLogsServiceRequest
	if err := protojson.Unmarshal(js, &gotJ); err != nil {
		t.Fatalf("protojson: %v\n%s", err, js)
	}
	if !proto.Equal(want, &gotJ) {
		t.Fatalf("JSON output decodes to\n%s\nwant (LogsToProto)\n%s\nJSON: %s", prototext.Format(&gotJ), prototext.Format(want), js)
	}
}

// recordSource emits records through a real LoggerProvider, as
// EventBuilder does, so they carry the provider's Resource and the
// logger's scope; setters then give every other field its generated value.
type recordSource struct {
	loggers []otellog.Logger
	out     []sdklog.Record
}

func (s *recordSource) OnEmit(_ context.Context, r *sdklog.Record) error {
	s.out = append(s.out, r.Clone())
	return nil
}
func (*recordSource) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (*recordSource) Shutdown(context.Context) error                         { return nil }
func (*recordSource) ForceFlush(context.Context) error                       { return nil }

// emitBlank returns a record of logger l with no fields set but its
// resource, scope and limits.
func (s *recordSource) emitBlank(l otellog.Logger) sdklog.Record {
	s.out = s.out[:0]
	l.Emit(context.Background(), otellog.Record{})
	return s.out[0]
}

// genLogs builds one batch from fuzz bytes: up to 3 providers (each its own
// *Resource, possibly with equal attributes, some allowing duplicate keys
// or limiting the attribute count so records drop some), up to 3 loggers
// each (scopes often equal by value, from the string pool), and records of
// those loggers or zero Records (nil Resource, empty scope), interleaved.
func genLogs(data []byte) []sdklog.Record {
	g := &genReader{b: data}
	src := &recordSource{}
	for range g.n(3) {
		opts := []sdklog.LoggerProviderOption{sdklog.WithProcessor(src)}
		switch g.n(3) {
		case 0:
			opts = append(opts, sdklog.WithResource(resource.Empty()))
		case 1:
			opts = append(opts, sdklog.WithResource(resource.NewSchemaless(g.attrs(0, 4)...)))
		default:
			opts = append(opts, sdklog.WithResource(resource.NewWithAttributes(g.str(), g.attrs(0, 4)...)))
		}
		switch g.n(3) {
		case 1:
			opts = append(opts, sdklog.WithAllowKeyDuplication())
		case 2:
			opts = append(opts, sdklog.WithAttributeCountLimit(1+g.n(2)))
		}
		lp := sdklog.NewLoggerProvider(opts...)
		for range 1 + g.n(2) {
			src.loggers = append(src.loggers, lp.Logger(g.str(),
				otellog.WithInstrumentationVersion(g.str()), otellog.WithSchemaURL(g.str()),
				otellog.WithInstrumentationAttributes(g.attrs(0, 2)...)))
		}
	}
	records := make([]sdklog.Record, g.n(12))
	for i := range records {
		var r sdklog.Record // nil Resource, empty scope
		if k := g.n(len(src.loggers)); k < len(src.loggers) {
			r = src.emitBlank(src.loggers[k])
		}
		r.SetTimestamp(g.time())
		r.SetObservedTimestamp(g.time())
		switch g.n(3) {
		case 0:
		case 1:
			r.SetSeverity(otellog.SeverityInfo)
		case 2:
			r.SetSeverity(otellog.Severity(int8(g.u8()))) // negative too
		default:
			r.SetSeverity(otellog.Severity(int64(g.u64()))) // beyond int32: truncated
		}
		r.SetSeverityText(g.str())
		r.SetEventName(g.str())
		if g.u8()&1 == 1 {
			r.SetBody(g.value(0))
		}
		r.AddAttributes(g.attrs(0, 7)...)
		records[i] = r
	}
	return records
}

func TestOTLPLogsEncodeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	buf := make([]byte, 4096)
	var enc otlpLogsEncoder
	for range 600 {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		checkLogsEncodeEquivalence(t, &enc, genLogs(buf[:rng.IntN(len(buf))]))
	}
}

func TestOTLPLogsEncodeCases(t *testing.T) {
	var enc otlpLogsEncoder
	check := func(records []sdklog.Record) {
		t.Helper()
		checkLogsEncodeEquivalence(t, &enc, records)
	}
	check(nil)
	check(twoEvents(t))
	check(agentShapedEvents(50))

	// A zero record: nil Resource (no resource field), an empty scope
	// (written: LogsToProto always sets it), every field at its default.
	check([]sdklog.Record{{}})
	if out := enc.appendProto(nil, []sdklog.Record{{}}); !bytes.Equal(out, []byte{0x0a, 0x06, 0x12, 0x04, 0x0a, 0x00, 0x12, 0x00}) {
		t.Errorf("zero record encodes as %x, want 0a0612040a001200", out)
	}
	if js, _ := enc.appendJSON(nil, []sdklog.Record{{}}, 0, nil); string(js) != `{"resourceLogs":[{"scopeLogs":[{"scope":{},"logRecords":[{}]}]}]}` {
		t.Errorf("zero record encodes as %s", js)
	}

	// Every body kind, non-finite and signed-zero doubles, invalid UTF-8,
	// negative and out-of-range severities, pre-epoch times, and a command
	// line long enough that lengths need three-byte varints (the width
	// guesses then shrink again for the next record).
	long := string(bytes.Repeat([]byte("x\xff"), 10000))
	var recs []sdklog.Record
	for i, body := range []attribute.Value{
		{}, attribute.BoolValue(false), attribute.Int64Value(-1 << 63), attribute.Float64Value(math.NaN()),
		attribute.Float64Value(math.Inf(-1)), attribute.Float64Value(math.Copysign(0, -1)), attribute.StringValue(""),
		attribute.StringValue("bad\xff\xfe\u2028"), attribute.ByteSliceValue(nil), attribute.ByteSliceValue([]byte{0xfb, 0xff}),
		attribute.StringSliceValue([]string{"", "\xff", long}), attribute.Float64SliceValue([]float64{math.Inf(1), -0.0}),
		attribute.SliceValue(attribute.IntValue(1), attribute.Value{}, attribute.MapValue()),
		attribute.MapValue(attribute.String("k\xfe", "v"), attribute.Slice("z"), attribute.KeyValue{Key: "empty"}),
	} {
		var r sdklog.Record
		r.SetBody(body)
		r.SetSeverity(otellog.Severity([]int{0, -1, 1 << 40, 24}[i%4]))
		r.SetTimestamp(time.Unix(-1, 0))
		r.SetObservedTimestamp(eventTime)
		r.SetEventName("telagent.process.exec\xc3")
		r.AddAttributes(attribute.String("process.command_line", long[:i*100]), attribute.Float64("nan", math.NaN()))
		recs = append(recs, r)
	}
	check(recs)

	// Interleaved resources and scopes: LogsToProto's grouping, whatever
	// the order, and a Resource whose attributes equal another's stays
	// its own ResourceLogs (grouping is by pointer).
	src := &recordSource{}
	a := sdklog.NewLoggerProvider(sdklog.WithProcessor(src), sdklog.WithResource(processResource(1, "a")))
	b := sdklog.NewLoggerProvider(sdklog.WithProcessor(src), sdklog.WithResource(processResource(1, "a")),
		sdklog.WithAttributeCountLimit(1))
	la1, la2 := a.Logger("s1"), a.Logger("s2", otellog.WithSchemaURL("https://s"))
	lb1 := b.Logger("s1", otellog.WithInstrumentationAttributes(attribute.Bool("x", true)))
	var mixed []sdklog.Record
	for i, l := range []otellog.Logger{la1, lb1, la2, nil, la1, lb1, la2, nil, la2} {
		var r sdklog.Record
		if l != nil {
			r = src.emitBlank(l)
		}
		r.SetEventName("e" + string(rune('0'+i)))
		r.AddAttributes(attribute.Int("i", i), attribute.Int("j", i), attribute.Bool("k", true)) // b drops 2
		mixed = append(mixed, r)
	}
	check(mixed)
	if req := LogsToProto(mixed); len(req.ResourceLogs) != 3 || len(req.ResourceLogs[0].ScopeLogs) != 2 ||
		req.ResourceLogs[1].ScopeLogs[0].LogRecords[0].DroppedAttributesCount != 2 {
		t.Fatalf("the mixed batch is not the shape this case means to test:\n%s", prototext.Format(req))
	}
}

// TestOTLPLogsEncodeForgets: nothing of a batch stays reachable from the
// encoder (it lives as long as the exporter), and the next batch is
// grouped afresh.
func TestOTLPLogsEncodeForgets(t *testing.T) {
	var enc otlpLogsEncoder
	enc.appendProto(nil, twoEvents(t))
	if _, err := enc.appendJSON(nil, twoEvents(t), 0, nil); err != nil {
		t.Fatal(err)
	}
	if len(enc.byRes) != 0 || len(enc.res) != 0 || len(enc.scopes) != 0 {
		t.Fatalf("encoder keeps %d resources, %d/%d groups", len(enc.byRes), len(enc.res), len(enc.scopes))
	}
	for _, g := range enc.scopes[:cap(enc.scopes)] {
		if g.scope.Name != "" {
			t.Fatal("a scope group's memory still holds a scope")
		}
	}
	for _, g := range enc.res[:cap(enc.res)] {
		if g.res != nil {
			t.Fatal("a resource group's memory still holds a resource")
		}
	}
}

// TestOTLPLogsEncodeChunks: the streamed JSON is the whole request cut at
// record ends into pieces of at least chunk bytes, and an emit error stops
// the encoding.
func TestOTLPLogsEncodeChunks(t *testing.T) {
	records := agentShapedEvents(20)
	var enc otlpLogsEncoder
	whole, _ := enc.appendJSON(nil, records, 0, nil)
	var pieces [][]byte
	emit := func(p []byte) error { pieces = append(pieces, bytes.Clone(p)); return nil }
	rest, err := enc.appendJSON(nil, records, 2000, emit)
	if err != nil {
		t.Fatal(err)
	}
	if len(pieces) < 5 {
		t.Fatalf("%d pieces of a %d-byte request in chunks of 2000", len(pieces), len(whole))
	}
	for _, p := range pieces {
		if len(p) < 2000 || p[len(p)-1] != '}' {
			t.Fatalf("piece of %d bytes ending %q", len(p), p[len(p)-1])
		}
	}
	if got := append(bytes.Join(pieces, nil), rest...); !bytes.Equal(got, whole) {
		t.Fatal("the pieces differ from the whole request")
	}
	failed := errors.New("disk full")
	calls := 0
	if _, err := enc.appendJSON(nil, records, 2000, func([]byte) error { calls++; return failed }); !errors.Is(err, failed) || calls != 1 {
		t.Fatalf("emit error: got %v after %d calls", err, calls)
	}
	if len(enc.res) != 0 {
		t.Fatal("an emit error left the batch's groups")
	}
}

// TestOTLPLogsEncodeAllocs: encoding the agent's shape of events (one
// Resource per process, one scope, string, int and bool attributes) into a
// buffer that has room allocates nothing at all, so nothing per record,
// once the encoder's grouping memory has grown to the batch.
func TestOTLPLogsEncodeAllocs(t *testing.T) {
	records := agentShapedEvents(256)
	var enc otlpLogsEncoder
	buf := enc.appendProto(nil, records)
	if n := testing.AllocsPerRun(20, func() { buf = enc.appendProto(buf[:0], records) }); n != 0 {
		t.Errorf("protobuf: %.1f allocations per batch of %d records into a warm buffer, want 0", n, len(records))
	}
	buf, _ = enc.appendJSON(buf[:0], records, 0, nil)
	if n := testing.AllocsPerRun(20, func() { buf, _ = enc.appendJSON(buf[:0], records, 0, nil) }); n != 0 {
		t.Errorf("JSON: %.1f allocations per batch of %d records into a warm buffer, want 0", n, len(records))
	}
}

// agentShapedEvents is what EventBuilder makes of n/2 processes' exec and
// exit events (each process its own Resource), in the order a busy host
// produces them: execs of a wave of processes, then their exits.
func agentShapedEvents(n int) []sdklog.Record {
	b := NewEventBuilder("v1.2.3")
	procs := n / 2
	res := make([]*resource.Resource, procs)
	for i := range res {
		res[i] = processResource(int64(5000+i), "worker")
	}
	for i, r := range res {
		b.Add(r, "telagent.process.exec", eventTime, []attribute.KeyValue{
			attribute.Int64("process.parent_pid", 1),
			attribute.String("process.command_line", "/usr/bin/worker --id "+string(rune('a'+i%26))+" --config /etc/worker.conf"),
			attribute.String("process.executable.path", "/usr/bin/worker"),
			attribute.String("user.name", "www-data"),
			attribute.Int64("process.user.id", 33),
			attribute.Bool("telagent.process.container", i%2 == 0),
		})
	}
	for i, r := range res {
		b.Add(r, "telagent.process.exit", eventTime.Add(time.Second), []attribute.KeyValue{
			attribute.Int("process.exit.code", i%3),
			attribute.Float64("telagent.process.lifetime", 1.5),
			attribute.Bool("telagent.process.oom_killed", false),
		})
	}
	return b.Take()
}

// BenchmarkOTLPLogsEncode compares the hand-written encoders with the paths
// they replace (LogsToProto, then proto.Marshal into a reused buffer, or
// protojson and json.Compact), per record, for a 1024-record batch (the
// exporter's largest).
func BenchmarkOTLPLogsEncode(b *testing.B) {
	records := agentShapedEvents(1024)
	per := func(b *testing.B, n int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(records)), "ns/record")
		b.ReportMetric(float64(n)/float64(len(records)), "bytes/record")
	}
	b.Run("hand-proto", func(b *testing.B) {
		var enc otlpLogsEncoder
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = enc.appendProto(buf[:0], records)
		}
		per(b, len(buf))
	})
	b.Run("logstoproto-marshal", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			var err error
			buf, err = proto.MarshalOptions{}.MarshalAppend(buf[:0], LogsToProto(records))
			if err != nil {
				b.Fatal(err)
			}
		}
		per(b, len(buf))
	})
	b.Run("hand-json", func(b *testing.B) {
		var enc otlpLogsEncoder
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = enc.appendJSON(buf[:0], records, 0, nil)
		}
		per(b, len(buf))
	})
	b.Run("logstoproto-protojson", func(b *testing.B) {
		var line bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			raw, err := otlpJSONMarshal.Marshal(LogsToProto(records))
			if err != nil {
				b.Fatal(err)
			}
			line.Reset()
			if err := json.Compact(&line, raw); err != nil {
				b.Fatal(err)
			}
		}
		per(b, line.Len())
	})
}

func FuzzOTLPLogsEncode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17})
	f.Add([]byte("\x03\x02\x02\x04\x05\x01\x02\x03\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\xff\xfe\x00\x01\x02\x03"))
	f.Add([]byte("\x01\x00\x00\x00\x00\x00\x00\x00\x0c\x01\x01\x01\x01\x01\x01\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var enc otlpLogsEncoder
		checkLogsEncodeEquivalence(t, &enc, genLogs(data))
	})
}

// TestOTLPJSONEventsStreams: a batch bigger than a chunk still lands as
// exactly one line of the file, the request LogsToProto builds, and the
// exporter allocates nothing per record once its buffers have grown.
func TestOTLPJSONEventsStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	m, err := NewOTLPJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := OTLPJSONEvents(m)
	if err != nil {
		t.Fatal(err)
	}
	records := agentShapedEvents(256)
	ctx := context.Background()
	if err := ev.ExportEvents(ctx, records); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 3*otlpJSONChunk || bytes.IndexByte(raw, '\n') != len(raw)-1 {
		t.Fatalf("%d bytes with a newline at %d: want one line of several chunks", len(raw), bytes.IndexByte(raw, '\n'))
	}
	var got collogspb.ExportLogsServiceRequest
	if err := protojson.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(LogsToProto(records), &got) {
		t.Fatal("the file's line is not the batch")
	}
	if n := testing.AllocsPerRun(10, func() {
		if err := ev.ExportEvents(ctx, records); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%.1f allocations per batch of %d records, want 0", n, len(records))
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// partialLogsServer records the log requests it gets and answers each with
// a partial success, over gRPC or HTTP (protobuf or JSON, as it came).
type partialLogsServer struct {
	collogspb.UnimplementedLogsServiceServer
	mu   sync.Mutex
	reqs []*collogspb.ExportLogsServiceRequest
}

var partialLogsResponse = &collogspb.ExportLogsServiceResponse{PartialSuccess: &collogspb.ExportLogsPartialSuccess{
	RejectedLogRecords: 2, ErrorMessage: "two refused",
}}

func (s *partialLogsServer) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, req)
	return partialLogsResponse, nil
}

func (s *partialLogsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	req := &collogspb.ExportLogsServiceRequest{}
	asJSON := r.Header.Get("Content-Type") == "application/json"
	var err error
	if asJSON {
		err = protojson.Unmarshal(raw, req)
	} else {
		err = proto.Unmarshal(raw, req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = s.Export(r.Context(), req)
	var out []byte
	if asJSON {
		out, _ = protojson.Marshal(partialLogsResponse)
	} else {
		out, _ = proto.Marshal(partialLogsResponse)
	}
	w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
	_, _ = w.Write(out)
}

// TestOTLPLogsExportEncoded: over every protocol the exporter sends each
// batch as one request that is LogsToProto's message (a second batch
// through the reused buffer too), and a partial success is a
// RejectedError.
func TestOTLPLogsExportEncoded(t *testing.T) {
	batches := [][]sdklog.Record{agentShapedEvents(64), twoEvents(t)}
	for _, protocol := range []string{ProtocolGRPC, ProtocolHTTPProtobuf, ProtocolHTTPJSON} {
		t.Run(strings.ReplaceAll(protocol, "/", "_"), func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			recv := &partialLogsServer{}
			if protocol == ProtocolGRPC {
				srv := grpc.NewServer()
				collogspb.RegisterLogsServiceServer(srv, recv)
				go func() { _ = srv.Serve(lis) }()
				t.Cleanup(srv.Stop)
			} else {
				srv := &http.Server{Handler: recv}
				go func() { _ = srv.Serve(lis) }()
				t.Cleanup(func() { _ = srv.Close() })
			}
			ctx := waitCtx(t)
			exp, err := NewOTLPLogs(ctx, OTLPOptions{Protocol: protocol, Endpoint: "http://" + lis.Addr().String()})
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Shutdown(ctx)
			for _, records := range batches {
				var rej *RejectedError
				if err := exp.ExportEvents(ctx, records); !errors.As(err, &rej) || rej.Points != 2 || rej.Message != "two refused" {
					t.Fatalf("partial success: error %v, want a RejectedError of 2", err)
				}
			}
			recv.mu.Lock()
			defer recv.mu.Unlock()
			if len(recv.reqs) != len(batches) {
				t.Fatalf("%d requests, want one per batch (%d)", len(recv.reqs), len(batches))
			}
			for i, records := range batches {
				if want := LogsToProto(records); !proto.Equal(want, recv.reqs[i]) {
					t.Errorf("request %d is not the batch:\n%s", i, prototext.Format(recv.reqs[i]))
				}
			}
		})
	}
}
