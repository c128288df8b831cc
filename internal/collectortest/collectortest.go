// Package collectortest runs a real OpenTelemetry Collector for the export
// tests: the binary that build.sh builds from otelcol-builder.yaml with the
// collector builder (core modules only: otlp receiver, batch processor,
// debug and otlp exporters), started on loopback with a configuration the
// test writes, its otlp exporter pointed at an in-test receiver.
package collectortest

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

//go:embed otelcol-builder.yaml
var manifest []byte

// BinaryPath is where build.sh puts the Collector for the current manifest:
// $TELAGENT_CACHE (default /var/cache/telagent)/otelcol/<first 16 hex digits
// of the manifest's SHA-256>/otelcol-telagent.
func BinaryPath() string {
	root := os.Getenv("TELAGENT_CACHE")
	if root == "" {
		root = "/var/cache/telagent"
	}
	sum := sha256.Sum256(manifest)
	return filepath.Join(root, "otelcol", hex.EncodeToString(sum[:])[:16], "otelcol-telagent")
}

// Require returns the Collector binary. When it is missing the test fails
// under CI (CI=true: .ci/run and `make test` build it first, so a missing
// binary is a broken build) and is skipped elsewhere with the command that
// builds it.
func Require(t testing.TB) string {
	t.Helper()
	bin := BinaryPath()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("OpenTelemetry Collector %s not built: .ci/run and make test run internal/collectortest/build.sh first", bin)
	}
	t.Skipf("OpenTelemetry Collector %s not built: run internal/collectortest/build.sh (make test does)", bin)
	return ""
}

// Collector is one running Collector process.
type Collector struct {
	t        testing.TB
	bin, dir string
	// GRPC and HTTP are the OTLP receiver's host:port.
	GRPC, HTTP string
	cmd        *exec.Cmd
	done       chan struct{}
	log        *os.File
}

// Start is New and Restart: the Collector runs and its receiver accepts
// connections.
func Start(t testing.TB, bin, downstream string) *Collector {
	t.Helper()
	c := New(t, bin, downstream)
	c.Restart()
	return c
}

// New writes a configuration whose otlp exporter sends to downstream (an
// OTLP/gRPC host:port) on free loopback ports, without starting the
// Collector (Restart does). It is killed when the test ends.
func New(t testing.TB, bin, downstream string) *Collector {
	t.Helper()
	c := &Collector{t: t, bin: bin, dir: t.TempDir(), GRPC: freePort(t), HTTP: freePort(t)}
	cfg := Config(c.GRPC, c.HTTP, downstream, true)
	if err := os.WriteFile(filepath.Join(c.dir, "config.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c
}

// Config is the test Collector's configuration: an otlp receiver on
// grpc and http (host:port), the batch processor and an otlp exporter to
// downstream without retries (what the Collector holds when it is killed
// is lost, so the agent's own queue is what faults exercise), for metrics
// and logs; with debug, a debug exporter too and warnings in its log
// (errors only without).
func Config(grpc, http, downstream string, debug bool) string {
	exporters, logLevel, debugExporter := "[otlp_grpc]", "error", ""
	if debug {
		exporters, logLevel = "[otlp_grpc, debug]", "warn"
		debugExporter = "  debug:\n    verbosity: basic\n"
	}
	return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
%s  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
    timeout: 2s
    retry_on_failure:
      enabled: false
service:
  telemetry:
    logs:
      level: %s
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: %s
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: %s
`, grpc, http, debugExporter, downstream, logLevel, exporters, exporters)
}

// Restart starts the Collector (again) on the same ports and returns once
// its receivers accept connections.
func (c *Collector) Restart() {
	c.t.Helper()
	var err error
	if c.log, err = os.OpenFile(filepath.Join(c.dir, "collector.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.cmd = exec.Command(c.bin, "--config", "file:"+filepath.Join(c.dir, "config.yaml"))
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	// Its own process group, and killed with the test binary.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start collector: %v", err)
	}
	c.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}, log *os.File) {
		_ = cmd.Wait()
		log.Close()
		close(done)
	}(c.cmd, c.done, c.log)
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.GRPC, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			if conn, err = net.DialTimeout("tcp", c.HTTP, 100*time.Millisecond); err == nil {
				conn.Close()
				return
			}
		}
		select {
		case <-c.done:
			c.t.Fatalf("collector exited at start:\n%s", c.Log())
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("collector not listening on %s after 15s:\n%s", c.GRPC, c.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill stops the Collector with SIGKILL (nothing flushed) and waits for it.
func (c *Collector) Kill() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Log is the Collector's output so far.
func (c *Collector) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "collector.log"))
	return string(b)
}

// freePort returns a loopback host:port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Build returns the Collector that build.sh builds from manifest (a path
// from the repository's root, e.g. deploy/collector/builder.yaml), building
// it first when this manifest and these sources have not been built yet
// (minutes; `make test` builds it before the tests run).
func Build(t testing.TB, manifest string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	here := filepath.Dir(file)
	cmd := exec.Command(filepath.Join(here, "build.sh"), filepath.Join(here, "..", "..", manifest))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build.sh %s: %v\n%s", manifest, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}
