// Package testutil holds what the kernel tests of several packages share:
// privilege checks and the exact-syscall workload.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// RequireRoot skips t unless it runs as root: loading BPF programs needs
// CAP_BPF and CAP_PERFMON, which CI has as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs (CI runs tests as root)")
	}
}

var (
	rawsysOnce sync.Once
	rawsysPath string
	rawsysErr  error
)

// Rawsys builds testdata/workload/rawsys.c once per test binary and returns
// its path. The workload makes exactly the system calls its arguments say.
func Rawsys(t testing.TB) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("rawsys workload is x86-64 assembly")
	}
	rawsysOnce.Do(func() {
		dir, err := os.MkdirTemp("", "telagent-rawsys-")
		if err != nil {
			rawsysErr = err
			return
		}
		src := filepath.Join(repoRoot(), "testdata", "workload", "rawsys.c")
		rawsysPath = filepath.Join(dir, "rawsys")
		out, err := exec.Command("gcc", "-O2", "-nostdlib", "-static", "-fno-stack-protector",
			"-fno-pie", "-no-pie", "-o", rawsysPath, src).CombinedOutput()
		if err != nil {
			rawsysErr = &buildError{err: err, out: string(out)}
		}
	})
	if rawsysErr != nil {
		t.Fatalf("build rawsys workload: %v", rawsysErr)
	}
	return rawsysPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// repoRoot is the module root, found from this source file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
