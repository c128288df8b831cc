package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lineWriter is an io.Writer that hands every complete line to onLine and
// keeps the last few lines for error messages. It never blocks the child:
// the output it is given is processed and dropped.
type lineWriter struct {
	mu      sync.Mutex
	partial []byte
	onLine  func(string)
	tail    []string
}

const (
	tailLines   = 12
	maxLineSize = 64 << 10
)

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(w.partial) < maxLineSize {
				w.partial = append(w.partial, p...)
			}
			break
		}
		w.partial = append(w.partial, p[:i]...)
		w.line(string(w.partial))
		w.partial = w.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) line(s string) {
	if len(w.tail) == tailLines {
		copy(w.tail, w.tail[1:])
		w.tail = w.tail[:tailLines-1]
	}
	w.tail = append(w.tail, s)
	if w.onLine != nil {
		w.onLine(s)
	}
}

// Tail returns the last lines written, the unterminated one included.
func (w *lineWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := append([]string(nil), w.tail...)
	if len(w.partial) > 0 {
		lines = append(lines, string(w.partial))
	}
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.Join(lines, "\n    ")
}

// signalWhen returns an onLine callback that closes the returned channel the
// first time a line contains marker.
func signalWhen(marker string) (func(string), <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	return func(s string) {
		if strings.Contains(s, marker) {
			once.Do(func() { close(ch) })
		}
	}, ch
}

// proc is a child process whose output is consumed line by line.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *lineWriter
	stderr *lineWriter
	done   chan struct{} // closed when Wait returned
	err    error         // Wait's result, valid after done
}

// startProc starts argv in its own process group, so that killing it also
// kills whatever it started. When ctx is cancelled (the harness is
// interrupted) the group gets SIGINT and, 10s later, the child SIGKILL.
func startProc(ctx context.Context, name string, argv []string, onStdout, onStderr func(string)) (*proc, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	p := &proc{
		name:   name,
		cmd:    cmd,
		stdout: &lineWriter{onLine: onStdout},
		stderr: &lineWriter{onLine: onStderr},
		done:   make(chan struct{}),
	}
	cmd.Stdout = p.stdout
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exitErr describes how the child ended, or nil when it exited 0.
func (p *proc) exitErr() error {
	if p.err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return fmt.Errorf("%s: %s; stderr:\n    %s", p.name, ee.ProcessState, p.stderr.Tail())
	}
	return fmt.Errorf("%s: %w; stderr:\n    %s", p.name, p.err, p.stderr.Tail())
}

// waitReady waits until ready is closed. It fails when the child exits
// first, on timeout and on interruption; in every failure case the child is
// stopped before returning.
func (p *proc) waitReady(ctx context.Context, ready <-chan struct{}, what string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-p.done:
		if err := p.exitErr(); err != nil {
			return fmt.Errorf("exited before %s: %w", what, err)
		}
		return fmt.Errorf("%s exited 0 before %s; stderr:\n    %s", p.name, what, p.stderr.Tail())
	case <-t.C:
		p.kill()
		return fmt.Errorf("%s did not report %s within %s; stderr:\n    %s", p.name, what, timeout, p.stderr.Tail())
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
}

// wait waits for the child to exit on its own and requires exit status 0.
func (p *proc) wait(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-t.C:
		p.kill()
		return fmt.Errorf("%s still running after %s, killed; stderr:\n    %s", p.name, timeout, p.stderr.Tail())
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
}

// interrupt sends SIGINT and waits for the child to exit with status 0.
func (p *proc) interrupt(ctx context.Context, timeout time.Duration) error {
	select {
	case <-p.done:
		if err := p.exitErr(); err != nil {
			return fmt.Errorf("exited before SIGINT: %w", err)
		}
		return fmt.Errorf("%s exited before SIGINT", p.name)
	default:
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("SIGINT %s: %w", p.name, err)
	}
	if err := p.wait(ctx, timeout); err != nil {
		return fmt.Errorf("after SIGINT: %w", err)
	}
	return nil
}

// kill ends the child's process group with SIGKILL and reaps the child.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// parseNsPerCall finds the workload's `ns_per_call=<float>` line.
func parseNsPerCall(lines []string) (float64, error) {
	for _, l := range lines {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "ns_per_call=")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("bad workload output %q", l)
		}
		return f, nil
	}
	return 0, fmt.Errorf("no ns_per_call= line in stdout (%d lines)", len(lines))
}

// collect returns an onLine callback that keeps the lines starting with
// prefix, and a function returning them.
func collect(prefix string) (func(string), func() []string) {
	var mu sync.Mutex
	var lines []string
	return func(s string) {
			if strings.HasPrefix(strings.TrimSpace(s), prefix) {
				mu.Lock()
				lines = append(lines, s)
				mu.Unlock()
			}
		}, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), lines...)
		}
}
