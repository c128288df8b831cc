package export

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
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
		if got := FormatQuantile(tc.bounds, tc.counts, math.NaN(), 0.5, "s"); got != tc.p50 {
			t.Errorf("%s: p50 = %q, want %q", tc.name, got, tc.p50)
		}
		if got := FormatQuantile(tc.bounds, tc.counts, math.NaN(), 0.99, "s"); got != tc.p99 {
			t.Errorf("%s: p99 = %q, want %q", tc.name, got, tc.p99)
		}
	}
	// p75 of {0,50,50,0,0}: rank 75 is 25/50 into (2.048, 4.096] = 3.072µs.
	if got := FormatQuantile(us, []uint64{0, 50, 50, 0, 0}, math.NaN(), 0.75, "s"); got != "3.07µs" {
		t.Errorf("p75 = %q", got)
	}
}

// log2Bounds are the agent's first n bucket bounds in seconds: 1.024µs × 2^i.
func log2Bounds(n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = 1.024e-6 * float64(uint64(1)<<i)
	}
	return b
}

// log2Hist puts values (seconds) into the agent's buckets, as
// telagent_hist_bucket does: bucket i+1 holds [bounds[i], bounds[i+1]).
func log2Hist(bounds []float64, values ...float64) (counts []uint64, sum float64) {
	counts = make([]uint64, len(bounds)+1)
	for _, v := range values {
		i := sort.SearchFloat64s(bounds, v)
		if i < len(bounds) && bounds[i] == v {
			i++ // a bound belongs to the bucket above it
		}
		counts[i]++
		sum += v
	}
	return counts, sum
}

// TestQuantileBoundedBySum: the sum bounds what a quantile can be, so a p99
// never exceeds the largest value the buckets and the sum allow, and one
// observation is the sum exactly. Before, interpolation inside the bucket
// printed 521µs for one call of 300µs (a p99 above the TOTAL column).
func TestQuantileBoundedBySum(t *testing.T) {
	bounds := log2Bounds(10) // 1.024µs ... 524µs, then +Inf
	for _, tc := range []struct {
		name     string
		values   []float64
		p50, p99 string
	}{
		{"one call of 300µs", []float64{300e-6}, "300µs", "300µs"},
		// The largest is at most 400 - 65.5 (the other's least) = 334µs.
		{"100µs and 300µs", []float64{100e-6, 300e-6}, "131µs", "334µs"},
		// Above the last bound: exact with one value; with three small
		// ones beside it, between 2.0009s - 3×524µs and 2.0009s - 3×262µs,
		// which three digits cannot tell apart (it printed ">524µs").
		{"one of 2s, past the last bound", []float64{2}, "2.00s", "2.00s"},
		{"2s and three of 300µs", []float64{300e-6, 300e-6, 300e-6, 2}, "437µs", "2.00s"},
		// Many values: the sum is far from binding, interpolation stands.
		{"100 of 3µs", slices.Repeat([]float64{3e-6}, 100), "3.07µs", "4.08µs"},
	} {
		counts, sum := log2Hist(bounds, tc.values...)
		if got := FormatQuantile(bounds, counts, sum, 0.5, "s"); got != tc.p50 {
			t.Errorf("%s: p50 = %q, want %q", tc.name, got, tc.p50)
		}
		if got := FormatQuantile(bounds, counts, sum, 0.99, "s"); got != tc.p99 {
			t.Errorf("%s: p99 = %q, want %q", tc.name, got, tc.p99)
		}
	}
	// A sum the buckets cannot add up to is ignored: four values in
	// (1.024, 2.048]µs do not add up to 1ms.
	if got := FormatQuantile(testBounds, []uint64{0, 4, 0, 0, 0}, 1e-3, 0.99, "s"); got != "2.04µs" {
		t.Errorf("inconsistent sum: p99 = %q, want the buckets' 2.04µs", got)
	}
}

