package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrebuiltName(t *testing.T) {
	if PrebuiltName("faults.c") != PrebuiltName("faults.c", "-O2") {
		t.Error("no flags and the default -O2 name different builds")
	}
	a, b := PrebuiltName("sched_work.c", "-O2", "-pthread"), PrebuiltName("sched_work.c", "-O2")
	if a == b || !strings.HasPrefix(a, "sched_work-") || filepath.Base(a) != "sched_work" {
		t.Errorf("PrebuiltName = %q and %q: want distinct sched_work-<hash>/sched_work", a, b)
	}
}

func TestBuildCUsesPrebuiltDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(PrebuiltEnv, dir)
	want := filepath.Join(dir, PrebuiltName("faults.c", "-O2", "-static"))
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// No gcc runs here: a build would need the source hash directory.
	if got, err := buildC("faults.c", "-O2", "-static"); err != nil || got != want {
		t.Errorf("buildC with %s set = %q, %v; want %q", PrebuiltEnv, got, err, want)
	}
	if _, err := buildC("faults.c", "-O3"); err == nil || !strings.Contains(err.Error(), "holds no build of faults.c") {
		t.Errorf("buildC of a workload missing from %s: err = %v, want one naming it", PrebuiltEnv, err)
	}
}

// A Go program has no default flags (not C's -O2), and BuildGo takes the
// PrebuiltEnv build as BuildC does, running no toolchain.
func TestBuildGoUsesPrebuiltDir(t *testing.T) {
	if PrebuiltName("gofunc.go") == PrebuiltName("gofunc.go", "-O2") {
		t.Error("a Go program without flags named like one built with -O2")
	}
	if got := filepath.Base(PrebuiltName("gofunc.go", "-trimpath")); got != "gofunc" {
		t.Errorf("PrebuiltName of a Go program ends in %q, want gofunc", got)
	}
	dir := t.TempDir()
	t.Setenv(PrebuiltEnv, dir)
	want := filepath.Join(dir, PrebuiltName("gofunc.go"))
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := buildGo("gofunc.go"); err != nil || got != want {
		t.Errorf("buildGo with %s set = %q, %v; want %q", PrebuiltEnv, got, err, want)
	}
	if _, err := buildGo("gofunc.go", "-race"); err == nil || !strings.Contains(err.Error(), "holds no build of gofunc.go") {
		t.Errorf("buildGo of a build missing from %s: err = %v, want one naming it", PrebuiltEnv, err)
	}
}
