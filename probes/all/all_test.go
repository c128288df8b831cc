package all_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/internal/agent"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/metrics"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/all"
)

// daemonSetLimit is the memory limit deploy/ gives the agent.
const daemonSetLimit = 512 << 20

// memCgroup is a memory cgroup this process runs in for the test, with
// its limit, peak usage and OOM-kill count files: BPF map memory is
// charged to the cgroup of the process that creates a map.
type memCgroup struct {
	dir                 string
	peakFile, killsFile string
	limitFile, killsKey string
}

// cgroupFS says where this process's memory cgroup is, and in which
// version: the line of /proc/self/cgroup for the memory controller (v1)
// or the unified one (v2), and a mount of that hierarchy.
func cgroupFS(t *testing.T) (path string, v2 bool) {
	t.Helper()
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && f[1] == "memory" {
			if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
				return filepath.Join("/sys/fs/cgroup/memory", f[2]), false
			}
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		for _, l := range strings.Split(string(self), "\n") {
			if rest, ok := strings.CutPrefix(l, "0::"); ok {
				return filepath.Join("/sys/fs/cgroup", rest), true
			}
		}
	}
	t.Skip("no memory cgroup controller mounted (cgroup v2 at /sys/fs/cgroup, or v1 at /sys/fs/cgroup/memory)")
	return "", false
}

// newMemCgroup makes a child of this process's memory cgroup with the
// limit and moves the process into it; the cleanup moves it back and
// removes the child.
func newMemCgroup(t *testing.T, limit int64) memCgroup {
	t.Helper()
	parent, v2 := cgroupFS(t)
	cg := memCgroup{dir: filepath.Join(parent, "telagent-test-"+strconv.Itoa(os.Getpid())),
		limitFile: "memory.limit_in_bytes", peakFile: "memory.max_usage_in_bytes", killsFile: "memory.oom_control", killsKey: "oom_kill"}
	if v2 {
		cg.limitFile, cg.peakFile, cg.killsFile = "memory.max", "memory.peak", "memory.events"
		ctrl, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
		if !strings.Contains(string(ctrl), "memory") {
			if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory"), 0); err != nil {
				t.Skipf("cannot enable the memory controller below %s: %v", parent, err)
			}
		}
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			t.Errorf("move back to %s: %v", parent, err)
		}
		if err := os.Remove(cg.dir); err != nil {
			t.Errorf("remove %s: %v", cg.dir, err)
		}
	})
	for file, v := range map[string]string{cg.limitFile: strconv.FormatInt(limit, 10), "cgroup.procs": strconv.Itoa(os.Getpid())} {
		if err := os.WriteFile(filepath.Join(cg.dir, file), []byte(v), 0); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	return cg
}

func readInt(t *testing.T, path, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if key == "" && len(f) == 1 || len(f) == 2 && f[0] == key {
			n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("%s: no %q", path, key)
	return 0
}

// TestDefaultProbesInMemoryCgroup runs the agent with every default probe
// on the whole host for a few intervals inside a memory cgroup of the
// DaemonSet's limit, sized as `telagent run` sizes it (the default
// --bpf-memory): it starts, keeps collecting and is never OOM-killed, and
// its metric-set storage stays within the budget whatever the number of
// possible CPUs (the kernel matrix runs it with 255).
func TestDefaultProbesInMemoryCgroup(t *testing.T) {
	testutil.RequireRoot(t)
	cg := newMemCgroup(t, daemonSetLimit)
	topo, err := aggregator.DiscoverTopology("/sys")
	if err != nil {
		t.Fatal(err)
	}
	ps := all.New(all.Options{})
	var sets []entity.MetricSetDesc
	for _, p := range ps {
		sets = append(sets, p.Info().Sets...)
	}
	plan, err := probes.PlanStorage(probes.DefaultBPFMemory, sets, topo)
	if err != nil {
		t.Fatal(err)
	}
	// The host's identity: a guest of the kernel matrix has no
	// /etc/machine-id, so the test gives the agent one of its own.
	root := "/"
	if _, err := os.Stat("/etc/machine-id"); err != nil {
		root = t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var storage uint64
	var attached []string
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = agent.Run(ctx, agent.Config{
		Probes: ps, Interval: time.Second, Duration: 3 * time.Second, Storage: plan.Entries, Root: root,
		Exporter: export.NewConsole(io.Discard, export.ConsoleOptions{}),
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Attached: func() error {
			for _, p := range ps {
				st := p.Stats()
				if st.Attach != "" {
					attached = append(attached, p.Info().Name)
				}
				for _, ms := range st.MetricSets {
					storage += ms.Storage.Bytes
				}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	peak := readInt(t, filepath.Join(cg.dir, cg.peakFile), "")
	kills := readInt(t, filepath.Join(cg.dir, cg.killsFile), cg.killsKey)
	t.Logf("%d possible CPUs, %d nodes: probes %v; storage %s (planned %s of %s); cgroup peak %s",
		topo.PossibleCPUs, len(topo.Nodes), attached, metrics.FormatBytes(float64(storage)), metrics.FormatBytes(float64(plan.Total)),
		metrics.FormatBytes(float64(probes.DefaultBPFMemory)), metrics.FormatBytes(float64(peak)))
	if kills != 0 {
		t.Errorf("%d OOM kills in the agent's cgroup", kills)
	}
	if storage == 0 || storage > probes.DefaultBPFMemory {
		t.Errorf("metric-set storage %d bytes (kernel's accounting), want within the budget %d", storage, probes.DefaultBPFMemory)
	}
	if peak >= daemonSetLimit {
		t.Errorf("cgroup memory peak %d at the limit %d", peak, daemonSetLimit)
	}
}
