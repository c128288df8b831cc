package metrics

import "time"

// Cumulatives turns the cumulative values of series into their changes
// since the values last committed: the one cumulative → delta rule of the
// agent, shared by the delta-temporality exporters (deltaState), the
// console and top. A value is a reset, and then its whole value is the
// change (as on first sight), when its stream's start time differs from
// the committed one or it went backwards (a sum, a histogram's count or
// any of its buckets), or a histogram's bucket layout changed.
//
// Every value passed in becomes the series' next baseline; Commit makes
// them the committed ones and forgets series not passed in since the last
// Commit (their process was shown or exported for the last time), Discard
// drops them (the backend did not acknowledge the deltas). Baselines are
// recycled, so steady state allocates nothing.
type Cumulatives[K comparable] struct {
	series map[K]*cumulativeSeries
	free   []*cumulativeSeries
}

// cumulativeSeries is one series' committed value and the value recorded
// since.
type cumulativeSeries struct {
	base, next cumulativeValue
	hasBase    bool
	recorded   bool // next holds a value recorded since the last Commit or Discard
}

// cumulativeValue is one series' cumulative value as seen at one time.
type cumulativeValue struct {
	start, time time.Time
	i           int64
	f           float64 // a float sum, or a histogram's sum
	count       uint64
	buckets     []uint64
}

// NewCumulatives returns an empty set of series.
func NewCumulatives[K comparable]() *Cumulatives[K] {
	return &Cumulatives[K]{series: map[K]*cumulativeSeries{}}
}

// record returns k's committed value (nil: none, or from another stream)
// and the slot that takes its next one.
func (c *Cumulatives[K]) record(k K, start, t time.Time) (prev, next *cumulativeValue) {
	s := c.series[k]
	if s == nil {
		if n := len(c.free); n > 0 {
			s, c.free = c.free[n-1], c.free[:n-1]
		} else {
			s = &cumulativeSeries{}
		}
		c.series[k] = s
	}
	s.recorded = true
	s.next.start, s.next.time = start, t
	if s.hasBase && s.base.start.Equal(start) {
		prev = &s.base
	}
	return prev, &s.next
}

// Int records v, the cumulative value at t of a sum started at start, and
// returns its change and the time the change is counted from: the
// committed value's time, or start with ok false on first sight or after
// a reset (the change is then v itself).
func (c *Cumulatives[K]) Int(k K, start, t time.Time, v int64) (d int64, from time.Time, ok bool) {
	prev, next := c.record(k, start, t)
	next.i = v
	if prev == nil || v < prev.i {
		return v, start, false
	}
	return v - prev.i, prev.time, true
}

// Float is Int for a float sum.
func (c *Cumulatives[K]) Float(k K, start, t time.Time, v float64) (d float64, from time.Time, ok bool) {
	prev, next := c.record(k, start, t)
	next.f = v
	if prev == nil || v < prev.f {
		return v, start, false
	}
	return v - prev.f, prev.time, true
}

// Histogram is Int for a histogram: its count and sum, and its buckets,
// whose changes it writes into delta (of the same length). delta may be
// buckets itself: they are recorded before it is written.
func (c *Cumulatives[K]) Histogram(k K, start, t time.Time, count uint64, sum float64, buckets, delta []uint64) (dcount uint64, dsum float64, from time.Time, ok bool) {
	prev, next := c.record(k, start, t)
	next.count, next.f = count, sum
	next.buckets = append(next.buckets[:0], buckets...)
	if prev == nil || count < prev.count || len(prev.buckets) != len(buckets) || wentBack(prev.buckets, next.buckets) {
		copy(delta, next.buckets)
		return count, sum, start, false
	}
	for i, b := range next.buckets {
		delta[i] = b - prev.buckets[i]
	}
	return count - prev.count, sum - prev.f, prev.time, true
}

func wentBack(prev, cur []uint64) bool {
	for i := range cur {
		if cur[i] < prev[i] {
			return true
		}
	}
	return false
}

// Commit makes the values recorded since the last Commit or Discard the
// baselines of the next changes, and forgets the series with none.
func (c *Cumulatives[K]) Commit() {
	for k, s := range c.series {
		if !s.recorded {
			delete(c.series, k)
			s.hasBase = false
			c.free = append(c.free, s)
			continue
		}
		// Swap, so that each keeps its own bucket slice.
		s.base, s.next = s.next, s.base
		s.hasBase, s.recorded = true, false
	}
}

// Discard forgets the values recorded since the last Commit or Discard:
// the next changes are counted from the committed ones again.
func (c *Cumulatives[K]) Discard() {
	for k, s := range c.series {
		if !s.recorded {
			continue
		}
		s.recorded = false
		if !s.hasBase {
			delete(c.series, k)
			c.free = append(c.free, s)
		}
	}
}
