// Package testutil holds what the kernel tests of several packages share:
// privilege checks and the exact-syscall workload.
package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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

// Rawsys builds testdata/workload/rawsys.c (once per test binary, into a
// directory named after the source's hash, so reruns reuse it and nothing
// piles up) and returns its path. The workload makes exactly the system
// calls its arguments say. The directory is world-readable: tests run the
// agent as an unprivileged user too.
func Rawsys(t testing.TB) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("rawsys workload is x86-64 assembly")
	}
	rawsysOnce.Do(func() { rawsysPath, rawsysErr = buildRawsys() })
	if rawsysErr != nil {
		t.Fatalf("build rawsys workload (make test installs gcc): %v", rawsysErr)
	}
	return rawsysPath
}

func buildRawsys() (string, error) {
	src := filepath.Join(repoRoot(), "testdata", "workload", "rawsys.c")
	code, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(code)
	dir := filepath.Join(os.TempDir(), "telagent-rawsys-"+hex.EncodeToString(sum[:6]))
	bin := filepath.Join(dir, "rawsys")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := bin + "." + strconv.Itoa(os.Getpid())
	out, err := exec.Command("gcc", "-O2", "-nostdlib", "-static", "-fno-stack-protector",
		"-fno-pie", "-no-pie", "-o", tmp, src).CombinedOutput()
	if err != nil {
		return "", &buildError{err: err, out: string(out)}
	}
	return bin, os.Rename(tmp, bin) // atomic: parallel test binaries may race
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
