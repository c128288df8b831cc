package elfsym

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/telagent/telagent/internal/testutil"
)

func TestLibMatches(t *testing.T) {
	for _, tc := range []struct {
		base, name string
		want       bool
	}{
		{"libc.so.6", "libc", true},
		{"libc.so.6", "c", true},
		{"libc.so.6", "libc.so.6", true},
		{"libc-2.31.so", "libc", true},
		{"libcap.so.2", "libc", false},
		{"libcrypt.so.1", "libc", false},
		{"libssl.so.3", "ssl", true},
		{"libssl.so.3", "libc", false},
	} {
		if got := LibMatches(tc.base, tc.name); got != tc.want {
			t.Errorf("LibMatches(%q, %q) = %v, want %v", tc.base, tc.name, got, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		limit int
		want  int
	}{
		{"work", "work", 2, 0},
		{"wrok", "work", 2, 2},
		{"wor", "work", 2, 1},
		{"malloc", "calloc", 2, 1},
		{"abcdef", "uvwxyz", 2, 3}, // stops early: limit+1
	} {
		if got := editDistance(tc.a, tc.b, tc.limit); got != tc.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tc.a, tc.b, tc.limit, got, tc.want)
		}
	}
}

func TestGoVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{
		"go1.17": true, "go1.16.15": false, "go1.26.8": true, "go1.26rc1": true,
		"go2.0": true, "devel go1.27-abc": true, "garbage": false, "go1": false,
	} {
		if got := GoVersionAtLeast(v, 1, 17); got != want {
			t.Errorf("GoVersionAtLeast(%q, 1, 17) = %v, want %v", v, got, want)
		}
	}
}

func TestDemangled(t *testing.T) {
	if d, ok := demangled("_ZN2ns5Klass6methodEi"); !ok || d != "ns::Klass::method" {
		t.Errorf("demangled = %q, %v; want ns::Klass::method", d, ok)
	}
	if _, ok := demangled("work"); ok {
		t.Error("a C name demangled")
	}
}

// A C++ function is found by its demangled name; overloads are refused
// with their mangled names; a missing name lists close matches.
func TestCxxLookup(t *testing.T) {
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("g++ not installed (make test installs it with gcc)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "x.cc")
	bin := filepath.Join(dir, "x")
	code := `namespace ns { struct Klass { __attribute__((noinline)) int method(int x); };
int Klass::method(int x) { return x + 1; }
__attribute__((noinline)) int over(int x) { return x; }
__attribute__((noinline)) int over(double x) { return (int)x; } }
int main() { ns::Klass k; return k.method(1) + ns::over(1) + ns::over(1.0); }
`
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("g++", "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	f, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fn, err := f.Lookup("ns::Klass::method", false)
	if err != nil || fn.Symbol != "_ZN2ns5Klass6methodEi" || fn.Name != "ns::Klass::method" || len(fn.Entries) != 1 {
		t.Errorf("Lookup(ns::Klass::method) = %+v, %v", fn, err)
	}
	if _, err := f.Lookup("ns::over", true); err == nil || !strings.Contains(err.Error(), "_ZN2ns4overEd") {
		t.Errorf("overloads: err = %v, want both mangled names listed", err)
	}
	if _, err := f.Lookup("ns::Klass::methd", false); err == nil || !strings.Contains(err.Error(), "ns::Klass::method") {
		t.Errorf("missing: err = %v, want close match ns::Klass::method", err)
	}
}

// A Go function's entry probe goes past the prologue's stack check, and
// every RET is found, on a real binary of this toolchain.
func TestGoSites(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("Go sites are found on x86-64 only")
	}
	// Built with the toolchain that builds this test (prebuilt for the
	// kernel matrix's guest, which has none).
	f, err := Open(testutil.BuildGo(t, "gofunc.go"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.IsGo() || !GoVersionAtLeast(f.GoVersion, 1, 17) {
		t.Fatalf("not detected as a recent Go binary: %q", f.GoVersion)
	}
	fn, err := f.Lookup("main.work", false)
	if err != nil {
		t.Fatal(err)
	}
	var sym, start uint64
	syms, _ := f.f.Symbols()
	for _, s := range syms {
		if s.Name == "main.work" {
			sym = s.Value
			start, _ = f.fileOffset(s.Value)
		}
	}
	if len(fn.Entries) != 1 || fn.Entries[0] <= start {
		t.Fatalf("entries %#x, want one past the prologue after %#x", fn.Entries, start)
	}
	// The instruction before the entry is the conditional jump to
	// morestack, and each return site decodes as RET.
	code, err := f.code(sym, 64)
	if err != nil {
		t.Fatal(err)
	}
	var prev x86asm.Inst
	for pc := 0; uint64(pc) < fn.Entries[0]-start; {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			t.Fatal(err)
		}
		prev, pc = inst, pc+inst.Len
	}
	if !isJcc(prev.Op) {
		t.Errorf("instruction before the entry probe is %v, want the stack check's jump", prev)
	}
	if len(fn.Returns) == 0 {
		t.Fatal("no RET found")
	}
	for _, r := range fn.Returns {
		b, err := f.code(sym+(r-start), 1)
		if err != nil || b[0] != 0xc3 {
			t.Errorf("return site %#x: %x, %v; want RET (c3)", r, b, err)
		}
	}
}
