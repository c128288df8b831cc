package top

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
)

var (
	t0     = time.Unix(1_700_000_000, 0)
	bounds = []float64{1.024e-6, 2.048e-6, 4.096e-6, 8.192e-6}
)

func proc(pid int64, name string) *resource.Resource {
	return resource.NewSchemaless(attribute.String("host.id", "h"), attribute.Int64("process.pid", pid),
		attribute.String("process.creation.time", "2026-11-25T12:00:00Z"),
		attribute.String("process.executable.name", name), attribute.String("process.command", "/bin/"+name))
}

type procData struct {
	pid          int64
	name         string
	oncpu        float64   // seconds, cumulative
	syscalls     [5]uint64 // cumulative buckets
	errs, faults int64
	runq         [5]uint64
	runqSum      float64 // seconds, cumulative (0: not set)
}

func interval(at time.Time, ps ...procData) []metricdata.ResourceMetrics {
	var rms []metricdata.ResourceMetrics
	for _, p := range ps {
		hist := func(name string, b [5]uint64, sum float64) metricdata.Metrics {
			var n uint64
			for _, x := range b {
				n += x
			}
			return metricdata.Metrics{Name: name, Unit: "s", Data: metricdata.Histogram[float64]{
				Temporality: metricdata.CumulativeTemporality,
				DataPoints: []metricdata.HistogramDataPoint[float64]{{
					Attributes: attribute.NewSet(attribute.String("telagent.syscall.name", "read")),
					StartTime:  t0, Time: at, Count: n, Sum: sum, Bounds: bounds, BucketCounts: slices.Clone(b[:])}}}}
		}
		sum := func(name string, v int64) metricdata.Metrics {
			return metricdata.Metrics{Name: name, Data: metricdata.Sum[int64]{IsMonotonic: true,
				DataPoints: []metricdata.DataPoint[int64]{{StartTime: t0, Time: at, Value: v}}}}
		}
		rms = append(rms, metricdata.ResourceMetrics{Resource: proc(p.pid, p.name), ScopeMetrics: []metricdata.ScopeMetrics{{
			Metrics: []metricdata.Metrics{
				hist(metricSyscalls, p.syscalls, 0), hist(metricRunqueue, p.runq, p.runqSum),
				sum(metricSysErrors, p.errs), sum(metricFaults, p.faults),
				{Name: metricOnCPU, Unit: "s", Data: metricdata.Sum[float64]{IsMonotonic: true,
					DataPoints: []metricdata.DataPoint[float64]{{StartTime: t0, Time: at, Value: p.oncpu}}}},
			}}}})
	}
	// Host-level data is no row.
	rms = append(rms, metricdata.ResourceMetrics{Resource: resource.NewSchemaless(attribute.String("host.id", "h"))})
	return rms
}

// TestTopTrackerRates: rates are the interval's deltas over its length;
// p50/p99 are interpolated inside the log2 bucket; absent probes are "-".
func TestTopTrackerRates(t *testing.T) {
	tr := NewTracker()
	tr.Snapshot(interval(t0.Add(10*time.Second),
		procData{pid: 1, name: "a", oncpu: 1, syscalls: [5]uint64{0, 10, 0, 0, 0}, errs: 1, faults: 5},
		procData{pid: 2, name: "b", oncpu: 0.5}))
	s := tr.Snapshot(interval(t0.Add(12*time.Second),
		procData{pid: 1, name: "a", oncpu: 1.5, syscalls: [5]uint64{0, 10, 200, 200, 0}, errs: 41, faults: 9, runq: [5]uint64{0, 0, 100, 0, 0}},
		procData{pid: 2, name: "b", oncpu: 0.5}))
	if s.Interval != 2*time.Second {
		t.Errorf("interval %v", s.Interval)
	}
	if len(s.Rows) != 1 || s.Rows[0].PID != 1 {
		t.Fatalf("rows %+v: want only the active process 1", s.Rows)
	}
	r := s.Rows[0]
	for name, got := range map[string][2]float64{
		"cpu":      {r.CPU, 0.25},
		"syscalls": {r.Syscalls, 200},
		"errors":   {r.Errors, 20},
		"faults":   {r.Faults, 2},
		// 100 waits in (2.048, 4.096]µs: p50 is halfway, p99 99% in.
		"runq p50": {r.RunqP50 * 1e6, 3.072},
		"runq p99": {r.RunqP99 * 1e6, 2.048 + 2.048*0.99},
	} {
		if d := got[0] - got[1]; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", name, got[0], got[1])
		}
	}
	if !s.Has[ColSyscalls] || !s.Has[ColRunqP99] || s.Has[ColDisk] || s.Has[ColRetrans] {
		t.Errorf("Has = %v", s.Has)
	}
	v := NewView(120, 10)
	v.Update(s)
	if got := v.cell(ColDisk, &r); got != "-" {
		t.Errorf("disk without a blockio probe: %q", got)
	}
}

