// Package privilege checks that the agent has the Linux capabilities it
// needs, and drops the rest once the probes are attached.
//
// Capabilities are per thread in Linux, and a Go program runs on many
// threads the runtime creates and reuses behind its back: a capset(2) from
// one goroutine changes one arbitrary thread. Drop therefore goes through
// syscall.AllThreadsSyscall, which stops the world and makes the same
// system call on every thread of the runtime. The runtime refuses that in a
// binary linked with cgo (it cannot see threads that C code made): build
// with CGO_ENABLED=0 (the Makefile and the Dockerfile do), or Drop returns
// ErrCgo and the agent keeps its capabilities, saying so.
package privilege

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Set is a set of capabilities, bit n for capability number n.
type Set uint64

// Of is the set of caps.
func Of(caps ...int) Set {
	var s Set
	for _, c := range caps {
		s |= 1 << uint(c)
	}
	return s
}

// Has reports whether c is in s.
func (s Set) Has(c int) bool { return c >= 0 && c < 64 && s&(1<<uint(c)) != 0 }

// Caps lists s in capability-number order.
func (s Set) Caps() []int {
	var out []int
	for c := 0; c < 64; c++ {
		if s.Has(c) {
			out = append(out, c)
		}
	}
	return out
}

// String is "CAP_BPF,CAP_PERFMON", or "none".
func (s Set) String() string {
	if s == 0 {
		return "none"
	}
	var names []string
	for _, c := range s.Caps() {
		names = append(names, Name(c))
	}
	return strings.Join(names, ",")
}

// names are the kernel's capability names (include/uapi/linux/capability.h).
var names = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// Name is "CAP_BPF" for unix.CAP_BPF; unknown numbers are "CAP_<n>".
func Name(c int) string {
	if c >= 0 && c < len(names) {
		return names[c]
	}
	return "CAP_" + strconv.Itoa(c)
}

// Parse reads a list of capability names separated by commas or spaces,
// with or without the CAP_ prefix, in any case: "bpf, CAP_PERFMON".
// "none" or "" is the empty set.
func Parse(list string) (Set, error) {
	var s Set
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }) {
		up := strings.ToUpper(f)
		if up == "NONE" {
			continue
		}
		if !strings.HasPrefix(up, "CAP_") {
			up = "CAP_" + up
		}
		found := false
		for c, n := range names {
			if n == up {
				s |= Of(c)
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown capability %q", f)
		}
	}
	return s, nil
}

// State is the calling thread's capability sets.
type State struct {
	Effective, Permitted, Inheritable Set
}

// Current reads the calling thread's capabilities. Before Drop, and after
// it, every thread of the agent has the same.
func Current() (State, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return State{}, fmt.Errorf("capget: %w", err)
	}
	join := func(lo, hi uint32) Set { return Set(lo) | Set(hi)<<32 }
	return State{
		Effective:   join(data[0].Effective, data[1].Effective),
		Permitted:   join(data[0].Permitted, data[1].Permitted),
		Inheritable: join(data[0].Inheritable, data[1].Inheritable),
	}, nil
}

// Requirement is a capability the agent needs and why.
type Requirement struct {
	Cap int
	Why string
}

// Required are the capabilities the agent checks for at start. CAP_SYS_ADMIN
// stands in for CAP_BPF and CAP_PERFMON (the kernel accepts it for both),
// not for the others.
var Required = []Requirement{
	{unix.CAP_BPF, "load BPF programs and create maps"},
	{unix.CAP_PERFMON, "attach tracepoints, perf events and uprobes"},
	{unix.CAP_SYS_PTRACE, "read other users' /proc/<pid> (exe, cgroup)"},
	{unix.CAP_DAC_READ_SEARCH, "read other users' /proc/<pid> files"},
}

// MemlockRequirement is needed only where BPF memory is charged to
// RLIMIT_MEMLOCK (kernels before 5.11, without memcg accounting) and the
// limit cannot be raised otherwise.
var MemlockRequirement = Requirement{unix.CAP_SYS_RESOURCE, "raise RLIMIT_MEMLOCK for BPF maps (kernel before 5.11)"}

// Missing returns what have lacks of Required, plus CAP_SYS_RESOURCE when
// needMemlock says the memlock limit could not be raised.
func Missing(have Set, needMemlock bool) []Requirement {
	var out []Requirement
	for _, r := range Required {
		if have.Has(r.Cap) {
			continue
		}
		if (r.Cap == unix.CAP_BPF || r.Cap == unix.CAP_PERFMON) && have.Has(unix.CAP_SYS_ADMIN) {
			continue
		}
		out = append(out, r)
	}
	if needMemlock && !have.Has(unix.CAP_SYS_RESOURCE) {
		out = append(out, MemlockRequirement)
	}
	return out
}

