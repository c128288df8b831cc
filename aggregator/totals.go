package aggregator

import (
	"fmt"
)

// Totals are a metric set's cumulative values in user space: what every
// drain added, per (tuple, part), where part is what a breakdown splits
// by (a node index or a CPU; 0 without a breakdown). The values live in a
// mapping outside the Go heap (wordBuf), slot by slot; the index is a Go
// map, which allocates only while it grows, so a steady state allocates
// nothing per key. A removed slot is reused by the next new key.
//
// Cost: words × 8 bytes per live (tuple, part) plus ~40 bytes of index
// (a 100k-key syscalls set: 25.6 MB of values, ~4 MB of index).
type Totals[K comparable] struct {
	words int
	limit int // most live (tuple, part) pairs; 0: none
	index map[TotalKey[K]]int32
	keys  []TotalKey[K] // by slot
	live  []bool        // by slot
	free  []int32
	vals  *wordBuf
	n     int
}

// TotalKey is what a total is kept for.
type TotalKey[K comparable] struct {
	Key  K
	Part int32
}

// NewTotals returns totals of words u64 words per value, holding at most
// limit (tuple, part) pairs (0: no limit).
func NewTotals[K comparable](words, limit int) (*Totals[K], error) {
	vals, err := newWordBuf(max(1, limit) * words)
	if err != nil {
		return nil, fmt.Errorf("totals: %w", err)
	}
	return &Totals[K]{words: words, limit: limit, index: map[TotalKey[K]]int32{}, vals: vals}, nil
}

// Add adds v to k's total, creating it. It returns false, adding nothing,
// when k is new and the totals hold their limit already: the caller folds
// v into its overflow tuple.
func (t *Totals[K]) Add(k TotalKey[K], v []uint64) (bool, error) {
	slot, ok := t.index[k]
	if !ok {
		if t.limit > 0 && t.n >= t.limit {
			return false, nil
		}
		var err error
		if slot, err = t.alloc(k); err != nil {
			return false, err
		}
	}
	t.addAt(slot, v)
	return true, nil
}

// AddAlways is Add for a key that must be kept even past the limit (the
// overflow tuple itself).
func (t *Totals[K]) AddAlways(k TotalKey[K], v []uint64) error {
	slot, ok := t.index[k]
	if !ok {
		var err error
		if slot, err = t.alloc(k); err != nil {
			return err
		}
	}
	t.addAt(slot, v)
	return nil
}

func (t *Totals[K]) addAt(slot int32, v []uint64) {
	dst := t.vals.w[int(slot)*t.words : (int(slot)+1)*t.words]
	for i, x := range v[:t.words] {
		dst[i] += x
	}
}

func (t *Totals[K]) alloc(k TotalKey[K]) (int32, error) {
	var slot int32
	if n := len(t.free); n > 0 {
		slot, t.free = t.free[n-1], t.free[:n-1]
		t.keys[slot], t.live[slot] = k, true
	} else {
		slot = int32(len(t.keys))
		if err := t.vals.grow((int(slot) + 1) * t.words); err != nil {
			return 0, fmt.Errorf("totals: %w", err)
		}
		t.keys = append(t.keys, k)
		t.live = append(t.live, true)
	}
	clear(t.vals.w[int(slot)*t.words : (int(slot)+1)*t.words])
	t.vals.wrote((int(slot) + 1) * t.words)
	t.index[k] = slot
	t.n++
	return slot, nil
}

// Len is the number of live (tuple, part) totals.
func (t *Totals[K]) Len() int { return t.n }

// Each calls fn for every live total, in slot order, with its slot (for
// Remove) and its words (valid until the next Add or Remove).
func (t *Totals[K]) Each(fn func(slot int, k TotalKey[K], v []uint64) error) error {
	for slot, ok := range t.live {
		if !ok {
			continue
		}
		if err := fn(slot, t.keys[slot], t.vals.w[slot*t.words:(slot+1)*t.words]); err != nil {
			return err
		}
	}
	return nil
}

// Get returns k's words (valid until the next Add or Remove), or false
// when k has no total.
func (t *Totals[K]) Get(k TotalKey[K]) ([]uint64, bool) {
	slot, ok := t.index[k]
	if !ok {
		return nil, false
	}
	return t.vals.w[int(slot)*t.words : (int(slot)+1)*t.words], true
}

// At returns the key and words of the live total in slot (words valid
// until the next Add or Remove), or false when the slot is free.
func (t *Totals[K]) At(slot int) (TotalKey[K], []uint64, bool) {
	if slot < 0 || slot >= len(t.live) || !t.live[slot] {
		return TotalKey[K]{}, nil, false
	}
	return t.keys[slot], t.vals.w[slot*t.words : (slot+1)*t.words], true
}

// Remove forgets the total in slot (its process exited and its final
// values were delivered). Removing a free slot does nothing.
func (t *Totals[K]) Remove(slot int) {
	if slot < 0 || slot >= len(t.live) || !t.live[slot] {
		return
	}
	delete(t.index, t.keys[slot])
	var zero TotalKey[K]
	t.keys[slot], t.live[slot] = zero, false
	t.free = append(t.free, int32(slot))
	t.n--
}

// Close frees the values; the totals must not be used after.
func (t *Totals[K]) Close() error {
	if t == nil || t.vals == nil {
		return nil
	}
	err := t.vals.free()
	t.vals = nil
	return err
}
