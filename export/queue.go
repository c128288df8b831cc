package export

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/internal/episode"
	"github.com/telagent/telagent/metrics"
)

// QueueOptions configures NewQueue.
type QueueOptions struct {
	// Size is the most intervals waiting for export (at least 1). When a
	// new interval finds the queue full the oldest waiting one is dropped
	// and counted: every interval carries cumulative totals, so the newest
	// one alone still delivers every count; only time resolution is lost.
	Size int
	// Temporality of what is sent: cumulative (default) or delta. Deltas
	// are computed when an interval is sent, against the last interval the
	// backend acknowledged, so dropped or failed intervals lose no counts
	// in delta either (see deltaState).
	Temporality metricdata.Temporality
	// LowMemory, with Temporality delta, is the OTel SDK's lowmemory
	// temporality preference: histograms become deltas, sums stay
	// cumulative. The agent's sums are totals observed in the kernel,
	// asynchronous counters in OTel's terms, which lowmemory keeps
	// cumulative (the spec: delta for synchronous counters and histograms,
	// cumulative for the rest); and cumulative sums need no baseline.
	LowMemory bool
	// Timeout bounds one export attempt (default 10 s).
	Timeout time.Duration
	// RetryMin and RetryMax bound the wait between attempts while the
	// backend fails (exponential, defaults 500 ms and 30 s).
	RetryMin, RetryMax time.Duration
	Log                *slog.Logger
}

// QueueStats are the queue's self-telemetry counters.
type QueueStats struct {
	Exports   uint64 // attempts that succeeded
	Failures  uint64 // attempts that failed (each retry counts)
	Dropped   uint64 // intervals dropped because the queue was full
	Abandoned uint64 // intervals not delivered at shutdown
	Len       int    // intervals waiting now
	Delivered uint64 // sequence number of the last interval delivered
}

// Queue decouples collection from export: Export copies the interval into
// a bounded queue and returns at once, and one goroutine sends the queue in
// order, retrying the oldest interval with backoff while the backend fails.
// Collection therefore never waits for a slow or dead backend, and memory
// stays bounded by Size intervals.
//
// It logs one warning when an outage starts and one line when it ends,
// never one per attempt.
type Queue struct {
	inner Exporter
	o     QueueOptions
	delta *deltaState

	mu      sync.Mutex
	items   []queued
	seq     uint64
	stats   QueueStats
	wake    chan struct{} // a token: something was queued
	deliv   chan struct{} // a token: an interval was delivered
	stop    chan struct{} // closed by Shutdown
	done    chan struct{} // closed when the sender returned
	flushBy time.Time     // set by Shutdown: send what is left until then
	outage  episode.Episode
	// inFlight is the sequence number of the interval the sender is
	// exporting (0: none). An interval dropped meanwhile is released by
	// the sender when it is done, never under its feet.
	inFlight uint64
}

// queued is one interval: the builder's compact form (iv, owned by the
// queue until released) or a copy of metricdata (rms).
type queued struct {
	seq uint64
	rms []metricdata.ResourceMetrics
	iv  *metrics.Interval
}

// IntervalExporter is an Exporter that reads the builder's compact form
// itself, a resource at a time (Interval.ResourceMetrics), so that the
// interval never exists whole as metricdata. The queue prefers it.
type IntervalExporter interface {
	ExportInterval(ctx context.Context, iv *metrics.Interval) error
}

// NewQueue wraps inner and starts the sender goroutine; Shutdown stops it.
func NewQueue(inner Exporter, o QueueOptions) *Queue {
	o.Size = max(o.Size, 1)
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 500 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(30*time.Second, o.RetryMin)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{inner: inner, o: o, wake: make(chan struct{}, 1), deliv: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if o.Temporality == metricdata.DeltaTemporality {
		q.delta = newDeltaState(o.LowMemory)
	}
	go q.run()
	return q
}

// Export queues a copy of rms (the caller reuses rms) and returns its
// sequence number's error: never, unless the queue was shut down.
func (q *Queue) Export(_ context.Context, rms []metricdata.ResourceMetrics) error {
	_, err := q.Enqueue(rms)
	return err
}

// Enqueue queues a copy of rms and returns its sequence number (1, 2, ...);
// the interval is delivered once Stats().Delivered reaches it.
func (q *Queue) Enqueue(rms []metricdata.ResourceMetrics) (uint64, error) {
	return q.enqueue(queued{rms: metrics.CloneResourceMetrics(rms)})
}

// EnqueueInterval queues iv, which the queue owns from now on (it releases
// it once delivered or dropped, or right away if the queue was shut down),
// and returns its sequence number like Enqueue.
func (q *Queue) EnqueueInterval(iv *metrics.Interval) (uint64, error) {
	return q.enqueue(queued{iv: iv})
}

func (q *Queue) enqueue(it queued) (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-q.stop:
		it.iv.Release()
		return 0, errors.New("export queue: interval after shutdown")
	default:
	}
	if len(q.items) >= q.o.Size {
		// The oldest waiting one goes; if the sender is working on it,
		// its result is ignored (see send).
		q.discardLocked(q.items[0])
		q.items = q.items[1:]
		q.stats.Dropped++
	}
	q.seq++
	it.seq = q.seq
	q.items = append(q.items, it)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return q.seq, nil
}

