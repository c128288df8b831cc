// Package benchproc holds what the benchmark harnesses share: child
// processes whose output is consumed line by line, readiness markers,
// clean stops, the workloads' key=value results and medians.
package benchproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LineWriter is an io.Writer that hands every complete line to onLine and
// keeps the last few lines for error messages. It never blocks the child:
// the output it is given is processed and dropped.
type LineWriter struct {
	mu      sync.Mutex
	partial []byte
	onLine  func(string)
	tail    []string
}

const (
	tailLines   = 12
	maxLineSize = 64 << 10
)

func (w *LineWriter) Write(p []byte) (int, error) {
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

func (w *LineWriter) line(s string) {
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
func (w *LineWriter) Tail() string {
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

// SignalWhen returns an onLine callback that closes the returned channel the
// first time a line contains marker.
func SignalWhen(marker string) (func(string), <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	return func(s string) {
		if strings.Contains(s, marker) {
			once.Do(func() { close(ch) })
		}
	}, ch
}

// Proc is a child process whose output is consumed line by line.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Stdout *LineWriter
	Stderr *LineWriter
	done   chan struct{} // closed when Wait returned
	err    error         // Wait's result, valid after done
}

// Start starts argv in its own process group, so that killing it also
// kills whatever it started. When ctx is cancelled (the harness is
// interrupted) the group gets SIGINT and, 10s later, the child SIGKILL.
func Start(ctx context.Context, name string, argv []string, onStdout, onStderr func(string)) (*Proc, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	p := &Proc{
		Name:   name,
		Cmd:    cmd,
		Stdout: &LineWriter{onLine: onStdout},
		Stderr: &LineWriter{onLine: onStderr},
		done:   make(chan struct{}),
	}
	cmd.Stdout = p.Stdout
	cmd.Stderr = p.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the child has exited (and been reaped).
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitErr describes how the child ended, or nil when it exited 0.
func (p *Proc) ExitErr() error {
	if p.err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return fmt.Errorf("%s: %s; stderr:\n    %s", p.Name, ee.ProcessState, p.Stderr.Tail())
	}
	return fmt.Errorf("%s: %w; stderr:\n    %s", p.Name, p.err, p.Stderr.Tail())
}

// WaitReady waits until ready is closed. It fails when the child exits
// first, on timeout and on interruption; in every failure case the child is
// stopped before returning.
func (p *Proc) WaitReady(ctx context.Context, ready <-chan struct{}, what string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-p.done:
		if err := p.ExitErr(); err != nil {
			return fmt.Errorf("exited before %s: %w", what, err)
		}
		return fmt.Errorf("%s exited 0 before %s; stderr:\n    %s", p.Name, what, p.Stderr.Tail())
	case <-t.C:
		p.Kill()
		return fmt.Errorf("%s did not report %s within %s; stderr:\n    %s", p.Name, what, timeout, p.Stderr.Tail())
	case <-ctx.Done():
		p.Kill()
		return ctx.Err()
	}
}

// Wait waits for the child to exit on its own and requires exit status 0.
func (p *Proc) Wait(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.ExitErr()
	case <-t.C:
		p.Kill()
		return fmt.Errorf("%s still running after %s, killed; stderr:\n    %s", p.Name, timeout, p.Stderr.Tail())
	case <-ctx.Done():
		p.Kill()
		return ctx.Err()
	}
}

// Interrupt sends SIGINT and waits for the child to exit with status 0.
func (p *Proc) Interrupt(ctx context.Context, timeout time.Duration) error {
	select {
	case <-p.done:
		if err := p.ExitErr(); err != nil {
			return fmt.Errorf("exited before SIGINT: %w", err)
		}
		return fmt.Errorf("%s exited before SIGINT", p.Name)
	default:
	}
	if err := p.Cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("SIGINT %s: %w", p.Name, err)
	}
	if err := p.Wait(ctx, timeout); err != nil {
		return fmt.Errorf("after SIGINT: %w", err)
	}
	return nil
}

// Kill ends the child's process group with SIGKILL and reaps the child.
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// ParseValue finds the workload's `<key>=<float>` line; the value must be
// positive.
func ParseValue(lines []string, key string) (float64, error) {
	for _, l := range lines {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"=")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("bad workload output %q", l)
		}
		return f, nil
	}
	return 0, fmt.Errorf("no %s= line in stdout (%d lines)", key, len(lines))
}

// Median is the median of xs (which it does not modify).
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Collect returns an onLine callback that keeps the lines starting with
// prefix, and a function returning them.
func Collect(prefix string) (func(string), func() []string) {
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
