package metrics

import (
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
)

var (
	histDesc  = entity.MetricDesc{Name: "h", Description: "a histogram", Unit: "s", Instrument: entity.InstrumentHistogram}
	countDesc = entity.MetricDesc{Name: "c", Unit: "{x}", Instrument: entity.InstrumentCounter}
	upDesc    = entity.MetricDesc{Name: "u", Instrument: entity.InstrumentUpDownCounter}
	gaugeDesc = entity.MetricDesc{Name: "g", Instrument: entity.InstrumentGauge}
	floatDesc = entity.MetricDesc{Name: "f", Unit: "s", Instrument: entity.InstrumentCounter}
)

// TestBuilderAggregations: each descriptor yields the aggregation it
// always did, in first-use order per resource and across resources.
func TestBuilderAggregations(t *testing.T) {
	start, now := time.Unix(100, 0), time.Unix(110, 0)
	b := NewBuilder("v1", start)
	r1 := resource.NewSchemaless(entity.AttrProcessPID.Int(1))
	r2 := resource.NewSchemaless(entity.AttrProcessPID.Int(2))
	a := attribute.NewSet(attribute.String("k", "a"))
	b.Begin(now)
	if rms := b.Result(); rms == nil || len(rms) != 0 {
		t.Fatalf("empty interval: %#v, want an empty non-nil slice", rms)
	}
	b.Counter(r2, countDesc, a, 5)
	b.Histogram(r1, histDesc, a, 3, []uint64{1, 2}, 0.5)
	b.Counter(r1, upDesc, a, -4)
	b.Counter(r1, gaugeDesc, a, 9)
	b.CounterFloat(r1, floatDesc, a, 1.5)
	b.Counter(r1, histDesc, a, 1) // a counter point on a histogram: dropped
	rms := b.Result()
	if len(rms) != 2 || rms[0].Resource != r2 || rms[1].Resource != r1 {
		t.Fatalf("resources out of first-use order: %+v", rms)
	}
	if sc := rms[0].ScopeMetrics; len(sc) != 1 || sc[0].Scope.Name != ScopeName || sc[0].Scope.Version != "v1" {
		t.Fatalf("scope: %+v", sc)
	}
	var names []string
	for _, m := range rms[1].ScopeMetrics[0].Metrics {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, []string{"h", "u", "g", "f"}) {
		t.Fatalf("metrics of r1 in order %v", names)
	}
	ms := rms[1].ScopeMetrics[0].Metrics
	h := ms[0].Data.(metricdata.Histogram[float64])
	if ms[0].Description != "a histogram" || ms[0].Unit != "s" || h.Temporality != metricdata.CumulativeTemporality || len(h.DataPoints) != 1 {
		t.Fatalf("histogram: %+v", ms[0])
	}
	if p := h.DataPoints[0]; p.Count != 3 || p.Sum != 0.5 || !slices.Equal(p.BucketCounts, []uint64{1, 2}) ||
		!p.StartTime.Equal(start) || !p.Time.Equal(now) || !p.Attributes.Equals(&a) {
		t.Errorf("histogram point: %+v", p)
	}
	if u := ms[1].Data.(metricdata.Sum[int64]); u.IsMonotonic || u.Temporality != metricdata.CumulativeTemporality || u.DataPoints[0].Value != -4 {
		t.Errorf("up-down counter: %+v", u)
	}
	if g := ms[2].Data.(metricdata.Gauge[int64]); g.DataPoints[0].Value != 9 || !g.DataPoints[0].StartTime.IsZero() {
		t.Errorf("gauge: %+v", g)
	}
	if f := ms[3].Data.(metricdata.Sum[float64]); !f.IsMonotonic || f.DataPoints[0].Value != 1.5 {
		t.Errorf("float counter: %+v", f)
	}
	if c := rms[0].ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]); !c.IsMonotonic || c.DataPoints[0].Value != 5 {
		t.Errorf("counter: %+v", c)
	}

	// Next interval: only what is added now, kinds decided afresh (the
	// float counter starts as an int sum again and an int point keeps it so).
	b.Begin(now.Add(time.Second))
	b.Counter(r1, floatDesc, a, 7)
	b.CounterFloat(r1, floatDesc, a, 2.5) // the sum already holds int points: dropped
	rms = b.Result()
	if len(rms) != 1 || len(rms[0].ScopeMetrics[0].Metrics) != 1 {
		t.Fatalf("second interval: %+v", rms)
	}
	if s, ok := rms[0].ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]); !ok || len(s.DataPoints) != 1 || s.DataPoints[0].Value != 7 {
		t.Errorf("second interval f: %#v", rms[0].ScopeMetrics[0].Metrics[0].Data)
	}
}

