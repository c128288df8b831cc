package metrics

import (
	"slices"
	"testing"
	"time"
)

func TestCumulativesSums(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	c := NewCumulatives[string]()
	type step struct {
		start   time.Time
		t       time.Time
		v       int64
		commit  bool
		wantD   int64
		wantFr  time.Time
		wantOK  bool
		comment string
	}
	for i, s := range []step{
		{t0, at(1), 10, true, 10, t0, false, "first sight: the whole value since the start"},
		{t0, at(2), 15, true, 5, at(1), true, "the change since the committed value"},
		{t0, at(3), 30, false, 15, at(2), true, "not committed (export failed)"},
		{t0, at(4), 32, true, 17, at(2), true, "still against the committed value"},
		{t0, at(5), 20, true, 20, t0, false, "went backwards: a reset"},
		{at(5), at(6), 3, true, 3, at(5), false, "a new start time: a new stream"},
		{at(5), at(7), 3, true, 0, at(6), true, "no change"},
	} {
		if !s.commit {
			// An attempt recorded but never committed is discarded by
			// the next one.
			d, fr, ok := c.Int("a", s.start, s.t, s.v)
			if d != s.wantD || !fr.Equal(s.wantFr) || ok != s.wantOK {
				t.Errorf("step %d (%s): %d from %v ok %v, want %d from %v ok %v", i, s.comment, d, fr, ok, s.wantD, s.wantFr, s.wantOK)
			}
			c.Discard()
			continue
		}
		d, fr, ok := c.Int("a", s.start, s.t, s.v)
		if d != s.wantD || !fr.Equal(s.wantFr) || ok != s.wantOK {
			t.Errorf("step %d (%s): %d from %v ok %v, want %d from %v ok %v", i, s.comment, d, fr, ok, s.wantD, s.wantFr, s.wantOK)
		}
		c.Commit()
	}

	// A series absent from an interval is forgotten at its Commit.
	c.Commit()
	if d, _, ok := c.Int("a", at(5), at(8), 4); ok || d != 4 {
		t.Errorf("after an interval without it: %d ok %v, want the whole value 4 as on first sight", d, ok)
	}
	if d, _, ok := c.Float("f", t0, at(1), 1.5); ok || d != 1.5 {
		t.Errorf("float first sight: %v ok %v", d, ok)
	}
	c.Commit()
	if d, _, ok := c.Float("f", t0, at(2), 4); !ok || d != 2.5 {
		t.Errorf("float change: %v ok %v, want 2.5", d, ok)
	}
}

func TestCumulativesHistogram(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := NewCumulatives[int]()
	delta := make([]uint64, 3)
	hist := func(count uint64, sum float64, b ...uint64) (uint64, float64, bool) {
		n, s, _, ok := c.Histogram(1, t0, time.Now(), count, sum, b, delta[:len(b)])
		c.Commit()
		return n, s, ok
	}
	hist(3, 3, 1, 1, 1)
	if n, s, ok := hist(6, 5, 2, 2, 2); !ok || n != 3 || s != 2 || !slices.Equal(delta, []uint64{1, 1, 1}) {
		t.Errorf("change: %d %v %v %v", n, s, delta, ok)
	}
	// One bucket going back is a reset even though the count grew: the
	// old rule subtracted and wrapped around to 2^64-1.
	if n, _, ok := hist(7, 6, 1, 3, 3); ok || n != 7 || !slices.Equal(delta, []uint64{1, 3, 3}) {
		t.Errorf("bucket went back: %d %v ok %v, want a reset with the whole value", n, delta, ok)
	}
	if n, _, ok := hist(8, 7, 2, 6); ok || n != 8 || !slices.Equal(delta[:2], []uint64{2, 6}) {
		t.Errorf("layout changed: %d %v ok %v, want a reset", n, delta[:2], ok)
	}
	// The delta may be written over the cumulative buckets themselves.
	b := []uint64{4, 9}
	if n, _, _, ok := c.Histogram(1, t0, time.Now(), 13, 9, b, b); !ok || n != 5 || !slices.Equal(b, []uint64{2, 3}) {
		t.Errorf("in place: %d %v ok %v, want 5 [2 3]", n, b, ok)
	}
}

// Steady state allocates nothing: baselines are recycled.
func TestCumulativesSteadyStateAllocs(t *testing.T) {
	c := NewCumulatives[int]()
	t0 := time.Unix(1000, 0)
	buckets, delta := make([]uint64, 16), make([]uint64, 16)
	round := func() {
		for k := range 100 {
			buckets[0]++
			c.Histogram(k, t0, time.Now(), buckets[0], 1, buckets, delta)
			c.Int(1000+k, t0, time.Now(), int64(k))
		}
		c.Commit()
	}
	for range 10 { // both maps and the free list grown to the series
		round()
	}
	if n := testing.AllocsPerRun(10, round); n != 0 {
		t.Errorf("%v allocations per interval of 200 series, want 0", n)
	}
}
