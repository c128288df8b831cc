package memory

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/probetest"
)

// harness runs the probe in filter mode; tests add their workload (and
// nothing else) to the target set while it is held at its exec.
type harness struct {
	*probetest.Harness
	probe *Probe
}

func start(t *testing.T, cfg Config, filter bool) *harness {
	t.Helper()
	p := New(cfg)
	return &harness{Harness: probetest.Start(t, p, filter, nil), probe: p}
}

// faults are one process's points of process.paging.faults.
type faults struct{ minor, major int64 }

// result is one interval's data, by process and by cgroup.
type result struct {
	faults         map[int64]faults // by process.pid
	overflowFaults faults           // the host's overflow series
	oomKills       map[int64]int64  // by telagent.cgroup.id
	oomOverflow    int64
}

func (h *harness) collect() result {
	h.T.Helper()
	h.Resolver.NextGeneration(10)
	h.Builder.Begin(time.Now())
	if err := h.State.Flip(); err != nil {
		h.T.Fatal(err)
	}
	if err := h.probe.Collect(context.Background(), &probes.Collection{Metrics: h.Builder, Processes: h.Resolver}); err != nil {
		h.T.Fatal(err)
	}
	r := result{faults: map[int64]faults{}, oomKills: map[int64]int64{}}
	for _, rm := range h.Builder.Result() {
		pid, hasPID := rm.Resource.Set().Value(entity.AttrProcessPID)
		for _, m := range rm.ScopeMetrics[0].Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				h.T.Errorf("%s: data %T, want an int64 sum", m.Name, m.Data)
				continue
			}
			for _, dp := range sum.DataPoints {
				over, _ := dp.Attributes.Value(entity.AttrOtelMetricOverflow)
				switch m.Name {
				case entity.MetricProcessPagingFaults.Name:
					typ, _ := dp.Attributes.Value(entity.AttrSystemPagingFaultType)
					f := r.faults[pid.AsInt64()]
					if over.AsBool() {
						if hasPID {
							h.T.Errorf("overflow series on a process resource: %v", rm.Resource.Attributes())
						}
						f = r.overflowFaults
					} else if !hasPID {
						h.T.Errorf("fault series without a process and not the overflow: %v", dp.Attributes.ToSlice())
					}
					switch typ.AsString() {
					case "minor":
						f.minor = dp.Value
					case "major":
						f.major = dp.Value
					default:
						h.T.Errorf("fault point without a valid %s: %v", entity.AttrSystemPagingFaultType, dp.Attributes.ToSlice())
					}
					if over.AsBool() {
						r.overflowFaults = f
					} else {
						r.faults[pid.AsInt64()] = f
					}
				case entity.MetricTelagentMemoryOOMKills.Name:
					if hasPID {
						h.T.Errorf("OOM kills on a process resource: %v", rm.Resource.Attributes())
					}
					if over.AsBool() {
						r.oomOverflow = dp.Value
						continue
					}
					id, ok := dp.Attributes.Value(entity.AttrTelagentCgroupID)
					if !ok {
						h.T.Errorf("OOM kill point without %s: %v", entity.AttrTelagentCgroupID, dp.Attributes.ToSlice())
					}
					r.oomKills[id.AsInt64()] = dp.Value
				default:
					h.T.Errorf("undeclared metric %s", m.Name)
				}
			}
		}
	}
	return r
}

// held is a workload started stopped right after its execve (ptrace), so it
// can become a target, and be put into a cgroup, before its first
// instruction: the agent then sees every fault the program itself makes.
type held struct {
	t      *testing.T
	cmd    *exec.Cmd
	pid    int
	stdout bytes.Buffer
	exited bool
	// atExec are the /proc counters at the exec stop: the faults of the
	// fork and of execve itself, before the workload became a target.
	atExec faults
}

// startHeld starts argv, calls setup(pid) while it is held, and lets it run.
// attr may carry clone options (a cgroup to start in).
func (h *harness) startHeld(attr *syscall.SysProcAttr, setup func(pid int), argv ...string) *held {
	t := h.T
	t.Helper()
	w := &held{t: t, cmd: exec.Command(argv[0], argv[1:]...)}
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Ptrace = true
	w.cmd.SysProcAttr = attr
	w.cmd.Stdout, w.cmd.Stderr = &w.stdout, os.Stderr
	// Ptrace requests must come from the thread that traced the child. The
	// thread is unlocked only after the detach: a goroutine that ends
	// locked takes its thread down, and with it the trace.
	runtime.LockOSThread()
	if err := w.cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("start %s: %v", argv[0], err)
	}
	w.pid = w.cmd.Process.Pid
	t.Cleanup(w.kill)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(w.pid, &ws, 0, nil); err != nil || !ws.Stopped() || ws.StopSignal() != syscall.SIGTRAP {
		t.Fatalf("%s did not stop at exec: status %#x, %v", argv[0], uint32(ws), err)
	}
	w.atExec = procFaults(t, w.pid)
	if err := h.State.Add(uint32(w.pid)); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(w.pid)
	}
	if err := syscall.PtraceDetach(w.pid); err != nil {
		t.Fatalf("release %s: %v", argv[0], err)
	}
	runtime.UnlockOSThread()
	return w
}

