package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// seqExporter records the seq attribute of every record it accepts, in
// order; while down it refuses everything.
type seqExporter struct {
	mu      sync.Mutex
	down    bool
	got     []int64
	batches []int
	tries   int
}

func (x *seqExporter) ExportEvents(_ context.Context, recs []sdklog.Record) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.tries++
	if x.down {
		return errors.New("backend down")
	}
	x.batches = append(x.batches, len(recs))
	for i := range recs {
		recs[i].WalkAttributes(func(kv attribute.KeyValue) bool {
			if kv.Key == "seq" {
				x.got = append(x.got, kv.Value.AsInt64())
			}
			return true
		})
	}
	return nil
}

func (x *seqExporter) Shutdown(context.Context) error { return nil }

// TestEventBacklogSurvivesOutage: events produced while the backend is
// down are kept and delivered, once each and in order, when it returns; an
// outage longer than the backlog loses exactly the oldest surplus, counted
// as export_failed; retries back off; stopping during an outage counts
// what is left.
func TestEventBacklogSurvivesOutage(t *testing.T) {
	exp := &seqExporter{}
	e := newPipeline(exp, "test", nil, func(uint64) string { return "" }, slog.New(slog.DiscardHandler))
	seq := int64(0)
	add := func(n int) {
		for range n {
			e.add(probes.Event{Desc: entity.EventTelagentProcessExec, Time: time.Unix(1, 0), Pid: uint32(100 + seq%7),
				Attributes: []attribute.KeyValue{attribute.Int64("seq", seq)}, Node: 1})
			seq++
		}
	}
	check := func(what string, from, to int64) {
		t.Helper()
		exp.mu.Lock()
		defer exp.mu.Unlock()
		if int64(len(exp.got)) != to-from {
			t.Fatalf("%s: %d events delivered, want %d", what, len(exp.got), to-from)
		}
		for i, s := range exp.got {
			if s != from+int64(i) {
				t.Fatalf("%s: event %d has seq %d, want %d (lost, repeated or out of order)", what, i, s, from+int64(i))
			}
		}
		for _, n := range exp.batches {
			if n > eventBatch {
				t.Fatalf("%s: a batch of %d records, more than %d", what, n, eventBatch)
			}
		}
		exp.got, exp.batches = nil, nil
	}
	setDown := func(down bool) { exp.mu.Lock(); exp.down = down; exp.mu.Unlock() }
	failed := func() uint64 { e.mu.Lock(); defer e.mu.Unlock(); return e.failed[1] }

	add(10)
	e.flush()
	check("backend up", 0, 10)

	// A short outage: nothing lost.
	setDown(true)
	for range 3 {
		add(1000)
		e.flush()
	}
	if exp.tries != 2 {
		t.Errorf("%d attempts over 3 flushes in an outage, want 2 (the first failure backs off)", exp.tries)
	}
	if e.retryWait != eventRetryMin {
		t.Errorf("retry wait %v after one failure, want %v", e.retryWait, eventRetryMin)
	}
	setDown(false)
	e.retryAt = time.Time{} // the backoff has passed
	e.flush()
	check("after a short outage", 10, 3010)
	if f := failed(); f != 0 {
		t.Errorf("%d events counted lost after a short outage", f)
	}

	// An outage longer than the backlog: the oldest surplus goes.
	setDown(true)
	add(eventBacklog + 500)
	e.flush()
	if len(e.backlog) != eventBacklog {
		t.Errorf("backlog holds %d records, bound %d", len(e.backlog), eventBacklog)
	}
	if f := failed(); f != 500 {
		t.Errorf("%d events counted lost, want the 500 past the backlog", f)
	}
	setDown(false)
	e.retryAt = time.Time{}
	e.flush()
	check("after a long outage", 3010+500, seq)

	// Stopping during an outage: one last attempt, the rest counted.
	setDown(true)
	add(5)
	e.stopCtx = context.Background()
	close(e.stop)
	e.flush()
	if f := failed(); f != 505 || len(e.backlog) != 0 {
		t.Errorf("after stopping in an outage: %d counted lost (want 505), %d left", f, len(e.backlog))
	}
}
