// Package testutil holds what the kernel tests of several packages share:
// privilege checks, the exact-syscall workload and the C workloads of
// testdata/workload built on demand (BuildC).
package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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
	return buildC("rawsys.c", "-O2", "-nostdlib", "-static", "-fno-stack-protector", "-fno-pie", "-no-pie")
}

// builds caches BuildC results per source and flags for the test binary.
var builds sync.Map // string → *cBuild

type cBuild struct {
	once sync.Once
	path string
	err  error
}

// BuildC builds testdata/workload/<name> with gcc and the given flags
// (default: -O2) and returns the executable's path, the same way Rawsys
// is built: once per test binary, into a world-readable directory named
// after the hash of the source and flags, so reruns reuse it.
func BuildC(t testing.TB, name string, flags ...string) string {
	t.Helper()
	if len(flags) == 0 {
		flags = []string{"-O2"}
	}
	v, _ := builds.LoadOrStore(name+"\x00"+strings.Join(flags, "\x00"), &cBuild{})
	b := v.(*cBuild)
	b.once.Do(func() { b.path, b.err = buildC(name, flags...) })
	if b.err != nil {
		t.Fatalf("build workload %s (make test installs gcc): %v", name, b.err)
	}
	return b.path
}

// buildC compiles testdata/workload/<name> into a content-addressed
// directory (the hash covers the source and the flags) and returns the
// binary's path; an existing binary is reused.
func buildC(name string, flags ...string) (string, error) {
	src := filepath.Join(repoRoot(), "testdata", "workload", name)
	code, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(code)
	for _, f := range flags {
		h.Write([]byte{0})
		h.Write([]byte(f))
	}
	base := strings.TrimSuffix(name, filepath.Ext(name))
	dir := filepath.Join(os.TempDir(), "telagent-"+base+"-"+hex.EncodeToString(h.Sum(nil)[:6]))
	bin := filepath.Join(dir, base)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := bin + "." + strconv.Itoa(os.Getpid())
	args := append(append([]string{}, flags...), "-o", tmp, src)
	out, err := exec.Command("gcc", args...).CombinedOutput()
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