// waitStopped waits until the workload stopped itself before exiting.
func (w *held) waitStopped() {
	w.t.Helper()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(w.pid, &ws, syscall.WUNTRACED, nil); err != nil || !ws.Stopped() || ws.StopSignal() != syscall.SIGSTOP {
		w.t.Fatalf("workload did not stop itself: status %#x, %v", uint32(ws), err)
	}
}

// finish continues a self-stopped workload and checks that it exits 0.
func (w *held) finish() {
	w.t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		w.t.Fatal(err)
	}
	err := w.cmd.Wait()
	w.exited = true
	if err != nil {
		w.t.Fatalf("workload: %v", err)
	}
}

func (w *held) kill() {
	if !w.exited {
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
		w.exited = true
	}
}

// procFaults reads minflt and majflt of /proc/<pid>/stat: the kernel's own
// per-process fault counters, the oracle.
func procFaults(t *testing.T, pid int) faults {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command (which may hold spaces) start at field 3.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	minflt, err1 := strconv.ParseInt(f[10-3], 10, 64)
	majflt, err2 := strconv.ParseInt(f[12-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("/proc/%d/stat: %v", pid, err)
	}
	return faults{minor: minflt, major: majflt}
}

// within1pct reports whether got is within 1% of want.
func within1pct(got, want int64) bool {
	d := got - want
	return d*100 <= want && -d*100 <= want
}

func TestMinorFaultsMatchProc(t *testing.T) {
	h := start(t, Config{}, true)
	const pages = 16384 // 64 MiB of fresh anonymous memory
	w := h.startHeld(nil, nil, testutil.BuildC(t, "faults.c"), "minor", strconv.Itoa(pages))
	w.waitStopped()
	oracle := procFaults(t, w.pid)
	r := h.collect()
	w.finish()

	got := r.faults[int64(w.pid)]
	t.Logf("%d pages touched: agent minor %d major %d; /proc minflt %d majflt %d (difference %d; %d at the exec stop)",
		pages, got.minor, got.major, oracle.minor, oracle.major, oracle.minor-got.minor, w.atExec.minor)
	if !within1pct(got.minor, oracle.minor) {
		t.Errorf("agent minor faults %d, /proc minflt %d: not within 1%%", got.minor, oracle.minor)
	}
	// The agent sees a subset of what /proc counts: from the first
	// instruction on, and only faults taken with a user context.
	if got.minor > oracle.minor || got.major > oracle.major {
		t.Errorf("agent (%d minor, %d major) counted more than /proc (%d, %d)", got.minor, got.major, oracle.minor, oracle.major)
	}
	// Exactly: every fault /proc counted after the exec stop, the point
	// from which the workload was a target.
	if want := oracle.minor - w.atExec.minor; got.minor != want {
		t.Errorf("agent minor faults %d, /proc minflt since the exec stop %d: want them equal", got.minor, want)
	}
	if got.minor < pages {
		t.Errorf("agent minor faults %d < %d pages touched", got.minor, pages)
	}
	if len(r.faults) != 1 || r.overflowFaults != (faults{}) {
		t.Errorf("data for %d processes (want only the target %d) and overflow %+v: %v", len(r.faults), w.pid, r.overflowFaults, r.faults)
	}
}

// dataDir returns a directory on a disk-backed file system: page cache
// dropping means nothing on tmpfs, where every page is in memory.
func dataDir(t *testing.T) string {
	for _, dir := range []string{t.TempDir(), "/var/tmp"} {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			continue
		}
		if st.Type != unix.TMPFS_MAGIC && st.Type != unix.RAMFS_MAGIC {
			if dir == "/var/tmp" {
				d, err := os.MkdirTemp(dir, "telagent-memory-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(d) })
				return d
			}
			return dir
		}
	}
	t.Skip("no disk-backed directory (TMPDIR and /var/tmp are tmpfs): cannot produce major faults")
	return ""
}

// uncachedFile writes size bytes, syncs them and drops them from the page
// cache, so that mapping and reading the file takes a major fault per page.
func uncachedFile(t *testing.T, size int) string {
	path := filepath.Join(dataDir(t), "major.dat")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{0xa5}, size)
	if _, err := f.Write(buf); err != nil {
		t.Fatal(err)
	}
	// Dirty or under-writeback pages cannot be dropped: sync first.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("posix_fadvise(DONTNEED): %v", err)
	}
	return path
}

