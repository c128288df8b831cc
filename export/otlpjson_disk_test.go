package export

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/telagent/telagent/internal/testutil"
)

// bigInterval is an interval of n processes: its line is n × ~1.35 KiB,
// larger than otlpJSONChunk for n ≥ 25.
func bigInterval(n int) []metricdata.ResourceMetrics {
	at := testStart.Add(time.Second)
	rms := make([]metricdata.ResourceMetrics, n)
	for i := range rms {
		rms[i] = syscallRM(processResource(int64(1000+i), "worker"),
			[]metricdata.HistogramDataPoint[float64]{hpoint(syscallAttrs("read"), at, 0.5, 1, 2, 3, 0, 4)},
			[]metricdata.DataPoint[int64]{cpoint(syscallAttrs("read"), at, 3)})
	}
	return rms
}

// wholeLines checks that path holds only complete OTLP/JSON request lines
// and returns how many.
func wholeLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("%s ends in a torn line (%d bytes, no final newline)", path, len(data))
	}
	lines := readLines(t, path)
	for i, l := range lines {
		var metrics colmetricspb.ExportMetricsServiceRequest
		var logs collogspb.ExportLogsServiceRequest
		if protojson.Unmarshal([]byte(l), &metrics) != nil && protojson.Unmarshal([]byte(l), &logs) != nil {
			t.Errorf("line %d of %s is not a whole request (%d bytes)", i+1, path, len(l))
		}
	}
	return len(lines)
}

// A full disk: a write that fails half-way leaves no torn line, and once
// space comes back the same exporter writes again (a bufio.Writer keeps
// its first error for good). On a real tmpfs of 320 KiB (two big lines, with their Resources' entity refs, and the events fit).
func TestOTLPJSONFullDisk(t *testing.T) {
	dir := testutil.MountTmpfs(t, 320<<10)
	ctx := context.Background()
	path := filepath.Join(dir, "metrics.jsonl")
	exp, err := NewOTLPJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(ctx)
	small, big := twoIntervals()[0], bigInterval(40)
	if err := exp.Export(ctx, small); err != nil {
		t.Fatal(err)
	}

	// Full, then two pages free: the big line (~54 KiB, two chunks) gets
	// them and then ENOSPC.
	filler := testutil.FillFS(t, dir)
	st, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, st.Size()-8192); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := exp.Export(ctx, big); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("export onto a full disk: %v, want ENOSPC", err)
		}
	}
	// Events share the file and its rollback.
	events, err := OTLPJSONEvents(exp)
	if err != nil {
		t.Fatal(err)
	}
	var batch []sdklog.Record
	for range 40 { // ~20 KiB
		batch = append(batch, twoEvents(t)...)
	}
	if err := events.ExportEvents(ctx, batch); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("events onto a full disk: %v, want ENOSPC", err)
	}
	if n := wholeLines(t, path); n != 1 {
		t.Errorf("after the failed exports: %d lines, want the 1 written before", n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := exp.Export(ctx, big); err != nil {
			st, _ := os.Stat(path)
			t.Fatalf("export %d after space came back (file %d bytes): %v", i+1, st.Size(), err)
		}
	}
	if err := events.ExportEvents(ctx, batch); err != nil {
		t.Fatalf("events after space came back: %v", err)
	}
	if n := wholeLines(t, path); n != 4 {
		t.Errorf("after space came back: %d lines, want 4", n)
	}
}
