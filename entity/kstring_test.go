package entity

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestKernelString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"bash\n", 64, "bash"},
		{"a\x00b", 64, "a"},
		{"caf\xc3\xa9", 64, "café"},
		{"bad\xff\xfename", 64, "bad\uFFFDname"},
		{"caf\xc3\xa9", 4, "caf"},            // é cut in half: dropped
		{"\xe2\x82\xac\xe2\x82\xac", 4, "€"}, // second € cut after 1 byte
		{strings.Repeat("x", 100), 64, strings.Repeat("x", 64)},
		{"\xff\xff\xff\xff\xff", 3, "\uFFFD"},
		{"ab\xff", 4, "ab"}, // U+FFFD would not fit whole
	} {
		if got := kernelString([]byte(tc.in), tc.max); got != tc.want {
			t.Errorf("kernelString(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

// TestProcessStringsBoundedValid: a process named with invalid UTF-8 and
// an oversized argv[0] is described with valid, bounded strings.
func TestProcessStringsBoundedValid(t *testing.T) {
	long := "/" + strings.Repeat("\xffa", 5000)
	if got := commandOf([]byte(long + "\x00arg1\x00")); len(got) > maxCommandLen || !utf8.ValidString(got) {
		t.Errorf("commandOf: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if got := kernelString([]byte("x\xc0\xaf\n"), maxCommLen); got != "x\uFFFD" { // a run of bad bytes is one U+FFFD
		t.Errorf("comm: %q", got)
	}
}

func FuzzKernelString(f *testing.F) {
	for _, s := range []string{"bash\n", "caf\xc3\xa9", "\xff", "a\x00b", strings.Repeat("€", 30)} {
		f.Add([]byte(s), 8)
	}
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		n = n & 0xfff
		got := kernelString(b, n)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 %q", got)
		}
		if len(got) > n {
			t.Fatalf("%d bytes from a bound of %d", len(got), n)
		}
	})
}
