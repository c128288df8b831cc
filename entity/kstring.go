package entity

import (
	"bytes"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// Bounds of strings read from the kernel (/proc files) before they become
// attribute values: a process controls its own name and argv, so neither
// their length nor their encoding can be trusted.
const (
	// maxCommLen is more than any kernel keeps of a command name
	// (TASK_COMM_LEN is 16; kernel threads show up to 64 bytes).
	maxCommLen = 64
	// maxCommandLen bounds process.command (argv[0]) at PATH_MAX.
	maxCommandLen = 4096
	// maxExeNameLen bounds process.executable.name, a file name, at NAME_MAX.
	maxExeNameLen = 255
)

// kernelString is b as an attribute value: up to its first NUL, without
// a trailing newline, invalid UTF-8 replaced by U+FFFD, and at most max
// bytes, cut on a character boundary.
func kernelString(b []byte, max int) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) > 4*max {
		b = b[:4*max] // no more work than the result can hold
	}
	s := string(b)
	if !utf8.Valid(b) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > max {
		i := max
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return s
}

// readHead reads at most n bytes of a file: /proc/<pid>/cmdline holds a
// process's whole argv, of which only argv[0] is used.
func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(n)))
}
