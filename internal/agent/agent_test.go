package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/export/otlptest"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/metrics"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/syscalls"
)

// memExporter keeps every interval it is given.
type memExporter struct {
	mu        sync.Mutex
	intervals [][]metricdata.ResourceMetrics
	shutdown  bool
}

func (m *memExporter) Export(_ context.Context, rms []metricdata.ResourceMetrics) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.intervals = append(m.intervals, metrics.CloneResourceMetrics(rms)) // the builder reuses rms next interval
	return nil
}

func (m *memExporter) Shutdown(context.Context) error { m.shutdown = true; return nil }

func (m *memExporter) last() []metricdata.ResourceMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.intervals) == 0 {
		return nil
	}
	return m.intervals[len(m.intervals)-1]
}

// counts sums, per syscall name ("" for the overflow series), the final
// cumulative histogram counts of every process of the last interval.
func counts(t *testing.T, rms []metricdata.ResourceMetrics) (byName map[string]uint64, pids map[int64]bool) {
	byName, pids = map[string]uint64{}, map[int64]bool{}
	for _, rm := range rms {
		if v, ok := rm.Resource.Set().Value(entity.AttrProcessPID); ok {
			pids[v.AsInt64()] = true
		}
		for _, m := range rm.ScopeMetrics[0].Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok || m.Name != entity.MetricTelagentSyscallDuration.Name { // not the agent's own otel.sdk.metric_reader.collection.duration
				continue
			}
			for _, dp := range h.DataPoints {
				name := ""
				if v, ok := dp.Attributes.Value(entity.AttrTelagentSyscallName); ok {
					name = v.AsString()
				} else if v, ok := dp.Attributes.Value(entity.AttrOtelMetricOverflow); !ok || !v.AsBool() {
					t.Errorf("unnamed series is not the overflow series: %v", dp.Attributes.ToSlice())
				}
				byName[name] += dp.Count
			}
		}
	}
	return byName, pids
}

