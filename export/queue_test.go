package export

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/metrics"
)

// fakeBackend records what it is sent; it can fail or stall.
type fakeBackend struct {
	mu    sync.Mutex
	fail  bool
	stall bool
	got   [][]metricdata.ResourceMetrics
	tries int
}

func (f *fakeBackend) Export(ctx context.Context, rms []metricdata.ResourceMetrics) error {
	f.mu.Lock()
	f.tries++
	fail, stall := f.fail, f.stall
	f.mu.Unlock()
	if stall {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail {
		return errors.New("backend down")
	}
	f.mu.Lock()
	f.got = append(f.got, metrics.CloneResourceMetrics(rms))
	f.mu.Unlock()
	return nil
}

func (f *fakeBackend) Shutdown(context.Context) error { return nil }

func (f *fakeBackend) set(fail, stall bool) {
	f.mu.Lock()
	f.fail, f.stall = fail, stall
	f.mu.Unlock()
}

func (f *fakeBackend) received() [][]metricdata.ResourceMetrics {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]metricdata.ResourceMetrics(nil), f.got...)
}

// interval is one cumulative interval of one process: a counter at v and
// a histogram of v values in its first bucket.
func interval(at time.Time, v int64) []metricdata.ResourceMetrics {
	return []metricdata.ResourceMetrics{syscallRM(processResource(100, "nginx"),
		[]metricdata.HistogramDataPoint[float64]{hpoint(syscallAttrs("read"), at, float64(v)/2, uint64(v), 0, 0, 0, 0)},
		[]metricdata.DataPoint[int64]{cpoint(syscallAttrs("read"), at, v)})}
}

func counterOf(rms []metricdata.ResourceMetrics) (int64, uint64, metricdata.Temporality) {
	var c int64
	var n uint64
	var tmp metricdata.Temporality
	for _, rm := range rms {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					c += d.DataPoints[0].Value
					tmp = d.Temporality
				case metricdata.Histogram[float64]:
					n += d.DataPoints[0].Count
				}
			}
		}
	}
	return c, n, tmp
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An outage longer than the queue: the oldest intervals are dropped and
// counted, one warning is logged for the whole outage, Enqueue never
// blocks, and after recovery the newest cumulative state arrives, so the
// backend's last value is the total.
func TestQueueOutageDropsOldestKeepsTotal(t *testing.T) {
	for _, stall := range []bool{false, true} {
		name := "failing"
		if stall {
			name = "stalled"
		}
		t.Run(name, func(t *testing.T) {
			be := &fakeBackend{}
			be.set(!stall, stall)
			var logs strings.Builder
			var logMu sync.Mutex
			log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				logMu.Lock()
				defer logMu.Unlock()
				return logs.Write(p)
			}), nil))
			q := NewQueue(be, QueueOptions{Size: 3, Timeout: 50 * time.Millisecond, RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, Log: log})
			at := testStart
			for i := 1; i <= 10; i++ {
				at = at.Add(time.Second)
				start := time.Now()
				if _, err := q.Enqueue(interval(at, int64(i*10))); err != nil {
					t.Fatal(err)
				}
				if d := time.Since(start); d > 20*time.Millisecond {
					t.Errorf("enqueue blocked %v", d)
				}
				time.Sleep(15 * time.Millisecond)
			}
			st := q.Stats()
			if st.Len != 3 || st.Dropped < 7-1 || st.Dropped > 7 || st.Failures == 0 || st.Exports != 0 {
				t.Errorf("during the outage: %+v, want 3 queued, 6-7 dropped, failures, no exports", st)
			}
			be.set(false, false)
			waitUntil(t, "the queue to drain", func() bool { return q.Stats().Len == 0 })
			got := be.received()
			if c, n, _ := counterOf(got[len(got)-1]); c != 100 || n != 100 {
				t.Errorf("backend's last value %d (histogram count %d), want the total 100", c, n)
			}
			if len(got) > 3 {
				t.Errorf("%d intervals delivered, at most the 3 queued", len(got))
			}
			if err := q.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			logMu.Lock()
			out := logs.String()
			logMu.Unlock()
			if n := strings.Count(out, "export failing"); n != 1 {
				t.Errorf("%d outage warnings, want 1:\n%s", n, out)
			}
			if !strings.Contains(out, "export recovered") {
				t.Errorf("no recovery line:\n%s", out)
			}
		})
	}
}

