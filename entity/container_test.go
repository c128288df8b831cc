package entity

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

const (
	testID1 = "3f1b2c9e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
	testID2 = "9e0f7d1c2b3a4958a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4"
	testPod = "6a1c8e2f-5b3d-4e7a-9c1f-2d8b4a6e0c3f"
)

// TestContainerParseCgroup reads /proc/<pid>/cgroup contents in the layouts
// kubelet and the container runtimes produce (testdata/cgroups: systemd and
// cgroupfs drivers, containerd, CRI-O, Docker, Podman, a cgroup namespace
// that makes the path relative, cgroup v1 lines) and host processes.
func TestContainerParseCgroup(t *testing.T) {
	for file, want := range map[string]Container{
		"containerd-systemd-burstable.txt":  {ID: testID1, PodUID: testPod},
		"containerd-systemd-guaranteed.txt": {ID: testID2, PodUID: "0b7e4d2a-91c3-4f58-a6e2-7d3c1b9f8e40"},
		"containerd-systemd-cgroupns.txt":   {ID: testID1, PodUID: "1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5"},
		"containerd-cgroupfs-v1.txt":        {ID: testID1, PodUID: testPod},
		"crio-systemd.txt":                  {ID: testID2, PodUID: testPod},
		"crio-conmon.txt":                   {PodUID: testPod}, // the runtime's monitor: in the pod, in no container
		"docker-systemd.txt":                {ID: testID1},
		"docker-cgroupfs.txt":               {ID: testID2},
		"podman.txt":                        {ID: testID1},
		"host-systemd-service.txt":          {},
		"host-v1-hybrid.txt":                {},
		"not-a-pod.txt":                     {},
		"malformed.txt":                     {},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", "cgroups", file))
		if err != nil {
			t.Fatal(err)
		}
		if got := ParseCgroup(data); got != want {
			t.Errorf("%s: got %+v, want %+v", file, got, want)
		}
	}
	// Every recorded file is in the table above.
	files, _ := filepath.Glob(filepath.Join("testdata", "cgroups", "*.txt"))
	if len(files) != 13 {
		t.Errorf("%d files in testdata/cgroups, the table has 13", len(files))
	}
}

func TestContainerAttributes(t *testing.T) {
	got := Container{ID: testID1, PodUID: testPod}.Attributes()
	want := []attribute.KeyValue{AttrContainerID.String(testID1), AttrK8sPodUID.String(testPod)}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := (Container{}).Attributes(); len(got) != 0 {
		t.Errorf("no container: %v", got)
	}
}

// TestContainerResolverRealCgroup puts a process into a real cgroup v2
// directory laid out like kubelet's systemd driver would, and checks that
// the process resolver reads the kernel's /proc/<pid>/cgroup into the
// process Resource.
func TestContainerResolverRealCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a cgroup")
	}
	mnt := cgroup2MountOf(t)
	const uid = "d3b07384-d9a0-4c9b-8b3a-1f2e3d4c5b6a"
	base := filepath.Join(mnt, "telagent-test-"+strconv.Itoa(os.Getpid()))
	dir := filepath.Join(base, "kubepods-besteffort-pod"+strings.ReplaceAll(uid, "-", "_")+".slice", "cri-containerd-"+testID2+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup v2 directory: %v", err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		// rmdir innermost first; a cgroup dir is removable once empty.
		for d := dir; strings.HasPrefix(d, base); d = filepath.Dir(d) {
			for range 50 {
				if err := os.Remove(d); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewProcessResolver("/proc", []attribute.KeyValue{AttrHostID.String("h")})
	if err != nil {
		t.Fatal(err)
	}
	r.NextGeneration(1)
	set := r.Process(uint32(cmd.Process.Pid)).Set()
	if v, _ := set.Value(AttrContainerID); v.AsString() != testID2 {
		t.Errorf("container.id = %q, want %q (resource %v)", v.AsString(), testID2, set.Encoded(attribute.DefaultEncoder()))
	}
	if v, _ := set.Value(AttrK8sPodUID); v.AsString() != uid {
		t.Errorf("k8s.pod.uid = %q, want %q", v.AsString(), uid)
	}
	// The test process is not in that container (it may be in another one
	// when the tests run in a container).
	self := r.Process(uint32(os.Getpid())).Set()
	if v, _ := self.Value(AttrContainerID); v.AsString() == testID2 {
		t.Errorf("the test process got the child's container: %v", self.Encoded(attribute.DefaultEncoder()))
	}
}

// cgroup2MountOf finds where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup
// on unified hosts, /sys/fs/cgroup/unified on hybrid ones).
func cgroup2MountOf(t *testing.T) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		// ... mount-point ... - fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) > 0 && fs[0] == "cgroup2" {
			if f := strings.Fields(pre); len(f) > 4 {
				return f[4]
			}
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted")
	return ""
}
