//go:build !race

package aggregator

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wordBuf is a growable array of u64 words in an anonymous private mapping,
// outside the Go heap, for the snapshot's per-node partials and totals.
//
// Why not make([]uint64): a page of a fresh mapping is placed on the NUMA
// node of the thread that first writes it (the kernel's default local
// policy), so a buffer mapped and written by a node-pinned worker is
// node-local by construction, while Go heap memory may be recycled from
// pages another thread already faulted in on another node. And memory
// outside the heap does not count towards the GC's heap goal: 25 MiB of
// snapshot for 100k keys would otherwise raise the goal, and so the
// agent's RSS, by as much again at GOGC=100.
//
// Reserving max_entries keys' worth up front costs address space only:
// pages become resident when first written. Slices of w are invalidated
// by grow and free, which only the buffer's owner calls, between reads.
//
// The race detector does not watch memory outside the Go heap, so race
// builds use the heap-backed twin in wordbuf_race.go: the tests under
// -race then check every access to these buffers too.
type wordBuf struct {
	mem []byte   // the whole mapping, a multiple of the page size
	w   []uint64 // mem as words
	hw  int      // high-water mark: words written since the last trim
}

// wordBufTrimBytes is how far the high-water mark must stay above what a
// read used before trim gives the pages back: a map whose key count moves
// by a few keys between intervals never refaults pages every interval.
const wordBufTrimBytes = 1 << 20

func newWordBuf(words int) (*wordBuf, error) {
	mem, err := unix.Mmap(-1, 0, pageRound(words*8), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("map %d words: %w", words, err)
	}
	b := &wordBuf{}
	b.set(mem)
	return b, nil
}

func (b *wordBuf) set(mem []byte) {
	b.mem = mem
	b.w = unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem))), len(mem)/8)
}

// grow makes room for at least words words, keeping the content. It only
// happens when a read returns more keys than max_entries (keys deleted and
// added while the kernel walked the map); mremap moves page table entries,
// not pages, so node placement is kept.
func (b *wordBuf) grow(words int) error {
	if words <= len(b.w) {
		return nil
	}
	mem, err := unix.Mremap(b.mem, pageRound(max(words, 2*len(b.w))*8), unix.MREMAP_MAYMOVE)
	if err != nil {
		return fmt.Errorf("grow to %d words: %w", words, err)
	}
	b.set(mem)
	return nil
}

// wrote records that words [0, n) have been written.
func (b *wordBuf) wrote(n int) { b.hw = max(b.hw, n) }

// trim gives back the pages above the first used words when the
// high-water mark is well above them (the map shrank), so a burst of keys
// does not keep its memory resident for the life of the agent. The pages
// read as zeros if touched again; the reduction overwrites before it adds.
func (b *wordBuf) trim(used int) {
	if (b.hw-used)*8 < wordBufTrimBytes || b.hw <= 2*used {
		return
	}
	from := pageRound(used * 8)
	if from < len(b.mem) && unix.Madvise(b.mem[from:], unix.MADV_DONTNEED) == nil {
		b.hw = used
	}
}

func (b *wordBuf) free() error {
	if b == nil || b.mem == nil {
		return nil
	}
	err := unix.Munmap(b.mem)
	b.mem, b.w, b.hw = nil, nil, 0
	if err != nil {
		return fmt.Errorf("unmap: %w", err)
	}
	return nil
}

func pageRound(n int) int {
	p := os.Getpagesize()
	return max(p, (n+p-1)/p*p)
}
