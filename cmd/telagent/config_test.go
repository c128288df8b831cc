package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/internal/config"
)

// captureRun runs `telagent run ARGS` with the real flags and config file
// handling but an action that only records the flags' values.
func captureRun(t *testing.T, args ...string) (map[string]string, map[string]bool, error) {
	t.Helper()
	values, set := map[string]string{}, map[string]bool{}
	cmd := runCommand()
	cmd.Action = func(c *cli.Context) error {
		for _, f := range c.Command.Flags {
			name := f.Names()[0]
			values[name] = valueString(c.Value(name))
			set[name] = c.IsSet(name)
		}
		return nil
	}
	app := &cli.App{Writer: io.Discard, ErrWriter: io.Discard, Commands: []*cli.Command{withConfigFile(cmd)}}
	err := app.RunContext(context.Background(), append([]string{"telagent", "run"}, args...))
	return values, set, err
}

// valueString prints a flag's value; slice flags' values (cli.StringSlice
// and friends) through their Value method.
func valueString(v any) string {
	rv := reflect.ValueOf(v)
	if rv.IsValid() {
		p := reflect.New(rv.Type())
		p.Elem().Set(rv)
		if m := p.MethodByName("Value"); m.IsValid() && m.Type().NumIn() == 0 && m.Type().NumOut() == 1 {
			return fmt.Sprint(m.Call(nil)[0].Interface())
		}
	}
	return fmt.Sprint(v)
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "telagent.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sampleValue is a YAML value for a flag of f's type and the value the flag
// must then hold. A flag type without a sample fails the test: every flag
// must be settable from the file.
func sampleValue(f cli.Flag) (yamlValue, want string, ok bool) {
	switch f.(type) {
	case *cli.BoolFlag:
		return "true", "true", true
	case *cli.DurationFlag:
		return "7s", "7s", true
	case *cli.IntFlag, *cli.UintFlag, *cli.Int64Flag, *cli.Uint64Flag:
		return "7", "7", true
	case *cli.Float64Flag:
		return "7.5", "7.5", true
	case *cli.StringFlag, *cli.PathFlag:
		return `"x7"`, "x7", true
	case *cli.StringSliceFlag:
		return `["a7", "b7"]`, "[a7 b7]", true
	case *cli.IntSliceFlag, *cli.UintSliceFlag, *cli.Int64SliceFlag, *cli.Uint64SliceFlag:
		return "[7, 8]", "[7 8]", true
	case *cli.Float64SliceFlag:
		return "[7.5]", "[7.5]", true
	}
	return "", "", false
}

// TestConfigSetsEveryRunFlag iterates over the run command's flags, so a
// flag added later is covered without touching this test.
func TestConfigSetsEveryRunFlag(t *testing.T) {
	var yml strings.Builder
	want := map[string]string{}
	for _, f := range runCommand().Flags {
		name := f.Names()[0]
		v, w, ok := sampleValue(f)
		if !ok {
			t.Errorf("flag --%s of type %T has no sample value here: add one to sampleValue", name, f)
			continue
		}
		fmt.Fprintf(&yml, "%s: %s\n", name, v)
		want[name] = w
	}
	if len(want) < 10 {
		t.Fatalf("only %d run flags found", len(want))
	}
	values, set, err := captureRun(t, "--config", writeConfig(t, yml.String()))
	if err != nil {
		t.Fatalf("config:\n%s\nerror: %v", yml.String(), err)
	}
	for name, w := range want {
		if !set[name] {
			t.Errorf("--%s: not set from the file", name)
		}
		if values[name] != w {
			t.Errorf("--%s = %q from the file, want %q", name, values[name], w)
		}
	}
}

func TestConfigCommandLineWins(t *testing.T) {
	f := writeConfig(t, "interval: 7s\npid: [1]\nsyscalls:\n  max-entries: 99\n")
	values, _, err := captureRun(t, "--interval", "3s", "--pid", "2", "--config", f)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]string{"interval": "3s", "pid": "[2]", "syscalls-max-entries": "99"} {
		if values[name] != w {
			t.Errorf("--%s = %q, want %q", name, values[name], w)
		}
	}
}