func TestMajorFaultsMatchProc(t *testing.T) {
	h := start(t, Config{}, true)
	const pages = 2048 // 8 MiB, read back one page per fault (MADV_RANDOM)
	path := uncachedFile(t, pages*os.Getpagesize())
	w := h.startHeld(nil, nil, testutil.BuildC(t, "faults.c"), "major", path)
	w.waitStopped()
	oracle := procFaults(t, w.pid)
	r := h.collect()
	w.finish()

	got := r.faults[int64(w.pid)]
	t.Logf("%d pages read from an uncached file (%s): agent major %d minor %d; /proc majflt %d minflt %d",
		pages, strings.TrimSpace(w.stdout.String()), got.major, got.minor, oracle.major, oracle.minor)
	if want := fmt.Sprintf("resident 0 of %d", pages); strings.TrimSpace(w.stdout.String()) != want {
		t.Fatalf("workload saw %q, want %q: the page cache was not dropped", strings.TrimSpace(w.stdout.String()), want)
	}
	if got.major <= 0 || !within1pct(got.major, oracle.major) {
		t.Errorf("agent major faults %d, /proc majflt %d: want > 0 and within 1%%", got.major, oracle.major)
	}
	if got.major > oracle.major || got.minor > oracle.minor {
		t.Errorf("agent (%d minor, %d major) counted more than /proc (%d, %d)", got.minor, got.major, oracle.minor, oracle.major)
	}
	if want := (faults{oracle.minor - w.atExec.minor, oracle.major - w.atExec.major}); got != want {
		t.Errorf("agent %+v, /proc since the exec stop %+v: want them equal", got, want)
	}
	if got.major < pages {
		t.Errorf("agent major faults %d < %d uncached pages read", got.major, pages)
	}
}

// oomCgroup is a fresh cgroup with a 32 MiB memory limit and no swap.
type oomCgroup struct {
	id    uint64 // cgroup v2 id of the cgroup the victim is in
	fd    int    // that cgroup's directory, for CLONE_INTO_CGROUP
	v1    string // on hybrid hosts, the v1 memory cgroup to move the child into
	kills func() (int64, error)
}

// cgroupMounts finds the cgroup2 mount and the cgroup v1 memory mount.
func cgroupMounts(t *testing.T) (v2, v1memory string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 3 {
			continue
		}
		switch {
		case tail[0] == "cgroup2" && v2 == "":
			v2 = fields[4]
		case tail[0] == "cgroup" && v1memory == "" && contains(strings.Split(tail[2], ","), "memory"):
			v1memory = fields[4]
		}
	}
	return v2, v1memory
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, path, value string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		t.Fatalf("write %q to %s: %v", value, path, err)
	}
}

// mkCgroup creates a cgroup directory removed at cleanup (after the
// workload's own cleanup has reaped it: cleanups run last in, first out).
func mkCgroup(t *testing.T, parent string) string {
	dir := filepath.Join(parent, fmt.Sprintf("telagent-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Rmdir(dir); err != nil {
			t.Errorf("remove cgroup %s: %v", dir, err)
		}
	})
	return dir
}

