package metrics

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
)

// ScopeName is the instrumentation scope of everything the agent emits.
const ScopeName = "github.com/telagent/telagent"

// Builder assembles one interval's map reads into an Interval: per
// resource, per metric, cumulative points since the probe attached.
// Probes add points; they never touch the SDK's instruments, so values are
// exported exactly as the kernel counted them.
//
// Points are stored compactly (Interval), not as metricdata: an attribute
// set and a value word per point, and a histogram's non-zero bucket counts
// as varints. A syscalls key (an error counter and a 29-bucket histogram)
// takes about 70 bytes instead of about 500, and the interval is what the
// export queue holds, so memory with 100k live series stays small. The
// otlp and otlp-json exporters encode it resource by resource with its
// points typed (Interval.ResourcePoints); others view it one resource at a
// time as metricdata (Interval.ResourceMetrics) or get a copy as
// metricdata (Interval.Metricdata).
//
// The builder writes over released intervals' memory (their point slices
// keep their capacity), so a steady state adds points without allocating.
type Builder struct {
	scope instrumentation.Scope
	start time.Time
	cur   *Interval // being filled; nil after Finish until the next Begin

	mu   sync.Mutex
	free []*Interval // released, reused by Begin

	mats []Materializer // Result's, one per resource
	out  []metricdata.ResourceMetrics
}

// MaxFreeIntervals is how many released intervals a Builder keeps for
// reuse: one being filled and one being exported is the steady state; more
// (after an outage emptied the export queue) go back to the garbage
// collector. With it, a bounded number of intervals ever exists.
const MaxFreeIntervals = 2

// Interval is one collection interval's metric data in the builder's
// compact form. After Builder.Finish it belongs to the caller, who reads
// it (from any one goroutine at a time) and calls Release when done.
type Interval struct {
	owner      *Builder
	scope      instrumentation.Scope
	start, now time.Time
	uses       uint64 // intervals this memory has held (Begin calls)

	byRes map[*resource.Resource]*resourceBuilder
	order []*resourceBuilder // this interval's resources, in first-use order
	last  *resourceBuilder   // of the previous point: a key's points share it
}

type resourceBuilder struct {
	res     *resource.Resource
	use     uint64           // the interval's uses when it last had a point
	metrics []*metricBuilder // a handful per resource: scanned, not hashed
	order   []*metricBuilder // this interval's metrics, in first-use order
}

// metricBuilder holds one metric's points of one resource, column by
// column. Its aggregation is decided per interval, on first use, from the
// descriptor (and CounterFloat may turn a still empty int sum into a float
// sum), exactly as a fresh metricdata.Metrics would be.
type metricBuilder struct {
	name, description, unit string
	use                     uint64
	kind                    Kind
	temporality             metricdata.Temporality
	monotonic               bool

	attrs   []attribute.Set
	nums    []uint64  // per point: an int64, a float64's bits, or a histogram's count
	sums    []float64 // histograms: per point
	buckets []byte    // histograms: per point, the bucket counts (appendBuckets)
}

// Kind is the aggregation of one metric of an Interval, decided per
// interval from its descriptor and the points added (see MetricPoints).
type Kind uint8

const (
	KindHistogram  Kind = iota // points in MetricPoints.Hist
	KindSumInt                 // points in MetricPoints.Ints
	KindSumFloat               // points in MetricPoints.Floats
	KindGaugeInt               // points in MetricPoints.Ints
	KindGaugeFloat             // points in MetricPoints.Floats
)

// NewBuilder returns a builder whose points start at start (attach time).
func NewBuilder(version string, start time.Time) *Builder {
	return &Builder{scope: instrumentation.Scope{Name: ScopeName, Version: version, SchemaURL: entity.SchemaURL}, start: start}
}

// Begin starts an interval ending at now. Without a Finish since the last
// Begin, the previous interval is forgotten and its memory written over.
func (b *Builder) Begin(now time.Time) {
	if b.cur == nil {
		b.cur = b.take()
	}
	b.cur.begin(now)
}

// active is the interval being filled; points added without a Begin
// start one now.
func (b *Builder) active() *Interval {
	if b.cur == nil {
		b.Begin(time.Now())
	}
	return b.cur
}

// Finish ends the interval and hands it to the caller, who must Release
// it; the next Begin fills other memory.
func (b *Builder) Finish() *Interval {
	iv := b.cur
	if iv == nil {
		iv = b.take()
		iv.begin(time.Now())
	}
	b.cur = nil
	return iv
}