// DeliveredC receives a token after an interval was delivered.
func (q *Queue) DeliveredC() <-chan struct{} { return q.deliv }

// Stats returns the counters; Len is the queue length now.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stats
	s.Len = len(q.items)
	return s
}

// Shutdown is Drain, then the inner exporter's own shutdown.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.Drain(ctx)
	return q.inner.Shutdown(ctx)
}

// Drain sends what is queued until ctx's deadline (at least one attempt
// of the newest interval, which carries every count) and stops the
// sender; the inner exporter stays open (an event exporter may share its
// file). Intervals left undelivered are counted as abandoned. Only the
// first call does anything.
func (q *Queue) Drain(ctx context.Context) {
	q.mu.Lock()
	select {
	case <-q.stop:
		q.mu.Unlock()
		return
	default:
	}
	if d, ok := ctx.Deadline(); ok {
		q.flushBy = d
	} else {
		q.flushBy = time.Now().Add(q.o.Timeout)
	}
	// Older intervals are superseded by the newest: with a deadline, send
	// only that one.
	if n := len(q.items); n > 1 {
		for _, it := range q.items[:n-1] {
			q.discardLocked(it)
		}
		q.items = q.items[n-1:]
		q.stats.Dropped += uint64(n - 1)
	}
	close(q.stop)
	q.mu.Unlock()
	select {
	case <-q.done:
	case <-ctx.Done():
	}
	q.mu.Lock()
	q.stats.Abandoned += uint64(len(q.items))
	for _, it := range q.items {
		q.discardLocked(it)
	}
	q.items = nil
	q.mu.Unlock()
}

// discardLocked releases an interval leaving the queue undelivered, unless
// the sender is exporting it (send releases it then).
func (q *Queue) discardLocked(it queued) {
	if it.seq != q.inFlight {
		it.iv.Release()
	}
}

func (q *Queue) run() {
	defer close(q.done)
	backoff := q.o.RetryMin
	for {
		q.mu.Lock()
		stopping := false
		select {
		case <-q.stop:
			stopping = true
		default:
		}
		if len(q.items) == 0 {
			q.mu.Unlock()
			if stopping {
				return
			}
			select {
			case <-q.wake:
			case <-q.stop:
			}
			continue
		}
		it := q.items[0]
		q.inFlight = it.seq
		flushBy := q.flushBy
		q.mu.Unlock()

		timeout := q.o.Timeout
		if stopping {
			timeout = min(timeout, time.Until(flushBy))
			if timeout <= 0 {
				return
			}
		}
		err := q.send(it, timeout)
		if err == nil {
			backoff = q.o.RetryMin
			continue
		}
		wait := backoff
		backoff = min(2*backoff, q.o.RetryMax)
		if stopping {
			wait = min(wait, time.Until(flushBy))
			if wait <= 0 {
				return
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.stop:
			if !stopping {
				// Shutdown: retry at once, within its deadline.
				backoff = q.o.RetryMin
			}
		}
		t.Stop()
	}
}

// send makes one attempt at it and updates the queue.
func (q *Queue) send(it queued, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	commit, err := q.export(ctx, it)
	var rejected *RejectedError
	delivered := err == nil || errors.As(err, &rejected) // a partial success is final
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inFlight = 0
	stillQueued := len(q.items) > 0 && q.items[0].seq == it.seq
	if delivered || !stillQueued {
		// Delivered, or dropped while it was being sent: done with it.
		it.iv.Release()
	}
	if delivered {
		if commit != nil {
			commit()
		}
		q.stats.Exports++
		q.stats.Delivered = it.seq
		select {
		case q.deliv <- struct{}{}:
		default:
		}
		if stillQueued {
			q.items = q.items[1:]
		}
		q.outage.End(q.o.Log, "export recovered", "outage", "dropped_intervals", q.stats.Dropped)
		if rejected != nil {
			q.o.Log.Warn("backend rejected part of an interval", "err", err)
		}
		return nil
	}
	q.stats.Failures++
	q.outage.Begin(q.o.Log, "export failing; collection continues, intervals are queued and retried, the oldest dropped past the queue size",
		"err", err, "queue_size", q.o.Size)
	return err
}

// export makes one attempt at it through the inner exporter: the compact
// form where the exporter reads it, metricdata otherwise. commit, when not
// nil, records the attempt's deltas as acknowledged.
func (q *Queue) export(ctx context.Context, it queued) (commit func(), err error) {
	rms := it.rms
	if it.iv != nil {
		if ie, ok := q.inner.(IntervalExporter); ok && q.delta == nil {
			return nil, ie.ExportInterval(ctx, it.iv)
		}
		rms = it.iv.Metricdata()
	}
	if q.delta != nil {
		rms, commit = q.delta.toDelta(rms)
	}
	return commit, q.inner.Export(ctx, rms)
}
