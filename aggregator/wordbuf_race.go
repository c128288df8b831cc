//go:build race

package aggregator

// wordBuf, in race builds, is wordbuf.go's buffer on the Go heap: the race
// detector only watches heap memory, and the reduction's buffers are the
// ones handed between the caller and the node workers. Same behaviour,
// including what trim leaves behind (zeros), without the NUMA placement.
type wordBuf struct {
	w  []uint64
	hw int
}

const wordBufTrimBytes = 1 << 20

func newWordBuf(words int) (*wordBuf, error) {
	return &wordBuf{w: make([]uint64, max(words, 1))}, nil
}

func (b *wordBuf) grow(words int) error {
	if words > len(b.w) {
		w := make([]uint64, max(words, 2*len(b.w)))
		copy(w, b.w)
		b.w = w
	}
	return nil
}

func (b *wordBuf) wrote(n int) { b.hw = max(b.hw, n) }

func (b *wordBuf) trim(used int) {
	if (b.hw-used)*8 < wordBufTrimBytes || b.hw <= 2*used {
		return
	}
	clear(b.w[used:b.hw])
	b.hw = used
}

func (b *wordBuf) free() error {
	if b != nil {
		b.w, b.hw = nil, 0
	}
	return nil
}