func (b *Builder) take() *Interval {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.free); n > 0 {
		iv := b.free[n-1]
		b.free = b.free[:n-1]
		return iv
	}
	return &Interval{owner: b, scope: b.scope, start: b.start, byRes: make(map[*resource.Resource]*resourceBuilder)}
}

// Release gives the interval's memory back to its builder. The interval
// must not be used afterwards. Releasing nil does nothing.
func (iv *Interval) Release() {
	if iv == nil || iv.owner == nil {
		return
	}
	b := iv.owner
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.free) < MaxFreeIntervals {
		b.free = append(b.free, iv)
	}
}

// begin starts a new interval in this memory. A resource that had no point
// in the interval this memory last held is dropped, so it holds on to no
// resource the resolver has forgotten.
func (iv *Interval) begin(now time.Time) {
	iv.now = now
	iv.uses++
	for res, rb := range iv.byRes {
		if rb.use+1 < iv.uses {
			delete(iv.byRes, res)
		}
	}
	iv.order = iv.order[:0]
	iv.last = nil
}

func (iv *Interval) metric(res *resource.Resource, d entity.MetricDesc) *metricBuilder {
	rb := iv.last
	if rb == nil || rb.res != res {
		if rb = iv.byRes[res]; rb == nil {
			rb = &resourceBuilder{res: res}
			iv.byRes[res] = rb
		}
		iv.last = rb
	}
	if rb.use != iv.uses {
		rb.use = iv.uses
		rb.order = rb.order[:0]
		iv.order = append(iv.order, rb)
	}
	var m *metricBuilder
	for _, x := range rb.metrics {
		if x.name == d.Name {
			m = x
			break
		}
	}
	if m == nil {
		m = &metricBuilder{name: d.Name}
		rb.metrics = append(rb.metrics, m)
	}
	if m.use != iv.uses {
		m.use = iv.uses
		m.reset(d)
		rb.order = append(rb.order, m)
	}
	return m
}

// reset starts the metric's interval as a new metricdata.Metrics for d.
func (m *metricBuilder) reset(d entity.MetricDesc) {
	m.name, m.description, m.unit = d.Name, d.Description, d.Unit
	m.temporality, m.monotonic = metricdata.CumulativeTemporality, false
	switch d.Instrument {
	case entity.InstrumentHistogram:
		m.kind = KindHistogram
	case entity.InstrumentCounter:
		m.kind, m.monotonic = KindSumInt, true
	case entity.InstrumentUpDownCounter:
		m.kind = KindSumInt
	default:
		m.kind, m.temporality = KindGaugeInt, 0
	}
	m.clear()
}

func (m *metricBuilder) clear() {
	m.attrs, m.nums, m.sums, m.buckets = m.attrs[:0], m.nums[:0], m.sums[:0], m.buckets[:0]
}

func (m *metricBuilder) add(attrs attribute.Set, v uint64) {
	m.attrs = append(m.attrs, attrs)
	m.nums = append(m.nums, v)
}

// Histogram adds one cumulative histogram point of count values. counts
// are per bucket of entity.HistBoundsSeconds (copied); sum is in the
// metric's unit.
func (b *Builder) Histogram(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, n uint64, counts []uint64, sum float64) {
	m := b.active().metric(res, d)
	if m.kind != KindHistogram {
		// As metricdata would: a histogram point replaces a metric of
		// another kind with a histogram of unspecified temporality.
		m.kind, m.temporality = KindHistogram, 0
		m.clear()
	}
	m.add(attrs, n)
	m.sums = append(m.sums, sum)
	m.buckets = appendBuckets(m.buckets, counts)
}

// appendBuckets appends counts sparsely: their number, then per group of
// 64 buckets a mask of the non-zero ones followed by those counts, all as
// uvarints. A log2 latency histogram has a few busy buckets of its 29,
// so this is ~10 bytes instead of 232, and cheap both ways.
func appendBuckets(b []byte, counts []uint64) []byte {
	b = appendUvarint(b, uint64(len(counts)))
	for lo := 0; lo < len(counts); lo += 64 {
		group := counts[lo:min(lo+64, len(counts))]
		var mask uint64
		for i, c := range group {
			if c != 0 {
				mask |= 1 << i
			}
		}
		b = appendUvarint(b, mask)
		for ; mask != 0; mask &= mask - 1 {
			b = appendUvarint(b, group[bits.TrailingZeros64(mask)])
		}
	}
	return b
}

