package export

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/telagent/telagent/export/otlptest"
)

// threeResources: two processes and the host-only overflow resource, each
// with a histogram and an error counter whose numbers identify it.
func threeResources() []metricdata.ResourceMetrics {
	at := testStart.Add(5 * time.Second)
	return []metricdata.ResourceMetrics{
		syscallRM(processResource(100, "nginx"),
			[]metricdata.HistogramDataPoint[float64]{hpoint(syscallAttrs("read"), at, 0.125, 1, 0, 0, 0, 0)},
			[]metricdata.DataPoint[int64]{cpoint(syscallAttrs("read"), at, 1)}),
		syscallRM(processResource(200, "postgres"),
			[]metricdata.HistogramDataPoint[float64]{hpoint(syscallAttrs("fsync"), at, 2.5, 0, 2, 0, 0, 0)},
			[]metricdata.DataPoint[int64]{cpoint(syscallAttrs("fsync"), at, 2)}),
		syscallRM(hostResource(),
			[]metricdata.HistogramDataPoint[float64]{hpoint(overflowAttrs(), at, 7.25, 0, 0, 3, 0, 0)},
			[]metricdata.DataPoint[int64]{cpoint(overflowAttrs(), at, 3)}),
	}
}

func totalResources(reqs []*colmetricspb.ExportMetricsServiceRequest) int {
	n := 0
	for _, r := range reqs {
		n += len(r.ResourceMetrics)
	}
	return n
}

func resourcePID(rm *metricspb.ResourceMetrics) int64 {
	for _, kv := range rm.GetResource().GetAttributes() {
		if kv.Key == "process.pid" {
			return kv.Value.GetIntValue()
		}
	}
	return -1 // the host-only (overflow) resource
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOTLPGRPCSendsEveryResource(t *testing.T) {
	ctx := waitCtx(t)
	rcv := otlptest.NewMetricsReceiver(t)
	exp, err := NewOTLPGRPC(ctx, OTLPOptions{Endpoint: rcv.Addr()}) // bare host:port: plaintext
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })

	if err := exp.Export(ctx, threeResources()); err != nil {
		t.Fatalf("export: %v", err)
	}
	err = rcv.WaitFor(ctx, func(reqs []*colmetricspb.ExportMetricsServiceRequest) bool { return totalResources(reqs) >= 3 })
	if err != nil {
		t.Fatal(err)
	}
	reqs := rcv.Requests()
	if len(reqs) != 1 {
		t.Errorf("%d requests, want 1 (every resource of the interval in one)", len(reqs))
	}
	if n, ok := RequestsSent(exp); !ok || n != 1 {
		t.Errorf("RequestsSent = %d, %v; want 1", n, ok)
	}
	rms := rcv.ResourceMetrics()
	if len(rms) != 3 {
		t.Fatalf("%d resources received, want 3", len(rms))
	}
	slices.SortFunc(rms, func(a, b *metricspb.ResourceMetrics) int { return cmp.Compare(resourcePID(a), resourcePID(b)) })

	want := []struct {
		pid     int64
		count   uint64
		sum     float64
		buckets []uint64
		errs    int64
		attr    string
	}{
		{-1, 3, 7.25, []uint64{0, 0, 3, 0, 0}, 3, "otel.metric.overflow"},
		{100, 1, 0.125, []uint64{1, 0, 0, 0, 0}, 1, "telagent.syscall.name"},
		{200, 2, 2.5, []uint64{0, 2, 0, 0, 0}, 2, "telagent.syscall.name"},
	}
	for i, w := range want {
		rm := rms[i]
		if got := resourcePID(rm); got != w.pid {
			t.Errorf("resource %d: pid %d, want %d", i, got, w.pid)
			continue
		}
		if n := len(rm.GetResource().GetAttributes()); (w.pid < 0 && n != 3) || (w.pid > 0 && n != 7) {
			t.Errorf("pid %d: %d resource attributes", w.pid, n)
		}
		sm := rm.ScopeMetrics[0]
		if sm.Scope.GetName() != testScope {
			t.Errorf("pid %d: scope %q", w.pid, sm.Scope.GetName())
		}
		h := sm.Metrics[0]
		if h.Name != "telagent.syscall.duration" || h.Unit != "s" {
			t.Errorf("pid %d: metric %q unit %q", w.pid, h.Name, h.Unit)
		}
		hist := h.GetHistogram()
		if hist.GetAggregationTemporality() != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
			t.Errorf("pid %d: temporality %v", w.pid, hist.GetAggregationTemporality())
		}
		dp := hist.GetDataPoints()[0]
		if dp.Count != w.count || dp.GetSum() != w.sum || !slices.Equal(dp.BucketCounts, w.buckets) || !slices.Equal(dp.ExplicitBounds, testBounds) {
			t.Errorf("pid %d: histogram count=%d sum=%v buckets=%v bounds=%v", w.pid, dp.Count, dp.GetSum(), dp.BucketCounts, dp.ExplicitBounds)
		}
		if dp.Attributes[0].Key != w.attr {
			t.Errorf("pid %d: data point attribute %q", w.pid, dp.Attributes[0].Key)
		}
		if dp.StartTimeUnixNano != uint64(testStart.UnixNano()) {
			t.Errorf("pid %d: start %d", w.pid, dp.StartTimeUnixNano)
		}
		sum := sm.Metrics[1].GetSum()
		if !sum.GetIsMonotonic() || sum.DataPoints[0].GetAsInt() != w.errs {
			t.Errorf("pid %d: errors monotonic=%v value=%d", w.pid, sum.GetIsMonotonic(), sum.DataPoints[0].GetAsInt())
		}
	}
}

