package aggregator

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkRead measures the read path per key: one Read of a per-CPU hash
// map holding keys entries of 5 u64 words, reduced over every possible CPU
// by the node workers, on the batch path and on the per-key iteration
// fallback, with the host's topology and with a fake two-node split (which
// adds a second worker and the merge). ns/key (wall), cpu-ns/key (CPU time
// of every thread) and allocs/key are per key per Read; allocs/op is per
// Read.
func BenchmarkRead(b *testing.B) {
	requireRoot(b)
	ncpu := possibleCPUs(b)
	sys, err := DiscoverTopology("/sys")
	if err != nil {
		b.Fatal(err)
	}
	topos := []struct {
		name string
		topo Topology
	}{{"sysfs", sys}}
	if ncpu > 1 {
		var even, odd []int
		for c := range ncpu {
			if c%2 == 0 {
				even = append(even, c)
			} else {
				odd = append(odd, c)
			}
		}
		topos = append(topos, struct {
			name string
			topo Topology
		}{"split2", Topology{PossibleCPUs: ncpu, Nodes: []Node{{ID: 0, CPUs: even}, {ID: 1, CPUs: odd}}}})
	}
	for _, keys := range []int{1_000, 10_000, 100_000} {
		m := newMap(b, ebpf.PerCPUHash, 8, testWords*8, uint32(keys))
		fill(b, m, rand.New(rand.NewPCG(uint64(keys), 9)), keys)
		for _, tp := range topos {
			for _, mode := range []string{"batch", "iterate"} {
				b.Run(fmt.Sprintf("keys=%d/%s/%s", keys, tp.name, mode), func(b *testing.B) {
					r := newTestReader[testKey](b, m, 8, testWords, tp.topo)
					r.useBatch = mode == "batch"
					if err := r.Read(); err != nil { // size the snapshot before timing
						b.Fatal(err)
					}
					b.ReportAllocs()
					var before, after runtime.MemStats
					runtime.ReadMemStats(&before)
					cpu0 := cpuTime(b)
					for b.Loop() {
						if err := r.Read(); err != nil {
							b.Fatal(err)
						}
					}
					if r.Len() != keys {
						b.Fatalf("Len() = %d, want %d", r.Len(), keys)
					}
					cpu := cpuTime(b) - cpu0
					runtime.ReadMemStats(&after)
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*keys), "cpu-ns/key")
					b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N*keys), "allocs/key")
				})
			}
		}
	}
}

// cpuTime is the process's user + system CPU time, every thread (the node
// workers included): wall time per key also counts the workers' wake-up
// latency, CPU time only the work.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
