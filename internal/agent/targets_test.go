package agent

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/process"
	"github.com/telagent/telagent/probes/syscalls"
	"github.com/telagent/telagent/probes/targets"
)

// makeCgroup creates a child cgroup in the cgroup v2 hierarchy, removed when
// the test ends (after its processes are gone).
func makeCgroup(t *testing.T) string {
	t.Helper()
	mnt, err := targets.Cgroup2Mount("/proc")
	if err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(mnt, "telagent-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup v2 directory: %v", err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}

func enterCgroup(t *testing.T, dir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("move %d into %s: %v", pid, dir, err)
	}
}

// --cgroup: a process already in the cgroup when the agent starts is found
// in /proc; one that enters it later becomes a target at its exec (a child
// cgroup counts as inside), counted exactly from there.
func TestCgroupSelector(t *testing.T) {
	testutil.RequireRoot(t)
	rawsys := testutil.Rawsys(t)
	dir := makeCgroup(t)
	sub := filepath.Join(dir, "child")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(sub)

	// Already inside before the agent starts: sleeps 30 x 50 ms.
	before := exec.Command(rawsys, "sleep", "30", "50")
	if err := before.Start(); err != nil {
		t.Fatal(err)
	}
	enterCgroup(t, dir, before.Process.Pid)

	// Enters the child cgroup later, waiting on stdin, then execs rawsys.
	later := exec.Command("sh", "-c", "read x; exec "+rawsys+" getppid 123")
	stdin, _ := later.StdinPipe()
	if err := later.Start(); err != nil {
		t.Fatal(err)
	}

	cg, err := targets.ResolveCgroup(dir, "/proc")
	if err != nil {
		t.Fatal(err)
	}
	exp := &memExporter{}
	a := startAgent(t, Config{
		Probes:    []probes.Probe{syscalls.New(syscalls.Config{}), process.New(process.Config{})},
		Selectors: targets.Selectors{Cgroups: []targets.Cgroup{cg}},
		Interval:  time.Hour,
		Exporter:  exp, Events: &memEvents{},
	})
	enterCgroup(t, sub, later.Process.Pid)
	_, _ = io.WriteString(stdin, "go\n")
	_ = stdin.Close()
	if err := later.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := before.Wait(); err != nil {
		t.Fatal(err)
	}
	a.stop(t)

	perPid := map[int64]map[string]uint64{}
	for _, rm := range exp.last() {
		got, pids := counts(t, []metricdata.ResourceMetrics{rm})
		for pid := range pids {
			perPid[pid] = got
		}
	}
	if got := perPid[int64(later.Process.Pid)]; got["getppid"] != 123 || len(got) != 1 {
		t.Errorf("process that entered the cgroup and exec'd: %v, want exactly 123 getppid", got)
	}
	if got := perPid[int64(before.Process.Pid)]; got["nanosleep"] == 0 {
		t.Errorf("process in the cgroup before the start was not observed: %v (all: %v)", got, perPid)
	}
	if len(perPid) != 2 {
		t.Errorf("observed %d processes, want the 2 in the cgroup: %v", len(perPid), perPid)
	}
}
