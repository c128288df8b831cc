package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/telagent/telagent/internal/collectortest"
)

// collector is the test Collector (internal/collectortest/build.sh) on
// fixed loopback ports, forwarding to the soak's receiver, that the soak
// kills and restarts on the same ports.
type collector struct {
	bin, dir, grpc string
	cmd            *exec.Cmd
	done           chan struct{}
	up             atomic.Bool
	flaps          atomic.Int64
}

func newCollector(bin, dir, downstream string) (*collector, error) {
	grpcAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	// The export tests' Collector pipeline, without the debug exporter.
	cfg := collectortest.Config(grpcAddr, httpAddr, downstream, false)
	if err := os.WriteFile(filepath.Join(dir, "collector.yaml"), []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	return &collector{bin: bin, dir: dir, grpc: grpcAddr}, nil
}

// start runs the Collector and returns once its gRPC receiver accepts
// connections.
func (c *collector) start() error {
	log, err := os.OpenFile(filepath.Join(c.dir, "collector.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("collector log: %w", err)
	}
	c.cmd = exec.Command(c.bin, "--config", "file:"+filepath.Join(c.dir, "collector.yaml"))
	c.cmd.Stdout, c.cmd.Stderr = log, log
	// Killed with the harness, whatever ends it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start collector: %w", err)
	}
	c.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		log.Close()
		close(done)
	}(c.cmd, c.done)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if conn, err := net.DialTimeout("tcp", c.grpc, 100*time.Millisecond); err == nil {
			conn.Close()
			c.up.Store(true)
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("collector exited at start; see %s", filepath.Join(c.dir, "collector.log"))
		default:
		}
		if time.Now().After(deadline) {
			c.kill()
			return fmt.Errorf("collector not listening on %s after 20s; see %s", c.grpc, filepath.Join(c.dir, "collector.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the Collector with SIGKILL (nothing flushed) and reaps it.
func (c *collector) kill() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	c.up.Store(false)
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// flap keeps the Collector up for up, down for down, over and over, until
// ctx ends; it returns the first restart error.
func (c *collector) flap(ctx context.Context, up, down time.Duration) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(up):
		}
		c.kill()
		c.flaps.Add(1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(down):
		}
		if err := c.start(); err != nil {
			return err
		}
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
