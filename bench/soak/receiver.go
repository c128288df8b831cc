package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the Collector's otlp exporter compresses by default
)

// selfMetrics are the agent's self-telemetry counters the soak accounts.
var selfMetrics = []string{
	"telagent.export.drops",
	"telagent.export.attempts",
	"telagent.event.drops",
	"telagent.metric_set.overflows",
}

// receiver is the OTLP/gRPC endpoint downstream of the flapping Collector.
// Unlike export/otlptest it keeps nothing of a request but the counters the
// soak reports, so that a 10-minute run does not grow the harness itself.
type receiver struct {
	colmetricspb.UnimplementedMetricsServiceServer

	lis  net.Listener
	srv  *grpc.Server
	mu   sync.Mutex
	reqs int // metric export requests
	logs int // log records
	// series is each self-telemetry series' total, by "name{attrs}":
	// cumulative points replace it (the newest start-to-now total wins),
	// delta points add to it.
	series map[string]float64
	// newest is the time of the cumulative point in series.
	newest map[string]uint64
}

type logsService struct {
	collogspb.UnimplementedLogsServiceServer
	r *receiver
}

func startReceiver() (*receiver, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: listen: %w", err)
	}
	// The Collector's batch processor merges a recovered backlog into
	// requests well past gRPC's default 4 MiB limit.
	r := &receiver{lis: lis, srv: grpc.NewServer(grpc.MaxRecvMsgSize(256 << 20)), series: map[string]float64{}, newest: map[string]uint64{}}
	colmetricspb.RegisterMetricsServiceServer(r.srv, r)
	collogspb.RegisterLogsServiceServer(r.srv, logsService{r: r})
	go func() { _ = r.srv.Serve(lis) }()
	return r, nil
}

func (r *receiver) addr() string { return r.lis.Addr().String() }
func (r *receiver) stop()        { r.srv.Stop() }

func (l logsService) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	n := 0
	for _, rl := range req.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			n += len(sl.GetLogRecords())
		}
	}
	l.r.mu.Lock()
	l.r.logs += n
	l.r.mu.Unlock()
	return &collogspb.ExportLogsServiceResponse{}, nil
}

func (r *receiver) Export(_ context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs++
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if !slices.Contains(selfMetrics, m.GetName()) || m.GetSum() == nil {
					continue
				}
				cumulative := m.GetSum().GetAggregationTemporality() == metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
				for _, dp := range m.GetSum().GetDataPoints() {
					v := dp.GetAsDouble()
					if _, ok := dp.GetValue().(*metricspb.NumberDataPoint_AsInt); ok {
						v = float64(dp.GetAsInt())
					}
					k := m.GetName() + attrString(dp.GetAttributes())
					switch {
					case !cumulative:
						r.series[k] += v
					case dp.GetTimeUnixNano() >= r.newest[k]:
						r.series[k], r.newest[k] = v, dp.GetTimeUnixNano()
					}
				}
			}
		}
	}
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

func attrString(kvs []*commonpb.KeyValue) string {
	if len(kvs) == 0 {
		return ""
	}
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, kv.GetKey()+"="+anyString(kv.GetValue()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	}
	return v.String()
}

// snapshot returns the request and log-record counts and a copy of the
// self-telemetry series.
func (r *receiver) snapshot() (reqs, logs int, series map[string]float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	series = make(map[string]float64, len(r.series))
	for k, v := range r.series {
		series[k] = v
	}
	return r.reqs, r.logs, series
}
