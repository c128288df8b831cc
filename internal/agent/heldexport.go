package agent

import "io"

// Held is a command started held, stopped after its execve before its
// first instruction (startHeld), for callers that make it a target by pid
// themselves: the Collector receiver's tests, which cannot pass a command.
type Held struct{ h *heldCommand }

// StartHeld starts argv held; Release lets it run.
func StartHeld(argv []string, stdin io.Reader, stdout, stderr io.Writer) (*Held, error) {
	h, err := startHeld(argv, stdin, stdout, stderr)
	if err != nil {
		return nil, err
	}
	return &Held{h}, nil
}

// Pid is the command's pid.
func (h *Held) Pid() uint32 { return h.h.Pid() }

// Release lets the command run, untraced.
func (h *Held) Release() error { return h.h.Release() }

// Wait waits for the command and returns its exit code.
func (h *Held) Wait() (int, error) { return h.h.Wait() }

// Kill ends a command that was never released, and reaps it.
func (h *Held) Kill() { h.h.Kill() }