// TestConfigErrors runs the real command in-process: every error is one
// line with the file, the line and the key, and exit code 2, including the
// range checks the action applies to flags.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"interval: 5x\n", `F:1: interval: invalid duration "5x" (e.g. 10s, 1m30s)`},
		{"# c\ninterval: 0s\n", `F:2: interval 0s: must be positive, e.g. 10s`},
		{"syscalls:\n  max-entries: 0\n", `F:2: syscalls.max-entries 0: must be between 1 and 1048576`},
		{"syscalls-max-entries: -1\n", `F:1: syscalls-max-entries: invalid number "-1"`},
		{"intervl: 5s\n", `F:1: intervl: unknown key "intervl" (did you mean "interval"?)`},
		{"fork-events: 1\n", `F:1: fork-events: want true or false, have "1"`},
		{"pid: [abc]\n", `F:1: pid "abc": not a process id`},
		{"log-level: loud\n", `F:1: log-level "loud": want debug, info, warn or error`},
		{"exe: [\"/no\\nsuch\"]\n", `F:1: exe /no\nsuch (no such file or directory)`}, // \n escaped: one line
		{"config: other.yaml\n", `F:1: config: unknown key "config" (keys are the long flag names of the command, e.g. interval)`},
	} {
		f := writeConfig(t, tc.yaml)
		var stdout, stderr bytes.Buffer
		// Bounded: a case that wrongly passes validation would run the agent.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code := run(ctx, []string{"telagent", "run", "--config", f}, &stdout, &stderr)
		cancel()
		want := "telagent: " + strings.ReplaceAll(tc.want, "F:", f+":") + "\n"
		if code != 2 || stderr.String() != want {
			t.Errorf("config %q: exit %d, stderr %q; want exit 2, %q", tc.yaml, code, stderr.String(), want)
		}
	}

	var stderr bytes.Buffer
	code := run(context.Background(), []string{"telagent", "run", "--config", "/nonexistent/telagent.yaml"}, io.Discard, &stderr)
	if want := "telagent: --config /nonexistent/telagent.yaml (no such file or directory)\n"; code != 2 || stderr.String() != want {
		t.Errorf("missing file: exit %d, stderr %q; want 2, %q", code, stderr.String(), want)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	f := writeConfig(t, "interval: 5x\n")
	t.Setenv("TELAGENT_CONFIG", f)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"telagent", "run"}, io.Discard, &stderr)
	if want := "telagent: " + f + `:1: interval: invalid duration "5x" (e.g. 10s, 1m30s)` + "\n"; code != 2 || stderr.String() != want {
		t.Errorf("TELAGENT_CONFIG: exit %d, stderr %q; want 2, %q", code, stderr.String(), want)
	}
}

// TestConfigExample: the example shipped for the systemd unit is accepted
// by this build, key by key.
func TestConfigExample(t *testing.T) {
	const example = "../../deploy/systemd/telagent.yaml.example"
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := config.Parse(example, b, configFlags(runCommand().Flags))
	if err != nil {
		t.Fatal(err)
	}
	if len(settings) < 2 {
		t.Fatalf("%s sets %d flags; it should show the common ones", example, len(settings))
	}
	values, set, err := captureRun(t, "--config", example)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if !set[s.Flag] {
			t.Errorf("%s:%d: %s not applied", example, s.Line, s.Path)
		}
	}
	if values["exporter"] != "otlp" || values["interval"] != "10s" {
		t.Errorf("%s: exporter %q interval %q, want otlp and 10s (as the unit had)", example, values["exporter"], values["interval"])
	}
}

// A FIFO, a device or an oversized file is refused at once: a FIFO was
// opened for reading before the regular-file check, so the agent waited
// for a writer forever and no SIGINT or SIGTERM ended it. An oversized
// file's real size is shown (it always said 1048577, the read limit).
func TestConfigNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "telagent.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), 300_000), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{fifo, "telagent: --config " + fifo + ": not a regular file\n"},
		{"/dev/zero", "telagent: --config /dev/zero: not a regular file\n"},
		{big, "telagent: " + big + ": 3000000 bytes; a settings file is at most 1048576\n"},
	} {
		// The binary, as a user runs it: a hang is a timeout, not a stuck test.
		p := startAgent(t, startOpts{}, "run", "--config", tc.file)
		code := p.wait(5 * time.Second)
		if got := p.stderr.String(); code != 2 || got != tc.want {
			t.Errorf("--config %s: exit %d, stderr %q; want exit 2, %q", tc.file, code, got, tc.want)
		}
	}
}

// process.command_args is opt-in: off unless the flag or the config file
// asks for it, and the config key is the flag's long name.
func TestProcessCommandArgsSetting(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "false"},
		{[]string{"--process-command-args"}, "true"},
		{[]string{"--config", writeConfig(t, "process-command-args: true\n")}, "true"},
	} {
		values, _, err := captureRun(t, tc.args...)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := values["process-command-args"]; got != tc.want {
			t.Errorf("%q: process-command-args = %q, want %q", tc.args, got, tc.want)
		}
	}
}