func TestOTLPGRPCEndpointFromEnvironment(t *testing.T) {
	ctx := waitCtx(t)
	rcv := otlptest.NewMetricsReceiver(t)
	// The signal-specific variable wins over the generic one; http:// means
	// plaintext.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://"+rcv.Addr())
	exp, err := NewOTLPGRPC(ctx, OTLPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	if err := exp.Export(ctx, threeResources()[:1]); err != nil {
		t.Fatalf("export: %v", err)
	}
	if rms := rcv.ResourceMetrics(); len(rms) != 1 || resourcePID(rms[0]) != 100 {
		t.Fatalf("received %d resources", len(rms))
	}
}

func TestOTLPGRPCReportsErrors(t *testing.T) {
	ctx := waitCtx(t)
	rcv := otlptest.NewMetricsReceiver(t)
	rcv.SetError(status.Error(codes.InvalidArgument, "rejected by test"))
	exp, err := NewOTLPGRPC(ctx, OTLPOptions{Endpoint: rcv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	err = exp.Export(ctx, threeResources())
	if err == nil {
		t.Fatal("export succeeded against a failing receiver")
	}
	for _, s := range []string{rcv.Addr(), "rejected by test"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not mention %q: %v", s, err)
		}
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := exp.Export(ctx, threeResources()); err == nil {
		t.Error("export after shutdown succeeded")
	}
}

func TestOTLPGRPCInsecureFalseUsesTLS(t *testing.T) {
	rcv := otlptest.NewMetricsReceiver(t)
	secure := false
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	exp, err := NewOTLPGRPC(ctx, OTLPOptions{Endpoint: rcv.Addr(), Insecure: &secure})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	// A TLS client cannot talk to the plaintext receiver: nothing arrives.
	if err := exp.Export(ctx, threeResources()[:1]); err == nil {
		t.Error("TLS export to a plaintext receiver succeeded")
	}
	if n := len(rcv.Requests()); n != 0 {
		t.Errorf("receiver got %d requests over TLS", n)
	}
}

// An interval over the size bound goes out in several requests, each
// within it, with every resource exactly once, in order and equal to
// ToProto's, over every protocol; an interval within it is one request.
func TestOTLPSplitsLargeIntervals(t *testing.T) {
	var rms []metricdata.ResourceMetrics
	for i := range 50 {
		rms = append(rms, threeResources()[i%3])
	}
	want := ToProto(rms)
	one := proto.Size(want.ResourceMetrics[0]) + 3 // its tag and length
	for _, protocol := range []string{ProtocolGRPC, ProtocolHTTPProtobuf, ProtocolHTTPJSON} {
		t.Run(strings.ReplaceAll(protocol, "/", "_"), func(t *testing.T) {
			srv := otlptest.NewServer(t, otlptest.Options{HTTP: protocol != ProtocolGRPC})
			ctx := waitCtx(t)
			exp, err := NewOTLP(ctx, OTLPOptions{Endpoint: srv.URL(), Protocol: protocol})
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Shutdown(ctx)
			m := exp.(*otlpMetrics)
			m.maxRequest = 10 * one
			if protocol == ProtocolHTTPJSON {
				m.maxRequest = 10 * len(protojsonOf(t, want.ResourceMetrics[0]))
			}
			if err := m.Export(ctx, rms); err != nil {
				t.Fatal(err)
			}
			reqs := srv.Metrics()
			if len(reqs) < 5 || len(reqs) > 6 {
				t.Errorf("%d requests for 50 resources at ~10 per request", len(reqs))
			}
			var got []*metricspb.ResourceMetrics
			for _, r := range reqs {
				if protocol != ProtocolHTTPJSON && proto.Size(r) > m.maxRequest {
					t.Errorf("request of %d bytes over the bound %d", proto.Size(r), m.maxRequest)
				}
				got = append(got, r.ResourceMetrics...)
			}
			if !proto.Equal(&colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: got}, want) {
				t.Errorf("the requests' %d resources differ from the interval's 50", len(got))
			}
			m.maxRequest = maxRequestBytes
			if err := m.Export(ctx, rms); err != nil {
				t.Fatal(err)
			}
			if n := len(srv.Metrics()) - len(reqs); n != 1 {
				t.Errorf("an interval within the bound went out in %d requests", n)
			}
		})
	}
}

func protojsonOf(t *testing.T, m proto.Message) []byte {
	b, err := otlpJSONMarshal.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
