package targets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCheckComm: a --comm name is accepted exactly when the kernel could
// report it (1 to 15 bytes), and the rejection never panics on a name cut
// inside a multi-byte character.
func FuzzCheckComm(f *testing.F) {
	for _, s := range []string{"bash", "", "0123456789abcde", "0123456789abcdef", "ééééééééé", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := CheckComm(name)
		if ok := len(name) >= 1 && len(name) <= 15; ok != (err == nil) {
			t.Fatalf("CheckComm(%q) = %v", name, err)
		}
	})
}

// FuzzMountinfo: cgroup2Mount on any /proc/self/mountinfo finds a mount
// point only from a well-formed cgroup2 line and never panics.
func FuzzMountinfo(f *testing.F) {
	for _, s := range []string{
		"36 35 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n",
		"36 35 0:30 / /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n",
		"1 2 3 - cgroup2\n", " - cgroup2 x\n", "a b c d e\\\\0 - cgroup2 \n", "\\777\\0 - \n",
	} {
		f.Add([]byte(s))
	}
	proc := f.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(proc, "self", "mountinfo"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		mnt, err := Cgroup2Mount(proc)
		if err != nil {
			return
		}
		if !hasCgroup2Line(string(data)) {
			t.Fatalf("found %q in mountinfo without a cgroup2 line: %q", mnt, data)
		}
	})
}

// hasCgroup2Line: some line has the separator field "-" followed by the
// file system type cgroup2 (fields may be separated by any blanks).
func hasCgroup2Line(mountinfo string) bool {
	for _, line := range strings.Split(mountinfo, "\n") {
		fs := strings.Fields(line)
		for i := 0; i+1 < len(fs); i++ {
			if fs[i] == "-" && fs[i+1] == "cgroup2" {
				return true
			}
		}
	}
	return false
}

// FuzzUnescapeMount: unescaping never grows a string and leaves strings
// without a backslash alone.
func FuzzUnescapeMount(f *testing.F) {
	for _, s := range []string{`/a\040b`, `\`, `\0`, `\777`, `\12`, `x\\y`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u := unescapeMount(s)
		if len(u) > len(s) || !strings.Contains(s, `\`) && u != s {
			t.Fatalf("unescapeMount(%q) = %q", s, u)
		}
	})
}
