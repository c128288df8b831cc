package uprobe

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telagent/telagent/internal/testutil"
)

func TestParseSpec(t *testing.T) {
	for in, want := range map[string]Spec{
		"/usr/bin/x:main":          {Binary: "/usr/bin/x", Symbol: "main"},
		"libc:malloc":              {Binary: "libc", Symbol: "malloc"},
		"pid:42:main.work":         {Binary: "pid:42", Symbol: "main.work"},
		"./a.out:cxx:ns::K::f":     {Binary: "./a.out", Symbol: "ns::K::f", Cxx: true},
		"/bin/x:ns::f":             {Binary: "/bin/x", Symbol: "ns::f"},
		"pid:7:cxx:std::foo::bar":  {Binary: "pid:7", Symbol: "std::foo::bar", Cxx: true},
		"/x:github.com/a/b.(*T).M": {Binary: "/x", Symbol: "github.com/a/b.(*T).M"},
	} {
		got, err := ParseSpec(in)
		if err != nil || got != want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "nocolon", ":sym", "/bin/x:", "pid:x:main", "pid:0:main", "pid:12", "/bin/x:cxx:"} {
		if _, err := ParseSpec(in); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseSpec(%q): err = %v, want one line", in, err)
		}
	}
}

// Resolution errors are one line naming the spec and what is wrong.
func TestResolveErrors(t *testing.T) {
	bin := cfunc(t)
	// Any file that is not ELF (the kernel matrix's guest has no /etc/hostname).
	text := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(text, []byte("not an executable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for spec, want := range map[string]string{
		"/nonexistent/bin:main": "no such file",
		"pid:2147483646:main":   "no such process",
		"libnosuchlibrary:f":    `library "libnosuchlibrary": no such file`,
		bin + ":wrk":            `no function "wrk" in .symtab and .dynsym; close matches: work`,
		bin + ":cxx:work":       `no function "work"`, // cxx: matches demangled C++ names only
		"/dev/null:f":           "not a regular file",
		text + ":f":             "not a readable ELF file",
	} {
		_, err := Resolve([]string{spec}, nil)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), strconv.Quote(spec)+": ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("Resolve(%q): err = %v, want one line containing %q", spec, err, want)
		}
	}
}

// The same function given twice is one; a function of the same name in
// another file is refused (its series could not be told apart).
func TestResolveDuplicates(t *testing.T) {
	bin := cfunc(t)
	p := startHeld(t, bin, "work", "1", "0")
	// pid:N is whatever /proc/N/exe is: on the 6.1 guest of the kernel
	// matrix it was once still the (forked) test binary when Resolve ran
	// right after Start. The precondition is the workload's image.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		a, aerr := os.Stat(fmt.Sprintf("/proc/%d/exe", p.pid()))
		b, berr := os.Stat(bin)
		if aerr == nil && berr == nil && os.SameFile(a, b) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/proc/%d/exe is not %s after 5 s (%v, %v)", p.pid(), bin, aerr, berr)
		}
	}
	fns, err := Resolve([]string{"pid:" + strconv.Itoa(int(p.pid())) + ":work", bin + ":work"}, nil)
	if err != nil || len(fns) != 1 {
		t.Errorf("same function twice: %d functions, %v", len(fns), err)
	}
	other := testutil.BuildC(t, "cfunc.c", "-O1")
	if _, err := Resolve([]string{bin + ":work", other + ":work"}, nil); err == nil || !strings.Contains(err.Error(), "already probed") {
		t.Errorf("same name in two files: err = %v, want a refusal", err)
	}
}