func rowsOf(lines []string) []string {
	var names []string
	for _, l := range lines[2 : len(lines)-1] {
		if f := strings.Fields(strings.TrimPrefix(l, ">")); len(f) > 1 {
			names = append(names, f[1])
		}
	}
	return names
}

// TestTopViewKeys: sort keys, reversing, cycling, the filter, the
// highlight and the detail view, on a fixed snapshot.
func TestTopViewKeys(t *testing.T) {
	v := NewView(120, 12)
	v.Update(Snapshot{Time: t0, Interval: time.Second, Has: [numColumns]bool{true, true, true, true, true, true, true, true},
		Rows: []Row{
			{PID: 10, Name: "bravo", CPU: 0.5, Syscalls: 10, Faults: 3,
				Hists: []Hist{{Name: metricSyscalls, Unit: "s", Bounds: bounds, Counts: []uint64{0, 4, 8, 0, 0}}}},
			{PID: 20, Name: "alpha", CPU: 0.1, Syscalls: 900, Faults: 1},
			{PID: 30, Name: "charlie", CPU: 0.9, Syscalls: 50, Faults: 2},
		}})
	check := func(step string, want ...string) {
		t.Helper()
		lines := v.Render()
		if len(lines) != 12 {
			t.Errorf("%s: %d lines, want the 12 of the screen", step, len(lines))
		}
		if got := rowsOf(lines); !slices.Equal(got, want) {
			t.Errorf("%s: rows %v, want %v\n%s", step, got, want, strings.Join(lines, "\n"))
		}
	}
	check("default: CPU", "charlie", "bravo", "alpha")
	v.Key('s')
	check("s", "alpha", "charlie", "bravo")
	v.Key('s')
	check("s again reverses", "bravo", "charlie", "alpha")
	v.Key('n')
	check("n", "alpha", "bravo", "charlie")
	v.Key('>')
	check("> from COMM is CPU%", "charlie", "bravo", "alpha")
	v.Key('<')
	v.Key('<')
	check("< twice is PID", "bravo", "alpha", "charlie")
	for _, k := range "/RA" {
		v.Key(k)
	}
	if l := v.Render(); !strings.HasPrefix(l[len(l)-1], "filter by name: RA_") {
		t.Errorf("footer while typing: %q", l[len(l)-1])
	}
	for _, k := range []rune{KeyBackspace, 'A', 'V', KeyEnter} {
		v.Key(k)
	}
	check("filter RAV (case-insensitive)", "bravo")
	if !strings.Contains(v.Render()[0], `filter: "RAV"`) {
		t.Errorf("header without the filter: %q", v.Render()[0])
	}
	v.Key(KeyEsc)
	v.Key('/')
	for _, k := range "ha" {
		v.Key(k)
	}
	v.Key(KeyEnter)
	check("filter ha", "alpha", "charlie")
	v.Key(KeyDown)
	if lines := v.Render(); !strings.HasPrefix(lines[3], ">") || !strings.Contains(lines[3], "charlie") {
		t.Errorf("down did not highlight charlie:\n%s", strings.Join(lines, "\n"))
	}
	v.Key(KeyEsc) // clears the filter
	check("Esc clears the filter", "bravo", "alpha", "charlie")
	v.Key(KeyUp)
	v.Key(KeyUp)
	v.Key(KeyUp)
	v.Key(KeyEnter)
	lines := v.Render()
	if !strings.HasPrefix(lines[0], "process 10 bravo") {
		t.Errorf("detail of the highlighted process: %q", lines[0])
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{
		"telagent.syscall.duration: 12 in the interval, p50 2.56µs, p99 4.07µs",
		"1.02µs -> 2.05µs : 4     |********************                    |",
		"2.05µs -> 4.10µs : 8     |****************************************|",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("detail lacks %q:\n%s", want, joined)
		}
	}
	if v.Key('x') || v.Key(KeyEsc) {
		t.Error("quit on x or Esc in the detail view")
	}
	check("Esc goes back", "bravo", "alpha", "charlie")
	if !v.Key('q') {
		t.Error("q did not quit")
	}
	v.Key('/')
	if v.Key('q') {
		t.Error("q typed into the filter quit")
	}
	if !v.Key(KeyCtrlC) {
		t.Error("Ctrl-C did not quit while typing a filter")
	}
}