// TestBuilderReusesPoints: a steady state writes over last interval's
// points and bucket counts instead of allocating new ones, and nothing of
// the previous interval leaks into the next.
func TestBuilderReusesPoints(t *testing.T) {
	b := NewBuilder("v", time.Unix(0, 0))
	const procs, perProc = 20, 50
	res := make([]*resource.Resource, procs)
	for i := range res {
		res[i] = resource.NewSchemaless(entity.AttrProcessPID.Int(i + 1))
	}
	attrs := make([]attribute.Set, perProc)
	for i := range attrs {
		attrs[i] = attribute.NewSet(attribute.Int("i", i))
	}
	counts := make([]uint64, entity.HistBuckets)
	round := uint64(0)
	interval := func() {
		round++
		b.Begin(time.Unix(int64(round), 0))
		for p := range procs {
			for i := range perProc {
				counts[0] = round*1000 + uint64(p*perProc+i)
				b.Histogram(res[p], histDesc, attrs[i], counts[0], counts, 1)
				b.Counter(res[p], countDesc, attrs[i], int64(round))
			}
		}
		_ = b.Result()
	}
	interval()
	allocs := testing.AllocsPerRun(10, interval)
	// Boxing each metric's aggregation into metricdata.Metrics.Data: one
	// allocation per metric and resource, none per point.
	if max := float64(2 * procs); allocs > max {
		t.Errorf("steady-state interval of %d points: %.0f allocations, want at most %.0f (none per point)", 2*procs*perProc, allocs, max)
	}
	rms := b.Result()
	for p, rm := range rms {
		h := rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Histogram[float64])
		if len(h.DataPoints) != perProc {
			t.Fatalf("resource %d: %d points, want %d", p, len(h.DataPoints), perProc)
		}
		for i, dp := range h.DataPoints {
			if want := round*1000 + uint64(p*perProc+i); dp.Count != want || dp.BucketCounts[0] != want || len(dp.BucketCounts) != entity.HistBuckets {
				t.Fatalf("resource %d point %d: count %d, bucket 0 %d, want %d", p, i, dp.Count, dp.BucketCounts[0], want)
			}
		}
	}

	// A resource without points in an interval is gone from the next
	// Result and, one interval later, from the builder.
	b.Begin(time.Unix(100, 0))
	b.Counter(res[0], countDesc, attrs[0], 1)
	if rms := b.Result(); len(rms) != 1 || rms[0].Resource != res[0] {
		t.Fatalf("interval with one resource: %d resources", len(rms))
	}
	b.Begin(time.Unix(101, 0))
	if len(b.cur.byRes) != 1 {
		t.Errorf("builder still holds %d resources, want only the one used in the previous interval", len(b.cur.byRes))
	}
}

// TestCloneSurvivesNextInterval: a clone of one interval keeps its values
// when the builder writes the next interval over the original.
func TestCloneSurvivesNextInterval(t *testing.T) {
	b := NewBuilder("v", time.Unix(0, 0))
	res := resource.NewSchemaless(entity.AttrProcessPID.Int(1))
	a := attribute.NewSet(attribute.String("k", "a"))
	b.Begin(time.Unix(1, 0))
	b.Histogram(res, histDesc, a, 3, []uint64{1, 2}, 0.5)
	b.Counter(res, countDesc, a, 5)
	b.CounterFloat(res, floatDesc, a, 1.5)
	saved := CloneResourceMetrics(b.Result())
	b.Begin(time.Unix(2, 0))
	b.Histogram(res, histDesc, a, 30, []uint64{10, 20}, 5)
	b.Counter(res, countDesc, a, 50)
	b.CounterFloat(res, floatDesc, a, 15)
	_ = b.Result()
	ms := saved[0].ScopeMetrics[0].Metrics
	h := ms[0].Data.(metricdata.Histogram[float64]).DataPoints[0]
	c := ms[1].Data.(metricdata.Sum[int64]).DataPoints[0]
	f := ms[2].Data.(metricdata.Sum[float64]).DataPoints[0]
	if h.Count != 3 || !slices.Equal(h.BucketCounts, []uint64{1, 2}) || !h.Time.Equal(time.Unix(1, 0)) || c.Value != 5 || f.Value != 1.5 {
		t.Errorf("clone changed by the next interval: histogram %+v, counter %d, float %g", h, c.Value, f.Value)
	}
}