// TestQuantileClaimsHold checks HistogramQuantile against the values
// themselves (the oracle: the sorted values of random histograms): a plain
// value lies in the bucket of the true quantile and never above the
// largest value the sum allows, "<x" is never below it, ">x" never above
// it, and nothing exceeds the sum.
func TestQuantileClaimsHold(t *testing.T) {
	bounds := log2Bounds(12)
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 20000 {
		n := 1 + rng.IntN(8)
		if iter%10 == 0 {
			n = 1 + rng.IntN(300)
		}
		values := make([]float64, n)
		for i := range values {
			// log-uniform from 0.1µs to 20ms: every bucket, both open ends
			values[i] = math.Exp(math.Log(1e-7) + rng.Float64()*(math.Log(2e-2)-math.Log(1e-7)))
		}
		counts, sum := log2Hist(bounds, values...)
		slices.Sort(values)
		for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
			v, below, above, ok := HistogramQuantile(bounds, counts, sum, q)
			k := max(int(math.Ceil(q*float64(n))), 1)
			truth := values[k-1]
			lo, hi := bucketBounds(bounds, sort.SearchFloat64s(bounds, truth))
			const eps = 1e-12
			switch {
			case !ok:
				t.Fatalf("%v q=%v: not ok", values, q)
			case v > sum*(1+1e-9):
				t.Fatalf("%v q=%v: %v exceeds the sum %v", values, q, v, sum)
			case below && v < truth-eps:
				t.Fatalf("%v q=%v: <%v, but the quantile is %v", values, q, v, truth)
			case above && v > truth+eps:
				t.Fatalf("%v q=%v: >%v, but the quantile is %v", values, q, v, truth)
			case !below && !above && (v < lo-eps || v > hi+eps) && math.Abs(v-truth) > 1e-3*truth:
				t.Fatalf("%v q=%v: %v outside the quantile's bucket [%v, %v] (quantile %v)", values, q, v, lo, hi, truth)
			case n == 1 && !below && !above && math.Abs(v-truth) > 1e-9*truth:
				t.Fatalf("one value %v: quantile %v", truth, v)
			}
		}
	}
}

// consoleRows returns the whitespace-split fields of every table row
// (lines after a column header line), and the header lines.
func consoleRows(out string) (headers []string, rows [][]string) {
	inTable := false
	for line := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(line, "busiest processes:") {
			break // the per-process blocks (TestConsoleGolden)
		}
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
		// Three fsyncs above 8.19µs adding up to 30ms: the largest is at
		// least a third of that.
		{"200", "postgres", "fsync", "3", "0.6", "-", ">8.19µs", ">10.0ms", "30.0ms"},
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
		// Four values in (4.096, 8.192]µs adding up to 20µs: the second
		// smallest is at most (20 - 4.096)/3 = 5.30µs, the largest at most
		// 20 - 3×4.096 = 7.71µs, below the bucket interpolation's 6.14µs
		// and 8.15µs.
		{"overflow", "-", "-", "4", "0.8", "2", "5.30µs", "7.71µs", "20.0µs"},
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
			metricdata.Metrics{Name: "telagent.process.on_cpu.time", Unit: "s",
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
		"telagent.process.on_cpu.time: top 1 of 1 active series",
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
	if f := strings.Fields(lines[i+2]); len(f) != 6 || f[0] != "42" || f[2] != "voluntary" || f[3] != "200" || f[4] != "20.0" || f[5] != "300" {
		t.Errorf("voluntary row %q", lines[i+2])
	}
	if f := strings.Fields(lines[i+3]); len(f) != 6 || f[2] != "involuntary" || f[3] != "5" {
		t.Errorf("involuntary row %q", lines[i+3])
	}
	if strings.Contains(got, "telagent.syscall.errors:") {
		t.Errorf("the syscall error counter got a section of its own:\n%s", got)
	}
}

// goldenInterval is a fixed two-process interval: syscall durations for two
// syscalls (one with errors), run-queue waits, context switches and on-CPU
// time, over ten log2 buckets (1.024µs ... 524µs, then +Inf).
func goldenInterval(at time.Time, scale uint64) []metricdata.ResourceMetrics {
	bounds := make([]float64, 10)
	for i := range bounds {
		bounds[i] = 1.024e-6 * float64(uint64(1)<<i)
	}
	hist := func(attrs attribute.Set, sum float64, buckets ...uint64) metricdata.HistogramDataPoint[float64] {
		var n uint64
		b := make([]uint64, len(buckets))
		for i, x := range buckets {
			b[i] = x * scale
			n += b[i]
		}
		return metricdata.HistogramDataPoint[float64]{Attributes: attrs, StartTime: testStart, Time: at,
			Count: n, Bounds: slices.Clone(bounds), BucketCounts: b, Sum: sum * float64(scale)}
	}
	sum := func(name, unit string, pts ...metricdata.DataPoint[int64]) metricdata.Metrics {
		return metricdata.Metrics{Name: name, Unit: unit, Data: metricdata.Sum[int64]{
			Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: pts}}
	}
	cp := func(attrs attribute.Set, v int64) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Attributes: attrs, StartTime: testStart, Time: at, Value: v * int64(scale)}
	}
	vol := attribute.NewSet(attribute.String("process.context_switch.type", "voluntary"))
	invol := attribute.NewSet(attribute.String("process.context_switch.type", "involuntary"))
	nginx := syscallRM(processResource(100, "nginx"), []metricdata.HistogramDataPoint[float64]{
		hist(syscallAttrs("read"), 2e-3, 0, 40, 300, 90, 10, 0, 0, 2, 0, 0, 0),
		hist(syscallAttrs("epoll_wait"), 80e-3, 0, 0, 0, 0, 0, 5, 20, 60, 15, 0, 0),
	}, []metricdata.DataPoint[int64]{cp(errAttrs("read", "EAGAIN"), 25)})
	nginx.ScopeMetrics[0].Metrics = append(nginx.ScopeMetrics[0].Metrics,
		metricdata.Metrics{Name: "telagent.sched.runqueue.duration", Unit: "s", Data: metricdata.Histogram[float64]{
			Temporality: metricdata.CumulativeTemporality, DataPoints: []metricdata.HistogramDataPoint[float64]{
				hist(*attribute.EmptySet(), 1e-3, 0, 0, 12, 30, 8, 1, 0, 0, 0, 0, 0)}}},
		sum("process.context_switches", "{context_switch}", cp(vol, 95), cp(invol, 5)),
		metricdata.Metrics{Name: "telagent.process.on_cpu.time", Unit: "s", Data: metricdata.Sum[float64]{
			Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
			DataPoints: []metricdata.DataPoint[float64]{{StartTime: testStart, Time: at, Value: 0.05 * float64(scale)}}}},
	)
	pg := syscallRM(processResource(200, "postgres"), []metricdata.HistogramDataPoint[float64]{
		hist(syscallAttrs("fsync"), 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1),
	}, nil)
	return []metricdata.ResourceMetrics{nginx, pg}
}

