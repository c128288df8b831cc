// Package testutil holds what the kernel tests of several packages share:
// privilege checks, the exact-syscall workload and the C and Go workloads
// of testdata/workload built on demand (BuildC, BuildGo) or ahead of time
// (PrebuiltEnv).
package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	return buildC("rawsys.c", RawsysFlags()...)
}

// RawsysFlags are the gcc flags Rawsys builds rawsys.c with.
func RawsysFlags() []string {
	return []string{"-O2", "-nostdlib", "-static", "-fno-stack-protector", "-fno-pie", "-no-pie"}
}

// PrebuiltEnv names a directory of workloads built ahead of time. Test
// binaries that run where there is no compiler and no source tree (the
// kernel matrix boots them in a VM) set it; BuildC, BuildGo and Rawsys
// then return the file PrebuiltName(name, flags...) of that directory
// instead of building.
const PrebuiltEnv = "TELAGENT_PREBUILT_DIR"

// PrebuiltName is the path, relative to a PrebuiltEnv directory, of the
// workload built from testdata/workload/<name> with flags (default: -O2
// for C, none for a .go program): <base>-<hash of the flags>/<base>, so
// the program keeps its own name (tests compare the command name the
// kernel reports).
func PrebuiltName(name string, flags ...string) string {
	if len(flags) == 0 && !isGo(name) {
		flags = []string{"-O2"}
	}
	h := sha256.Sum256([]byte(strings.Join(flags, "\x00")))
	base := strings.TrimSuffix(name, filepath.Ext(name))
	return filepath.Join(base+"-"+hex.EncodeToString(h[:6]), base)
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

// BuildGo builds testdata/workload/<name>, a one-file Go main package,
// with `go build` and the given flags (default: none) and returns the
// executable's path, the way BuildC builds C: once per test binary, into
// a content-addressed directory (the hash also covers this toolchain's
// version), or from the PrebuiltEnv directory when that is set. Cgo is
// off, so the program is static and runs where no libc matches.
func BuildGo(t testing.TB, name string, flags ...string) string {
	t.Helper()
	v, _ := builds.LoadOrStore("go\x00"+name+"\x00"+strings.Join(flags, "\x00"), &cBuild{})
	b := v.(*cBuild)
	b.once.Do(func() { b.path, b.err = buildGo(name, flags...) })
	if b.err != nil {
		t.Fatalf("build Go workload %s: %v", name, b.err)
	}
	return b.path
}

// GoBuildCommand is the command that builds the Go program src into out
// with flags: the one BuildGo runs and the kernel matrix runs ahead of
// time. Run it from inside the module (for its go.mod).
func GoBuildCommand(src, out string, flags ...string) *exec.Cmd {
	args := append(append([]string{"build"}, flags...), "-o", out, src)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

func isGo(name string) bool { return filepath.Ext(name) == ".go" }

// buildC compiles testdata/workload/<name> into a content-addressed
// directory (the hash covers the source and the flags) and returns the
// binary's path; an existing binary is reused.
func buildC(name string, flags ...string) (string, error) {
	return build(name, flags, "", func(src, out string) *exec.Cmd {
		return exec.Command("gcc", append(append([]string{}, flags...), "-o", out, src)...)
	})
}

// buildGo is buildC for a Go program; the toolchain's version is part of
// the hash (a Go binary records it, and tests check it).
func buildGo(name string, flags ...string) (string, error) {
	return build(name, flags, runtime.Version(), func(src, out string) *exec.Cmd {
		cmd := GoBuildCommand(src, out, flags...)
		cmd.Dir = repoRoot()
		return cmd
	})
}

// build returns the PrebuiltEnv build of name with flags when that is
// set, else builds testdata/workload/<name> with the command cmd gives
// into a directory named after the hash of the source, the flags and
// salt; an existing binary is reused.
func build(name string, flags []string, salt string, cmd func(src, out string) *exec.Cmd) (string, error) {
	if dir := os.Getenv(PrebuiltEnv); dir != "" {
		bin := filepath.Join(dir, PrebuiltName(name, flags...))
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s=%s holds no build of %s with flags %q: %w", PrebuiltEnv, dir, name, flags, err)
		}
		return bin, nil
	}
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
	if salt != "" {
		h.Write([]byte{1})
		h.Write([]byte(salt))
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
	c := cmd(src, tmp)
	out, err := c.CombinedOutput()
	if err != nil {
		return "", &buildError{err: fmt.Errorf("%s: %w", strings.Join(c.Args, " "), err), out: string(out)}
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
