package export

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/telagent/telagent/metrics"
)

// WriteHistogramBars draws a histogram's bucket counts as the bcc tools'
// print_log2_hist does: one line per bucket from the first non-empty to the
// last non-empty one, each with its value range (in µs/ms/s for a unit of
// seconds), its count and a bar of '*' scaled so that the largest count
// fills the bar. width is the whole line's width in columns: the bar
// shrinks to fit (down to minBar) and never grows beyond maxBar, as bcc's
// 40 columns. counts has len(bounds)+1 entries: (-inf, b0], (b0, b1], ...,
// (b_last, +inf). indent is written before every line. Nothing is written
// for an empty histogram.
func WriteHistogramBars(w io.Writer, bounds []float64, counts []uint64, unit string, width int, indent string) {
	if len(counts) == 0 || len(counts) != len(bounds)+1 {
		return
	}
	first, last := -1, -1
	var most uint64
	for i, n := range counts {
		if n == 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
		most = max(most, n)
	}
	if first < 0 {
		return
	}
	lo := make([]string, 0, last-first+1)
	hi := make([]string, 0, last-first+1)
	loW, hiW, cntW := 0, 0, len("count")
	for i := first; i <= last; i++ {
		l, h := bucketRange(bounds, i, unit)
		lo, hi = append(lo, l), append(hi, h)
		loW = max(loW, utf8.RuneCountInString(l))
		hiW = max(hiW, utf8.RuneCountInString(h))
		cntW = max(cntW, len(strconv.FormatUint(counts[i], 10)))
	}
	// indent + "lo -> hi" + " : " + count + " |" + bar + "|"
	fixed := utf8.RuneCountInString(indent) + loW + len(" -> ") + hiW + len(" : ") + cntW + len(" |") + len("|")
	bar := min(max(width-fixed, minBar), maxBar)

	var b strings.Builder
	title := rangeTitle(unit)
	fmt.Fprintf(&b, "%s%s : %-*s  distribution\n", indent, padLeft(title, loW+len(" -> ")+hiW), cntW, "count")
	for k, i := 0, first; i <= last; k, i = k+1, i+1 {
		n := counts[i]
		stars := int(math.Round(float64(n) * float64(bar) / float64(most)))
		if n > 0 && stars == 0 {
			stars = 1 // a non-empty bucket is never drawn empty
		}
		fmt.Fprintf(&b, "%s%s -> %s : %-*d |%s%s|\n", indent, padLeft(lo[k], loW), padRight(hi[k], hiW), cntW, n,
			strings.Repeat("*", stars), strings.Repeat(" ", bar-stars))
	}
	io.WriteString(w, b.String())
}

// Bar widths: bcc draws 40 stars; below 10 the shape is still readable.
const (
	minBar = 10
	maxBar = 40
)

func rangeTitle(unit string) string {
	switch unit {
	case "s", "ms", "us", "ns":
		return "duration"
	}
	return "value"
}

// bucketRange labels bucket i: (bounds[i-1], bounds[i]], the first from 0
// (every log2 histogram here counts non-negative values) and the last to
// +Inf.
func bucketRange(bounds []float64, i int, unit string) (string, string) {
	lo := "0"
	if i > 0 {
		lo = metrics.FormatValue(bounds[i-1], unit)
	}
	hi := "+Inf"
	if i < len(bounds) {
		hi = metrics.FormatValue(bounds[i], unit)
	}
	return lo, hi
}

func padLeft(s string, n int) string {
	if d := n - utf8.RuneCountInString(s); d > 0 {
		return strings.Repeat(" ", d) + s
	}
	return s
}

func padRight(s string, n int) string {
	if d := n - utf8.RuneCountInString(s); d > 0 {
		return s + strings.Repeat(" ", d)
	}
	return s
}

