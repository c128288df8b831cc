package otlptest

import (
	"context"
	"errors"
	"testing"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestReceiver(t *testing.T) {
	r := NewMetricsReceiver(t)
	conn, err := grpc.NewClient(r.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := colmetricspb.NewMetricsServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	twoResources := func(reqs []*colmetricspb.ExportMetricsServiceRequest) bool {
		n := 0
		for _, q := range reqs {
			n += len(q.ResourceMetrics)
		}
		return n >= 2
	}
	done := make(chan error, 1)
	go func() { done <- r.WaitFor(ctx, twoResources) }()

	req := &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{SchemaUrl: "a"}}}
	for range 2 {
		if _, err := client.Export(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	req.ResourceMetrics[0].SchemaUrl = "changed after sending" // the stored copy must not change
	if err := <-done; err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	if got := r.Requests(); len(got) != 2 || got[1].ResourceMetrics[0].SchemaUrl != "a" {
		t.Fatalf("requests: %v", got)
	}
	if got := r.ResourceMetrics(); len(got) != 2 {
		t.Fatalf("%d resource metrics", len(got))
	}

	r.SetError(status.Error(codes.Unavailable, "down"))
	if _, err := client.Export(ctx, req); status.Code(err) != codes.Unavailable {
		t.Fatalf("with SetError: %v", err)
	}
	if n := len(r.Requests()); n != 2 {
		t.Errorf("failed request was recorded: %d", n)
	}

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	err = r.WaitFor(short, func(reqs []*colmetricspb.ExportMetricsServiceRequest) bool { return len(reqs) > 2 })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor on an unmet condition: %v", err)
	}
}
