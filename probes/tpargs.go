package probes

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// TracepointArgs returns how many arguments the running kernel passes the
// BTF-enabled tracepoint name: the parameters of its btf_trace_<name>
// typedef, less the leading void *. A tp_btf program may read only that
// many, and tracepoints gain arguments across releases (sched_process_exit
// has group_dead only on newer kernels than Debian's 6.1 and 6.12).
func TracepointArgs(name string) (int, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return 0, fmt.Errorf("kernel BTF: %w", err)
	}
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+name, &td); err != nil {
		return 0, fmt.Errorf("tracepoint %s in kernel BTF: %w", name, err)
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0, fmt.Errorf("btf_trace_%s is %s, not a function pointer", name, td.Type)
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok || len(proto.Params) == 0 {
		return 0, fmt.Errorf("btf_trace_%s is %s, not a tracepoint prototype", name, ptr.Target)
	}
	return len(proto.Params) - 1, nil
}

// UseProgramVariant makes spec's program name the variant older instead
// (same attach point, fewer tracepoint arguments read) when the kernel
// passes tracepoint fewer than want arguments, and drops the variant that
// is not used, so LoadAndAssign into a field tagged name loads the one
// this kernel accepts.
func UseProgramVariant(spec *ebpf.CollectionSpec, name, older, tracepoint string, want int) error {
	if spec.Programs[name] == nil || spec.Programs[older] == nil {
		return fmt.Errorf("programs %s and %s: not in the object", name, older)
	}
	n, err := TracepointArgs(tracepoint)
	if err != nil {
		return err
	}
	if n < want {
		spec.Programs[name] = spec.Programs[older]
	}
	delete(spec.Programs, older)
	return nil
}
