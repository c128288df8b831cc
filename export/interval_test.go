package export

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

// The descriptors of every instrument, as metrics' own tests use them.
var (
	histDesc  = entity.MetricDesc{Name: "h", Description: "a histogram", Unit: "s", Instrument: entity.InstrumentHistogram}
	countDesc = entity.MetricDesc{Name: "c", Unit: "{x}", Instrument: entity.InstrumentCounter}
	upDesc    = entity.MetricDesc{Name: "u", Instrument: entity.InstrumentUpDownCounter}
	gaugeDesc = entity.MetricDesc{Name: "g", Instrument: entity.InstrumentGauge}
	floatDesc = entity.MetricDesc{Name: "f", Unit: "s", Instrument: entity.InstrumentCounter}
)

// refBuilder is the oracle of the compact Interval: every point built
// directly as metricdata, resources and metrics in first-use order.
type refBuilder struct {
	start, now time.Time
	res        []*resource.Resource
	metrics    map[*resource.Resource][]metricdata.Metrics
}

func (r *refBuilder) metric(res *resource.Resource, d entity.MetricDesc) *metricdata.Metrics {
	ms, ok := r.metrics[res]
	if !ok {
		r.res = append(r.res, res)
	}
	for i := range ms {
		if ms[i].Name == d.Name {
			return &ms[i]
		}
	}
	r.metrics[res] = append(ms, metricdata.Metrics{Name: d.Name, Description: d.Description, Unit: d.Unit})
	return &r.metrics[res][len(ms)]
}

func (r *refBuilder) result(version string) []metricdata.ResourceMetrics {
	out := []metricdata.ResourceMetrics{}
	for _, res := range r.res {
		out = append(out, metricdata.ResourceMetrics{Resource: res, ScopeMetrics: []metricdata.ScopeMetrics{{
			Scope: instrumentation.Scope{Name: metrics.ScopeName, Version: version, SchemaURL: entity.SchemaURL}, Metrics: r.metrics[res]}}})
	}
	return out
}

// TestIntervalMatchesMetricdata: random intervals of every instrument,
// with values that need every varint length, built through the compact
// form (and its memory reused across intervals) equal the same calls
// built directly as metricdata — as Result, as Metricdata, and as the
// otlp-json exporter's ExportInterval output.
func TestIntervalMatchesMetricdata(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := metrics.NewBuilder("v1", testStart)
	resources := make([]*resource.Resource, 6)
	for i := range resources {
		resources[i] = processResource(int64(100+i), "w")
	}
	sets := []attribute.Set{syscallAttrs("read"), syscallAttrs("write"), overflowAttrs(), *attribute.EmptySet()}
	descs := []entity.MetricDesc{histDesc, countDesc, upDesc, gaugeDesc, floatDesc}
	u64 := func() uint64 { return rng.Uint64() >> rng.IntN(64) } // every magnitude
	f64 := func() float64 {
		return []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), 1e300, -2.5, rng.Float64()}[rng.IntN(7)]
	}
	path := filepath.Join(t.TempDir(), "out.jsonl")
	exp, err := NewOTLPJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	var enc otlpJSONEncoder
	var held []*metrics.Interval // released two intervals late, as a queue would
	for round := range 40 {
		now := testStart.Add(time.Duration(round+1) * time.Second)
		ref := &refBuilder{start: testStart, now: now, metrics: map[*resource.Resource][]metricdata.Metrics{}}
		b.Begin(now)
		for range rng.IntN(200) {
			res := resources[rng.IntN(len(resources))]
			d := descs[rng.IntN(len(descs))]
			a := sets[rng.IntN(len(sets))]
			m := ref.metric(res, d)
			switch d.Instrument {
			case entity.InstrumentHistogram:
				// Sparse and dense, within one 64-bucket group and across groups.
				counts := make([]uint64, []int{0, 1, entity.HistBuckets, 64, 65, 140}[rng.IntN(6)])
				for i := range counts {
					if rng.IntN(2) == 0 {
						counts[i] = u64()
					}
				}
				n, sum := u64(), f64()
				b.Histogram(res, d, a, n, counts, sum)
				h, _ := m.Data.(metricdata.Histogram[float64])
				h.Temporality = metricdata.CumulativeTemporality
				h.DataPoints = append(h.DataPoints, metricdata.HistogramDataPoint[float64]{Attributes: a, StartTime: testStart, Time: now,
					Count: n, Sum: sum, Bounds: entity.HistBoundsSeconds, BucketCounts: counts})
				m.Data = h
			case entity.InstrumentGauge:
				v := f64()
				b.Gauge(res, d, a, v)
				g, _ := m.Data.(metricdata.Gauge[float64])
				g.DataPoints = append(g.DataPoints, metricdata.DataPoint[float64]{Attributes: a, Time: now, Value: v})
				m.Data = g
			default:
				if d.Name == floatDesc.Name {
					v := f64()
					b.CounterFloat(res, d, a, v)
					s, _ := m.Data.(metricdata.Sum[float64])
					s.Temporality, s.IsMonotonic = metricdata.CumulativeTemporality, true
					s.DataPoints = append(s.DataPoints, metricdata.DataPoint[float64]{Attributes: a, StartTime: testStart, Time: now, Value: v})
					m.Data = s
					break
				}
				v := int64(u64())
				b.Counter(res, d, a, v)
				s, _ := m.Data.(metricdata.Sum[int64])
				s.Temporality, s.IsMonotonic = metricdata.CumulativeTemporality, d.Instrument == entity.InstrumentCounter
				s.DataPoints = append(s.DataPoints, metricdata.DataPoint[int64]{Attributes: a, StartTime: testStart, Time: now, Value: v})
				m.Data = s
			}
		}
		want := string(enc.appendRequest(nil, ref.result("v1")))
		if got := string(enc.appendRequest(nil, b.Result())); got != want {
			t.Fatalf("round %d: Result differs from metricdata built directly\n got %.300s\nwant %.300s", round, got, want)
		}
		iv := b.Finish()
		if got := string(enc.appendRequest(nil, iv.Metricdata())); got != want {
			t.Fatalf("round %d: Metricdata differs from metricdata built directly", round)
		}
		var pe otlpProtoEncoder
		wantPB := pe.appendRequest(nil, ref.result("v1"))
		var gotPB []byte
		var penc ProtoEncoder
		penc.EncodeInterval(iv, func(req []byte) { gotPB = append(gotPB, req...) })
		if !bytes.Equal(gotPB, wantPB) {
			t.Fatalf("round %d: ProtoEncoder's request differs from the metricdata's encoding", round)
		}
		before, _ := os.ReadFile(path)
		if err := exp.(IntervalExporter).ExportInterval(context.Background(), iv); err != nil {
			t.Fatal(err)
		}
		after, _ := os.ReadFile(path)
		if got := string(bytes.TrimSuffix(after[len(before):], []byte("\n"))); iv.Len() > 0 && got != want {
			t.Fatalf("round %d: ExportInterval wrote a different request", round)
		}
		held = append(held, iv)
		if len(held) > 2 {
			held[0].Release()
			held = held[1:]
		}
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestIntervalEncodeAllocs: the exporters' encoders read an interval
// without allocating at all in steady state (no boxing of aggregations
// either), protobuf and JSON.
func TestIntervalEncodeAllocs(t *testing.T) {
	b := metrics.NewBuilder("v", testStart)
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
	var pe ProtoEncoder
	var js requestEncoder
	var mat metrics.Materializer
	n := 0
	encode := func() {
		pe.EncodeInterval(iv, func(req []byte) { n += len(req) })
		js.encode(resources{iv: iv, mat: &mat}, true, maxRequestBytes, func(req []byte) { n += len(req) })
	}
	encode()
	if allocs := testing.AllocsPerRun(10, encode); allocs != 0 {
		t.Errorf("encoding an interval of 4000 points as protobuf and JSON: %.1f allocations, want 0", allocs)
	}
}

// slowIntervalExporter checks, after a delay, that the interval it was
// handed still holds what was enqueued: an interval released to the
// builder while it is being exported would be overwritten by the next one.
type slowIntervalExporter struct {
	mu       sync.Mutex
	delay    time.Duration
	mismatch int
	seen     map[*metrics.Interval]bool
	got      []int64
}

func (s *slowIntervalExporter) Export(context.Context, []metricdata.ResourceMetrics) error {
	panic("the queue must prefer ExportInterval")
}

func (s *slowIntervalExporter) ExportInterval(_ context.Context, iv *metrics.Interval) error {
	var m metrics.Materializer
	first := iv.ResourceMetrics(0, &m).ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]).DataPoints[0].Value
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[iv] = true
	for i := range iv.Len() {
		for _, dp := range iv.ResourceMetrics(i, &m).ScopeMetrics[0].Metrics[0].Data.(metricdata.Sum[int64]).DataPoints {
			if dp.Value != first {
				s.mismatch++
			}
		}
	}
	s.got = append(s.got, first)
	return nil
}

