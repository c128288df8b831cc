package probes

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// FinalEvictor deletes the keys of exited processes once the interval that
// carried their final values was exported.
//
// A metric-set key holds a pid, not a process: when the pid is reused
// between the read that exported the final values and the deletion (a
// fork burst on a host with a small pid_max does that within one interval),
// the new process adds into the same key, and a plain delete would lose
// what it added. So each key is read and deleted in one step
// (BPF_MAP_LOOKUP_AND_DELETE_ELEM), and whatever it gained since the
// exported read is put back under the key, for the new owner: every update
// is exported exactly once.
//
// V is the bpf2go value type: u64 words only, as every metric-set value is.
type FinalEvictor[K comparable, V any] struct {
	m        *ebpf.Map
	words    int
	overflow *K // where a put-back goes when the map is full

	keys []K
	vals []uint64 // words per key: the values exported
	cur  []V      // one per possible CPU
	put  []V

	// Returned counts the updates put back because a pid was reused.
	Returned uint64
}

// NewFinalEvictor returns an evictor for the per-CPU map m. overflow, when
// set, is the key that takes a put-back when the map has no room for it.
func NewFinalEvictor[K comparable, V any](m *ebpf.Map, words, possibleCPUs int, overflow *K) (*FinalEvictor[K, V], error) {
	var v V
	if int(unsafe.Sizeof(v)) != words*8 || int(m.ValueSize()) != words*8 {
		return nil, fmt.Errorf("map %s: value is %d bytes (%T: %d), want %d words", m, m.ValueSize(), v, unsafe.Sizeof(v), words)
	}
	var k K
	if uintptr(m.KeySize()) != unsafe.Sizeof(k) {
		return nil, fmt.Errorf("map %s: key is %d bytes, %T %d", m, m.KeySize(), k, unsafe.Sizeof(k))
	}
	return &FinalEvictor[K, V]{m: m, words: words, overflow: overflow,
		cur: make([]V, possibleCPUs), put: make([]V, possibleCPUs)}, nil
}

// Add schedules k for deletion after the next successful export; exported
// are the values (reduced over CPUs) that export carries.
func (e *FinalEvictor[K, V]) Add(k K, exported []uint64) {
	e.keys = append(e.keys, k)
	e.vals = append(e.vals, exported[:e.words]...)
}

// Reset forgets what was scheduled (a new collection starts).
func (e *FinalEvictor[K, V]) Reset() {
	e.keys = e.keys[:0]
	e.vals = e.vals[:0]
}

// Pending is the number of keys scheduled.
func (e *FinalEvictor[K, V]) Pending() int { return len(e.keys) }

func words[V any](v *V, n int) []uint64 { return unsafe.Slice((*uint64)(unsafe.Pointer(v)), n) }

// Evict deletes the scheduled keys and returns how many it deleted.
func (e *FinalEvictor[K, V]) Evict() (int, error) {
	defer e.Reset()
	var errs []error
	deleted := 0
	now := make([]uint64, e.words)
	for i := range e.keys {
		k := e.keys[i]
		err := e.lookupAndDelete(&e.keys[i])
		if errors.Is(err, ebpf.ErrNotSupported) {
			// Kernels before 5.14: the plain delete, with its small window.
			if err := e.m.Delete(k); err == nil {
				deleted++
			}
			continue
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
		clear(now)
		for c := range e.cur {
			for w, x := range words(&e.cur[c], e.words) {
				now[w] += x
			}
		}
		exp := e.vals[i*e.words : (i+1)*e.words]
		gained, recreated := false, false
		for w := range now {
			gained = gained || now[w] != exp[w]
			recreated = recreated || now[w] < exp[w]
		}
		if !gained {
			continue
		}
		// A new process owns the key now. Recreated (evicted and made anew
		// since the read): all of it is the new owner's; else the gain.
		if !recreated {
			for w := range now {
				now[w] -= exp[w]
			}
		}
		if err := e.putBack(k, now); err != nil {
			errs = append(errs, err)
		}
	}
	return deleted, errors.Join(errs...)
}

// lookupAndDelete is BPF_MAP_LOOKUP_AND_DELETE_ELEM of *k into e.cur
// (every possible CPU's value, back to back: u64 words need no padding),
// as Map.LookupAndDelete does but without its per-call value buffer, key
// marshalling and reflection-based unmarshalling: after a backend outage
// thousands of exited processes' keys go at once, and that was ~1 KiB of
// garbage per key. Errors are cilium/ebpf's: ErrKeyNotExist,
// ErrNotSupported (kernels before 5.14 for per-CPU hashes).
func (e *FinalEvictor[K, V]) lookupAndDelete(k *K) error {
	attr := struct {
		mapFd uint32
		_     uint32
		key   uint64
		value uint64
		flags uint64
	}{mapFd: uint32(e.m.FD()), key: uint64(uintptr(unsafe.Pointer(k))), value: uint64(uintptr(unsafe.Pointer(&e.cur[0])))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_LOOKUP_AND_DELETE_ELEM, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(k)
	runtime.KeepAlive(e.cur)
	switch errno {
	case 0:
		return nil
	case unix.ENOENT:
		return ebpf.ErrKeyNotExist
	case unix.EINVAL, unix.EOPNOTSUPP, enotsupp:
		return ebpf.ErrNotSupported
	}
	return fmt.Errorf("lookup and delete in %s: %w", e.m, errno)
}

// enotsupp is the kernel-internal ENOTSUPP (524) that BPF returns to user
// space for an operation a map type lacks; x/sys has no name for it.
const enotsupp = unix.Errno(524)

// putBack adds d into k (creating it), or into the overflow key when the
// map is full.
func (e *FinalEvictor[K, V]) putBack(k K, d []uint64) error {
	clear(e.put)
	copy(words(&e.put[0], e.words), d)
	err := e.m.Update(k, e.put, ebpf.UpdateNoExist)
	if err == nil {
		e.Returned++
		return nil
	}
	target := k
	if !errors.Is(err, ebpf.ErrKeyExist) {
		if e.overflow == nil {
			return fmt.Errorf("put back updates of a reused pid: %w", err)
		}
		target = *e.overflow
	}
	// The new owner (or the overflow) made the key meanwhile: add to it.
	// Updates on other CPUs between this read and write are the only ones
	// that can still be lost, a window of two system calls.
	if err := e.m.Lookup(target, e.cur); err != nil {
		return fmt.Errorf("put back updates of a reused pid: %w", err)
	}
	for w, x := range d {
		words(&e.cur[0], e.words)[w] += x
	}
	if err := e.m.Update(target, e.cur, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("put back updates of a reused pid: %w", err)
	}
	e.Returned++
	return nil
}