// counterIn reads "name N" from a flat-keyed cgroup file.
func counterIn(path, name string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == name {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s line", path, name)
}

// newOOMCgroup prefers cgroup v2 with its memory controller. On hybrid
// hosts, where the memory controller is bound to a v1 hierarchy, the limit
// is a v1 memory cgroup and the victim's identity a fresh cgroup v2 one:
// that is the cgroup the probe reports.
func newOOMCgroup(t *testing.T) *oomCgroup {
	v2, v1 := cgroupMounts(t)
	if v2 == "" {
		t.Skip("no cgroup2 file system mounted: the probe keys OOM kills by cgroup v2 id")
	}
	c := &oomCgroup{}
	controllers, err := os.ReadFile(filepath.Join(v2, "cgroup.controllers"))
	switch {
	case err == nil && contains(strings.Fields(string(controllers)), "memory"):
		subtree := filepath.Join(v2, "cgroup.subtree_control")
		if b, err := os.ReadFile(subtree); err == nil && !contains(strings.Fields(string(b)), "memory") {
			writeFile(t, subtree, "+memory")
			t.Cleanup(func() { _ = os.WriteFile(subtree, []byte("-memory"), 0) }) // fails harmlessly if others use it
		}
		dir := mkCgroup(t, v2)
		writeFile(t, filepath.Join(dir, "memory.max"), "32M")
		if _, err := os.Stat(filepath.Join(dir, "memory.swap.max")); err == nil {
			writeFile(t, filepath.Join(dir, "memory.swap.max"), "0")
		}
		c.kills = func() (int64, error) { return counterIn(filepath.Join(dir, "memory.events"), "oom_kill") }
		c.open(t, dir)
	case v1 != "":
		dir := mkCgroup(t, v2) // identity only, no controller
		c.v1 = mkCgroup(t, v1)
		writeFile(t, filepath.Join(c.v1, "memory.limit_in_bytes"), "32M")
		if _, err := os.Stat(filepath.Join(c.v1, "memory.memsw.limit_in_bytes")); err == nil {
			writeFile(t, filepath.Join(c.v1, "memory.memsw.limit_in_bytes"), "32M") // no swap either
		}
		c.kills = func() (int64, error) { return counterIn(filepath.Join(c.v1, "memory.oom_control"), "oom_kill") }
		c.open(t, dir)
	default:
		t.Skipf("cgroup v2 memory controller unavailable (%s/cgroup.controllers: %q, %v) and no cgroup v1 memory hierarchy",
			v2, strings.TrimSpace(string(controllers)), err)
	}
	return c
}

func (c *oomCgroup) open(t *testing.T, dir string) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	c.id = st.Ino // the kernfs id: what dfl_cgrp->kn->id holds
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.fd = fd
	t.Cleanup(func() { unix.Close(fd) })
}

func TestOOMKillCountedForItsCgroup(t *testing.T) {
	for _, attach := range []string{"tp_btf", "raw_tp"} {
		t.Run(attach, func(t *testing.T) {
			h := start(t, Config{Attach: attach}, true)
			if got := h.probe.Stats().Attach; got != "perf_event+"+attach {
				t.Fatalf("attached with %q, want perf_event+%s", got, attach)
			}
			cg := newOOMCgroup(t)
			attr := &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
			w := h.startHeld(attr, func(pid int) {
				// The only process of its cgroup is its victim anyway; this
				// makes it killable even if the test runs at -1000.
				writeFile(t, fmt.Sprintf("/proc/%d/oom_score_adj", pid), "1000")
				if cg.v1 != "" {
					writeFile(t, filepath.Join(cg.v1, "cgroup.procs"), strconv.Itoa(pid))
				}
			}, testutil.BuildC(t, "faults.c"), "oom")

			done := make(chan error, 1)
			go func() { done <- w.cmd.Wait() }()
			var err error
			select {
			case err = <-done:
				w.exited = true
			case <-time.After(60 * time.Second):
				t.Fatal("workload not OOM-killed within 60 s")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("workload ended with %v, want killed by SIGKILL", err)
			}
			kernel, err := cg.kills()
			if err != nil {
				t.Fatal(err)
			}
			r := h.collect()
			t.Logf("cgroup %d: agent oom_kills %d, kernel's oom_kill %d; all cgroups %v", cg.id, r.oomKills[int64(cg.id)], kernel, r.oomKills)
			if kernel != 1 {
				t.Errorf("kernel counted %d OOM kills in the cgroup, want 1", kernel)
			}
			if got := r.oomKills[int64(cg.id)]; got != 1 || len(r.oomKills) != 1 || r.oomOverflow != 0 {
				t.Errorf("oom_kills %v (overflow %d), want exactly {%d: 1}", r.oomKills, r.oomOverflow, cg.id)
			}
		})
	}
}

