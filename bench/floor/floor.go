// Package floor holds two empty eBPF programs attached to the sys_enter and
// sys_exit BTF tracepoints. They measure the floor of any eBPF syscall probe:
// the cost of the tracepoint dispatch and of calling a BPF program that does
// nothing, which no eBPF implementation can avoid.
package floor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel floor floor.bpf.c -- -I../../bpf/include

// Floor is the loaded and attached pair of empty programs.
type Floor struct {
	objs  floorObjects
	links []link.Link
}

// Attach loads the two empty programs into the kernel and attaches them to
// the sys_enter and sys_exit tracepoints. Call Close to detach and unload.
func Attach() (*Floor, error) {
	f := &Floor{}
	if err := loadFloorObjects(&f.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load floor programs: %+v", verr)
		}
		return nil, fmt.Errorf("load floor programs: %w", err)
	}
	for _, p := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sys_enter", f.objs.FloorSysEnter},
		{"sys_exit", f.objs.FloorSysExit},
	} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p.prog})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("attach tp_btf/%s: %w", p.name, err)
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

// Close detaches the programs and releases every kernel object.
func (f *Floor) Close() error {
	var errs []error
	for _, l := range f.links {
		errs = append(errs, l.Close())
	}
	f.links = nil
	errs = append(errs, f.objs.Close())
	return errors.Join(errs...)
}
