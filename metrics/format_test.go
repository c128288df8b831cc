package metrics

import "testing"

func TestFormatSeconds(t *testing.T) {
	for in, want := range map[float64]string{
		0:          "0",
		5e-7:       "0.50µs",
		1.024e-6:   "1.02µs",
		123.4e-6:   "123µs",
		999.7e-6:   "1.00ms", // unit chosen after rounding
		0.0315:     "31.5ms",
		1.5:        "1.50s",
		12.345:     "12.3s",
		12345.6:    "12346s",
		-0.0000025: "-2.50µs",
	} {
		if got := formatSeconds(in); got != want {
			t.Errorf("formatSeconds(%v) = %q, want %q", in, got, want)
		}
	}
}

// TestFormatBytes: the one byte formatter of the console, top, probes and
// the command line's messages.
func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0B"},
		{512, "512B"},
		{1023, "1023B"},
		{0.5, "0.50B"},
		{1023.7, "1.00KiB"}, // the unit is chosen after rounding
		{1024, "1KiB"},
		{100 << 10, "100KiB"},
		{812.4 * 1024, "812KiB"},
		{48 << 20, "48MiB"},
		{52428800, "50MiB"},
		{41.1 * (1 << 20), "41.1MiB"},
		{1.5 * (1 << 30), "1.50GiB"},
		{(1 << 40) - 1, "1.00TiB"},
		{-2048, "-2KiB"},
	} {
		if got := FormatBytes(tc.in); got != tc.want {
			t.Errorf("FormatBytes(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
