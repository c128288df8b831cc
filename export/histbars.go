package export

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
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
		lo = formatValue(bounds[i-1], unit)
	}
	hi := "+Inf"
	if i < len(bounds) {
		hi = formatValue(bounds[i], unit)
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
func HistogramQuantile(bounds []float64, counts []uint64, q float64) (v float64, below, above, ok bool) {
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
	rank := q * float64(total)
	var cum uint64
	for i, n := range counts {
		prev := cum
		cum += n
		if float64(cum) < rank || n == 0 {
			continue
		}
		switch i {
		case 0:
			return bounds[0], true, false, true
		case len(bounds):
			return bounds[len(bounds)-1], false, true, true
		}
		lo, hi := bounds[i-1], bounds[i]
		return lo + (hi-lo)*(rank-float64(prev))/float64(n), false, false, true
	}
	return bounds[len(bounds)-1], false, true, true
}

// FormatValue prints v in unit the way the console does: durations in
// µs/ms/s with three significant digits, other units as a short number.
func FormatValue(v float64, unit string) string { return formatValue(v, unit) }
