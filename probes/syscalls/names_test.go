package syscalls

import (
	"runtime"
	"testing"
)

func TestName(t *testing.T) {
	known := map[string]map[uint32]string{
		"amd64": {0: "read", 1: "write", 39: "getpid", 110: "getppid", 231: "exit_group", 435: "clone3"},
		"arm64": {63: "read", 64: "write", 172: "getpid", 173: "getppid", 94: "exit_group", 435: "clone3", 25: "fcntl", 79: "newfstatat"},
	}[runtime.GOARCH]
	if known == nil {
		t.Skipf("no syscall table for %s", runtime.GOARCH)
	}
	for nr, want := range known {
		if got := Name(nr); got != want {
			t.Errorf("Name(%d) = %q, want %q", nr, got, want)
		}
	}
	for nr, want := range map[uint32]string{
		uint32(len(syscallNames)): "sys_" + itoa(len(syscallNames)),
		100000:                    "sys_100000",
		0xffffffff:                "sys_4294967295",
	} {
		if got := Name(nr); got != want {
			t.Errorf("Name(%d) = %q, want %q", nr, got, want)
		}
	}
	// A hole in the table (no name assigned) also falls back to sys_<n>.
	for nr, s := range syscallNames {
		if s == "" {
			if got, want := Name(uint32(nr)), "sys_"+itoa(nr); got != want {
				t.Errorf("Name(%d) = %q, want %q", nr, got, want)
			}
			break
		}
	}
}

func TestNameDoesNotAllocateForKnown(t *testing.T) {
	var nr uint32
	for i, s := range syscallNames {
		if s != "" {
			nr = uint32(i)
			break
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = Name(nr) }); n != 0 {
		t.Errorf("Name(%d) allocates %v times per call", nr, n)
	}
}

func TestNamesUnique(t *testing.T) {
	seen := map[string]int{}
	for nr, s := range syscallNames {
		if s == "" {
			continue
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("%q is both %d and %d", s, prev, nr)
		}
		seen[s] = nr
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