// readBuckets appends the counts appendBuckets wrote at the start of b to
// dst and returns the rest of b.
func readBuckets(dst *[]uint64, b []byte) []byte {
	n, k := binary.Uvarint(b)
	b = b[k:]
	lo := len(*dst)
	*dst = resize(*dst, lo+int(n))
	counts := (*dst)[lo:]
	clear(counts)
	for g := 0; g < int(n); g += 64 {
		mask, k := binary.Uvarint(b)
		b = b[k:]
		for ; mask != 0; mask &= mask - 1 {
			c, k := binary.Uvarint(b)
			b = b[k:]
			counts[g+bits.TrailingZeros64(mask)] = c
		}
	}
	return b
}

// appendUvarint is binary.AppendUvarint with the one-byte case (most
// bucket counts of a histogram are zero or small) inlined.
func appendUvarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return binary.AppendUvarint(b, v)
}

// Counter adds one cumulative sum point (monotonic or not, as d says).
func (b *Builder) Counter(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, v int64) {
	m := b.active().metric(res, d)
	if m.kind == KindSumInt || m.kind == KindGaugeInt {
		m.add(attrs, uint64(v))
	}
}

// CounterFloat adds one cumulative float sum point, for counters whose
// unit needs a conversion (nanoseconds counted, seconds exported).
func (b *Builder) CounterFloat(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, v float64) {
	m := b.active().metric(res, d)
	if m.kind == KindSumInt && len(m.nums) == 0 {
		m.kind = KindSumFloat
	}
	if m.kind == KindSumFloat {
		m.add(attrs, math.Float64bits(v))
	}
}

// Gauge adds one float gauge point (a ratio, a fill level) to a metric
// declared as a gauge.
func (b *Builder) Gauge(res *resource.Resource, d entity.MetricDesc, attrs attribute.Set, v float64) {
	m := b.active().metric(res, d)
	if m.kind == KindGaugeInt && len(m.nums) == 0 {
		m.kind = KindGaugeFloat
	}
	if m.kind == KindGaugeFloat {
		m.add(attrs, math.Float64bits(v))
	}
}

// Result returns the interval being built as metricdata, in the order
// resources and metrics were first added (deterministic for a
// deterministic map read). It is valid until the next Begin or Result.
func (b *Builder) Result() []metricdata.ResourceMetrics {
	if b.out == nil {
		b.out = make([]metricdata.ResourceMetrics, 0, 8)
	}
	b.out = b.out[:0]
	iv := b.cur
	if iv == nil {
		return b.out
	}
	for len(b.mats) < iv.Len() {
		b.mats = append(b.mats, Materializer{})
	}
	for i := range iv.Len() {
		b.out = append(b.out, *iv.ResourceMetrics(i, &b.mats[i]))
	}
	return b.out
}

// Len is the number of resources in the interval.
func (iv *Interval) Len() int { return len(iv.order) }

// Points is the number of data points in the interval.
func (iv *Interval) Points() int {
	n := 0
	for _, rb := range iv.order {
		for _, m := range rb.order {
			n += len(m.attrs)
		}
	}
	return n
}

// Time is the interval's end, the time of every point.
func (iv *Interval) Time() time.Time { return iv.now }

// Metricdata returns the whole interval as metricdata, in memory the caller
// owns (for exporters that keep it or need it at once).
func (iv *Interval) Metricdata() []metricdata.ResourceMetrics {
	out := make([]metricdata.ResourceMetrics, 0, iv.Len())
	var m Materializer
	for i := range iv.Len() {
		out = append(out, CloneResourceMetrics([]metricdata.ResourceMetrics{*iv.ResourceMetrics(i, &m)})...)
	}
	return out
}

// Materializer is reusable memory to view an Interval's resources one at a
// time (Interval.ResourcePoints, Interval.ResourceMetrics). The zero value
// is ready.
type Materializer struct {
	rm     metricdata.ResourceMetrics
	sms    []metricdata.ScopeMetrics
	ms     []metricdata.Metrics
	pts    []MetricPoints // per metric of the resource
	counts []uint64       // the histograms' bucket counts
}

// MetricPoints is one metric of an interval's resource with its points
// typed, not boxed into a metricdata.Aggregation: in Hist, Ints or Floats,
// as Kind says. Temporality is a histogram's or sum's, Monotonic a sum's,
// as in the aggregation Interval.ResourceMetrics boxes them into.
type MetricPoints struct {
	Name, Description, Unit string
	Kind                    Kind
	Temporality             metricdata.Temporality
	Monotonic               bool

	Hist   []metricdata.HistogramDataPoint[float64]
	Ints   []metricdata.DataPoint[int64]
	Floats []metricdata.DataPoint[float64]
}

// Scope is the instrumentation scope of every metric of the interval.
func (iv *Interval) Scope() instrumentation.Scope { return iv.scope }

