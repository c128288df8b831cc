package kernelmatrix

import (
	"bytes"
	"debug/elf"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/telagent/telagent/internal/testutil"
)

// The archive is checked with GNU cpio, an independent reader of the
// format the kernel unpacks.
func TestImageUnpacksWithCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed (apt-get install cpio)")
	}
	dir := t.TempDir()
	host := filepath.Join(dir, "host.bin")
	if err := os.WriteFile(host, []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	im := NewImage()
	im.AddFile("usr/local/sbin/tool", host, 0o755)
	im.AddData("/init", []byte("#!/bin/sh\n"), 0o755)
	im.AddData("etc/odd", []byte("12345"), 0o600) // a length that needs padding
	im.AddSymlink("bin/sh", "/bin/busybox")
	im.AddDir("tmp", 0o1777)
	var gz bytes.Buffer
	if err := im.WriteGzip(&gz); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "gzip -dc | cpio -idm --quiet --no-absolute-filenames")
	cmd.Dir, cmd.Stdin = out, &gz
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, msg)
	}
	for p, want := range map[string]string{"usr/local/sbin/tool": "from the host\n", "init": "#!/bin/sh\n", "etc/odd": "12345"} {
		if got, err := os.ReadFile(filepath.Join(out, p)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
	for p, want := range map[string]os.FileMode{"init": 0o755, "etc/odd": 0o600, "usr/local": os.ModeDir | 0o755} {
		if st, err := os.Lstat(filepath.Join(out, p)); err != nil || st.Mode().Perm()|st.Mode().Type() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, st.Mode(), err, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(out, "bin/sh")); err != nil || target != "/bin/busybox" {
		t.Errorf("bin/sh -> %q, %v; want /bin/busybox", target, err)
	}
}

// Fake modules: ELF objects whose .modinfo says what they depend on, one
// of them xz-compressed as Debian's 6.12 ships them.
func TestModuleOrder(t *testing.T) {
	for _, tool := range []string{"gcc", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	mod := func(name, depends string, compress bool) {
		t.Helper()
		src := filepath.Join(dir, name+".c")
		code := `const char depends[] __attribute__((section(".modinfo"), used)) = "depends=` + depends + `";` + "\n"
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		sub := filepath.Join(dir, "kernel", "drivers")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		ko := filepath.Join(sub, name+".ko")
		if msg, err := exec.Command("gcc", "-c", "-o", ko, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v: %s", err, msg)
		}
		if compress {
			if msg, err := exec.Command("xz", ko).CombinedOutput(); err != nil {
				t.Fatalf("xz: %v: %s", err, msg)
			}
		}
	}
	mod("nf_tables", "nfnetlink,libcrc32c", true)
	mod("nfnetlink", "", false)
	mod("libcrc32c", "crc32c-generic", false) // dashes name the same module as underscores
	mod("crc32c_generic", "", true)
	mod("veth", "", false)
	order, missing, err := ModuleOrder(dir, []string{"nf_tables", "veth", "loop"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range order {
		names = append(names, m.Name)
	}
	if want := []string{"crc32c_generic", "libcrc32c", "nfnetlink", "nf_tables", "veth"}; !slices.Equal(names, want) {
		t.Errorf("load order %v, want %v", names, want)
	}
	if !slices.Equal(missing, []string{"loop"}) {
		t.Errorf("missing %v, want [loop] (built in or absent)", missing)
	}
	b, err := ModuleBytes(order[0].Path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x7fELF")) {
		t.Errorf("ModuleBytes(%s): %d bytes, %v; want the decompressed ELF", order[0].Path, len(b), err)
	}
}

func TestFindWorkloads(t *testing.T) {
	dir := t.TempDir()
	src := `package x

func TestA(t *testing.T) {
	_ = testutil.BuildC(t, "faults.c")
	_ = testutil.BuildC(t, "sched_work.c", "-O2", "-pthread")
	_ = testutil.BuildC(t, "faults.c", "-O2") // the same build as the first
	_ = testutil.Rawsys(t)
	flags := []string{"-O3"}
	_ = testutil.BuildC(t, "faults.c", flags...)
	_ = other.BuildC(t, "ignored.c")
	_ = testutil.BuildGo(t, "gofunc.go")
	_ = testutil.BuildGo(t, "gofunc.go", "-trimpath")
}
`
	if err := os.WriteFile(filepath.Join(dir, "a_test.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	found, unknown, err := FindWorkloads(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range found {
		got = append(got, w.Source+" "+strings.Join(w.Flags, " "))
	}
	// A Go program has no default flags; the order is by hashed name.
	want := []string{"faults.c -O2", "gofunc.go ", "gofunc.go -trimpath", "rawsys.c -O2 -nostdlib -static -fno-stack-protector -fno-pie -no-pie", "sched_work.c -O2 -pthread"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("workloads %q, want %q", got, want)
	}
	if len(unknown) != 1 || !strings.Contains(unknown[0], "a_test.go:9") {
		t.Errorf("unknown %q, want the call with a flags variable at a_test.go:9", unknown)
	}
}

// A Go workload is prebuilt with the go command into its PrebuiltName,
// static (no interpreter: the guest's libraries are only the ones the
// tools and C workloads need), and runs.
func TestBuildWorkloadsGo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	names, err := BuildWorkloads(root, dir, []Workload{{Source: "gofunc.go"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != testutil.PrebuiltName("gofunc.go") {
		t.Fatalf("built %q, want [%s]", names, testutil.PrebuiltName("gofunc.go"))
	}
	bin := filepath.Join(dir, names[0])
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not static", bin)
		}
	}
	// Without arguments it prints its usage and exits 2.
	out, err := exec.Command(bin).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "usage: gofunc") {
		t.Errorf("%s: %v, %q; want exit 2 with its usage", bin, err, out)
	}
}

// A real test binary's -test.v=test2json output, framed as the guest
// frames it, decoded by the real test2json.
func TestParseResults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a test binary")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/demo\n\ngo 1.22\n",
		"demo_test.go": `package demo

import "testing"

func TestPasses(t *testing.T) {}
func TestSkips(t *testing.T) { t.Skip("kernel lacks BTF: needs CONFIG_DEBUG_INFO_BTF") }
func TestFails(t *testing.T) { t.Log("context"); t.Error("load program: invalid argument") }
func TestSub(t *testing.T) {
	t.Run("a", func(t *testing.T) {})
	t.Run("b", func(t *testing.T) { t.Skip("no loop devices") })
}
func BenchmarkSet(b *testing.B) {
	b.Run("fits", func(b *testing.B) {
		for b.Loop() {
		}
	})
	b.Run("toolarge", func(b *testing.B) { b.Skip("needs 6 GiB") })
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "demo.test")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v: %s", err, msg)
	}
	out, _ := exec.Command(bin, "-test.v=test2json").CombinedOutput()
	stream := markKernel + "6.1.0-test\r\n" + markModule + "veth\n" +
		markBegin + "example.com/demo\n" + strings.ReplaceAll(string(out), "\n", "\r\n") + markEnd + "example.com/demo 1\n" +
		markBegin + "example.com/crashed\n=== RUN   TestX\n"
	tool, err := goTool(".", "test2json")
	if err != nil {
		t.Fatal(err)
	}
	rel, setup, res, err := ParseResults([]byte(stream), []string{"example.com/demo", "example.com/crashed", "example.com/never"}, tool)
	if err != nil {
		t.Fatal(err)
	}
	if rel != "6.1.0-test" || !slices.Equal(setup, []string{"insmod veth failed"}) {
		t.Errorf("release %q, setup %q", rel, setup)
	}
	if len(res) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(res), res)
	}
	demo := res[0]
	status := map[string]Status{}
	for _, tr := range demo.Tests {
		status[tr.Name] = tr.Status
	}
	want := map[string]Status{"TestPasses": Pass, "TestSkips": Skip, "TestFails": Fail, "TestSub": Pass, "TestSub/a": Pass, "TestSub/b": Skip}
	for name, s := range want {
		if status[name] != s {
			t.Errorf("%s: %q, want %q (all: %v)", name, status[name], s, status)
		}
	}
	if demo.Status != Fail || demo.Count(Pass) != 2 || demo.Count(Skip) != 1 || demo.Count(Fail) != 1 {
		t.Errorf("demo: %s with %d/%d/%d pass/skip/fail top-level tests, want FAIL 2/1/1", demo.Status, demo.Count(Pass), demo.Count(Skip), demo.Count(Fail))
	}
	for _, tr := range demo.Tests {
		switch tr.Name {
		case "TestSkips":
			if tr.Reason() != "kernel lacks BTF: needs CONFIG_DEBUG_INFO_BTF" {
				t.Errorf("skip reason %q", tr.Reason())
			}
		case "TestFails":
			if tr.Reason() != "load program: invalid argument" {
				t.Errorf("failure reason %q", tr.Reason())
			}
		}
	}
	// Benchmarks print a result line and no "--- PASS": passed all the
	// same, and their parent with them, beside a skipped one.
	out, _ = exec.Command(bin, "-test.v=test2json", "-test.run=^$", "-test.bench=.", "-test.benchtime=1x").CombinedOutput()
	stream = markKernel + "6.1.0-test\r\n" + markBegin + "example.com/demo\n" + strings.ReplaceAll(string(out), "\n", "\r\n") + markEnd + "example.com/demo 0\n"
	_, _, bres, err := ParseResults([]byte(stream), []string{"example.com/demo"}, tool)
	if err != nil {
		t.Fatal(err)
	}
	bstatus := map[string]Status{}
	for _, tr := range bres[0].Tests {
		bstatus[tr.Name] = tr.Status
	}
	if want := map[string]Status{"BenchmarkSet": Pass, "BenchmarkSet/fits": Pass, "BenchmarkSet/toolarge": Skip}; !maps.Equal(bstatus, want) {
		t.Errorf("benchmarks: %v, want %v", bstatus, want)
	}
	if res[1].Status != Fail || !strings.Contains(res[1].Note, "did not finish") {
		t.Errorf("crashed package: %s %q, want FAIL, did not finish", res[1].Status, res[1].Note)
	}
	if res[2].Status != Fail || !strings.Contains(res[2].Note, "did not run") {
		t.Errorf("package after the crash: %s %q, want FAIL, did not run", res[2].Status, res[2].Note)
	}
}
