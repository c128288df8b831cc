package aggregator

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cilium/ebpf"
)

// BenchmarkRead measures the read path per key: one Read of a per-CPU hash
// map holding keys entries of 5 u64 words, reduced over every possible CPU.
func BenchmarkRead(b *testing.B) {
	requireRoot(b)
	for _, keys := range []int{1_000, 10_000} {
		m := newMap(b, ebpf.PerCPUHash, 8, testWords*8, uint32(keys))
		fill(b, m, rand.New(rand.NewPCG(uint64(keys), 9)), keys)
		topo, err := DiscoverTopology("/sys")
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"batch", "iterate"} {
			b.Run(fmt.Sprintf("keys=%d/%s", keys, mode), func(b *testing.B) {
				r, err := NewPerCPUReader[testKey](m, 8, testWords, topo)
				if err != nil {
					b.Fatal(err)
				}
				r.useBatch = mode == "batch"
				if err := r.Read(); err != nil { // size the snapshot before timing
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := r.Read(); err != nil {
						b.Fatal(err)
					}
				}
				if r.Len() != keys {
					b.Fatalf("Len() = %d, want %d", r.Len(), keys)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
			})
		}
	}
}
