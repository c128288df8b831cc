package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runIn runs the telagent binary in dir (not the repository) and returns
// its exit code and output.
func runIn(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(agentBin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", agentBin, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// TestSchemaCheckBuiltIn: the registry built into the binary passes, from
// any working directory.
func TestSchemaCheckBuiltIn(t *testing.T) {
	res := runIn(t, t.TempDir(), "schema", "check")
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("schema check: exit code %d, want 0; stderr:\n%s", res.code, res.stderr)
	}
	if !strings.HasPrefix(res.stdout, "schema check: built-in registry (schema/): ok (registry telagent.dev/schemas 0.2.0, semconv v1.44.0; ") {
		t.Errorf("stdout %q", res.stdout)
	}
}

// TestSchemaCheckDir: a registry directory with problems gets one line per
// finding, with file and group, and exit code 1.
func TestSchemaCheckDir(t *testing.T) {
	dir, err := filepath.Abs("../../internal/schemagen/testdata/schema/count-unit")
	if err != nil {
		t.Fatal(err)
	}
	res := runIn(t, "../..", "schema", "check", dir)
	const f = "internal/schemagen/testdata/schema/count-unit/model/x.yaml"
	want := f + `: group metric.telagent.widget.errors: counter "telagent.widget.errors" has unit 1: counts take a {annotation} unit (e.g. {error}); ratios are gauges [count-unit]
` + f + `: group metric.telagent.widget.connections: updowncounter "telagent.widget.connections" is plural: UpDownCounters are not pluralized (name the count …connection.count) [count-unit]
` + f + `: group metric.telagent.widget.retries: metric "telagent.widget.retries": annotation {retries} is plural (annotations are singular) [count-unit]
telagent: schema check: ` + dir + `: 3 problems
`
	if res.code != 1 || res.stdout != "" || res.stderr != want {
		t.Errorf("exit code %d (want 1), stdout %q, stderr:\n%s\nwant:\n%s", res.code, res.stdout, res.stderr, want)
	}

	ok := runIn(t, "../..", "schema", "check", "internal/schemagen/testdata/schema/valid")
	if ok.code != 0 || !strings.Contains(ok.stdout, ": ok (registry telagent.dev/schemas/test 0.0.0,") {
		t.Errorf("valid registry: exit code %d, stdout %q, stderr %q", ok.code, ok.stdout, ok.stderr)
	}
}

func TestSchemaCheckUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"schema", "check", "/nonexistent"}, "telagent: schema check /nonexistent: not a registry directory (no manifest.yaml)"},
		{[]string{"schema", "check", "a", "b"}, `telagent: schema check: one registry directory at most, got ["a" "b"]`},
		{[]string{"schema", "bogus"}, `telagent: schema: unknown command "bogus" (valid: check)`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if got := checkUsageError(t, runIn(t, t.TempDir(), tc.args...)); got != tc.want {
				t.Errorf("stderr %q, want %q", got, tc.want)
			}
		})
	}
}
