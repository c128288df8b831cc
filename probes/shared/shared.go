// Package shared owns the kernel state every probe shares: the set of
// observed processes (with the programs that follow it across fork and
// exit) and the table of process identities the probes record. The maps
// are created once from bpf/shared.bpf.c and handed to every probe's
// collection as replacements for the same-named maps of telagent.h.
package shared

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type telagent_process shared ../../bpf/shared.bpf.c -- -I../../bpf/include

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/probes"
)

// nsPerTick converts task->start_boottime to /proc's starttime unit
// (USER_HZ = 100): the kernel's own nsec_to_clock_t.
const nsPerTick = 10_000_000

// State is the loaded shared maps, and in filter mode the followers.
type State struct {
	objs struct {
		storeMaps
		FollowFork *ebpf.Program `ebpf:"follow_fork_btf"`
		ForgetExit *ebpf.Program `ebpf:"forget_exit_btf"`
	}
	epoch  uint32 // the epoch programs write now (the agent is its only writer)
	filter bool
	spec   *ebpf.CollectionSpec // in filter mode, to load the forgetter again (RunForgetLast)
	links  []link.Link
	drops  []uint64
	match  *matcher // exec selectors (match.go), nil without
}

// storeMaps are the shared maps, with or without followers.
type storeMaps struct {
	Targets     *ebpf.Map `ebpf:"targets"`
	Processes   *ebpf.Map `ebpf:"processes"`
	TargetDrops *ebpf.Map `ebpf:"target_drops"`
	Epoch       *ebpf.Map `ebpf:"telagent_epoch"`
	CPUNode     *ebpf.Map `ebpf:"telagent_cpu_node"`
}

// Load creates the shared maps for a host of topo (the CPU → node table
// that probes use instead of the kernel's node ids when the topology is
// not the kernel's). With filter, only processes added with Add (and
// their descendants) are observed; otherwise the whole host is, and no
// follower program is loaded.
func Load(topo aggregator.Topology, filter bool) (*State, error) {
	s := &State{filter: filter, drops: make([]uint64, topo.PossibleCPUs)}
	spec, err := loadShared()
	if err != nil {
		return nil, fmt.Errorf("load shared spec: %w", err)
	}
	spec.Maps["telagent_cpu_node"].MaxEntries = uint32(max(1, topo.PossibleCPUs))
	if !filter {
		spec.Maps["targets"].MaxEntries = 1
		delete(spec.Programs, "follow_fork_btf")
		delete(spec.Programs, "forget_exit_btf")
		delete(spec.Programs, "forget_exit_task")
		if err := spec.LoadAndAssign(&s.objs.storeMaps, nil); err != nil {
			return nil, fmt.Errorf("create shared maps: %w", err)
		}
		if err := s.fillCPUNodes(topo); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	// group_dead is sched_process_exit's second argument on newer kernels only.
	if err := probes.UseProgramVariant(spec, "forget_exit_btf", "forget_exit_task", "sched_process_exit", 2); err != nil {
		return nil, fmt.Errorf("target followers: %w", err)
	}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		return nil, fmt.Errorf("load target followers: %w", err)
	}
	s.spec = spec
	if err := s.fillCPUNodes(topo); err != nil {
		s.Close()
		return nil, err
	}
	if err := probes.AttachTracing(&s.links, s.objs.FollowFork, s.objs.ForgetExit); err != nil {
		s.Close()
		return nil, fmt.Errorf("target followers: %w", err)
	}
	return s, nil
}

func (s *State) fillCPUNodes(topo aggregator.Topology) error {
	for _, n := range topo.Nodes {
		for _, c := range n.CPUs {
			if err := s.objs.CPUNode.Update(uint32(c), uint32(n.ID), ebpf.UpdateAny); err != nil {
				return fmt.Errorf("map CPU %d to node %d: %w", c, n.ID, err)
			}
		}
	}
	return nil
}

// Flip makes the programs write the other epoch's storage and waits until
// every program that could still write the old one has returned: after
// it, the previous epoch's storage (Idle) is the agent's alone to drain.
func (s *State) Flip() error {
	next := s.epoch ^ 1
	if err := s.objs.Epoch.Update(uint32(0), next, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("flip storage epoch: %w", err)
	}
	s.epoch = next
	return aggregator.GracePeriod()
}

// Idle is the epoch the programs do not write: the one a drain reads.
func (s *State) Idle() uint32 { return s.epoch ^ 1 }

// Filtering reports whether only targets are observed.
func (s *State) Filtering() bool { return s.filter }

// Replacements are the maps to substitute into every probe's collection.
func (s *State) Replacements() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{"targets": s.objs.Targets, "processes": s.objs.Processes,
		"telagent_epoch": s.objs.Epoch, "telagent_cpu_node": s.objs.CPUNode}
}

// Add makes tgid a target; its future children follow it.
func (s *State) Add(tgid uint32) error {
	if err := s.objs.Targets.Update(tgid, uint8(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("add target %d: %w", tgid, err)
	}
	return nil
}

// Contains reports whether tgid is currently a target.
func (s *State) Contains(tgid uint32) bool {
	var v uint8
	return s.objs.Targets.Lookup(tgid, &v) == nil
}

// Process returns what the kernel recorded of tgid when its first key was
// created: its start time in /proc's clock ticks and its command name.
func (s *State) Process(tgid uint32) (startTicks uint64, comm string, ok bool) {
	var p sharedTelagentProcess
	if s.objs.Processes.Lookup(tgid, &p) != nil {
		return 0, "", false
	}
	var b [len(p.Comm)]byte
	n := 0
	for ; n < len(p.Comm) && p.Comm[n] != 0; n++ {
		b[n] = byte(p.Comm[n])
	}
	return p.StartBoottimeNs / nsPerTick, string(b[:n]), true
}

// Forget drops tgid's recorded identity (after its final export).
func (s *State) Forget(tgid uint32) { _ = s.objs.Processes.Delete(tgid) }

// Drops is the number of children that could not be followed because the
// target set was full.
func (s *State) Drops() uint64 {
	var n uint64
	if s.objs.TargetDrops.Lookup(uint32(0), s.drops) == nil {
		for _, d := range s.drops {
			n += d
		}
	}
	return n
}

// Close detaches the followers and frees the maps.
func (s *State) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	errs = append(errs, s.match.close())
	s.match = nil
	errs = append(errs, s.objs.FollowFork.Close(), s.objs.ForgetExit.Close(),
		s.objs.Targets.Close(), s.objs.Processes.Close(), s.objs.TargetDrops.Close(),
		s.objs.Epoch.Close(), s.objs.CPUNode.Close())
	return errors.Join(errs...)
}
