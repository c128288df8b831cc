// Package all lists every probe the agent knows, in the order they start.
package all

import (
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/syscalls"
)

// Options are the per-probe settings of `telagent run`.
type Options struct {
	SyscallsMaxEntries uint32
}

// New returns a fresh instance of every probe.
func New(o Options) []probes.Probe {
	return []probes.Probe{
		syscalls.New(syscalls.Config{MaxEntries: o.SyscallsMaxEntries}),
	}
}
