package export

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestQuantile(t *testing.T) {
	us := testBounds // 1.024µs, 2.048µs, 4.096µs, 8.192µs
	for _, tc := range []struct {
		name     string
		bounds   []float64
		counts   []uint64
		p50, p99 string
	}{
		// rank 5 of 10 is halfway into (1.024, 2.048]: 1.536µs;
		// rank 9.9 is 99% in: 1.024+1.024*0.99 = 2.03776µs.
		{"one bucket", us, []uint64{0, 10, 0, 0, 0}, "1.54µs", "2.04µs"},
		{"first bucket has no lower bound", us, []uint64{10, 0, 0, 0, 0}, "<1.02µs", "<1.02µs"},
		{"last bucket has no upper bound", us, []uint64{0, 0, 0, 0, 5}, ">8.19µs", ">8.19µs"},
		// rank 50 ends exactly at the first bucket; rank 99 is 49/49 into
		// (4.096, 8.192], i.e. its upper bound.
		{"split", us, []uint64{50, 0, 0, 49, 1}, "<1.02µs", "8.19µs"},
		// rank 50 is the top of (1.024, 2.048]; rank 99 is 49/50 into
		// (2.048, 4.096]: 4.05504µs.
		{"two buckets", us, []uint64{0, 50, 50, 0, 0}, "2.05µs", "4.06µs"},
		{"milliseconds", []float64{0.001, 0.002}, []uint64{0, 4, 0}, "1.50ms", "1.99ms"},
		{"seconds", []float64{1, 3}, []uint64{0, 2, 0}, "2.00s", "2.98s"},
		{"empty", us, []uint64{0, 0, 0, 0, 0}, "-", "-"},
		{"no bounds", nil, []uint64{7}, "-", "-"},
	} {
		if got := quantile(tc.bounds, tc.counts, 0.5, "s"); got != tc.p50 {
			t.Errorf("%s: p50 = %q, want %q", tc.name, got, tc.p50)
		}
		if got := quantile(tc.bounds, tc.counts, 0.99, "s"); got != tc.p99 {
			t.Errorf("%s: p99 = %q, want %q", tc.name, got, tc.p99)
		}
	}
	// p75 of {0,50,50,0,0}: rank 75 is 25/50 into (2.048, 4.096] = 3.072µs.
	if got := quantile(us, []uint64{0, 50, 50, 0, 0}, 0.75, "s"); got != "3.07µs" {
		t.Errorf("p75 = %q", got)
	}
}

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

// consoleRows returns the whitespace-split fields of every table row
// (lines after a column header line), and the header lines.
func consoleRows(out string) (headers []string, rows [][]string) {
	inTable := false
	for line := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "---") || strings.Contains(line, "active series") || strings.Contains(line, "no activity"):
			headers = append(headers, line)
			inTable = false
		case strings.HasPrefix(line, "PID "):
			inTable = true
		case inTable:
			rows = append(rows, strings.Fields(line))
		}
	}
	return headers, rows
}

func errAttrs(syscall, errType string) attribute.Set {
	return attribute.NewSet(attribute.String("telagent.syscall.name", syscall), attribute.String("error.type", errType))
}

