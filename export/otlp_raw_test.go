package export

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/telagent/telagent/export/otlptest"
)

// sendEncoded delivers hand-encoded requests over gRPC and http/protobuf,
// with and without gzip, with the configured headers and user agent: the
// receiver decodes exactly ToProto's message of each interval. The second
// interval is encoded into the same buffer as the first, as the exporter
// reuses it.
func TestSendEncodedRaw(t *testing.T) {
	// A random interval has invalid UTF-8, every aggregation and attribute
	// type; the agent-shaped one is 400 points in 50 resources.
	rng := rand.New(rand.NewPCG(3, 3))
	seed := make([]byte, 3000)
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	seed[0] = 3 // three resources
	intervals := [][]metricdata.ResourceMetrics{agentShapedInterval(), genRMs(seed)}
	var enc otlpProtoEncoder
	if n := len(enc.appendRequest(nil, intervals[1])); n < 500 {
		t.Fatalf("the random interval encodes to %d bytes: pick a seed that makes a real one", n)
	}
	for _, protocol := range []string{ProtocolGRPC, ProtocolHTTPProtobuf} {
		for _, gzip := range []bool{false, true} {
			name := strings.ReplaceAll(protocol, "/", "_")
			if gzip {
				name += "_gzip"
			}
			t.Run(name, func(t *testing.T) {
				srv := otlptest.NewServer(t, otlptest.Options{HTTP: protocol != ProtocolGRPC})
				t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k1")
				t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", map[bool]string{false: "none", true: "gzip"}[gzip])
				ctx := waitCtx(t)
				c, err := newOTLPClient(OTLPOptions{Protocol: protocol, Endpoint: srv.URL(), UserAgent: "telagent/test"}, "METRICS", "/v1/metrics")
				if err != nil {
					t.Fatal(err)
				}
				defer c.close()

				var buf []byte
				for _, rms := range intervals {
					buf = enc.appendRequest(buf[:0], rms)
					if err := c.sendEncoded(ctx, otlpMetricsExportMethod, buf, &colmetricspb.ExportMetricsServiceResponse{}); err != nil {
						t.Fatal(err)
					}
				}

				reqs := srv.Requests()
				if len(reqs) != len(intervals) {
					t.Fatalf("%d requests, want %d", len(reqs), len(intervals))
				}
				for i, r := range reqs {
					want := ToProto(intervals[i])
					validUTF8(want.ProtoReflect())
					if protocol == ProtocolGRPC {
						// The gRPC receiver stores a proto.Clone, and
						// cloning drops a -0 in a field without presence
						// (merge skips values == 0): so must the oracle.
						want = proto.Clone(want).(*colmetricspb.ExportMetricsServiceRequest)
					}
					if !proto.Equal(want, r.Metrics) {
						t.Errorf("request %d received as\n%s\nwant\n%s", i, prototext.Format(r.Metrics), prototext.Format(want))
					}
					if r.Gzip != gzip {
						t.Errorf("request %d: gzip %v, want %v", i, r.Gzip, gzip)
					}
					if got := r.Headers["api-key"]; len(got) != 1 || got[0] != "k1" {
						t.Errorf("request %d: api-key %q", i, got)
					}
					if ua := strings.Join(r.Headers["user-agent"], " "); !strings.Contains(ua, "telagent/test") {
						t.Errorf("request %d: user agent %q", i, ua)
					}
				}
				if n := c.requests.Load(); n != uint64(len(intervals)) {
					t.Errorf("requests counter %d, want %d", n, len(intervals))
				}

				// A refusal is reported as send reports it.
				srv.SetError(status.Error(codes.InvalidArgument, "no thanks"))
				err = c.sendEncoded(ctx, otlpMetricsExportMethod, buf, &colmetricspb.ExportMetricsServiceResponse{})
				if err == nil || !strings.HasPrefix(err.Error(), "otlp export to "+c.cfg.description+": ") {
					t.Errorf("refused request: error %v", err)
				}
				if protocol == ProtocolGRPC && status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
					t.Errorf("refused request: code %v, want InvalidArgument", status.Code(errors.Unwrap(err)))
				}
			})
		}
	}
}

// partialServer answers every metrics export with a partial success.
type partialServer struct {
	colmetricspb.UnimplementedMetricsServiceServer
}