// TestConsoleGolden pins the whole console output of one interval: the
// series tables, then a block per busy process with its counters as rates
// and totals and each histogram (its series added) drawn as bcc draws
// print_log2_hist, bars fitted to a 64-column terminal.
func TestConsoleGolden(t *testing.T) {
	var buf bytes.Buffer
	c := NewConsole(&buf, ConsoleOptions{TopN: 5, Width: 64})
	t1, t2 := testStart.Add(10*time.Second), testStart.Add(20*time.Second)
	if err := c.Export(context.Background(), goldenInterval(t1, 1)); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	// The second interval doubles every cumulative value: its deltas are
	// the first interval's values again, over 10 s.
	if err := c.Export(context.Background(), goldenInterval(t2, 2)); err != nil {
		t.Fatal(err)
	}
	// postgres's p99: three fsyncs of at most 524µs and a fourth adding
	// up to 500ms, so the slowest took at least 500ms - 3×524µs.
	const want = `--- 2023-11-14T22:13:40Z  2 processes  interval 10s ---
telagent.sched.runqueue.duration: top 1 of 1 active series
PID  EXE    COUNT  COUNT/S  ERRORS  P50     P99     TOTAL
100  nginx  51     5.1      -       5.94µs  24.4µs  1.00ms
telagent.syscall.duration: top 3 of 3 active series
PID  EXE       SYSCALL     COUNT  COUNT/S  ERRORS  P50     P99     TOTAL
100  nginx     read        442    44.2     25      3.28µs  14.4µs  2.00ms
100  nginx     epoll_wait  100    10.0     0       92.8µs  253µs   80.0ms
200  postgres  fsync       4      0.4      -       437µs   >498ms  500ms
process.context_switches: top 2 of 2 active series
PID  EXE    TYPE         DELTA  RATE/S  TOTAL
100  nginx  voluntary    95     9.5     190
100  nginx  involuntary  5      0.5     10
telagent.process.on_cpu.time: top 1 of 1 active series
PID  EXE    DELTA   RATE/S  TOTAL
100  nginx  50.0ms  5.00ms  100ms
busiest processes: 2 of 2 active
process 100 nginx (/usr/bin/nginx)
  process.context_switches [voluntary]    9.5/s     total 190
  process.context_switches [involuntary]  0.5/s     total 10
  telagent.process.on_cpu.time            5.00ms/s  total 100ms
  telagent.sched.runqueue.duration: 51 in the interval, 5.1/s, p50 5.94µs, p99 24.4µs
            duration : count  distribution
    2.05µs -> 4.10µs : 12    |*************                    |
    4.10µs -> 8.19µs : 30    |*********************************|
    8.19µs -> 16.4µs : 8     |*********                        |
    16.4µs -> 32.8µs : 1     |*                                |
  telagent.syscall.duration: 542 in the interval, 54.2/s, errors 25 (2.5/s), 2 series added, p50 3.62µs, p99 215µs
            duration : count  distribution
    1.02µs -> 2.05µs : 40    |****                             |
    2.05µs -> 4.10µs : 300   |*********************************|
    4.10µs -> 8.19µs : 90    |**********                       |
    8.19µs -> 16.4µs : 10    |*                                |
    16.4µs -> 32.8µs : 5     |*                                |
    32.8µs -> 65.5µs : 20    |**                               |
    65.5µs -> 131µs  : 62    |*******                          |
     131µs -> 262µs  : 15    |**                               |
process 200 postgres (/usr/bin/postgres)
  telagent.syscall.duration: 4 in the interval, 0.4/s, p50 437µs, p99 >498ms
          duration : count  distribution
    262µs -> 524µs : 3     |***********************************|
    524µs -> +Inf  : 1     |************                       |
`
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// Bars fit the width they are given, between 10 and bcc's 40 stars, and
// only the span from the first to the last non-empty bucket is drawn.
func TestConsoleHistogramBarsWidth(t *testing.T) {
	bounds := []float64{1e-3, 2e-3, 4e-3}
	counts := []uint64{0, 8, 0, 2}
	for _, tc := range []struct{ width, bar int }{{200, 40}, {60, 60 - 29}, {20, 10}} {
		var b bytes.Buffer
		WriteHistogramBars(&b, bounds, counts, "s", tc.width, "  ")
		lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
		if len(lines) != 4 { // title, 1-2ms, 2-4ms (empty, inside the span), 4ms-+Inf
			t.Fatalf("width %d: %d lines:\n%s", tc.width, len(lines), b.String())
		}
		if want := "  1.00ms -> 2.00ms : 8     |" + strings.Repeat("*", tc.bar) + "|"; lines[1] != want {
			t.Errorf("width %d: got %q, want %q", tc.width, lines[1], want)
		}
		if stars := strings.Count(lines[3], "*"); stars != (tc.bar*2+4)/8 {
			t.Errorf("width %d: 2 of 8 drew %d stars in %d", tc.width, stars, tc.bar)
		}
		if tc.width >= 29+10 { // 29 columns besides the bar
			for _, l := range lines {
				if n := len([]rune(l)); n > tc.width {
					t.Errorf("width %d: line of %d columns: %q", tc.width, n, l)
				}
			}
		}
	}
	var b bytes.Buffer
	WriteHistogramBars(&b, bounds, []uint64{0, 0, 0, 0}, "s", 80, "")
	if b.Len() != 0 {
		t.Errorf("empty histogram drew %q", b.String())
	}
}

func TestConsoleWidthFromColumns(t *testing.T) {
	t.Setenv("COLUMNS", "57")
	if c := NewConsole(io.Discard, ConsoleOptions{}).(*console); c.width != 57 || c.procsN != 5 {
		t.Errorf("width %d, processes %d; want 57 from COLUMNS and 5", c.width, c.procsN)
	}
	if c := NewConsole(io.Discard, ConsoleOptions{Width: 99, Processes: -1}).(*console); c.width != 99 || c.procsN != 0 {
		t.Errorf("width %d, processes %d; want 99 and 0", c.width, c.procsN)
	}
}

func TestConsoleFormatCount(t *testing.T) {
	for _, tc := range []struct {
		v          float64
		unit, want string
		rate       string
	}{
		{3040, "{context_switch}", "3040", "3040"},
		{1520.4, "{context_switch}", "1.52e+03", "1520"},
		{7, "{fault}", "7", "7.0"},
		{0.0572, "s", "57.2ms", "57.2ms"},
		// Bytes in binary units (they printed raw: 52428800By).
		{2048, "By", "2KiB", "2KiB"},
		{52428800, "By", "50MiB", "50MiB"},
		{1.5 * (1 << 30), "By", "1.50GiB", "1.50GiB"},
		{5242880.5, "By", "5.00MiB", "5.00MiB"},
	} {
		if got := formatCount(tc.v, tc.unit); got != tc.want {
			t.Errorf("formatCount(%v, %s) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
		if got := formatCounterRate(tc.v, tc.unit); got != tc.rate {
			t.Errorf("formatCounterRate(%v, %s) = %q, want %q", tc.v, tc.unit, got, tc.rate)
		}
	}
}

// TestConsolePartialInterval: a rate needs a window of at least half the
// interval. The last interval, 2.16ms between the last tick and the
// command's exit, is marked partial and shows counts and totals with no
// rate (it printed 22 calls as 10185/s). A process met for the first time
// gets its rate over the interval it appeared in, not over the whole run.
// Bytes print in binary units.
func TestConsolePartialInterval(t *testing.T) {
	var buf bytes.Buffer
	c := NewConsole(&buf, ConsoleOptions{Interval: 10 * time.Second, Width: 72})
	diskIO := attribute.NewSet(attribute.String("disk.io.direction", "write"))
	interval := func(at time.Time, reads uint64, written int64, cat bool) []metricdata.ResourceMetrics {
		// reads calls of 3µs in (2.048, 4.096]µs: self-consistent sums
		nginx := syscallRM(processResource(100, "nginx"), []metricdata.HistogramDataPoint[float64]{
			hpoint(syscallAttrs("read"), at, float64(reads)*3e-6, 0, 0, reads, 0, 0)}, nil)
		nginx.ScopeMetrics[0].Metrics = append(nginx.ScopeMetrics[0].Metrics, metricdata.Metrics{
			Name: "process.disk.io", Unit: "By", Data: metricdata.Sum[int64]{
				Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
				DataPoints: []metricdata.DataPoint[int64]{cpoint(diskIO, at, written)}}})
		rms := []metricdata.ResourceMetrics{nginx}
		if cat {
			rms = append(rms, syscallRM(processResource(300, "cat"), []metricdata.HistogramDataPoint[float64]{
				hpoint(syscallAttrs("read"), at, 50*3e-6, 0, 0, 50, 0, 0)}, nil))
		}
		return rms
	}
	ctx := context.Background()
	t1 := testStart.Add(10 * time.Second)
	t2 := t1.Add(10 * time.Second)
	t3 := t2.Add(2160 * time.Microsecond)
	if err := c.Export(ctx, interval(t1, 100, 50<<20, false)); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := c.Export(ctx, interval(t2, 200, 100<<20, true)); err != nil {
		t.Fatal(err)
	}
	headers, rows := consoleRows(buf.String())
	checkConsole(t, "interval 2", buf.String(), headers, rows, []string{
		"--- 2023-11-14T22:13:40Z  2 processes  interval 10s ---",
		"telagent.syscall.duration: top 2 of 2 active series",
		"process.disk.io: top 1 of 1 active series",
	}, [][]string{
		{"100", "nginx", "read", "100", "10.0", "-", "3.07µs", "4.08µs", "300µs"},
		// cat's 50 calls are new in this interval: 5.0/s, not 50/20s.
		{"300", "cat", "read", "50", "5.0", "-", "3.07µs", "4.08µs", "150µs"},
		{"100", "nginx", "write", "50MiB", "5MiB", "100MiB"},
	})

	buf.Reset()
	if err := c.Export(ctx, interval(t3, 222, 100<<20+4096, false)); err != nil {
		t.Fatal(err)
	}
	const want = `--- 2023-11-14T22:13:40Z  1 process  interval 2ms (partial, no rates) ---
telagent.syscall.duration: top 1 of 1 active series
PID  EXE    SYSCALL  COUNT  COUNT/S  ERRORS  P50     P99     TOTAL
100  nginx  read     22     -        -       3.07µs  4.08µs  66.0µs
process.disk.io: top 1 of 1 active series
PID  EXE    DIRECTION  DELTA  RATE/S  TOTAL
100  nginx  write      4KiB   -       100MiB
busiest processes: 1 of 1 active
process 100 nginx (/usr/bin/nginx)
  process.disk.io [write]  -  total 100MiB
  telagent.syscall.duration: 22 in the interval, p50 3.07µs, p99 4.08µs
            duration : count  distribution
    2.05µs -> 4.10µs : 22    |****************************************|
`
	if got := buf.String(); got != want {
		t.Errorf("partial interval: got\n%s\nwant\n%s", got, want)
	}
}