func TestConsoleIntervals(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	c := NewConsole(&buf, ConsoleOptions{TopN: 3})
	t1, t2, t3 := testStart.Add(5*time.Second), testStart.Add(10*time.Second), testStart.Add(15*time.Second)

	interval := func(at time.Time, read, write, fsync, over []uint64, sums [4]float64, errs map[string]int64, overErrs int64) []metricdata.ResourceMetrics {
		var ep []metricdata.DataPoint[int64]
		for _, k := range []string{"read/EAGAIN", "read/EINTR", "write/EBADF"} {
			if v, ok := errs[k]; ok {
				sc, et, _ := strings.Cut(k, "/")
				ep = append(ep, metricdata.DataPoint[int64]{Attributes: errAttrs(sc, et), StartTime: testStart, Time: at, Value: v})
			}
		}
		return []metricdata.ResourceMetrics{
			syscallRM(processResource(100, "nginx"), []metricdata.HistogramDataPoint[float64]{
				hpoint(syscallAttrs("read"), at, sums[0], read...),
				hpoint(syscallAttrs("write"), at, sums[1], write...),
			}, ep),
			syscallRM(processResource(200, "postgres"), []metricdata.HistogramDataPoint[float64]{
				hpoint(syscallAttrs("fsync"), at, sums[2], fsync...),
			}, nil),
			syscallRM(hostResource(), []metricdata.HistogramDataPoint[float64]{
				hpoint(overflowAttrs(), at, sums[3], over...),
			}, []metricdata.DataPoint[int64]{cpoint(overflowAttrs(), at, overErrs)}),
		}
	}

	// Interval 1: deltas are the cumulative values. The errors of read are
	// split by error.type and must be summed into the read row; fsync and
	// the overflow series tie at 3 calls and the real process comes first
	// (and takes the last of the 3 rows).
	err := c.Export(ctx, interval(t1,
		[]uint64{0, 10, 0, 0, 0}, []uint64{0, 0, 5, 0, 0}, []uint64{0, 0, 0, 0, 3}, []uint64{0, 0, 0, 3, 0},
		[4]float64{15e-6, 15e-6, 0.03, 4e-5},
		map[string]int64{"read/EAGAIN": 2, "read/EINTR": 1}, 1))
	if err != nil {
		t.Fatal(err)
	}
	headers, rows := consoleRows(buf.String())
	wantHeaders := []string{
		"--- 2023-11-14T22:13:25Z  2 processes  first interval ---",
		"telagent.syscall.duration: top 3 of 4 active series",
	}
	wantRows := [][]string{
		// PID EXE SYSCALL CALLS CALLS/S ERRORS P50 P99 TOTAL
		{"100", "nginx", "read", "10", "2.0", "3", "1.54µs", "2.04µs", "15.0µs"},
		{"100", "nginx", "write", "5", "1.0", "0", "3.07µs", "4.08µs", "15.0µs"},
		{"200", "postgres", "fsync", "3", "0.6", "-", ">8.19µs", ">8.19µs", "30.0ms"},
	}
	checkConsole(t, "interval 1", buf.String(), headers, rows, wantHeaders, wantRows)
	if !strings.Contains(buf.String(), "\nPID  EXE       SYSCALL  CALLS  CALLS/S  ERRORS  P50      P99      TOTAL\n") {
		t.Errorf("column header missing or not aligned:\n%s", buf.String())
	}

	// Interval 2: read is idle (no row), write's errors are a new series.
	buf.Reset()
	err = c.Export(ctx, interval(t2,
		[]uint64{0, 10, 0, 0, 0}, []uint64{0, 0, 5, 20, 0}, []uint64{0, 4, 0, 0, 3}, []uint64{0, 0, 0, 7, 0},
		[4]float64{15e-6, 135e-6, 0.031, 6e-5},
		map[string]int64{"read/EAGAIN": 2, "read/EINTR": 1, "write/EBADF": 6}, 3))
	if err != nil {
		t.Fatal(err)
	}
	headers, rows = consoleRows(buf.String())
	wantHeaders = []string{
		"--- 2023-11-14T22:13:30Z  2 processes  interval 5s ---",
		"telagent.syscall.duration: top 3 of 3 active series",
	}
	wantRows = [][]string{
		{"100", "nginx", "write", "20", "4.0", "6", "6.14µs", "8.15µs", "120µs"},
		{"200", "postgres", "fsync", "4", "0.8", "-", "1.54µs", "2.04µs", "1.00ms"},
		{"overflow", "-", "-", "4", "0.8", "2", "6.14µs", "8.15µs", "20.0µs"},
	}
	checkConsole(t, "interval 2", buf.String(), headers, rows, wantHeaders, wantRows)

	// Interval 3: postgres's probe was re-attached (new start time) and its
	// cumulative count restarted at 2: the delta is the new cumulative
	// value, not 2-7 wrapped around. Nothing else moved.
	buf.Reset()
	rms := interval(t3,
		[]uint64{0, 10, 0, 0, 0}, []uint64{0, 0, 5, 20, 0}, []uint64{2, 0, 0, 0, 0}, []uint64{0, 0, 0, 7, 0},
		[4]float64{15e-6, 135e-6, 0.002, 6e-5},
		map[string]int64{"read/EAGAIN": 2, "read/EINTR": 1, "write/EBADF": 6}, 3)
	h := rms[1].ScopeMetrics[0].Metrics[0].Data.(metricdata.Histogram[float64])
	h.DataPoints[0].StartTime = t2.Add(time.Second)
	if err := c.Export(ctx, rms); err != nil {
		t.Fatal(err)
	}
	headers, rows = consoleRows(buf.String())
	wantHeaders = []string{
		"--- 2023-11-14T22:13:35Z  2 processes  interval 5s ---",
		"telagent.syscall.duration: top 1 of 1 active series",
	}
	wantRows = [][]string{{"200", "postgres", "fsync", "2", "0.5", "-", "<1.02µs", "<1.02µs", "2.00ms"}}
	checkConsole(t, "interval 3", buf.String(), headers, rows, wantHeaders, wantRows)
}

func checkConsole(t *testing.T, name, out string, headers []string, rows [][]string, wantHeaders []string, wantRows [][]string) {
	t.Helper()
	ok := len(headers) == len(wantHeaders) && len(rows) == len(wantRows)
	for i := 0; ok && i < len(headers); i++ {
		ok = headers[i] == wantHeaders[i]
	}
	for i := 0; ok && i < len(rows); i++ {
		ok = strings.Join(rows[i], " ") == strings.Join(wantRows[i], " ")
	}
	if !ok {
		var want strings.Builder
		for _, h := range wantHeaders {
			want.WriteString(h + "\n")
		}
		for _, r := range wantRows {
			want.WriteString(strings.Join(r, " ") + "\n")
		}
		t.Errorf("%s: got\n%s\nwant (fields)\n%s", name, out, want.String())
	}
}

func TestConsoleNoActivityAndTopNDefault(t *testing.T) {
	var buf bytes.Buffer
	c := NewConsole(&buf, ConsoleOptions{}).(*console)
	if c.topN != 20 {
		t.Errorf("default TopN = %d", c.topN)
	}
	at := testStart.Add(time.Second)
	rms := []metricdata.ResourceMetrics{syscallRM(processResource(1, "init"),
		[]metricdata.HistogramDataPoint[float64]{hpoint(syscallAttrs("read"), at, 0, 0, 0, 0, 0, 0)}, nil)}
	if err := c.Export(context.Background(), rms); err != nil {
		t.Fatal(err)
	}
	if want := "--- 2023-11-14T22:13:21Z  1 process  first interval ---\ntelagent.syscall.duration: no activity\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}