var partialResponse = &colmetricspb.ExportMetricsServiceResponse{PartialSuccess: &colmetricspb.ExportMetricsPartialSuccess{
	RejectedDataPoints: 3, ErrorMessage: "three refused",
}}

func (partialServer) Export(context.Context, *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	return partialResponse, nil
}

// The response is decoded into resp over both transports: a partial
// success reaches the caller.
func TestSendEncodedResponse(t *testing.T) {
	var enc otlpProtoEncoder
	body := enc.appendRequest(nil, threeResources())
	for _, protocol := range []string{ProtocolGRPC, ProtocolHTTPProtobuf} {
		t.Run(strings.ReplaceAll(protocol, "/", "_"), func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if protocol == ProtocolGRPC {
				srv := grpc.NewServer()
				colmetricspb.RegisterMetricsServiceServer(srv, partialServer{})
				go func() { _ = srv.Serve(lis) }()
				t.Cleanup(srv.Stop)
			} else {
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					var req colmetricspb.ExportMetricsServiceRequest
					raw, _ := io.ReadAll(r.Body)
					if err := proto.Unmarshal(raw, &req); err != nil || len(req.ResourceMetrics) != 3 {
						http.Error(w, "bad request", http.StatusBadRequest)
						return
					}
					out, _ := proto.Marshal(partialResponse)
					w.Header().Set("Content-Type", "application/x-protobuf")
					_, _ = w.Write(out)
				})}
				go func() { _ = srv.Serve(lis) }()
				t.Cleanup(func() { _ = srv.Close() })
			}
			c, err := newOTLPClient(OTLPOptions{Protocol: protocol, Endpoint: "http://" + lis.Addr().String()}, "METRICS", "/v1/metrics")
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			resp := &colmetricspb.ExportMetricsServiceResponse{}
			if err := c.sendEncoded(waitCtx(t), otlpMetricsExportMethod, body, resp); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(resp, partialResponse) {
				t.Errorf("response %v, want %v", resp, partialResponse)
			}
		})
	}
}

// http/json has no protobuf body: sendEncoded refuses instead of sending a
// body the receiver would misread.
func TestSendEncodedHTTPJSONRefused(t *testing.T) {
	c, err := newOTLPClient(OTLPOptions{Protocol: ProtocolHTTPJSON, Endpoint: "http://127.0.0.1:1"}, "METRICS", "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	err = c.sendEncoded(context.Background(), otlpMetricsExportMethod, []byte{0x0a, 0x00}, &colmetricspb.ExportMetricsServiceResponse{})
	if err == nil || !strings.Contains(err.Error(), "http/json") {
		t.Errorf("error %v, want a refusal naming http/json", err)
	}
	if n := c.requests.Load(); n != 0 {
		t.Errorf("%d requests counted, want 0", n)
	}
}

// TestSendEncodedReusesCopies: the request copies gRPC sends are recycled
// through the client's own free list: 20 requests of 2 MiB make a couple
// of copies, not one each, and at most one is kept.
func TestSendEncodedReusesCopies(t *testing.T) {
	srv := otlptest.NewServer(t, otlptest.Options{})
	c, err := newOTLPClient(OTLPOptions{Protocol: ProtocolGRPC, Endpoint: srv.URL()}, "METRICS", "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	// One resource whose schema URL pads the request to 2 MiB.
	var pe otlpProtoEncoder
	body := pe.appendResourceMetrics(nil, &metricdata.ResourceMetrics{
		Resource: resource.NewWithAttributes(strings.Repeat("u", 2<<20))})
	ctx := waitCtx(t)
	const n = 20
	for range n {
		if err := c.sendEncoded(ctx, otlpMetricsExportMethod, body, &colmetricspb.ExportMetricsServiceResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(srv.Metrics()); got != n {
		t.Errorf("server got %d requests, want %d", got, n)
	}
	c.sendBufs.mu.Lock()
	defer c.sendBufs.mu.Unlock()
	if c.sendBufs.made > 3 {
		t.Errorf("%d request copies made for %d sequential requests: they are not reused", c.sendBufs.made, n)
	}
	if len(c.sendBufs.free) > maxFreeSendBufs {
		t.Errorf("%d free copies kept, at most %d", len(c.sendBufs.free), maxFreeSendBufs)
	}
}