func TestTopParseKeys(t *testing.T) {
	got := parseKeys([]byte("q\x1b[A\x1b[B\x1bOC\x1b[D\r\x7f\x03/\x1b[5~\x1b[6~\x1b"))
	want := []rune{'q', KeyUp, KeyDown, KeyRight, KeyLeft, KeyEnter, KeyBackspace, KeyCtrlC, '/', KeyPgUp, KeyPgDn, KeyEsc}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestTopViewNarrow: a narrow terminal cuts lines, never wraps them.
func TestTopViewNarrow(t *testing.T) {
	v := NewView(40, 6)
	v.Update(Snapshot{Time: t0, Has: [numColumns]bool{true, true, true}, Rows: []Row{{PID: 1, Name: "init", CPU: 0.01}}})
	for _, l := range v.Render() {
		if n := len([]rune(l)); n > 40 {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
	if !strings.Contains(Plain(v.snap, 200), "       1 init") {
		t.Errorf("plain:\n%s", Plain(v.snap, 200))
	}
}

// A probe that runs but counted nothing for the shown processes reads 0;
// only a probe that does not run reads "-". The agent reports running
// probes' metric sets in telagent.metric_set.overflows on the host.
func TestTopRunningProbeColumns(t *testing.T) {
	rms := interval(t0.Add(time.Second), procData{pid: 1, name: "a", syscalls: [5]uint64{0, 1, 0, 0, 0}})
	host := &rms[len(rms)-1]
	host.ScopeMetrics = []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{{
		Name: metricSetOverflows, Data: metricdata.Sum[int64]{IsMonotonic: true, DataPoints: []metricdata.DataPoint[int64]{
			{Attributes: attribute.NewSet(keyMetricSetName.String("blockio")), StartTime: t0, Time: t0.Add(time.Second)},
		}}}}}}
	s := NewTracker().Snapshot(rms)
	if !s.Has[ColDisk] || s.Has[ColRetrans] {
		t.Errorf("Has disk %v (blockio runs: want true), retransmits %v (tcp does not: want false)", s.Has[ColDisk], s.Has[ColRetrans])
	}
	v := NewView(120, 10)
	v.Update(s)
	if got := v.cell(ColDisk, &s.Rows[0]); got != "0B" {
		t.Errorf("disk of a process that did no I/O with blockio running: %q, want 0B", got)
	}
	if got := v.cell(ColRetrans, &s.Rows[0]); got != "-" {
		t.Errorf("retransmits without the tcp probe: %q, want -", got)
	}
}

// TestTopQuantileBoundedBySum: top's run-queue p50/p99 and its detail view
// use the sum as the console does: one wait of 3µs is 3µs, not the 3.07µs
// and 4.08µs of interpolation inside (2.048, 4.096]µs. Disk rates print in
// binary units.
func TestTopQuantileBoundedBySum(t *testing.T) {
	tr := NewTracker()
	tr.Snapshot(interval(t0.Add(time.Second), procData{pid: 1, name: "a", syscalls: [5]uint64{0, 1, 0, 0, 0}, runq: [5]uint64{0, 0, 4, 0, 0}, runqSum: 12e-6}))
	s := tr.Snapshot(interval(t0.Add(2*time.Second), procData{pid: 1, name: "a", syscalls: [5]uint64{0, 2, 0, 0, 0}, runq: [5]uint64{0, 0, 5, 0, 0}, runqSum: 15e-6}))
	if len(s.Rows) != 1 {
		t.Fatalf("rows %+v", s.Rows)
	}
	r := s.Rows[0]
	if d := r.RunqP50 - 3e-6; d > 1e-12 || d < -1e-12 {
		t.Errorf("run-queue p50 %v, want 3µs", r.RunqP50)
	}
	if d := r.RunqP99 - 3e-6; d > 1e-12 || d < -1e-12 {
		t.Errorf("run-queue p99 %v, want 3µs", r.RunqP99)
	}
	s.Has[ColDisk] = true
	v := NewView(120, 30)
	v.Update(s)
	v.Render() // highlights the first row
	v.Key(KeyEnter)
	if joined := strings.Join(v.Render(), "\n"); !strings.Contains(joined, "telagent.sched.runqueue.duration: 1 in the interval, p50 3.00µs, p99 3.00µs") {
		t.Errorf("detail view:\n%s", joined)
	}
	for in, want := range map[float64]string{0: "0B", 5 << 20: "5MiB", 1536: "1.50KiB", 999.5 * 1024: "1000KiB"} {
		if got := v.cell(ColDisk, &Row{Disk: in}); got != want {
			t.Errorf("disk %v B/s: %q, want %q", in, got, want)
		}
	}
}
