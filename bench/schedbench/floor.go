package main

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel floor floor.bpf.c -- -I../../bpf/include

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// floorSet is one loaded and attached set of floor programs.
type floorSet struct {
	progs []*ebpf.Program
	sink  *ebpf.Map // per-CPU array the clock variant writes; nil for the empty one
	links []link.Link
}

// attachFloor loads the empty programs (clock false) or the clock ones,
// and only those, and attaches them to their tracepoints.
func attachFloor(clock bool) (*floorSet, error) {
	spec, err := loadFloor()
	if err != nil {
		return nil, err
	}
	f := &floorSet{}
	if clock {
		var o struct {
			Switch    *ebpf.Program `ebpf:"clock_switch"`
			Wakeup    *ebpf.Program `ebpf:"clock_wakeup"`
			WakeupNew *ebpf.Program `ebpf:"clock_wakeup_new"`
			Sink      *ebpf.Map     `ebpf:"clock_sink"`
		}
		err = spec.LoadAndAssign(&o, nil)
		f.progs, f.sink = []*ebpf.Program{o.Switch, o.Wakeup, o.WakeupNew}, o.Sink
	} else {
		var o struct {
			Switch    *ebpf.Program `ebpf:"floor_switch"`
			Wakeup    *ebpf.Program `ebpf:"floor_wakeup"`
			WakeupNew *ebpf.Program `ebpf:"floor_wakeup_new"`
			Migrate   *ebpf.Program `ebpf:"floor_migrate"`
		}
		err = spec.LoadAndAssign(&o, nil)
		f.progs = []*ebpf.Program{o.Switch, o.Wakeup, o.WakeupNew, o.Migrate}
	}
	if err != nil {
		return nil, fmt.Errorf("load floor programs: %w", err)
	}
	for _, p := range f.progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			f.close()
			return nil, fmt.Errorf("attach floor program %s: %w", p, err)
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

// ran reports whether the clock programs observably ran (the empty ones
// leave no trace).
func (f *floorSet) ran() (bool, error) {
	if f.sink == nil {
		return true, nil
	}
	var perCPU []uint64
	if err := f.sink.Lookup(uint32(0), &perCPU); err != nil {
		return false, fmt.Errorf("read clock sink: %w", err)
	}
	for _, v := range perCPU {
		if v != 0 {
			return true, nil
		}
	}
	return false, nil
}

func (f *floorSet) close() error {
	var errs []error
	for _, l := range f.links {
		errs = append(errs, l.Close())
	}
	for _, p := range f.progs {
		errs = append(errs, p.Close())
	}
	errs = append(errs, f.sink.Close())
	f.links, f.progs, f.sink = nil, nil, nil
	return errors.Join(errs...)
}

// runFloor runs the loop with one set of floor programs attached in
// process. The clock set must leave a trace, or it did not run and the
// number would be a bare one.
func (b *bench) runFloor(ctx context.Context, clock bool) (sample, error) {
	f, err := attachFloor(clock)
	if err != nil {
		return sample{}, err
	}
	s, err := b.runLoop(ctx)
	if err == nil {
		ran, rerr := f.ran()
		switch {
		case rerr != nil:
			err = rerr
		case !ran:
			err = errors.New("clock floor programs were attached but left no trace: they did not run")
		}
	}
	if cerr := f.close(); cerr != nil && err == nil {
		err = fmt.Errorf("detach floor programs: %w", cerr)
	}
	return s, err
}
