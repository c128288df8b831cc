package shared

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// ExeID names an executable file the way the kernel does: the inode number
// and the kernel's dev_t (major << 20 | minor, not stat's encoding).
type ExeID struct {
	Ino uint64
	Dev uint32
	_   uint32
}

// KernelDev converts a stat(2) st_dev to the kernel's dev_t.
func KernelDev(major, minor uint32) uint32 { return major<<20 | minor }

// Selectors choose targets at exec: a process becomes a target when its new
// program is one of Exes, its new command name is one of Comms (at most 15
// bytes, the kernel's TASK_COMM_LEN - 1), or its cgroup v2 is one of
// Cgroups (by id) or below one.
type Selectors struct {
	Exes    []ExeID
	Comms   []string
	Cgroups []uint64
}

// Empty reports whether no selector is set.
func (s Selectors) Empty() bool { return len(s.Exes)+len(s.Comms)+len(s.Cgroups) == 0 }

// MaxSelectors bounds each kind of selector (the matcher maps' size).
const MaxSelectors = 64

type matcher struct {
	objs struct {
		Prog   *ebpf.Program `ebpf:"match_exec_btf"`
		Exe    *ebpf.Map     `ebpf:"match_exe"`
		Comm   *ebpf.Map     `ebpf:"match_comm"`
		Cgroup *ebpf.Map     `ebpf:"match_cgroup"`
		Drops  *ebpf.Map     `ebpf:"match_drops"`
	}
	link link.Link
}

// Match starts adding processes that sel selects to the target set at their
// exec. It needs a State loaded with filter; call it before scanning /proc
// for processes that already match, so that none slips between the scan
// and the attach.
func (s *State) Match(sel Selectors) error {
	if !s.filter {
		return errors.New("target selectors need a target filter")
	}
	if s.match != nil {
		return errors.New("target selectors already set")
	}
	if len(sel.Exes) > MaxSelectors || len(sel.Comms) > MaxSelectors || len(sel.Cgroups) > MaxSelectors {
		return fmt.Errorf("at most %d selectors of each kind", MaxSelectors)
	}
	spec, err := loadShared()
	if err != nil {
		return fmt.Errorf("load shared spec: %w", err)
	}
	spec.Maps["targets"].MaxEntries = s.objs.Targets.MaxEntries()
	m := &matcher{}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"targets": s.objs.Targets}}
	if err := spec.LoadAndAssign(&m.objs, opts); err != nil {
		return fmt.Errorf("load exec matcher: %w", err)
	}
	s.match = m
	for _, e := range sel.Exes {
		if err := m.objs.Exe.Update(e, uint8(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("add --exe selector: %w", err)
		}
	}
	for _, c := range sel.Comms {
		var key [16]byte
		if len(c) == 0 || len(c) >= len(key) {
			return fmt.Errorf("comm %q: want 1 to %d bytes", c, len(key)-1)
		}
		copy(key[:], c)
		if err := m.objs.Comm.Update(key, uint8(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("add --comm selector: %w", err)
		}
	}
	for _, id := range sel.Cgroups {
		if err := m.objs.Cgroup.Update(id, uint8(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("add --cgroup selector: %w", err)
		}
	}
	if m.link, err = link.AttachTracing(link.TracingOptions{Program: m.objs.Prog}); err != nil {
		return fmt.Errorf("attach exec matcher: %w", err)
	}
	return nil
}

// MatchDrops is the number of execs that matched a selector but could not
// be added because the target set was full.
func (s *State) MatchDrops() uint64 {
	if s.match == nil {
		return 0
	}
	var n uint64
	if s.match.objs.Drops.Lookup(uint32(0), s.drops) == nil {
		for _, d := range s.drops {
			n += d
		}
	}
	return n
}

func (m *matcher) close() error {
	if m == nil {
		return nil
	}
	var errs []error
	if m.link != nil {
		errs = append(errs, m.link.Close())
	}
	return errors.Join(append(errs, m.objs.Prog.Close(), m.objs.Exe.Close(), m.objs.Comm.Close(),
		m.objs.Cgroup.Close(), m.objs.Drops.Close())...)
}

// RunForgetLast re-attaches the program that drops a target when its
// thread group dies, so that it runs after every program attached since
// Load: tracepoint programs run in attach order, and the probes' own exit
// handlers (the process probe's exit event) must still see the dying
// process as a target. The new link is attached before the old one is
// closed, so no exit goes unhandled meanwhile (a target deleted twice is
// harmless). The new link is of a new copy of the program: kernels before
// about 6.2 refuse to attach one tp_btf program twice to a tracepoint
// (EEXIST).
func (s *State) RunForgetLast() error {
	if !s.filter || s.objs.ForgetExit == nil || len(s.links) < 2 {
		return nil
	}
	var again struct {
		ForgetExit *ebpf.Program `ebpf:"forget_exit_btf"`
	}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"targets": s.objs.Targets}}
	if err := s.spec.LoadAndAssign(&again, opts); err != nil {
		return fmt.Errorf("load target forgetter again: %w", err)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: again.ForgetExit})
	if err != nil {
		again.ForgetExit.Close()
		return fmt.Errorf("re-attach target forgetter: %w", err)
	}
	old, oldProg := s.links[1], s.objs.ForgetExit // Load attaches FollowFork, then ForgetExit
	s.links[1], s.objs.ForgetExit = l, again.ForgetExit
	if err := errors.Join(old.Close(), oldProg.Close()); err != nil {
		return fmt.Errorf("detach previous target forgetter: %w", err)
	}
	return nil
}