// MissingError is the one-line message for missing capabilities: which,
// why, and the three usual ways to grant them.
func MissingError(missing []Requirement, have Set, binary string) error {
	var what []string
	grant := Set(0)
	for _, r := range Required {
		grant |= Of(r.Cap)
	}
	for _, r := range missing {
		what = append(what, fmt.Sprintf("%s (%s)", Name(r.Cap), r.Why))
		grant |= Of(r.Cap)
	}
	var lower, plain []string
	for _, c := range grant.Caps() {
		lower = append(lower, strings.ToLower(Name(c)))
		plain = append(plain, strings.TrimPrefix(Name(c), "CAP_"))
	}
	word := "capability"
	if len(missing) > 1 {
		word = "capabilities"
	}
	return fmt.Errorf("missing %s %s; have %s. Run as root, or grant them: setcap %s+ep %s; systemd AmbientCapabilities=%s; Kubernetes securityContext.capabilities.add: [%s]",
		word, strings.Join(what, ", "), have, strings.Join(lower, ","), binary,
		strings.ReplaceAll(grant.String(), ",", " "), strings.Join(plain, ", "))
}

// ErrCgo is returned by Drop in a binary linked with cgo.
var ErrCgo = errors.New("capabilities cannot be changed for every thread in a binary built with cgo (build with CGO_ENABLED=0)")

// Drop makes keep the only capabilities of the process: every thread's
// permitted and effective sets become keep (less what it did not have),
// its inheritable and ambient sets empty, and, when it holds CAP_SETPCAP,
// its bounding set keep too, so no later execve regains anything. It
// returns what is kept. Nothing can raise a dropped capability again.
func Drop(keep Set) (Set, error) {
	cur, err := Current()
	if err != nil {
		return 0, err
	}
	keep &= cur.Permitted
	if cur.Effective.Has(unix.CAP_SETPCAP) {
		last, err := lastCap()
		if err != nil {
			return 0, err
		}
		for c := 0; c <= last; c++ {
			if keep.Has(c) {
				continue
			}
			in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
			if err != nil || in != 1 {
				continue // not in the bounding set (or unknown to the kernel)
			}
			if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e != 0 {
				if e == syscall.ENOTSUP {
					return 0, ErrCgo
				}
				return 0, fmt.Errorf("drop %s from the bounding set: %w", Name(c), e)
			}
		}
	}
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := &[2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32)},
	}
	// Inheritable is left empty, which also empties the ambient set (the
	// kernel keeps ambient within permitted ∩ inheritable).
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(hdr)
	runtime.KeepAlive(data)
	if e == syscall.ENOTSUP {
		return 0, ErrCgo
	}
	if e != 0 {
		return 0, fmt.Errorf("capset: %w", e)
	}
	if err := verifyThreads(keep); err != nil {
		return 0, err
	}
	return keep, nil
}

func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read cap_last_cap: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("cap_last_cap %q: not a capability number", strings.TrimSpace(string(b)))
	}
	return n, nil
}

// verifyThreads checks that every thread of the process has effective and
// permitted sets equal to want and no ambient capability.
func verifyThreads(want Set) error {
	threads, err := ThreadCaps("/proc/self")
	if err != nil {
		return err
	}
	for tid, st := range threads {
		if st.Effective != want || st.Permitted != want || st.Ambient != 0 {
			return fmt.Errorf("thread %d still has effective %s, permitted %s, ambient %s after the drop to %s",
				tid, st.Effective, st.Permitted, st.Ambient, want)
		}
	}
	return nil
}

// ThreadState is one thread's capability sets as /proc shows them.
type ThreadState struct {
	Effective, Permitted, Inheritable, Ambient, Bounding Set
}

// ThreadCaps reads the capability sets of every thread of the process at
// procDir (/proc/self, /proc/<pid>), by thread id.
func ThreadCaps(procDir string) (map[int]ThreadState, error) {
	ents, err := os.ReadDir(filepath.Join(procDir, "task"))
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	out := map[int]ThreadState{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, "task", e.Name(), "status"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited meanwhile
			}
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		st, err := ParseStatus(b)
		if err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		out[tid] = st
	}
	return out, nil
}

// ParseStatus reads the Cap* lines of a /proc/<pid>/status file.
func ParseStatus(b []byte) (ThreadState, error) {
	var st ThreadState
	fields := map[string]*Set{
		"CapInh": &st.Inheritable, "CapPrm": &st.Permitted, "CapEff": &st.Effective,
		"CapBnd": &st.Bounding, "CapAmb": &st.Ambient,
	}
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		p, want := fields[k]
		if !ok || !want {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return st, fmt.Errorf("status %s: %q is not a capability mask", k, strings.TrimSpace(v))
		}
		*p = Set(n)
		seen++
	}
	if seen < 4 { // CapAmb is missing before Linux 4.3
		return st, errors.New("status: no capability lines")
	}
	return st, nil
}
