package main

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/livecheck"
	"github.com/telagent/telagent/internal/schemagen"
	"github.com/telagent/telagent/schema"
)

// TestBreakdownFlags runs the agent with each breakdown on an exact
// getppid workload: everything it exports passes the registry's live
// check (the breakdown attribute is declared for per-CPU sets only), every
// point of the syscalls set carries the attribute, and the parts of the
// workload's getppid series add up to exactly the calls it made.
func TestBreakdownFlags(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	reg, err := schemagen.LoadFS(schema.FS, schema.Display)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	for _, b := range entity.Breakdowns() {
		t.Run(b.Flag, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.json")
			p := startAgent(t, startOpts{}, "run", "--"+b.Flag, "--probes", "syscalls,sched",
				"--exporter", "otlp-json", "--output", out, "--interval", "1s",
				"--", rawsysBin, "getppid", strconv.Itoa(n))
			if code := p.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
			}
			reqs := readOTLPJSON(t, out)
			rep := livecheck.Check(reg, reqs)
			for _, v := range rep.Violations {
				t.Errorf("live check: %s", v)
			}
			last := reqs[len(reqs)-1] // cumulative: the final export holds the totals
			var calls uint64
			parts := map[int64]bool{}
			for _, rm := range last.GetResourceMetrics() {
				for _, sm := range rm.GetScopeMetrics() {
					for _, m := range sm.GetMetrics() {
						if m.GetName() != "telagent.syscall.duration" {
							continue
						}
						for _, dp := range m.GetHistogram().GetDataPoints() {
							var name string
							part := int64(-1)
							for _, kv := range dp.GetAttributes() {
								switch kv.GetKey() {
								case string(entity.AttrTelagentSyscallName):
									name = kv.GetValue().GetStringValue()
								case string(b.Attribute):
									part = kv.GetValue().GetIntValue()
								}
							}
							if part < 0 {
								t.Fatalf("a %s point without %s", m.GetName(), b.Attribute)
							}
							if name == "getppid" {
								calls += dp.GetCount()
								parts[part] = true
							}
						}
					}
				}
			}
			if calls != n {
				t.Errorf("getppid calls over all %s parts = %d, want %d (parts %v)", b.Attribute, calls, n, parts)
			}
		})
	}
}
