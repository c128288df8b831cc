// Package otlptest provides an in-process OTLP/gRPC metrics receiver for
// tests: it records every ExportMetricsServiceRequest it is sent so a test
// can assert on exactly what went over the wire, without a Collector.
package otlptest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Receiver is a plaintext OTLP/gRPC metrics endpoint on 127.0.0.1.
type Receiver struct {
	colmetricspb.UnimplementedMetricsServiceServer

	lis net.Listener
	srv *grpc.Server

	mu      sync.Mutex
	reqs    []*colmetricspb.ExportMetricsServiceRequest
	changed chan struct{} // closed and replaced on every new request
	fail    error
}

// NewMetricsReceiver starts a receiver on 127.0.0.1:0 and stops it when the
// test ends. It fails the test if it cannot listen.
func NewMetricsReceiver(t testing.TB) *Receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("otlptest: listen: %v", err)
	}
	r := &Receiver{lis: lis, srv: grpc.NewServer(), changed: make(chan struct{})}
	colmetricspb.RegisterMetricsServiceServer(r.srv, r)
	go func() { _ = r.srv.Serve(lis) }() // returns when Stop is called
	// Stop, not GracefulStop: a client with an open stream (or a retrying
	// exporter the test forgot to shut down) must not hang the test.
	t.Cleanup(r.srv.Stop)
	return r
}

// Addr is the "host:port" the receiver listens on.
func (r *Receiver) Addr() string { return r.lis.Addr().String() }

// SetError makes every following Export fail with err (a gRPC status error,
// e.g. status.Error(codes.InvalidArgument, "..."), controls whether the
// client retries); nil restores success. Failed requests are not recorded.
func (r *Receiver) SetError(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

// Export implements the OTLP MetricsService.
func (r *Receiver) Export(_ context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return nil, r.fail
	}
	// gRPC does not reuse the request after the handler returns, but a
	// clone makes the stored copy independent of any future change to that.
	r.reqs = append(r.reqs, proto.Clone(req).(*colmetricspb.ExportMetricsServiceRequest))
	close(r.changed)
	r.changed = make(chan struct{})
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

// Requests returns the requests received so far, in arrival order. The
// slice is a copy; the messages must not be modified.
func (r *Receiver) Requests() []*colmetricspb.ExportMetricsServiceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*colmetricspb.ExportMetricsServiceRequest(nil), r.reqs...)
}

// ResourceMetrics returns every ResourceMetrics of every request received so
// far, flattened in arrival order.
func (r *Receiver) ResourceMetrics() []*metricspb.ResourceMetrics {
	var out []*metricspb.ResourceMetrics
	for _, req := range r.Requests() {
		out = append(out, req.GetResourceMetrics()...)
	}
	return out
}

// WaitFor blocks until cond, called with the requests received so far,
// returns true, or ctx ends. cond runs again after every new request.
func (r *Receiver) WaitFor(ctx context.Context, cond func([]*colmetricspb.ExportMetricsServiceRequest) bool) error {
	for {
		r.mu.Lock()
		reqs := append([]*colmetricspb.ExportMetricsServiceRequest(nil), r.reqs...)
		changed := r.changed
		r.mu.Unlock()
		if cond(reqs) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("otlptest: condition not met after %d requests: %w", len(reqs), ctx.Err())
		}
	}
}
