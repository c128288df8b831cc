package metrics

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
)

var testStart = time.Unix(1_700_000_000, 123_456_789)

// processResource is a process's resource as the agent builds it: the
// host's attributes and the process's.
func processResource(pid int64, exe string) *resource.Resource {
	return resource.NewSchemaless(
		attribute.String("host.id", "0123456789abcdef0123456789abcdef"),
		attribute.String("host.name", "node-1"),
		attribute.String("os.type", "linux"),
		attribute.Int64("process.pid", pid),
		attribute.String("process.creation.time", "2026-11-25T12:00:00.5Z"),
		attribute.String("process.executable.name", exe),
		attribute.String("process.command", "/usr/bin/"+exe),
	)
}

// TestIntervalSteadyStateAllocs: building into released memory and
// reading it back resource by resource allocates nothing per point (the
// only allocations are the boxing of each metric's aggregation).
func TestIntervalSteadyStateAllocs(t *testing.T) {
	b := NewBuilder("v", testStart)
	const procs, perProc = 20, 50
	res := make([]*resource.Resource, procs)
	for i := range res {
		res[i] = processResource(int64(i+1), "w")
	}
	attrs := make([]attribute.Set, perProc)
	for i := range attrs {
		attrs[i] = attribute.NewSet(attribute.Int("i", i))
	}
	counts := make([]uint64, entity.HistBuckets)
	var m Materializer
	round := 0
	interval := func() {
		round++
		b.Begin(testStart.Add(time.Duration(round) * time.Second))
		for p := range procs {
			for i := range perProc {
				counts[3] = uint64(round * 100000)
				b.Histogram(res[p], histDesc, attrs[i], counts[3], counts, 1)
				b.Counter(res[p], countDesc, attrs[i], int64(round))
				b.CounterFloat(res[p], floatDesc, attrs[i], 0.5)
			}
		}
		iv := b.Finish()
		for i := range iv.Len() {
			_ = iv.ResourceMetrics(i, &m)
		}
		iv.Release()
	}
	interval()
	interval()
	allocs := testing.AllocsPerRun(10, interval)
	if max := float64(3 * procs); allocs > max {
		t.Errorf("steady-state interval of %d points: %.0f allocations, want at most %.0f (one per metric and resource, none per point)",
			3*procs*perProc, allocs, max)
	}
}

// TestResourcePointsAllocs: the typed view the exporters' encoders read
// allocates nothing in steady state (no boxing either), and holds what
// ResourceMetrics boxes.
func TestResourcePointsAllocs(t *testing.T) {
	b := NewBuilder("v", testStart)
	b.Begin(testStart.Add(time.Second))
	for p := range 20 {
		res := processResource(int64(p+1), "w")
		for i := range 50 {
			a := attribute.NewSet(attribute.Int("i", i))
			b.Histogram(res, histDesc, a, 7, []uint64{1, 0, 5, 0, 1}, 1)
			b.Counter(res, countDesc, a, int64(i))
			b.CounterFloat(res, floatDesc, a, 0.5)
			b.Gauge(res, gaugeDesc, a, 0.25)
		}
	}
	iv := b.Finish()
	defer iv.Release()
	var m Materializer
	n := 0
	read := func() {
		for i := range iv.Len() {
			_, pts := iv.ResourcePoints(i, &m)
			for j := range pts {
				n += len(pts[j].Hist) + len(pts[j].Ints) + len(pts[j].Floats)
			}
		}
	}
	read()
	if allocs := testing.AllocsPerRun(10, read); allocs != 0 {
		t.Errorf("reading an interval of 4000 points typed: %.1f allocations, want 0", allocs)
	}
	var mm Materializer
	for i := range iv.Len() {
		res, pts := iv.ResourcePoints(i, &m)
		rm := iv.ResourceMetrics(i, &mm)
		if rm.Resource != res || len(rm.ScopeMetrics[0].Metrics) != len(pts) {
			t.Fatalf("resource %d: ResourcePoints and ResourceMetrics differ", i)
		}
		for j, ms := range rm.ScopeMetrics[0].Metrics {
			p := &pts[j]
			if ms.Name != p.Name || ms.Unit != p.Unit || ms.Description != p.Description {
				t.Errorf("resource %d metric %d: %s %s vs %s %s", i, j, ms.Name, ms.Unit, p.Name, p.Unit)
			}
			want := map[Kind]string{KindHistogram: "metricdata.Histogram[float64]", KindSumInt: "metricdata.Sum[int64]",
				KindSumFloat: "metricdata.Sum[float64]", KindGaugeFloat: "metricdata.Gauge[float64]"}[p.Kind]
			if got := fmt.Sprintf("%T", ms.Data); got != want {
				t.Errorf("resource %d metric %s: kind %d boxed as %s, want %s", i, p.Name, p.Kind, got, want)
			}
		}
	}
}