// A full map folds further processes into the overflow series: totals stay
// exact, the fold counter says how many updates lost their attribution.
func TestOverflowSeries(t *testing.T) {
	h := start(t, Config{MaxEntries: 1}, true)
	bin := testutil.BuildC(t, "faults.c")
	var oracle int64
	var ws []*held
	// All three stay stopped until collected: the exit path's own faults
	// come after the /proc reads and must not be in the collection either.
	for range 3 {
		w := h.startHeld(nil, nil, bin, "minor", "1000")
		w.waitStopped()
		oracle += procFaults(t, w.pid).minor - w.atExec.minor
		ws = append(ws, w)
	}
	r := h.collect()
	ms := h.probe.Stats().MetricSets[0]
	folds := ms.OverflowFolds + ms.EntryFolds
	for _, w := range ws {
		w.finish()
	}
	var named int64
	for _, f := range r.faults {
		named += f.minor
	}
	t.Logf("named %d + overflow %d minor faults (%d folds) of 3 processes; /proc since the exec stops %d", named, r.overflowFaults.minor, folds, oracle)
	if len(r.faults) != 1 {
		t.Errorf("%d named processes, want max_entries 1", len(r.faults))
	}
	if r.overflowFaults.minor < 2*1000 {
		t.Errorf("overflow series has %d minor faults, want the 2 × 1000 pages of the processes that did not fit", r.overflowFaults.minor)
	}
	if total := named + r.overflowFaults.minor; total != oracle {
		t.Errorf("named + overflow = %d, /proc since the exec stops %d: want them equal", total, oracle)
	}
	// The kernel's storage had room: the agent folded whole drained
	// entries (one process's faults on one CPU), at least one per process
	// that did not fit, and counted each.
	if ms.OverflowFolds != 0 || ms.EntryFolds < 2 {
		t.Errorf("folds: %d updates by the programs, %d entries by the agent; want 0 and at least 2", ms.OverflowFolds, ms.EntryFolds)
	}
}

// Close releases every program, link, map and perf event the probe made.
func TestCloseReleasesEverything(t *testing.T) {
	testutil.RequireRoot(t)
	perfFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); target == "anon_inode:[perf_event]" {
				n++
			}
		}
		return n
	}
	before := perfFDs()
	h := start(t, Config{}, false)
	cpus, err := onlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if got := perfFDs() - before; got != 2*len(cpus) {
		t.Errorf("%d perf event fds open, want 2 per online CPU (%d)", got, 2*len(cpus))
	}
	var ids []ebpf.ProgramID
	for _, prog := range []*ebpf.Program{h.probe.objs.Minor, h.probe.objs.Major, h.probe.objs.Victim} {
		info, err := prog.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		ids = append(ids, id)
	}
	// Whole host: this test process faults too, so something was counted.
	// Fresh anonymous pages, each touched: a minor fault per page whatever
	// the Go heap already holds (an 8 MiB bytes.Repeat reused resident heap
	// pages in a 6.12 guest and faulted on none).
	mem, err := unix.Mmap(-1, 0, 8<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(mem); i += os.Getpagesize() {
		mem[i] = 1
	}
	if err := unix.Munmap(mem); err != nil {
		t.Fatal(err)
	}
	if r := h.collect(); len(r.faults) == 0 {
		t.Error("whole-host mode counted no fault of any process")
	}
	if err := h.probe.Close(); err != nil {
		t.Fatal(err)
	}
	if n := perfFDs() - before; n != 0 {
		t.Errorf("%d perf event fds still open after Close", n)
	}
	// The kernel frees a program once its last link is released, which it
	// does from a work queue: allow it a moment.
	for _, id := range testutil.StillLoaded(ids, 2*time.Second) {
		t.Errorf("program %d still loaded 2 s after Close", id)
	}
}

// Without CAP_PERFMON, where perf_event_paranoid forbids CPU-wide events,
// Supported says so in one line. The test binary re-runs itself as nobody.
func TestSupportedReasonWithoutPerfmon(t *testing.T) {
	if os.Getenv("TELAGENT_MEMORY_SUPPORTED_CHILD") == "1" {
		err := New(Config{}).Supported()
		fmt.Printf("reason: %v\n", err)
		return
	}
	testutil.RequireRoot(t)
	paranoid, err := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
	if err != nil {
		t.Skipf("no perf_event_paranoid: %v", err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(paranoid))); n < 1 {
		t.Skipf("perf_event_paranoid=%d lets every user open CPU-wide events", n)
	}
	// The test binary's own directory is private to root: run a copy.
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "telagent-memory-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "memory.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestSupportedReasonWithoutPerfmon$")
	cmd.Env = append(os.Environ(), "TELAGENT_MEMORY_SUPPORTED_CHILD=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run as nobody: %v\n%s", err, out)
	}
	_, reason, _ := strings.Cut(string(out), "reason: ")
	reason, _, _ = strings.Cut(reason, "\n")
	t.Logf("Supported() as nobody: %s", reason)
	want := "perf_event_paranoid=" + strings.TrimSpace(string(paranoid)) + ", needs CAP_PERFMON or root"
	if !strings.Contains(reason, want) {
		t.Errorf("Supported() as nobody = %q, want a reason containing %q", reason, want)
	}
}