// ResourcePoints returns resource i of the interval and its metrics, in
// first-use order, with their points typed in m's memory: valid until m is
// used again. Nothing is allocated per point or per metric once m has
// grown to the interval; this is what the exporters' own encoders read.
func (iv *Interval) ResourcePoints(i int, m *Materializer) (*resource.Resource, []MetricPoints) {
	rb := iv.order[i]
	m.begin(len(rb.order))
	for j, mb := range rb.order {
		iv.points(m, j, mb)
	}
	return rb.res, m.pts[:len(rb.order)]
}

// ResourceMetrics returns resource i of the interval as metricdata in m's
// memory: valid until m is used again. Each metric's aggregation is boxed
// into metricdata.Metrics.Data (one allocation per metric, none per point;
// the exporters' own encoders read the points without boxing them, see
// ResourcePoints).
func (iv *Interval) ResourceMetrics(i int, m *Materializer) *metricdata.ResourceMetrics {
	res, pts := iv.ResourcePoints(i, m)
	m.ms = m.ms[:0]
	for j := range pts {
		p := &pts[j]
		m.ms = append(m.ms, metricdata.Metrics{Name: p.Name, Description: p.Description, Unit: p.Unit, Data: p.data()})
	}
	m.sms = append(m.sms[:0], metricdata.ScopeMetrics{Scope: iv.scope, Metrics: m.ms})
	m.rm = metricdata.ResourceMetrics{Resource: res, ScopeMetrics: m.sms}
	return &m.rm
}

// begin readies m for a resource of n metrics.
func (m *Materializer) begin(n int) {
	m.counts = m.counts[:0]
	for len(m.pts) < n {
		m.pts = append(m.pts, MetricPoints{})
	}
}

// points writes mb, metric j of the resource m began, into m: its
// description, and its points in Hist, Ints or Floats, as mb.kind says.
func (iv *Interval) points(m *Materializer, j int, mb *metricBuilder) {
	p := &m.pts[j]
	p.Name, p.Description, p.Unit = mb.name, mb.description, mb.unit
	p.Kind, p.Temporality, p.Monotonic = mb.kind, mb.temporality, mb.monotonic
	n := len(mb.attrs)
	start, now := iv.start, iv.now
	switch mb.kind {
	case KindHistogram:
		p.Hist = resize(p.Hist, n)
		buckets := mb.buckets
		for i := range p.Hist {
			lo := len(m.counts)
			buckets = readBuckets(&m.counts, buckets)
			// Field by field, in place: no temporary of the whole point.
			dp := &p.Hist[i]
			dp.Attributes = mb.attrs[i]
			dp.StartTime, dp.Time = start, now
			dp.Count, dp.Sum = mb.nums[i], mb.sums[i]
			dp.Bounds = entity.HistBoundsSeconds
			dp.BucketCounts = m.counts[lo:len(m.counts):len(m.counts)]
			dp.Min, dp.Max, dp.Exemplars = metricdata.Extrema[float64]{}, metricdata.Extrema[float64]{}, nil
		}
	case KindSumFloat, KindGaugeFloat:
		if mb.kind == KindGaugeFloat {
			start = time.Time{}
		}
		p.Floats = resize(p.Floats, n)
		for i := range p.Floats {
			p.Floats[i] = metricdata.DataPoint[float64]{Attributes: mb.attrs[i], StartTime: start, Time: now, Value: math.Float64frombits(mb.nums[i])}
		}
	default:
		if mb.kind == KindGaugeInt {
			start = time.Time{}
		}
		p.Ints = resize(p.Ints, n)
		for i := range p.Ints {
			p.Ints[i] = metricdata.DataPoint[int64]{Attributes: mb.attrs[i], StartTime: start, Time: now, Value: int64(mb.nums[i])}
		}
	}
}

// data boxes p's points into the aggregation exporters expect.
func (p *MetricPoints) data() metricdata.Aggregation {
	switch p.Kind {
	case KindHistogram:
		return metricdata.Histogram[float64]{Temporality: p.Temporality, DataPoints: p.Hist}
	case KindSumFloat:
		return metricdata.Sum[float64]{Temporality: p.Temporality, IsMonotonic: p.Monotonic, DataPoints: p.Floats}
	case KindGaugeFloat:
		return metricdata.Gauge[float64]{DataPoints: p.Floats}
	case KindGaugeInt:
		return metricdata.Gauge[int64]{DataPoints: p.Ints}
	default:
		return metricdata.Sum[int64]{Temporality: p.Temporality, IsMonotonic: p.Monotonic, DataPoints: p.Ints}
	}
}

// resize returns s with length n, reusing its capacity.
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return append(s[:cap(s)], make([]T, n-cap(s))...)
}