func runRawsys(t *testing.T, maxEntries uint32, args ...string) (*memExporter, int) {
	t.Helper()
	testutil.RequireRoot(t)
	exp := &memExporter{}
	var stdout bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, err := Run(ctx, Config{
		Probes:   []probes.Probe{syscalls.New(syscalls.Config{MaxEntries: maxEntries})},
		Command:  append([]string{testutil.Rawsys(t)}, args...),
		Interval: time.Hour, // only the final export
		Exporter: exp,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Stdout:   &stdout,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.shutdown {
		t.Error("exporter not shut down")
	}
	return exp, code
}

// The held start must count the command from its first instruction: rawsys
// makes exactly 8 x N calls, and nothing before exec is attributed to it.
func TestCommandCountedFromFirstInstruction(t *testing.T) {
	const n = 1000
	exp, code := runRawsys(t, 0, "mix", "1000")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	got, pids := counts(t, exp.last())
	if len(pids) != 1 {
		t.Errorf("data for %d processes, want the one workload process: %v", len(pids), pids)
	}
	want := map[string]uint64{"getppid": n, "getpid": n, "getuid": n, "getgid": n,
		"geteuid": n, "getegid": n, "getpgrp": n, "close": n}
	for name, c := range got {
		if want[name] != c {
			t.Errorf("%s: %d calls, want %d", name, c, want[name])
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want exactly %v", got, want)
	}
	// Fill ratio: the 8 exported tuples of the set's default max_entries.
	if u, want := utilization(exp.last(), "syscalls"), float64(len(got))/float64(entity.MetricSetSyscalls.MaxEntries); u != want {
		t.Errorf("telagent.metric_set.utilization{syscalls} = %v, want %v", u, want)
	}
}

// utilization is the telagent.metric_set.utilization point of a set in rms
// (-1: none).
func utilization(rms []metricdata.ResourceMetrics, set string) float64 {
	for _, rm := range rms {
		for _, m := range rm.ScopeMetrics[0].Metrics {
			if m.Name != entity.MetricTelagentMetricSetUtilization.Name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[float64]).DataPoints {
				if v, _ := dp.Attributes.Value(entity.AttrTelagentMetricSetName); v.AsString() == set {
					return dp.Value
				}
			}
		}
	}
	return -1
}

// With fewer slots than (process, syscall) tuples, the rest is folded into
// the overflow series and the total still equals the work done.
func TestOverflowKeepsTotal(t *testing.T) {
	exp, _ := runRawsys(t, 3, "mix", "1000")
	got, _ := counts(t, exp.last())
	var total uint64
	for _, c := range got {
		total += c
	}
	if total != 8000 {
		t.Errorf("total over all series %d, want 8000: %v", total, got)
	}
	if got[""] == 0 {
		t.Errorf("no overflow series with 3 slots for 8 syscalls: %v", got)
	}
	if len(got)-1 > 3 {
		t.Errorf("%d named series with max_entries 3", len(got)-1)
	}
	// The storage had room, so the programs folded nothing; the agent
	// folded the drained entries of the tuples past max_entries, at least
	// one for each of the 5 syscalls that found no room, and counted them.
	folds := func(m entity.MetricDesc) int64 {
		for _, rm := range exp.last() {
			for _, md := range rm.ScopeMetrics[0].Metrics {
				if md.Name != m.Name {
					continue
				}
				for _, dp := range md.Data.(metricdata.Sum[int64]).DataPoints {
					if v, _ := dp.Attributes.Value(entity.AttrTelagentMetricSetName); v.AsString() == "syscalls" {
						return dp.Value
					}
				}
			}
		}
		return -1
	}
	if k, a := folds(entity.MetricTelagentMetricSetOverflows), folds(entity.MetricTelagentMetricSetEntryFolds); k != 0 || a < 5 {
		t.Errorf("%s = %d (want 0), %s = %d (want >= 5), overflow series count %d", entity.MetricTelagentMetricSetOverflows.Name, k,
			entity.MetricTelagentMetricSetEntryFolds.Name, a, got[""])
	}
	// Updates were folded because the map was full: its fill ratio is 1.
	if u := utilization(exp.last(), "syscalls"); u != 1 {
		t.Errorf("telagent.metric_set.utilization{syscalls} = %v with folds, want 1", u)
	}
}

func TestCommandExitCode(t *testing.T) {
	_, code := runRawsys(t, 0, "exit", "3")
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
}

// A backend that is down when the agent starts, for longer than an export
// may take (5 s at this interval): one warning, collection goes on, and once
// the backend is back the cumulative totals arrive whole.
func TestBackendDownThenBack(t *testing.T) {
	testutil.RequireRoot(t)
	recv := otlptest.NewMetricsReceiver(t)
	recv.SetError(status.Error(codes.Unavailable, "backend down"))
	exp, err := export.NewOTLPGRPC(context.Background(), export.OTLPOptions{Endpoint: recv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	go func() {
		time.Sleep(6 * time.Second)
		recv.SetError(nil)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, err := Run(ctx, Config{
		Probes:   []probes.Probe{syscalls.New(syscalls.Config{})},
		Command:  []string{testutil.Rawsys(t), "sleep", "16", "500"},
		Interval: 500 * time.Millisecond,
		Exporter: exp,
		Log:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil || code != 0 {
		t.Fatalf("run: code %d, err %v", code, err)
	}
	var last uint64
	for _, rm := range recv.ResourceMetrics() {
		for _, m := range rm.ScopeMetrics[0].Metrics {
			for _, dp := range m.GetHistogram().GetDataPoints() {
				for _, a := range dp.Attributes {
					if a.Key == string(entity.AttrTelagentSyscallName) && a.Value.GetStringValue() == "nanosleep" {
						last = max(last, dp.Count)
					}
				}
			}
		}
	}
	if last != 16 {
		t.Errorf("nanosleep count at the backend %d, want 16", last)
	}
	if n := strings.Count(logs.String(), "export failing"); n != 1 {
		t.Errorf("%d export-failure warnings for one outage, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "export recovered") {
		t.Errorf("no recovery logged:\n%s", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// --prometheus: a scrape during the run shows the command's exact count.
func TestPrometheusEndpoint(t *testing.T) {
	testutil.RequireRoot(t)
	rawsys := testutil.Rawsys(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		// 2000 getppid, then 30 x 100 ms of sleep to scrape in.
		_, err := Run(ctx, Config{
			Probes:  []probes.Probe{syscalls.New(syscalls.Config{})},
			Command: []string{"/bin/sh", "-c", rawsys + " getppid 2000 && " + rawsys + " sleep 30 100"},
			// The exited getppid process's series lives one interval or
			// two (until evicted): 300 ms, scraped every 10 ms.
			Interval:         300 * time.Millisecond,
			Exporter:         &memExporter{},
			PrometheusListen: "127.0.0.1:0",
			Log:              slog.New(slog.NewTextHandler(&logs, nil)),
		})
		done <- err
	}()
	var url string
	for url == "" {
		if _, after, ok := strings.Cut(logs.String(), "url="); ok {
			url, _, _ = strings.Cut(after, "\n")
		}
		select {
		case err := <-done:
			t.Fatalf("agent ended: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	want := `telagent_syscall_name="getppid"`
	var line string
	for deadline := time.Now().Add(5 * time.Second); line == "" || !strings.HasSuffix(line, " 2000"); {
		if time.Now().After(deadline) {
			t.Fatalf("no getppid count of 2000 at %s; last line %q", url, line)
		}
		time.Sleep(10 * time.Millisecond)
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "telagent_syscall_duration_seconds_count{") && strings.Contains(l, want) &&
				strings.Contains(l, `process_executable_name="rawsys"`) {
				line = l
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("the endpoint still answers after the agent returned")
	}
}
