package metrics

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// exporterDeps are the import path prefixes of what only exporters need:
// a probe that links one of them links gRPC, Prometheus or the log SDK
// into every program that embeds it (the Collector's receiver, the bench
// tools, the agent itself twice over). The data probes write is this
// package's, which needs none of them.
var exporterDeps = []string{
	"google.golang.org/grpc",
	"github.com/prometheus/",
	"go.opentelemetry.io/otel/sdk/log",
	"go.opentelemetry.io/otel/exporters/",
}

// exporterDep returns the entry of exporterDeps that path is or is under,
// else "".
func exporterDep(path string) string {
	for _, p := range exporterDeps {
		if root := strings.TrimSuffix(p, "/"); path == root || strings.HasPrefix(path, root+"/") {
			return p
		}
	}
	return ""
}

// goBinary is the go command of the toolchain running the test (GOROOT,
// which go test sets), else the one on PATH.
func goBinary() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestProbesDoNotLinkExporters: no package under probes/ depends, in its
// non-test build, on gRPC, Prometheus, the OTel log SDK or an OTel
// exporter. They write metrics (this package) and never export. A
// failure names the package, each kind of offending dependency once and
// the shortest import chain that pulls it in.
func TestProbesDoNotLinkExporters(t *testing.T) {
	// Every package of the probes' build closure (test imports left out)
	// with its direct imports; DepOnly tells the probes from their deps.
	cmd := exec.Command(goBinary(), "list", "-deps", "-f", "{{.DepOnly}} {{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "../probes/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ../probes/...: %v\n%s", err, stderr.Bytes())
	}
	imports := map[string][]string{}
	var probes []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		imports[f[1]] = f[2:]
		if f[0] == "false" {
			probes = append(probes, f[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// The probes, their harness and the metric sets: a pattern that
	// matched nothing would pass vacuously.
	if len(probes) < 5 {
		t.Fatalf("go list ../probes/... listed %d packages, want the probes", len(probes))
	}
	for _, pkg := range probes {
		// Breadth first, so each offending dependency is reached by a
		// shortest chain; one report per prefix of exporterDeps.
		via := map[string]string{pkg: ""}
		queue := []string{pkg}
		reported := map[string]bool{}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if prefix := exporterDep(p); prefix != "" {
				if !reported[prefix] {
					reported[prefix] = true
					chain := []string{p}
					for q := via[p]; q != ""; q = via[q] {
						chain = append(chain, q)
					}
					slices.Reverse(chain)
					t.Errorf("%s depends on %s: %s (probes write metrics, not export)", pkg, p, strings.Join(chain, " → "))
				}
				continue
			}
			for _, imp := range imports[p] {
				if _, seen := via[imp]; !seen {
					via[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	t.Logf("%d packages under probes/ checked", len(probes))
}

// TestExporterDep: the prefixes match whole path elements.
func TestExporterDep(t *testing.T) {
	for path, want := range map[string]bool{
		"google.golang.org/grpc":                             true,
		"google.golang.org/grpc/codes":                       true,
		"google.golang.org/grpcx":                            false,
		"google.golang.org/protobuf/proto":                   false,
		"github.com/prometheus/client_golang/prometheus":     true,
		"go.opentelemetry.io/otel/sdk/log":                   true,
		"go.opentelemetry.io/otel/sdk/logx":                  false,
		"go.opentelemetry.io/otel/sdk/metric/metricdata":     false,
		"go.opentelemetry.io/otel/exporters/otlp/otlpmetric": true,
		"go.opentelemetry.io/otel/log":                       false,
		"github.com/telagent/telagent/export":                false,
	} {
		if got := exporterDep(path) != ""; got != want {
			t.Errorf("exporterDep(%q) = %q, want a match %v", path, exporterDep(path), want)
		}
	}
}
