package telagentreceiver

import (
	"context"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/xpdata/entity"
	"go.opentelemetry.io/collector/receiver/receivertest"

	tentity "github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/agent"
	"github.com/telagent/telagent/internal/testutil"
)

// getppidCount is the telagent.syscall.duration count of getppid of the
// process pid in md (-1: no such point), with that Resource's entity refs.
func getppidCount(md pmetric.Metrics, pid int64) (count int64, refs int) {
	count = -1
	for _, rm := range md.ResourceMetrics().All() {
		if v, ok := rm.Resource().Attributes().Get(string(tentity.AttrProcessPID)); !ok || v.Int() != pid {
			continue
		}
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if m.Name() != tentity.MetricTelagentSyscallDuration.Name || m.Type() != pmetric.MetricTypeHistogram {
					continue
				}
				for _, dp := range m.Histogram().DataPoints().All() {
					if v, ok := dp.Attributes().Get(string(tentity.AttrTelagentSyscallName)); ok && v.Str() == "getppid" {
						count = max(count, 0) + int64(dp.Count())
						refs = entity.ResourceEntityRefs(rm.Resource()).Len()
					}
				}
			}
		}
	}
	return count, refs
}

// exitEvent is the telagent.process.exit record of process pid in ld.
func exitEvent(ld plog.Logs, pid int64) (plog.LogRecord, bool) {
	for _, rl := range ld.ResourceLogs().All() {
		if v, ok := rl.Resource().Attributes().Get(string(tentity.AttrProcessPID)); !ok || v.Int() != pid {
			continue
		}
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				if lr.EventName() == tentity.EventTelagentProcessExit.Name {
					return lr, true
				}
			}
		}
	}
	return plog.LogRecord{}, false
}

// The receiver, started through its factory in a metrics and a logs
// pipeline (consumertest sinks), counts exactly the getppid calls of a
// process it targets by pid (rawsys: N calls and nothing else, held from
// before its first instruction until the receiver is attached), delivers
// its exit event in plog, and leaves no BPF program, map or link after
// Shutdown.
func TestReceiverExactCountExitAndCleanShutdown(t *testing.T) {
	testutil.RequireRoot(t)
	const n = 1500
	held, err := agent.StartHeld([]string{testutil.Rawsys(t), "getppid", strconv.Itoa(n)}, nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			held.Kill()
		}
	}()
	pid := int64(held.Pid())

	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Probes = []string{"syscalls", "process"}
	cfg.Pid = []int{int(pid)}
	cfg.Interval = 200 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	metrics, logs := new(consumertest.MetricsSink), new(consumertest.LogsSink)
	ctx := context.Background()
	set := receivertest.NewNopSettings(f.Type())
	mr, err := f.CreateMetrics(ctx, set, cfg, metrics)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := f.CreateLogs(ctx, set, cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	if any(mr) != any(lr) {
		t.Fatal("the metrics and the logs pipeline got two receivers (two agents) for one configuration")
	}
	before := testutil.BPFFds(os.Getpid())
	for _, r := range []interface {
		Start(context.Context, component.Host) error
	}{mr, lr} {
		if err := r.Start(ctx, componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
	}
	progs := testutil.HeldProgramIDs(os.Getpid())
	if len(progs) == 0 {
		t.Fatal("Start returned with no BPF program attached")
	}

	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	released = true
	code, err := held.Wait()
	if err != nil || code != 0 {
		t.Fatalf("rawsys: exit %d, %v", code, err)
	}

	// The exit and the final count arrive within a few intervals.
	var got int64 = -1
	var refs int
	var exit plog.LogRecord
	var exited bool
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, md := range metrics.AllMetrics() {
			if c, r := getppidCount(md, pid); c > got {
				got, refs = c, r
			}
		}
		for _, ld := range logs.AllLogs() {
			if lr, ok := exitEvent(ld, pid); ok {
				exit, exited = lr, true
			}
		}
		if got >= n && exited {
			break
		}
	}
	if got != n {
		t.Errorf("getppid of pid %d: %d calls, want exactly %d", pid, got, n)
	}
	if refs == 0 {
		t.Errorf("the process's Resource has no entity refs in pdata")
	}
	if !exited {
		t.Errorf("no %s event for pid %d in %d log batches", tentity.EventTelagentProcessExit.Name, pid, len(logs.AllLogs()))
	} else if v, ok := exit.Attributes().Get(string(tentity.AttrProcessExitCode)); !ok || v.Type() != pcommon.ValueTypeInt || v.Int() != 0 {
		t.Errorf("exit event %s = %v, want 0", tentity.AttrProcessExitCode, exit.Attributes().AsRaw())
	}

	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, r := range []interface{ Shutdown(context.Context) error }{mr, lr} {
		if err := r.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
	}
	assertReleased(t, before, progs)
}

// assertReleased: this process holds no BPF fd it did not hold before,
// and every program seen attached is unloaded (the kernel frees a
// detached program after a grace period: a short poll).
func assertReleased(t *testing.T, before map[string]string, progs map[uint32]bool) {
	t.Helper()
	for fd, kind := range testutil.BPFFds(os.Getpid()) {
		if before[fd] != kind {
			t.Errorf("fd %s (%s) still open after Shutdown", fd, kind)
		}
	}
	for _, id := range testutil.StillLoaded(slices.Collect(maps.Keys(progs)), 3*time.Second) {
		t.Errorf("BPF program %d still loaded after Shutdown", id)
	}
}
