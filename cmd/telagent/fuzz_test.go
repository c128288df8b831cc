package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzConfigFile applies arbitrary files through the real run flags: no
// input panics, and every rejection is one line of valid UTF-8 that
// names the file.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		"interval: 5s\npid: [1]\nfork-events: true\nsyscalls: {max-entries: 5}\n",
		"exporter: otlp\nendpoint: localhost:4317\nlog-level: debug\n",
		"interval: 5x\n", "syscalls-max-entries: 99999999999999999999\n", "pid: [a, b]\n",
		"capabilities-keep: bpf\n", "comm: [\"\\xff\"]\n",
	} {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), "telagent.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := captureRun(t, "--config", path)
		if err == nil {
			return
		}
		var u usageError
		if !errors.As(err, &u) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		// The printed line (main's run): a value quoted raw in a flag's
		// error (--exe a<newline>b) must not break it.
		if line := oneLine(u.msg); !strings.HasPrefix(u.msg, path+":") && !strings.HasPrefix(u.msg, "--") ||
			strings.Contains(line, "\n") || !utf8.ValidString(line) {
			t.Fatalf("not one line about the file or a flag: %q", line)
		}
	})
}

// FuzzParsePids: --pid values never panic the parser, and what it accepts
// is a positive pid that exists.
func FuzzParsePids(f *testing.F) {
	for _, s := range []string{"1", "1,2", " 1 , 1", "0", "-1", "4294967296", "1,,", "0x10", "+1", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pids, err := parsePids([]string{s})
		if err != nil {
			var u usageError
			if !errors.As(err, &u) || strings.Contains(u.msg, "\n") {
				t.Fatalf("not a one-line usage error: %v", err)
			}
			return
		}
		for _, p := range pids {
			if p == 0 || p >= 1<<31 {
				t.Fatalf("accepted pid %d from %q", p, s)
			}
		}
	})
}
