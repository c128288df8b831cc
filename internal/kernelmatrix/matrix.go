// Package kernelmatrix runs the probe test suite on a matrix of kernels:
// each kernel (Debian's packaged kernels, unpacked and never installed, and
// the host's own when its image is readable) boots in QEMU with an
// initramfs holding busybox, the statically linked test binaries and what
// they exec, runs every test binary and powers off; the host parses the
// results into a kernel × package table. `make test-kernels` runs it.
package kernelmatrix

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config is one run of the matrix.
type Config struct {
	Root        string   // the repository (module root)
	Kernels     []string // Resolve specs
	Packages    []string // go list patterns; packages without tests are left out
	Cache       string   // downloads, unpacked kernels, build outputs, logs
	Modules     []string // modules loaded in the guest, with their dependencies
	Tools       []string // host programs copied into the guest
	Accel       string   // auto, kvm or tcg
	MemoryMB    int
	CPUs        int
	BootTimeout time.Duration // per kernel
	TestTimeout time.Duration // per test binary (-test.timeout)
	Run         string        // -test.run for every binary, "" for all tests
	Bench       string        // -test.bench for every binary instead of the tests, "" for none
	Cmdline     string        // extra kernel command line
	Log         io.Writer     // progress
}

// Run builds everything, boots each kernel and returns the runs.
func Run(ctx context.Context, c Config) ([]KernelRun, error) {
	logf := func(format string, a ...any) { fmt.Fprintf(c.Log, format+"\n", a...) }
	work := filepath.Join(c.Cache, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	busybox, err := exec.LookPath("busybox")
	if err == nil {
		// The guest has no libc of its own for busybox: it must be static.
		if out, _ := exec.Command("ldd", busybox).CombinedOutput(); !bytes.Contains(out, []byte("not a dynamic executable")) {
			err = fmt.Errorf("%s is dynamically linked", busybox)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("a static busybox is needed (apt-get install busybox-static): %w", err)
	}
	test2json, err := goTool(c.Root, "test2json")
	if err != nil {
		return nil, err
	}

	var kernels []Kernel
	for _, spec := range c.Kernels {
		k, err := Resolve(spec, filepath.Join(c.Cache, "kernels"))
		if err != nil {
			return nil, err
		}
		if k.Unavailable != "" {
			logf("kernel %s (%s): skipped: %s", k.Name, k.Source, k.Unavailable)
		} else {
			logf("kernel %s (%s): %s", k.Name, k.Source, k.Image)
		}
		kernels = append(kernels, k)
	}

	tests, broken, err := BuildTests(c.Root, filepath.Join(work, "bin"), c.Packages)
	if err != nil {
		return nil, err
	}
	for pkg, msg := range broken {
		logf("package %s does not compile: %s", pkg, msg)
	}
	var pkgs []string
	for _, t := range tests {
		pkgs = append(pkgs, t.ImportPath)
	}
	logf("test binaries: %s", strings.Join(pkgs, " "))
	ws, unknown, err := FindWorkloads(c.Root)
	if err != nil {
		return nil, err
	}
	for _, u := range unknown {
		logf("warning: %s: testutil.BuildC with non-literal arguments cannot be built ahead of time; that test fails in the guest", u)
	}
	prebuiltDir := filepath.Join(work, "prebuilt")
	if err := os.RemoveAll(prebuiltDir); err != nil {
		return nil, err
	}
	prebuilt, err := BuildWorkloads(c.Root, prebuiltDir, ws)
	if err != nil {
		return nil, err
	}
	var tools []string
	for _, t := range c.Tools {
		p, err := exec.LookPath(t)
		if err != nil {
			logf("tool %s is not on the host: the guest has none either (tests that need it skip or fail there)", t)
			continue
		}
		tools = append(tools, p)
	}
	g := Guest{Busybox: busybox, Tests: tests, Prebuilt: prebuiltDir, Workloads: prebuilt, Tools: tools, Timeout: c.TestTimeout, Run: c.Run, Bench: c.Bench, ScratchMB: 256}

	accel, why := c.Accel, "chosen with -accel"
	if accel == "auto" {
		accel, why = "tcg", "no kernel to try KVM with"
		for _, k := range kernels {
			if k.Unavailable == "" {
				accel, why = DetectAccel(ctx, busybox, k.Image, work, 10*time.Second)
				break
			}
		}
	}
	logf("accelerator: %s (%s)", accel, why)

	var runs []KernelRun
	for _, k := range kernels {
		run := KernelRun{Kernel: k, Accel: accel}
		if k.Unavailable != "" {
			run.Err = k.Unavailable
			runs = append(runs, run)
			continue
		}
		base := filepath.Join(work, sanitize(k.Name))
		initrd := base + ".cpio.gz"
		missing, err := BuildInitramfs(initrd, g, k, c.Modules)
		if err != nil {
			return nil, fmt.Errorf("initramfs for %s: %w", k.Name, err)
		}
		if len(missing) > 0 {
			logf("kernel %s: no module file for %s (built in or absent)", k.Name, strings.Join(missing, ", "))
		}
		b := Boot{Image: k.Image, Initrd: initrd, Accel: accel, MemoryMB: c.MemoryMB, CPUs: c.CPUs,
			Timeout: c.BootTimeout, Console: base + ".console.log", Results: base + ".results.log", Cmdline: c.Cmdline, Shape: k.Shape}
		logf("kernel %s: booting (%s, console log %s)", k.Name, accel, b.Console)
		start := time.Now()
		berr := b.Run(ctx)
		run.Seconds = time.Since(start).Seconds()
		if berr != nil {
			run.Err = berr.Error()
		}
		stream, err := os.ReadFile(b.Results)
		if err != nil && berr == nil {
			return nil, err
		}
		run.Bench = benchLines(stream)
		run.Release, run.Setup, run.Packages, err = ParseResults(stream, pkgs, test2json)
		if err != nil {
			return nil, err
		}
		for _, pkg := range sortedKeys(broken) {
			run.Packages = append(run.Packages, PackageResult{ImportPath: pkg, Status: Fail, Note: "does not compile: " + broken[pkg]})
		}
		if berr == nil && !bytes.Contains(stream, []byte(markDone)) {
			run.Err = "the guest powered off before finishing (kernel panic? see " + b.Console + ")"
		}
		logf("kernel %s: done in %.0fs", k.Name, run.Seconds)
		runs = append(runs, run)
	}
	return runs, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// goTool returns the command line of a go tool (test2json).
func goTool(root, name string) ([]string, error) {
	cmd := exec.Command("go", "tool", "-n", name)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go tool -n %s: %w", name, err)
	}
	return []string{strings.TrimSpace(string(out))}, nil
}

// BuildTests compiles one statically linked test binary (CGO_ENABLED=0)
// per package with tests matching patterns, into dir.
// A package that does not compile is returned in broken with the compiler's
// message instead of stopping the run.
func BuildTests(root, dir string, patterns []string) (tests []TestBinary, broken map[string]string, err error) {
	args := append([]string{"list", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{len .TestGoFiles}}\t{{len .XTestGoFiles}}\t{{.Module.Path}}"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go list %s: %v: %s", strings.Join(patterns, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	broken = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 5 || (f[2] == "0" && f[3] == "0") {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(f[0], f[4]), "/")
		if rel == "" {
			rel = "root"
		}
		t := TestBinary{ImportPath: f[0], Rel: rel, Binary: filepath.Join(dir, sanitize(strings.ReplaceAll(rel, "/", "_"))+".test")}
		if st, err := os.Stat(filepath.Join(f[1], "testdata")); err == nil && st.IsDir() {
			t.Testdata = filepath.Join(f[1], "testdata")
		}
		build := exec.Command("go", "test", "-c", "-ldflags=-s -w", "-o", t.Binary, f[0])
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := build.CombinedOutput(); err != nil {
			broken[f[0]] = firstLine(string(msg))
			continue
		}
		tests = append(tests, t)
	}
	if len(tests) == 0 && len(broken) == 0 {
		return nil, nil, fmt.Errorf("no packages with tests match %s", strings.Join(patterns, " "))
	}
	return tests, broken, nil
}

// firstLine is the first line of a compiler message that says something
// (go test -c starts with "# package").
func firstLine(msg string) string {
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return strings.TrimSpace(msg)
}
