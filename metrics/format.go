package metrics

import (
	"math"
	"strconv"
	"strings"
)

// FormatValue prints v in unit as the console and top do: durations with a
// µs/ms/s unit chosen so there are 1–3 integer digits, three significant
// digits; bytes as FormatBytes; other units as a short number followed by
// the unit (annotations like {call} dropped).
func FormatValue(v float64, unit string) string {
	switch unit {
	case "s":
		return formatSeconds(v)
	case "ms":
		return formatSeconds(v / 1e3)
	case "us":
		return formatSeconds(v / 1e6)
	case "ns":
		return formatSeconds(v / 1e9)
	case "By":
		return FormatBytes(v)
	}
	s := strconv.FormatFloat(v, 'g', 3, 64)
	if unit == "" || unit == "1" || strings.HasPrefix(unit, "{") {
		return s
	}
	return s + unit
}

// FormatBytes prints a number of bytes (or bytes per second) in binary
// units, the unit chosen after rounding so the number stays below 1024: a
// whole number of the unit as it is (0B, 512B, 100KiB, 48MiB: the form
// --bpf-memory takes), anything else with three significant digits
// (1.50GiB, 41.1MiB, 0.50B). It is the one byte formatter of the console,
// top, probes and the command line's messages.
func FormatBytes(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64) + "B"
	}
	units := [...]string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	i := 0
	for v >= 1023.5 && i < len(units)-1 { // 1023.5 would print as 1024
		v /= 1024
		i++
	}
	if v == math.Trunc(v) {
		return sign + strconv.FormatFloat(v, 'f', 0, 64) + units[i]
	}
	return sign + sig3(v) + units[i]
}

func formatSeconds(s float64) string {
	if s == 0 {
		return "0"
	}
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return strconv.FormatFloat(s, 'g', -1, 64)
	}
	// Pick the unit after rounding, so 999.7µs prints as 1.00ms, not 1000µs.
	a := math.Abs(s)
	var x float64
	var u string
	switch {
	case a < 999.5e-6:
		x, u = s*1e6, "µs"
	case a < 999.5e-3:
		x, u = s*1e3, "ms"
	default:
		x, u = s, "s"
	}
	return sig3(x) + u
}

// sig3 formats x with three significant digits for |x| in [0.001, 1000),
// and without an exponent above that (12345s stays 12345s).
func sig3(x float64) string {
	a := math.Abs(x)
	switch {
	case a >= 99.95:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case a >= 9.995:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}
