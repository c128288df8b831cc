// Package all lists every probe the agent knows, in the order they start.
package all

import (
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/blockio"
	"github.com/telagent/telagent/probes/memory"
	"github.com/telagent/telagent/probes/process"
	"github.com/telagent/telagent/probes/sched"
	"github.com/telagent/telagent/probes/syscalls"
	"github.com/telagent/telagent/probes/tcp"
	"github.com/telagent/telagent/probes/uprobe"
)

// Options are the per-probe settings of `telagent run`.
type Options struct {
	// MaxEntries bounds metric sets, by set name (entity.MetricSetDesc
	// Name); absent or 0: the schema's max_entries.
	MaxEntries map[string]uint32
	// ForkEvents reports every fork on the host, not only targets' (process).
	ForkEvents bool
	// CommandArgs puts argv on exec events (process; opt-in, may hold secrets).
	CommandArgs bool
	// Uprobes are the resolved --uprobe functions (uprobe.Resolve); none
	// leaves the uprobe probe idle.
	Uprobes []uprobe.Function
}

// New returns a fresh instance of every probe.
func New(o Options) []probes.Probe {
	return []probes.Probe{
		syscalls.New(syscalls.Config{MaxEntries: o.MaxEntries[entity.MetricSetSyscalls.Name]}),
		sched.New(sched.Config{MaxEntries: o.MaxEntries[entity.MetricSetSched.Name]}),
		memory.New(memory.Config{MaxEntries: o.MaxEntries[entity.MetricSetMemory.Name]}),
		process.New(process.Config{ForkEvents: o.ForkEvents, CommandArgs: o.CommandArgs}),
		uprobe.New(uprobe.Config{Functions: o.Uprobes}),
		blockio.New(blockio.Config{MaxEntries: o.MaxEntries[entity.MetricSetBlockio.Name]}),
		tcp.New(tcp.Config{MaxEntries: o.MaxEntries[entity.MetricSetTCPConn.Name]}),
	}
}
