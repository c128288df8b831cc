package probes

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Variant is one way to load and attach a probe's programs: typically the
// tp_btf programs (typed arguments, cheaper dispatch) and, for kernels
// where those do not load or attach, their raw_tp twins.
type Variant struct {
	// Name is what Stats reports as the probe's attach type ("tp_btf").
	Name string
	// Objects is what spec.LoadAndAssign fills: a pointer to a struct of
	// programs (and maps) tagged `ebpf:"name"`.
	Objects any
	// Attach attaches the loaded programs, appending each link to the
	// links it is given as it goes. nil: the probe attaches later.
	Attach func(links *[]link.Link) error
}

// LoadAndAttach loads and attaches the first of variants that works, in
// order; force, when not "", names the only one to try. A variant that
// loads but does not attach is undone (its links detached, its Objects
// closed and zeroed) before the next is tried, on the same maps (opts'
// replacements), so what the probe's storage holds is kept. It returns
// the variant's name; the error says why each one tried failed.
func LoadAndAttach(what string, spec *ebpf.CollectionSpec, opts *ebpf.CollectionOptions, links *[]link.Link, force string, variants ...Variant) (string, error) {
	var tried []string
	for _, v := range variants {
		if force != "" && v.Name != force {
			continue
		}
		err := spec.LoadAndAssign(v.Objects, opts)
		if err == nil && v.Attach != nil {
			n := len(*links)
			if err = v.Attach(links); err != nil {
				err = errors.Join(err, CloseLinks((*links)[n:]), closeObjects(v.Objects))
				*links = (*links)[:n]
			}
		}
		if err == nil {
			return v.Name, nil
		}
		tried = append(tried, fmt.Sprintf("%s: %v", v.Name, err))
	}
	if len(tried) == 0 {
		return "", fmt.Errorf("load %s programs: no %q variant", what, force)
	}
	return "", fmt.Errorf("load %s programs: %s", what, strings.Join(tried, "; "))
}

// closeObjects closes every program and map (every io.Closer) in the
// struct objs points to, embedded structs included, and zeroes it.
func closeObjects(objs any) error {
	v := reflect.ValueOf(objs)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("close objects: %T is not a pointer to a struct", objs)
	}
	var errs []error
	var walk func(s reflect.Value)
	walk = func(s reflect.Value) {
		for i := range s.NumField() {
			f := s.Field(i)
			switch {
			case !f.CanInterface():
			case f.Kind() == reflect.Struct:
				walk(f)
			case f.Kind() == reflect.Pointer && f.IsNil():
			default:
				if c, ok := f.Interface().(io.Closer); ok {
					errs = append(errs, c.Close())
				}
			}
		}
	}
	walk(v.Elem())
	v.Elem().SetZero()
	return errors.Join(errs...)
}

// AttachTracing attaches tp_btf programs in order, appending each link to
// *links as it goes, so the caller's Close detaches whatever did attach
// when a later one fails.
func AttachTracing(links *[]link.Link, progs ...*ebpf.Program) error {
	for _, prog := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			return fmt.Errorf("attach tp_btf %s: %w", prog, err)
		}
		*links = append(*links, l)
	}
	return nil
}

// AttachRawTracepoints attaches raw_tp programs, progs[i] to tracepoint
// names[i], appending each link to *links as it goes (see AttachTracing).
func AttachRawTracepoints(links *[]link.Link, names []string, progs ...*ebpf.Program) error {
	if len(names) != len(progs) {
		return fmt.Errorf("attach raw_tp: %d names for %d programs", len(names), len(progs))
	}
	for i, prog := range progs {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: names[i], Program: prog})
		if err != nil {
			return fmt.Errorf("attach raw_tp/%s: %w", names[i], err)
		}
		*links = append(*links, l)
	}
	return nil
}