func (s *slowIntervalExporter) Shutdown(context.Context) error { return nil }

// TestQueueReleasesIntervalsSafely: with a queue of one and a slow
// exporter, intervals are dropped while one is being sent; none is reused
// by the builder before the exporter is done with it, and released ones
// are reused (a bounded number of intervals ever exists).
func TestQueueReleasesIntervalsSafely(t *testing.T) {
	exp := &slowIntervalExporter{delay: 20 * time.Millisecond, seen: map[*metrics.Interval]bool{}}
	q := NewQueue(exp, QueueOptions{Size: 1})
	b := metrics.NewBuilder("v", testStart)
	res := []*resource.Resource{processResource(1, "a"), processResource(2, "b")}
	const intervals = 60
	for v := range int64(intervals) {
		b.Begin(testStart.Add(time.Duration(v+1) * time.Second))
		for _, r := range res {
			for i := range 100 {
				b.Counter(r, countDesc, attribute.NewSet(attribute.Int("i", i)), v)
			}
		}
		if _, err := q.EnqueueInterval(b.Finish()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	exp.mu.Lock()
	defer exp.mu.Unlock()
	st := q.Stats()
	if exp.mismatch != 0 {
		t.Errorf("%d points changed while their interval was being exported: an interval was reused too early", exp.mismatch)
	}
	if len(exp.got) == 0 || exp.got[len(exp.got)-1] != intervals-1 {
		t.Errorf("last exported value %v, want %d (the newest interval delivered)", exp.got, intervals-1)
	}
	if st.Dropped == 0 || len(exp.got) < 2 {
		t.Errorf("dropped %d, exported %d: want both (the test drives drops during sends)", st.Dropped, len(exp.got))
	}
	for i := 1; i < len(exp.got); i++ {
		if exp.got[i] <= exp.got[i-1] {
			t.Errorf("exported intervals out of order or repeated: %v", exp.got)
			break
		}
	}
	// One being filled, one queued, one being sent, the free list's two.
	if n := len(exp.seen); n > 2+metrics.MaxFreeIntervals {
		t.Errorf("%d distinct intervals were exported: released memory is not reused", n)
	}
}
