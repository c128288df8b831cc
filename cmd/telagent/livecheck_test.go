package main

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telagent/telagent/internal/livecheck"
	"github.com/telagent/telagent/internal/schemagen"
	"github.com/telagent/telagent/probes/all"
	"github.com/telagent/telagent/schema"
)

// liveWorkload is a mixed workload: forks and execs, reads of /proc and of
// directories, file writes with fsync (block I/O), sleeps (voluntary context
// switches), exact syscalls with and without errors (rawsys), loopback TCP
// connections (rawsys tcp), calls of a probed function (cfunc, --uprobe),
// page faults throughout.
const liveWorkload = `set -e
d=$(mktemp -d)
for i in 1 2 3; do
	cat /proc/self/stat >/dev/null
	ls / /proc/self >/dev/null
	dd if=/dev/zero of="$d/f" bs=64k count=32 conv=fsync 2>/dev/null
	head -c 4000000 /dev/urandom | tail -c 16 >/dev/null
	sleep 0.3
done
"$RAWSYS" mix 200
"$RAWSYS" close 50
"$RAWSYS" tcp 20
echo go | "$CFUNC" work 20 5 >/dev/null
rm -rf "$d"
`

// TestLiveCheck runs the agent with every probe this kernel supports on a
// mixed workload and checks everything it emitted against the registry
// (internal/livecheck, like weaver registry live-check): any metric,
// attribute, unit, instrument, temporality, monotonicity or value type the
// registry does not declare, or declares differently, fails. New probes are
// covered without changing the test: it runs them all and derives every
// expectation from the registry.
func TestLiveCheck(t *testing.T) {
	requireRoot(t)
	requireRawsys(t)
	reg, err := schemagen.LoadFS(schema.FS, schema.Display) // what the binary was built from
	if err != nil {
		t.Fatal(err)
	}

	// Statically: every probe's metrics are declared.
	declared := map[string]bool{}
	for _, m := range reg.Metrics {
		declared[m.Name] = true
	}
	probeMetrics := map[string][]string{}
	for _, p := range all.New(all.Options{}) {
		info := p.Info()
		probeMetrics[info.Name] = info.Metrics
		for _, m := range info.Metrics {
			if !declared[m] {
				t.Errorf("probe %s lists metric %s, which the registry does not declare", info.Name, m)
			}
		}
	}

	out := filepath.Join(t.TempDir(), "live.json")
	cfunc := buildCfunc(t) // uprobe_test.go
	p := startAgent(t, startOpts{}, "run", "--exporter", "otlp-json", "--output", out, "--interval", "1s",
		"--uprobe", cfunc+":work", "--entity-events",
		"--", "env", "RAWSYS="+rawsysBin, "CFUNC="+cfunc, "sh", "-c", liveWorkload)
	if code := p.wait(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr)
	}
	assertNoLeakedPrograms(t, p.baseline)
	reqs := readOTLPJSON(t, out)

	rep := livecheck.Check(reg, reqs)
	livecheck.CheckEvents(reg, readOTLPJSONLogRequests(t, out), rep)
	for _, v := range rep.Violations {
		t.Errorf("live check: %s", v)
	}
	var seen []string
	for name, n := range rep.Points {
		seen = append(seen, name)
		if n == 0 {
			t.Errorf("metric %s with no data point", name)
		}
	}
	// The workload runs commands under the agent: their exec and exit
	// events must have been emitted (and so checked).
	for _, name := range []string{"telagent.process.exec", "telagent.process.exit"} {
		if slices.Contains(attachedProbes(t, p.stderr.String()), "process") && rep.Events[name] == 0 {
			t.Errorf("no %s event from the workload's commands", name)
		}
	}
	// --entity-events: the host and the command were announced, and the
	// command's exit deleted it (all checked against the registry above).
	for _, name := range []string{"entity.state", "entity.delete"} {
		if slices.Contains(attachedProbes(t, p.stderr.String()), "process") && rep.Events[name] == 0 {
			t.Errorf("no %s event with --entity-events", name)
		}
	}
	slices.Sort(seen)
	t.Logf("%d exports, %d resources; metrics seen: %s; declared but not seen: %s",
		len(reqs), rep.Resources, strings.Join(seen, ", "), strings.Join(rep.Unseen(reg), ", "))

	// Every probe that attached was exercised: at least one of its metrics
	// was emitted (and so checked).
	attached := attachedProbes(t, p.stderr.String())
	if len(attached) == 0 {
		t.Fatalf("no attached probe in the log:\n%s", p.stderr)
	}
	for _, name := range attached {
		if !slices.ContainsFunc(probeMetrics[name], func(m string) bool { return rep.Points[m] > 0 }) {
			t.Errorf("probe %s attached but emitted none of its metrics %v: extend liveWorkload so that every probe is exercised",
				name, probeMetrics[name])
		}
	}
}

var attachedRE = regexp.MustCompile(`msg=attached probes=("[^"]*"|\S+)`)

// attachedProbes parses the agent's "attached" log line:
// probes=syscalls(tp_btf),memory(perf).
func attachedProbes(t *testing.T, log string) []string {
	t.Helper()
	m := attachedRE.FindStringSubmatch(log)
	if m == nil {
		return nil
	}
	var names []string
	for _, p := range strings.Split(strings.Trim(m[1], `"`), ",") {
		name, _, _ := strings.Cut(p, "(")
		names = append(names, name)
	}
	return names
}
