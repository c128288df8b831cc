package export

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/telagent/telagent/metrics"
)

var eventTime = time.Unix(1_700_000_100, 5)

// twoEvents: an exec and an exit of one process, and an exit of another.
func twoEvents(t *testing.T) []sdklog.Record {
	t.Helper()
	b := NewEventBuilder("v1.2.3")
	sh, cat := processResource(42, "sh"), processResource(43, "cat")
	b.Add(sh, "telagent.process.exec", eventTime, []attribute.KeyValue{
		attribute.Int64("process.parent_pid", 1),
		attribute.StringSlice("process.command_args", []string{"sh", "-c", "exit 3"}),
	})
	b.Add(sh, "telagent.process.exit", eventTime.Add(time.Second), []attribute.KeyValue{
		attribute.Int("process.exit.code", 3), attribute.Float64("telagent.process.lifetime", 1.5),
	})
	b.Forget(sh)
	b.Add(cat, "telagent.process.exit", eventTime, []attribute.KeyValue{attribute.Int("telagent.process.exit.signal", 9)})
	recs := b.Take()
	if len(recs) != 3 || len(b.Take()) != 0 {
		t.Fatalf("Take returned %d records, then more", len(recs))
	}
	return recs
}

func TestLogsToProto(t *testing.T) {
	req := LogsToProto(twoEvents(t))
	if len(req.ResourceLogs) != 2 {
		t.Fatalf("%d ResourceLogs, want one per process", len(req.ResourceLogs))
	}
	rl := req.ResourceLogs[0]
	var pid int64
	for _, kv := range rl.Resource.Attributes {
		if kv.Key == "process.pid" {
			pid = kv.Value.GetIntValue()
		}
	}
	if pid != 42 || len(rl.ScopeLogs) != 1 || rl.ScopeLogs[0].Scope.Name != metrics.ScopeName || rl.ScopeLogs[0].Scope.Version != "v1.2.3" {
		t.Fatalf("first resource: pid %d, scopes %+v", pid, rl.ScopeLogs)
	}
	recs := rl.ScopeLogs[0].LogRecords
	if len(recs) != 2 {
		t.Fatalf("%d records for pid 42, want 2", len(recs))
	}
	exec := recs[0]
	if exec.EventName != "telagent.process.exec" || exec.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_INFO ||
		exec.SeverityText != "INFO" || exec.TimeUnixNano != uint64(eventTime.UnixNano()) || exec.ObservedTimeUnixNano == 0 {
		t.Errorf("exec record %v", exec)
	}
	if exec.Body != nil {
		t.Errorf("event body %v, want none (the payload is in attributes)", exec.Body)
	}
	args := exec.Attributes[1].Value.GetArrayValue().GetValues()
	if exec.Attributes[1].Key != "process.command_args" || len(args) != 3 || args[2].GetStringValue() != "exit 3" {
		t.Errorf("command args %v", exec.Attributes[1])
	}
}

func TestOTLPJSONEventsShareTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	m, err := NewOTLPJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := OTLPJSONEvents(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OTLPJSONEvents(NewConsole(&bytes.Buffer{}, ConsoleOptions{})); err == nil {
		t.Error("events into a console exporter's file accepted")
	}
	ctx := context.Background()
	rms := []metricdata.ResourceMetrics{{Resource: hostResource(), ScopeMetrics: []metricdata.ScopeMetrics{{
		Metrics: []metricdata.Metrics{{Name: "m", Data: metricdata.Sum[int64]{
			Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
			DataPoints: []metricdata.DataPoint[int64]{cpoint(attribute.NewSet(), testStart, 1)}}}}}}}}
	// Metrics and events from two goroutines, as the agent does.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = m.Export(ctx, rms) }()
	go func() { defer wg.Done(); _ = ev.ExportEvents(ctx, twoEvents(t)) }()
	wg.Wait()
	if err := ev.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var logs, metrics int
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte(`{"resourceLogs"`)):
			var req collogspb.ExportLogsServiceRequest
			if err := protojson.Unmarshal(line, &req); err != nil {
				t.Fatalf("logs line: %v", err)
			}
			if n := len(req.ResourceLogs); n != 2 {
				t.Errorf("logs line has %d resources", n)
			}
			if !bytes.Contains(line, []byte(`"eventName":"telagent.process.exit"`)) || !bytes.Contains(line, []byte(`"severityNumber":9`)) {
				t.Errorf("logs line lacks the event name or numeric severity: %s", line)
			}
			logs++
		case bytes.HasPrefix(line, []byte(`{"resourceMetrics"`)):
			var req colmetricspb.ExportMetricsServiceRequest
			if err := protojson.Unmarshal(line, &req); err != nil {
				t.Fatalf("metrics line: %v", err)
			}
			metrics++
		default:
			t.Errorf("unexpected line %s", line)
		}
	}
	if logs != 1 || metrics != 1 {
		t.Errorf("%d log lines, %d metric lines; want one of each", logs, metrics)
	}
}

func TestConsoleEvents(t *testing.T) {
	var out bytes.Buffer
	if err := NewConsoleEvents(&out).ExportEvents(context.Background(), twoEvents(t)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one per event:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], ` telagent.process.exec pid=42 exe=sh process.parent_pid=1 process.command_args="[sh -c \"exit 3\"]"`) {
		t.Errorf("exec line %q", lines[0])
	}
	if !strings.HasSuffix(lines[1], "telagent.process.exit pid=42 exe=sh process.exit.code=3 telagent.process.lifetime=1.5") {
		t.Errorf("exit line %q", lines[1])
	}
}

// logsReceiver records the OTLP/gRPC log requests it is sent.
type logsReceiver struct {
	collogspb.UnimplementedLogsServiceServer
	mu   sync.Mutex
	reqs []*collogspb.ExportLogsServiceRequest
}

func (r *logsReceiver) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return &collogspb.ExportLogsServiceResponse{}, nil
}

func TestOTLPLogGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	recv := &logsReceiver{}
	collogspb.RegisterLogsServiceServer(srv, recv)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exp, err := NewOTLPLogGRPC(ctx, OTLPOptions{Endpoint: lis.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportEvents(ctx, twoEvents(t)); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	var names []string
	for _, req := range recv.reqs {
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					names = append(names, lr.EventName)
				}
			}
		}
	}
	slices.Sort(names) // otlploggrpc groups by Resource in its own order
	if strings.Join(names, ",") != "telagent.process.exec,telagent.process.exit,telagent.process.exit" {
		t.Errorf("received events %q", names)
	}
}
