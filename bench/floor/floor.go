// Package floor holds pairs of minimal eBPF programs attached to the
// sys_enter and sys_exit BTF tracepoints. Each pair measures a floor of
// eBPF syscall probes: what a probe of that design costs at least, per
// syscall, before it does any work of its own.
//
//   - Empty: two programs that do nothing. They cost the tracepoint
//     dispatch and one call into a BPF program, which no eBPF syscall probe
//     can avoid.
//   - Clock: one bpf_ktime_get_ns() on entry and one on exit, each stored
//     into a per-CPU array. The floor of any design that times every
//     syscall exactly.
//   - ClockStorage: the entry time stored in task storage (created on
//     demand), looked up again on exit and the delta summed into a per-CPU
//     array. The floor of exact per-thread syscall timing without any
//     aggregation.
//
// Only the chosen pair (and the maps it uses) is loaded.
package floor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel floor floor.bpf.c -- -I../../bpf/include

// Variant selects which pair of programs AttachVariant loads.
type Variant int

const (
	// Empty is the pair of programs that do nothing.
	Empty Variant = iota
	// Clock reads the clock once on entry and once on exit.
	Clock
	// ClockStorage keeps the entry time in task storage and sums the
	// deltas on exit.
	ClockStorage
)

func (v Variant) String() string {
	switch v {
	case Empty:
		return "empty"
	case Clock:
		return "clock"
	case ClockStorage:
		return "clock_storage"
	}
	return fmt.Sprintf("Variant(%d)", int(v))
}

// The objects of one variant, for LoadAndAssign: only the programs and maps
// named here (and the maps they reference) are loaded into the kernel.
type emptyObjects struct {
	Enter *ebpf.Program `ebpf:"floor_sys_enter"`
	Exit  *ebpf.Program `ebpf:"floor_sys_exit"`
}

type clockObjects struct {
	Enter *ebpf.Program `ebpf:"clock_sys_enter"`
	Exit  *ebpf.Program `ebpf:"clock_sys_exit"`
	Sink  *ebpf.Map     `ebpf:"clock_sink"`
}

type clockStorageObjects struct {
	Enter *ebpf.Program `ebpf:"clock_storage_sys_enter"`
	Exit  *ebpf.Program `ebpf:"clock_storage_sys_exit"`
	Sum   *ebpf.Map     `ebpf:"clock_storage_sum"`
	Start *ebpf.Map     `ebpf:"clock_start"`
}

// Floor is a loaded and attached pair of programs.
type Floor struct {
	variant     Variant
	enter, exit *ebpf.Program
	sink        *ebpf.Map // per-CPU array written by the programs; nil for Empty
	extra       *ebpf.Map // task storage of ClockStorage
	links       []link.Link
}

// Attach loads the two empty programs into the kernel and attaches them to
// the sys_enter and sys_exit tracepoints. Call Close to detach and unload.
func Attach() (*Floor, error) { return AttachVariant(Empty) }

// AttachVariant loads the pair of programs of variant v, and only that pair,
// and attaches it to the sys_enter and sys_exit tracepoints. Call Close to
// detach and unload.
func AttachVariant(v Variant) (*Floor, error) {
	spec, err := loadFloor()
	if err != nil {
		return nil, err
	}
	f := &Floor{variant: v}
	switch v {
	case Empty:
		var o emptyObjects
		err = spec.LoadAndAssign(&o, nil)
		f.enter, f.exit = o.Enter, o.Exit
	case Clock:
		var o clockObjects
		err = spec.LoadAndAssign(&o, nil)
		f.enter, f.exit, f.sink = o.Enter, o.Exit, o.Sink
	case ClockStorage:
		var o clockStorageObjects
		err = spec.LoadAndAssign(&o, nil)
		f.enter, f.exit, f.sink, f.extra = o.Enter, o.Exit, o.Sum, o.Start
	default:
		return nil, fmt.Errorf("unknown floor variant %d", int(v))
	}
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load %s floor programs: %+v", v, verr)
		}
		return nil, fmt.Errorf("load %s floor programs: %w", v, err)
	}
	for _, p := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sys_enter", f.enter},
		{"sys_exit", f.exit},
	} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p.prog})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("attach %s floor program to tp_btf/%s: %w", v, p.name, err)
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

// Variant returns the variant that is attached.
func (f *Floor) Variant() Variant { return f.variant }

// Ran reports whether the programs have observably run since they were
// attached: for Clock, some CPU stored a clock reading; for ClockStorage,
// some exit found its entry time and added a non-zero duration. Empty
// programs leave no trace, so for Empty it always reports true.
func (f *Floor) Ran() (bool, error) {
	if f.sink == nil {
		return true, nil
	}
	var perCPU []uint64
	if err := f.sink.Lookup(uint32(0), &perCPU); err != nil {
		return false, fmt.Errorf("read %s floor map: %w", f.variant, err)
	}
	for _, v := range perCPU {
		if v != 0 {
			return true, nil
		}
	}
	return false, nil
}

// Close detaches the programs and releases every kernel object.
func (f *Floor) Close() error {
	var errs []error
	for _, l := range f.links {
		errs = append(errs, l.Close())
	}
	f.links = nil
	// Close is nil-safe on both types.
	errs = append(errs, f.enter.Close(), f.exit.Close(), f.sink.Close(), f.extra.Close())
	f.enter, f.exit, f.sink, f.extra = nil, nil, nil, nil
	return errors.Join(errs...)
}