// HistogramQuantile estimates the q-quantile of a histogram from its bucket
// counts by linear interpolation inside the bucket holding the rank (as
// Prometheus' histogram_quantile does). The first bucket has no lower
// bound and the last no upper bound, so a rank there reports the bound it
// is below (below=true) or above (above=true) instead of an invented value.
// ok is false for an empty histogram or mismatched slices.
//
// sum is the histogram's sum (NaN if unknown). Every histogram here counts
// non-negative values, each at least its bucket's lower bound and at most
// its upper bound, so the sum bounds every rank too: the k-th smallest of n
// values is at most (sum − what the k−1 below it must at least add) /
// (n−k+1), and at least what the sum leaves when every other value is as
// large as its bucket allows. The estimate is kept inside those bounds, so
// it never exceeds the largest value the sum allows (one observation: the
// sum itself, exactly); where they pin it to three significant digits it
// is returned as a plain value, wherever the bucket. A sum the buckets
// cannot add up to (another layout, a reset) is ignored.
func HistogramQuantile(bounds []float64, counts []uint64, sum, q float64) (v float64, below, above, ok bool) {
	if len(bounds) == 0 || len(counts) != len(bounds)+1 {
		return 0, false, false, false
	}
	var total uint64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return 0, false, false, false
	}
	q = min(max(q, 0), 1)
	rank := q * float64(total)
	b, prev := -1, uint64(0)
	var cum uint64
	for i, n := range counts {
		p := cum
		cum += n
		if float64(cum) >= rank && n > 0 {
			b, prev = i, p
			break
		}
	}
	lo, hi := bucketBounds(bounds, b)
	est := lo
	if b > 0 && b < len(bounds) {
		est = lo + (hi-lo)*(rank-float64(prev))/float64(counts[b])
	}
	low, high := lo, hi
	if l, h, known := sumBounds(bounds, counts, total, sum, b, prev, rank); known {
		low, high = max(low, l), min(high, h)
		if low > high { // rounding of the sum
			low = high
		}
		if !math.IsInf(high, 1) && high-low <= 1e-3*high {
			return (low + high) / 2, false, false, true
		}
	}
	switch b {
	case 0:
		return min(bounds[0], high), true, false, true
	case len(bounds):
		return max(bounds[len(bounds)-1], low), false, true, true
	}
	return min(max(est, low), high), false, false, true
}

// bucketBounds is bucket i's range: [0, bounds[0]] for the first,
// (bounds[last], +Inf) for the last.
func bucketBounds(bounds []float64, i int) (lo, hi float64) {
	lo, hi = 0, math.Inf(1)
	if i > 0 {
		lo = bounds[i-1]
	}
	if i < len(bounds) {
		hi = bounds[i]
	}
	return lo, hi
}

// sumBounds bounds the k-th smallest value (k = ⌈rank⌉, in bucket b, after
// prev values in lower buckets) by the histogram's sum. known is false when
// the sum is unknown or the buckets cannot add up to it.
func sumBounds(bounds []float64, counts []uint64, total uint64, sum float64, b int, prev uint64, rank float64) (low, high float64, known bool) {
	if math.IsNaN(sum) || math.IsInf(sum, 0) || sum < 0 {
		return 0, 0, false
	}
	k := min(max(uint64(math.Ceil(rank)), prev+1), total)
	// Sums of the lower and upper bucket bounds of the values ranked
	// below k (A) and above it (B), and of all of them.
	var loA, hiA, loB, hiB, loAll, hiAll float64
	add := func(n uint64, i int, lo, hi *float64) {
		if n == 0 {
			return
		}
		l, h := bucketBounds(bounds, i)
		*lo += float64(n) * l
		*hi += float64(n) * h
	}
	for i, n := range counts {
		add(n, i, &loAll, &hiAll)
		switch {
		case i < b:
			add(n, i, &loA, &hiA)
		case i == b:
			add(k-1-prev, i, &loA, &hiA)
			add(prev+n-k, i, &loB, &hiB)
		default:
			add(n, i, &loB, &hiB)
		}
	}
	const slack = 1e-9 // the sum is a float of a sum of integers (ns)
	if sum < loAll*(1-slack) || sum > hiAll*(1+slack) {
		return 0, 0, false
	}
	l, h := bucketBounds(bounds, b)
	high = min(h, (sum-loA)/float64(total-k+1), sum-loA-loB)
	low = max(l, (sum-hiB)/float64(k), sum-hiA-hiB)
	return low, high, true
}

// FormatQuantile is HistogramQuantile as the console and top print it: a
// value in unit, "<bound" in the first bucket, ">bound" in the last, "-"
// for an empty histogram.
func FormatQuantile(bounds []float64, counts []uint64, sum, q float64, unit string) string {
	v, below, above, ok := HistogramQuantile(bounds, counts, sum, q)
	switch {
	case !ok:
		return "-"
	case below:
		return "<" + metrics.FormatValue(v, unit)
	case above:
		return ">" + metrics.FormatValue(v, unit)
	}
	return metrics.FormatValue(v, unit)
}
