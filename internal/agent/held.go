package agent

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/telagent/telagent/internal/privilege"
)

// heldCommand is a child process stopped right after its execve, before its
// first instruction, so probes can be attached and the child made a target
// without missing any of its events. It uses ptrace only for that one stop:
// PTRACE_TRACEME makes the kernel stop the child with SIGTRAP when the exec
// completes, and PTRACE_DETACH lets it run untraced.
type heldCommand struct {
	cmd     *exec.Cmd
	release chan struct{}
	done    chan error // result of the detach
}

// startHeld starts argv held. Ptrace requests must come from the thread that
// became the tracer, so one locked goroutine starts, waits and detaches.
func startHeld(argv []string, stdin io.Reader, stdout, stderr io.Writer) (*heldCommand, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}

	h := &heldCommand{cmd: cmd, release: make(chan struct{}), done: make(chan error, 1)}
	started := make(chan error, 1)
	go func() {
		// The command is the user's workload, not the agent: it must get
		// none of the agent's capabilities (an agent run as a user with
		// ambient CAP_BPF... from systemd or setpriv would otherwise hand
		// them on through the inheritable and ambient sets). Capabilities
		// are per thread and the child copies its forking thread's, so
		// this locked thread, which forks it, empties both sets first. The
		// goroutine then exits locked, even after a successful detach,
		// which ends the thread: a thread whose sets differ from the
		// others' never goes back to the runtime. (Exiting locked before
		// the detach also ends the trace.)
		runtime.LockOSThread()
		if err := privilege.ClearInheritable(); err != nil {
			started <- fmt.Errorf("start %s: %w", argv[0], err)
			return
		}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", argv[0], err)
			return
		}
		var ws syscall.WaitStatus
		pid := cmd.Process.Pid
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			started <- fmt.Errorf("wait for %s to exec: %w", argv[0], err)
			return
		}
		if !ws.Stopped() || ws.StopSignal() != syscall.SIGTRAP {
			started <- fmt.Errorf("%s did not stop after exec (status %#x)", argv[0], uint32(ws))
			return
		}
		started <- nil
		<-h.release
		h.done <- syscall.PtraceDetach(pid)
	}()
	if err := <-started; err != nil {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return nil, err
	}
	return h, nil
}

// Pid is the child's pid (and tgid).
func (h *heldCommand) Pid() uint32 { return uint32(h.cmd.Process.Pid) }

// Release lets the child run its first instruction.
func (h *heldCommand) Release() error {
	close(h.release)
	if err := <-h.done; err != nil {
		return fmt.Errorf("release %s: %w", h.cmd.Path, err)
	}
	return nil
}

// Kill ends a child that was never released.
func (h *heldCommand) Kill() {
	_ = h.cmd.Process.Kill()
	close(h.release)
	<-h.done
	_ = h.cmd.Wait()
}

// Wait waits for the child and returns its exit code the way a shell does:
// the status, or 128 + the signal that killed it.
func (h *heldCommand) Wait() (int, error) {
	err := h.cmd.Wait()
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, err
}
