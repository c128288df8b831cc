// Package osthread runs goroutines on dedicated OS threads pinned to a set
// of CPUs: the NUMA-node workers of the aggregator and the ring-buffer
// readers of the process probe.
package osthread

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrNoneAllowed: none of the requested CPUs is in the allowed set.
var ErrNoneAllowed = errors.New("none of the CPUs is allowed")

// OnMain reports whether the calling goroutine runs on the process's main
// thread (thread id = process id).
func OnMain() bool { return unix.Gettid() == os.Getpid() }

// Go runs fn on a new goroutine locked, for fn's whole life and never
// unlocked, to an OS thread that is not the main thread. Never unlocking
// means the runtime ends the thread when fn returns, so an affinity fn
// narrowed never leaks to other goroutines. The main thread is avoided
// because pinning it changes the affinity the whole process shows
// (taskset -p), and a goroutine exiting locked to it wedges it, pinned,
// for good. onMain is OnMain except in tests.
func Go(onMain func() bool, fn func()) {
	go func() {
		runtime.LockOSThread()
		if !onMain() {
			fn()
			return
		}
		// While this goroutine holds the main thread, the new one cannot
		// get it; let it go once the new one is locked elsewhere.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			fn()
		}()
		<-locked
		runtime.UnlockOSThread()
	}()
}

// Allowed is the calling thread's CPU affinity: the CPUs the process may
// run on as a cpuset or taskset restricts it (ordinary threads inherit
// it). Not the main thread's, which other code may have pinned for good.
func Allowed(possible int) (unix.CPUSetDynamic, error) {
	set := unix.NewCPUSet(max(possible, 1024))
	if err := unix.SchedGetaffinityDynamic(0, set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	return set, nil
}

// Pin sets the calling thread's affinity to those of cpus in allowed (nil:
// all of them) and returns the CPUs the thread may then run on.
// ErrNoneAllowed, or the kernel's refusal, leaves the thread as it was.
func Pin(cpus []int, allowed unix.CPUSetDynamic, possible int) ([]int, error) {
	n := max(possible, 1024)
	set := unix.NewCPUSet(n)
	count := 0
	for _, c := range cpus {
		if allowed == nil || allowed.IsSet(c) {
			set.Set(c)
			count++
		}
	}
	if count == 0 {
		return nil, ErrNoneAllowed
	}
	if err := unix.SchedSetaffinityDynamic(0, set); err != nil {
		return nil, fmt.Errorf("sched_setaffinity: %w", err)
	}
	got := unix.NewCPUSet(n)
	if err := unix.SchedGetaffinityDynamic(0, got); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var out []int
	for c := range n {
		if got.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}
