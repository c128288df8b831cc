package privilege

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// AfterAttach is what the agent needs once every probe is attached, and so
// what Drop keeps by default:
//
//   - CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: the process resolver reads
//     /proc/<pid> of every new process it meets (exe, cgroup, and all of it
//     under hidepid), which the kernel checks at each open;
//   - CAP_BPF only where the kernel checks it for every bpf(2) command,
//     reads of maps the agent already holds included (before Linux 6.5,
//     with kernel.unprivileged_bpf_disabled set). From 6.5 on, the check
//     is at map creation and program load only, and reading, updating and
//     deleting through an open map fd needs no capability.
//
// CAP_PERFMON is needed to open perf events and attach programs, all done
// in the probes' Start; ring buffers and maps are read through their fds.
// CAP_SYS_RESOURCE matters only while RLIMIT_MEMLOCK is raised, at start.
func AfterAttach() (Set, error) {
	keep := Of(unix.CAP_SYS_PTRACE, unix.CAP_DAC_READ_SEARCH)
	need, err := MapAccessNeedsCapBPF()
	if err != nil {
		return keep | Of(unix.CAP_BPF), err
	}
	if need {
		keep |= Of(unix.CAP_BPF)
	}
	return keep, nil
}

// MapAccessNeedsCapBPF finds out, by trying, whether this kernel lets a
// process without CAP_BPF (or CAP_SYS_ADMIN) look up an element of a map
// it holds: it creates a one-element map, lowers the effective set of one
// locked thread, reads the map, and raises the set again. Only the
// effective set changes, so the test can always be undone.
func MapAccessNeedsCapBPF() (bool, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "telagent_cap", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return true, fmt.Errorf("create a test map: %w", err)
	}
	defer m.Close()

	type result struct {
		need bool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Capabilities are per thread: the lowered set must stay on this
		// thread and the lookup must run on it. If the set cannot be
		// restored, the goroutine exits locked and the runtime ends the
		// thread, so no thread with odd capabilities is reused.
		runtime.LockOSThread()
		cur, err := Current()
		if err != nil {
			done <- result{true, err}
			return
		}
		lowered := cur
		lowered.Effective &^= Of(unix.CAP_BPF, unix.CAP_SYS_ADMIN)
		if err := capset(lowered); err != nil {
			done <- result{true, err}
			return
		}
		var v uint32
		lookupErr := m.Lookup(uint32(0), &v)
		if err := capset(cur); err != nil {
			done <- result{true, fmt.Errorf("restore capabilities: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		switch {
		case lookupErr == nil:
			done <- result{false, nil}
		case errors.Is(lookupErr, unix.EPERM):
			done <- result{true, nil}
		default:
			done <- result{true, fmt.Errorf("test map lookup: %w", lookupErr)}
		}
	}()
	r := <-done
	return r.need, r.err
}

// capset sets the calling thread's capabilities.
func capset(s State) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(s.Effective), Permitted: uint32(s.Permitted), Inheritable: uint32(s.Inheritable)},
		{Effective: uint32(s.Effective >> 32), Permitted: uint32(s.Permitted >> 32), Inheritable: uint32(s.Inheritable >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// ClearInheritable empties the calling thread's inheritable set, and with
// it the ambient set (the kernel keeps ambient within permitted ∩
// inheritable), so a program the thread executes gains nothing from the
// agent's capabilities: run as a non-root user, it has none at all, and a
// program with file capabilities it runs gets only what the file grants.
// Effective and permitted stay as they are. Capabilities are per thread:
// the caller holds the thread locked and never hands it back to the
// runtime (its goroutine exits locked, which ends the thread).
func ClearInheritable() error {
	cur, err := Current()
	if err != nil {
		return err
	}
	cur.Inheritable = 0
	if err := capset(cur); err != nil {
		return fmt.Errorf("empty the inheritable set: %w", err)
	}
	// Already empty with the inheritable set; cleared by name as well so
	// the intent does not hang on that rule. EINVAL: before Linux 4.3
	// there is no ambient set.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("empty the ambient set: %w", err)
	}
	return nil
}
