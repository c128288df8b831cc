package entity

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
	"unicode/utf8"
)

// FuzzParseCgroup: whatever a /proc/<pid>/cgroup holds (a process can
// name its own cgroups), the attributes are valid UTF-8 and bounded.
func FuzzParseCgroup(f *testing.F) {
	for _, s := range []string{
		"0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n",
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n",
		"0::/\n", "12:cpu:/x\n0::/a\xff\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, kv := range ParseCgroup(data).Attributes() {
			s := kv.Value.Emit()
			if !utf8.ValidString(s) || len(s) > 256 {
				t.Fatalf("attribute %s = %q from %q", kv.Key, s, data)
			}
		}
	})
}

// FuzzParseStartTicks: a comm may hold spaces and ')' (the process chose
// it); the parser never panics on any stat line.
func FuzzParseStartTicks(f *testing.F) {
	f.Add([]byte("1234 (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 56789 1000 100 18446744073709551615\n"))
	f.Add([]byte("1 ()) R"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseStartTicks(data)
		// Oracle: field 22 by bytes.Fields, where its notion of white
		// space (Unicode) and the parser's (the kernel's blanks) agree.
		if bytes.ContainsAny(data, "\v\f\r") || bytes.ContainsFunc(data, func(r rune) bool { return r >= 0x80 }) {
			return
		}
		var want uint64
		var werr error = errors.New("no field 22")
		if i := bytes.LastIndexByte(data, ')'); i >= 0 {
			if fields := bytes.Fields(data[i+1:]); len(fields) > 19 {
				want, werr = strconv.ParseUint(string(fields[19]), 10, 64)
			}
		}
		if (err == nil) != (werr == nil) || got != want {
			t.Errorf("ParseStartTicks(%q) = %d, %v; want %d, %v", data, got, err, want, werr)
		}
	})
}
