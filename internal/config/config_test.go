package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testFlags = []Flag{
	{Name: "interval", Kind: Scalar},
	{Name: "exporter", Kind: Scalar},
	{Name: "pid", Kind: List},
	{Name: "uprobe", Kind: List},
	{Name: "fork-events", Kind: Bool},
	{Name: "syscalls-max-entries", Kind: Scalar},
	{Name: "sched-max-entries", Kind: Scalar},
}

func TestParse(t *testing.T) {
	in := `# a comment
interval: 5s
pid: [123, 456]
uprobe: /bin/x:main
fork-events: true
syscalls:
  max-entries: 0x5000
sched-max-entries: 100
exporter: otlp
`
	got, err := Parse("t.yaml", []byte(in), testFlags)
	if err != nil {
		t.Fatal(err)
	}
	want := []Setting{
		{Flag: "interval", Path: "interval", Values: []string{"5s"}, Line: 2},
		{Flag: "pid", Path: "pid", Values: []string{"123", "456"}, Line: 3},
		{Flag: "uprobe", Path: "uprobe", Values: []string{"/bin/x:main"}, Line: 4},
		{Flag: "fork-events", Path: "fork-events", Values: []string{"true"}, Line: 5},
		{Flag: "syscalls-max-entries", Path: "syscalls.max-entries", Values: []string{"0x5000"}, Line: 7},
		{Flag: "sched-max-entries", Path: "sched-max-entries", Values: []string{"100"}, Line: 8},
		{Flag: "exporter", Path: "exporter", Values: []string{"otlp"}, Line: 9},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "~\n", "---\n"} {
		got, err := Parse("t.yaml", []byte(in), testFlags)
		if err != nil || len(got) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want no settings", in, got, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"intervall: 5s\n", `t.yaml:1: intervall: unknown key "intervall" (did you mean "interval"?)`},
		{"a: 1\nsyscalls:\n  max-entrie: 5\n", `t.yaml:1: a: unknown key "a" (keys are the long flag names of the command, e.g. interval)`},
		{"syscalls:\n  max-entrie: 5\n", `t.yaml:2: syscalls.max-entrie: unknown key "syscalls-max-entrie" (did you mean "syscalls-max-entries"?)`},
		{"syscalls.max-entries: 5\n", `t.yaml:1: syscalls.max-entries: unknown key "syscalls.max-entries" (did you mean "syscalls-max-entries"?)`},
		{"syscall:\n  max-entries: 5\n", `t.yaml:1: syscall: unknown key "syscall" (did you mean "syscalls"?)`},
		{"interval: [5s]\n", `t.yaml:1: interval: want a value, have a list`},
		{"interval:\n", `t.yaml:1: interval: want a value, have no value`},
		{"interval: {a: 1}\n", `t.yaml:1: interval: want a value, have a mapping`},
		{"fork-events: yes\n", `t.yaml:1: fork-events: want true or false, have "yes"`},
		{"fork-events: 1\n", `t.yaml:1: fork-events: want true or false, have "1"`},
		{"pid: [1, [2]]\n", `t.yaml:1: pid: want a value in the list, have a list`},
		{"pid: {a: 1}\n", `t.yaml:1: pid: want a value or a list of values, have a mapping`},
		{"interval: 5s\n\ninterval: 6s\n", `t.yaml:3: interval: set twice (first at line 1)`},
		{"syscalls-max-entries: 1\nsyscalls: {max-entries: 2}\n", `t.yaml:2: syscalls.max-entries: set twice (first at line 1)`},
		{"- interval\n", `t.yaml:1: want a mapping of flag names to values (interval: 10s)`},
		{"interval: 5s\n---\npid: 1\n", `t.yaml:2: a second YAML document; settings are one document`},
		{"interval: &a 5s\n", `t.yaml:1: interval: anchors and aliases are not supported`},
		{"interval: !!binary aGk=\n", `t.yaml:1: interval: unsupported tag !!binary`},
		{"interval: !custom 5s\n", `t.yaml:1: interval: unsupported tag !custom`},
		{"\"a\\nb\": 1\n", `t.yaml:1: "a\nb": unknown key "a\nb" (keys are the long flag names of the command, e.g. interval)`},
		{"1: x\n", `t.yaml:1: key "1" is not a flag name`},
		{"interval: 5s\n  bad: indent\n", `t.yaml:2: mapping values are not allowed in this context`},
	} {
		_, err := Parse("t.yaml", []byte(tc.in), testFlags)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("Parse(%q): error %v, want *Error %q", tc.in, err, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestParseTooManyValues(t *testing.T) {
	in := "pid: [" + strings.Repeat("1,", MaxValues) + "1]\n"
	_, err := Parse("t.yaml", []byte(in), testFlags)
	if want := "t.yaml:1: pid: 4097 values; at most 4096"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	in = "pid: [" + strings.Repeat("1,", MaxValues-1) + "1]\n"
	if s, err := Parse("t.yaml", []byte(in), testFlags); err != nil || len(s[0].Values) != MaxValues {
		t.Errorf("%d values: %v", MaxValues, err)
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse("t.yaml", []byte(strings.Repeat("#", MaxSize+1)), testFlags)
	if err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"interval", "intervall", 1}} {
		if d := distance(tc.a, tc.b); d != tc.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}

// FuzzParse: no input panics, and what Parse accepts is well formed.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"interval: 5s\npid: [1, 2]\nfork-events: true\nsyscalls: {max-entries: 5}\n",
		"intervall: 5s\n", "- a\n", "a: &x [1]\nb: *x\n", "---\n---\n", "{",
		"syscalls:\n  max:\n    entries: 1\n", "pid: [[[]]]\n", "? [a]\n: b\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []Setting
		var err error
		done := make(chan struct{})
		go func() { got, err = Parse("f.yaml", data, testFlags); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("Parse(%q) did not return within 2s", data)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if msg := err.Error(); !utf8.ValidString(msg) || strings.Contains(msg, "\n") {
				t.Fatalf("error is not one valid UTF-8 line: %q", msg)
			}
			return
		}
		seen := map[string]bool{}
		for _, s := range got {
			if seen[s.Flag] {
				t.Fatalf("flag %s returned twice", s.Flag)
			}
			seen[s.Flag] = true
			if s.Line <= 0 {
				t.Fatalf("setting %+v without a line", s)
			}
			var kind Kind = -1
			for _, fl := range testFlags {
				if fl.Name == s.Flag {
					kind = fl.Kind
				}
			}
			switch {
			case kind < 0:
				t.Fatalf("setting of unknown flag %q", s.Flag)
			case kind != List && len(s.Values) != 1:
				t.Fatalf("scalar %s with %d values", s.Flag, len(s.Values))
			case kind == Bool && s.Values[0] != "true" && s.Values[0] != "false":
				t.Fatalf("bool %s = %q", s.Flag, s.Values[0])
			}
		}
	})
}
