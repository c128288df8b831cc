package process

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes"
)

// cgroupMounts finds the cgroup2 mount and a cgroup v1 memory mount.
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
		case tail[0] == "cgroup" && v1memory == "" && strings.Contains(","+tail[2]+",", ",memory,"):
			v1memory = fields[4]
		}
	}
	return v2, v1memory
}

func mkdirCgroup(t *testing.T, parent string) string {
	t.Helper()
	dir := filepath.Join(parent, fmt.Sprintf("telagent-oom-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && unix.Rmdir(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}

func write(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		t.Fatalf("write %q to %s: %v", v, path, err)
	}
}

// A process that outgrows its cgroup's 32 MiB limit: one OOM kill event on
// the victim's Resource, with its cgroup v2 id, then its exit by SIGKILL.
func TestOOMKillEvent(t *testing.T) {
	s := start(t, Config{}, false)
	if !s.p.oom {
		t.Skip("mark_victim not attached on this kernel")
	}
	v2, v1 := cgroupMounts(t)
	if v2 == "" {
		t.Skip("no cgroup2 mount")
	}
	dir := mkdirCgroup(t, v2) // the victim's identity
	limit := ""
	if b, err := os.ReadFile(filepath.Join(v2, "cgroup.controllers")); err == nil && strings.Contains(" "+string(b)+" ", " memory ") {
		write(t, filepath.Join(v2, "cgroup.subtree_control"), "+memory")
		write(t, filepath.Join(dir, "memory.max"), "32M")
	} else if v1 != "" { // hybrid host: the limit is a v1 memory cgroup
		limit = mkdirCgroup(t, v1)
		write(t, filepath.Join(limit, "memory.limit_in_bytes"), "32M")
		if _, err := os.Stat(filepath.Join(limit, "memory.memsw.limit_in_bytes")); err == nil {
			write(t, filepath.Join(limit, "memory.memsw.limit_in_bytes"), "32M")
		}
	} else {
		t.Skip("no memory controller to limit a cgroup with")
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	bin := testutil.BuildC(t, "faults.c")
	cmd := exec.Command("sh", "-c", "read x; exec "+bin+" oom")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	write(t, fmt.Sprintf("/proc/%d/oom_score_adj", pid), "1000")
	if limit != "" {
		write(t, filepath.Join(limit, "cgroup.procs"), strconv.Itoa(pid))
	}
	_, _ = io.WriteString(stdin, "go\n")
	_ = stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("not OOM-killed within 60 s")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("workload ended with %v, want SIGKILL", err)
	}
	s.sync(t)
	var ooms []probes.Event
	for _, ev := range s.sink.of(pid) {
		if ev.Desc.Name == entity.EventTelagentProcessOOMKill.Name {
			ooms = append(ooms, ev)
		}
	}
	if len(ooms) != 1 {
		t.Fatalf("%d OOM kill events for pid %d, want 1", len(ooms), pid)
	}
	ev := ooms[0]
	if v, _ := attrOf(ev, entity.AttrTelagentCgroupID); uint64(v.AsInt64()) != st.Ino {
		t.Errorf("cgroup id %d, want %d", v.AsInt64(), st.Ino)
	}
	rss, _ := attrOf(ev, entity.AttrTelagentProcessOOMRssPages)
	if pages := rss.AsInt64(); pages < 1000 || pages > 32<<20/4096+1024 {
		t.Errorf("rss %d pages for a 32 MiB limit", pages)
	}
	if v, _ := attrOf(ev, entity.AttrTelagentProcessOOMScoreAdj); v.AsInt64() != 1000 {
		t.Errorf("oom_score_adj %d, want 1000", v.AsInt64())
	}
	if ev.Comm != "faults" {
		t.Errorf("victim comm %q", ev.Comm)
	}
}