// Delta: deltas are taken against the last acknowledged interval, so the
// sum of the deltas the backend received equals the cumulative total even
// though intervals were dropped and attempts failed in between.
func TestQueueDeltaSumsToTotal(t *testing.T) {
	be := &fakeBackend{}
	q := NewQueue(be, QueueOptions{Size: 2, Temporality: metricdata.DeltaTemporality, Timeout: 50 * time.Millisecond,
		RetryMin: 5 * time.Millisecond, RetryMax: 10 * time.Millisecond})
	at := testStart
	total := int64(0)
	for i := 1; i <= 12; i++ {
		at = at.Add(time.Second)
		total += int64(i)
		if i == 4 {
			be.set(true, false) // an outage over intervals 4..8
		}
		if i == 9 {
			be.set(false, false)
		}
		if _, err := q.Enqueue(interval(at, total)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := q.Shutdown(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	var sum int64
	var count uint64
	for _, rms := range be.received() {
		c, n, tmp := counterOf(rms)
		if tmp != metricdata.DeltaTemporality {
			t.Fatalf("temporality %v, want delta", tmp)
		}
		sum += c
		count += n
	}
	if sum != total || count != uint64(total) {
		t.Errorf("deltas add up to %d (histogram %d), want the total %d", sum, count, total)
	}
	if st := q.Stats(); st.Dropped == 0 || st.Failures == 0 {
		t.Errorf("the test did not drop or fail: %+v", st)
	}
}

// Shutdown sends the newest interval within its deadline, and returns by
// the deadline against a stalled backend.
func TestQueueShutdownBounded(t *testing.T) {
	be := &fakeBackend{}
	be.set(false, true)
	q := NewQueue(be, QueueOptions{Size: 4, Timeout: 10 * time.Second})
	for i := 1; i <= 3; i++ {
		if _, err := q.Enqueue(interval(testStart.Add(time.Duration(i)*time.Second), int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = q.Shutdown(ctx)
	if d := time.Since(start); d > time.Second {
		t.Errorf("shutdown against a stalled backend took %v, deadline 300ms", d)
	}
	if st := q.Stats(); st.Abandoned != 1 || st.Exports != 0 {
		t.Errorf("stats %+v: want the newest interval abandoned", st)
	}
	if _, err := q.Enqueue(interval(testStart, 1)); err == nil {
		t.Error("enqueue after shutdown succeeded")
	}

	// A healthy backend gets the newest interval at shutdown.
	be2 := &fakeBackend{}
	q2 := NewQueue(be2, QueueOptions{Size: 4})
	be2.set(true, false)
	for i := 1; i <= 3; i++ {
		_, _ = q2.Enqueue(interval(testStart.Add(time.Duration(i)*time.Second), int64(i)))
	}
	be2.set(false, false)
	if err := q2.Shutdown(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	got := be2.received()
	if len(got) == 0 {
		t.Fatal("nothing delivered at shutdown")
	}
	if c, _, _ := counterOf(got[len(got)-1]); c != 3 {
		t.Errorf("last delivered %d, want 3", c)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// LowMemory (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=lowmemory):
// histograms become deltas that add up to the total, sums stay cumulative
// (the agent's sums are observed totals: asynchronous counters, which the
// spec keeps cumulative under lowmemory).
func TestQueueLowMemory(t *testing.T) {
	be := &fakeBackend{}
	q := NewQueue(be, QueueOptions{Size: 4, Temporality: metricdata.DeltaTemporality, LowMemory: true})
	at, total := testStart, int64(0)
	for i := 1; i <= 5; i++ {
		at = at.Add(time.Second)
		total += int64(i)
		if _, err := q.Enqueue(interval(at, total)); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "delivery", func() bool { return q.Stats().Delivered == uint64(i) })
	}
	if err := q.Shutdown(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	got := be.received()
	var count uint64
	for i, rms := range got {
		c, n, tmp := counterOf(rms)
		if tmp != metricdata.CumulativeTemporality {
			t.Errorf("interval %d: sum temporality %v, want cumulative", i+1, tmp)
		}
		count += n
		h := rms[0].ScopeMetrics[0].Metrics[0].Data.(metricdata.Histogram[float64])
		if h.Temporality != metricdata.DeltaTemporality {
			t.Errorf("interval %d: histogram temporality %v, want delta", i+1, h.Temporality)
		}
		if i == len(got)-1 && c != total {
			t.Errorf("last sum %d, want the cumulative total %d", c, total)
		}
	}
	if count != uint64(total) {
		t.Errorf("histogram deltas add up to %d, want %d", count, total)
	}
}
