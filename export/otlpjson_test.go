package export

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// twoIntervals is what the agent would produce for one process and the
// overflow series over two collections.
func twoIntervals() [2][]metricdata.ResourceMetrics {
	t1, t2 := testStart.Add(5*time.Second), testStart.Add(10*time.Second)
	return [2][]metricdata.ResourceMetrics{
		{
			syscallRM(processResource(4242, "nginx"),
				[]metricdata.HistogramDataPoint[float64]{hpoint(syscallAttrs("read"), t1, 0.5, 1, 2, 3, 0, 4)},
				[]metricdata.DataPoint[int64]{cpoint(syscallAttrs("read"), t1, 3)}),
			syscallRM(hostResource(),
				[]metricdata.HistogramDataPoint[float64]{hpoint(overflowAttrs(), t1, 2, 0, 0, 0, 9, 1)}, nil),
		},
		{
			syscallRM(processResource(4242, "nginx"),
				[]metricdata.HistogramDataPoint[float64]{hpoint(syscallAttrs("read"), t2, 0.75, 2, 2, 3, 10, 4)},
				[]metricdata.DataPoint[int64]{cpoint(syscallAttrs("read"), t2, 5)}),
			syscallRM(hostResource(),
				[]metricdata.HistogramDataPoint[float64]{hpoint(overflowAttrs(), t2, 2.5, 0, 0, 0, 12, 1)}, nil),
		},
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestOTLPJSONFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	ivs := twoIntervals()

	exp, err := NewOTLPJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, iv := range ivs {
		if err := exp.Export(ctx, iv); err != nil {
			t.Fatalf("export: %v", err)
		}
	}
	// Flushed per Export: both lines are on disk before Shutdown.
	if n := len(readLines(t, path)); n != 2 {
		t.Fatalf("before shutdown: %d lines, want 2", n)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := exp.Export(ctx, ivs[0]); err == nil {
		t.Error("export after shutdown succeeded")
	}

	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2 (one per Export)", len(lines))
	}
	wantCounts := [2]struct{ hist, errs, overflow uint64 }{{10, 3, 10}, {21, 5, 13}}
	for i, line := range lines {
		var req colmetricspb.ExportMetricsServiceRequest
		if err := protojson.Unmarshal([]byte(line), &req); err != nil {
			t.Fatalf("line %d: protojson: %v\n%s", i, err, line)
		}
		if want := ToProto(ivs[i]); !proto.Equal(want, &req) {
			t.Errorf("line %d decodes to\n%s\nwant\n%s", i, prototext.Format(&req), prototext.Format(want))
		}
		rms := req.GetResourceMetrics()
		if len(rms) != 2 {
			t.Fatalf("line %d: %d resources, want all 2 of the interval", i, len(rms))
		}
		h := rms[0].ScopeMetrics[0].Metrics[0].GetHistogram().DataPoints[0]
		e := rms[0].ScopeMetrics[0].Metrics[1].GetSum().DataPoints[0]
		o := rms[1].ScopeMetrics[0].Metrics[0].GetHistogram().DataPoints[0]
		if h.Count != wantCounts[i].hist || uint64(e.GetAsInt()) != wantCounts[i].errs || o.Count != wantCounts[i].overflow {
			t.Errorf("line %d: counts %d/%d/%d, want %+v", i, h.Count, e.GetAsInt(), o.Count, wantCounts[i])
		}
		if o.Attributes[0].Key != "otel.metric.overflow" || !o.Attributes[0].Value.GetBoolValue() {
			t.Errorf("line %d: overflow attribute lost: %v", i, o.Attributes)
		}
	}

	// The OTLP/JSON specifics, checked on the raw text.
	var doc map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &doc); err != nil {
		t.Fatal(err)
	}
	metric := doc["resourceMetrics"].([]any)[0].(map[string]any)["scopeMetrics"].([]any)[0].(map[string]any)["metrics"].([]any)[0].(map[string]any)
	hist := metric["histogram"].(map[string]any)
	if got := hist["aggregationTemporality"]; got != float64(2) {
		t.Errorf("aggregationTemporality = %#v, want the integer 2", got)
	}
	dp := hist["dataPoints"].([]any)[0].(map[string]any)
	if got := dp["count"]; got != "10" {
		t.Errorf("count = %#v, want the string \"10\" (64-bit ints are strings)", got)
	}
	if got := dp["startTimeUnixNano"]; got != "1700000000123456789" {
		t.Errorf("startTimeUnixNano = %#v", got)
	}
	for _, bad := range []string{"aggregation_temporality", "AGGREGATION_TEMPORALITY_", "time_unix_nano", "\n"} {
		if strings.Contains(lines[0], bad) {
			t.Errorf("output contains %q:\n%s", bad, lines[0])
		}
	}

	// A second exporter on the same file appends, it does not truncate;
	// an interval with nothing in it writes no line.
	exp2, err := NewOTLPJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp2.Export(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := exp2.Export(ctx, ivs[0][:1]); err != nil {
		t.Fatal(err)
	}
	if err := exp2.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, path); len(got) != 3 || got[0] != lines[0] || !strings.Contains(got[2], `"resourceMetrics"`) {
		t.Errorf("after append: %d lines, last %q", len(got), got[len(got)-1])
	}
}

func TestOTLPJSONOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope", "x.json")
	_, err := NewOTLPJSON(missing)
	if err == nil {
		t.Fatal("no error for a file in a missing directory")
	}
	if want := "open output " + missing + ": no such file or directory"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not match fs.ErrNotExist", err)
	}

	if _, err := NewOTLPJSON(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory as output: %v", err)
	}
}
