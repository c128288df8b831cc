package export

import (
	"bytes"
	"context"
	"slices"
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
		// PID EXE SYSCALL COUNT COUNT/S ERRORS P50 P99 TOTAL
		{"100", "nginx", "read", "10", "2.0", "3", "1.54µs", "2.04µs", "15.0µs"},
		{"100", "nginx", "write", "5", "1.0", "0", "3.07µs", "4.08µs", "15.0µs"},
		{"200", "postgres", "fsync", "3", "0.6", "-", ">8.19µs", ">8.19µs", "30.0ms"},
	}
	checkConsole(t, "interval 1", buf.String(), headers, rows, wantHeaders, wantRows)
	if !strings.Contains(buf.String(), "\nPID  EXE       SYSCALL  COUNT  COUNT/S  ERRORS  P50      P99      TOTAL\n") {
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

// Counters other than a histogram's error counter get their own section:
// the interval's delta, its rate and the cumulative total, busiest first;
// error counters stay in their histogram's rows.
func TestConsoleCounterSections(t *testing.T) {
	var out bytes.Buffer
	c := NewConsole(&out, ConsoleOptions{})
	vol := attribute.NewSet(attribute.String("process.context_switch.type", "voluntary"))
	invol := attribute.NewSet(attribute.String("process.context_switch.type", "involuntary"))
	interval := func(at time.Time, v, iv int64, oncpu float64, errs int64) []metricdata.ResourceMetrics {
		rm := syscallRM(processResource(42, "nginx"),
			[]metricdata.HistogramDataPoint[float64]{hpoint(syscallAttrs("read"), at, 0.5, 1, 1, 1, 1, 1)},
			[]metricdata.DataPoint[int64]{cpoint(syscallAttrs("read"), at, errs)})
		rm.ScopeMetrics[0].Metrics = append(rm.ScopeMetrics[0].Metrics,
			metricdata.Metrics{Name: "process.context_switches", Unit: "{context_switch}",
				Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
					DataPoints: []metricdata.DataPoint[int64]{cpoint(vol, at, v), cpoint(invol, at, iv)}}},
			metricdata.Metrics{Name: "telagent.sched.oncpu.time", Unit: "s",
				Data: metricdata.Sum[float64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
					DataPoints: []metricdata.DataPoint[float64]{{StartTime: testStart, Time: at, Value: oncpu}}}})
		return []metricdata.ResourceMetrics{rm}
	}
	t1 := testStart.Add(10 * time.Second)
	if err := c.Export(context.Background(), interval(t1, 100, 10, 1, 0)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := c.Export(context.Background(), interval(t1.Add(10*time.Second), 300, 15, 1.5, 3)); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"process.context_switches: top 2 of 2 active series",
		"telagent.sched.oncpu.time: top 1 of 1 active series",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	lines := strings.Split(got, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "process.context_switches:") })
	if i < 0 || len(lines) < i+4 {
		t.Fatalf("no context switch section:\n%s", got)
	}
	// voluntary moved by 200 (20/s), involuntary by 5: busiest first.
	if f := strings.Fields(lines[i+2]); len(f) != 6 || f[0] != "42" || f[2] != "voluntary" || f[3] != "200" || f[4] != "20" || f[5] != "300" {
		t.Errorf("voluntary row %q", lines[i+2])
	}
	if f := strings.Fields(lines[i+3]); len(f) != 6 || f[2] != "involuntary" || f[3] != "5" {
		t.Errorf("involuntary row %q", lines[i+3])
	}
	if strings.Contains(got, "telagent.syscall.errors:") {
		t.Errorf("the syscall error counter got a section of its own:\n%s", got)
	}
}
