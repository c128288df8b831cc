package aggregator

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// randomTopology spreads n possible CPUs over k nodes with random, sorted,
// distinct ids; nodes that draw no CPU are left out, as DiscoverTopology
// leaves out memory-only nodes.
func randomTopology(rng *rand.Rand, n, k int) Topology {
	ids := rng.Perm(8)[:k]
	slices.Sort(ids)
	cpus := make([][]int, k)
	for c := range n {
		i := rng.IntN(k)
		cpus[i] = append(cpus[i], c)
	}
	topo := Topology{PossibleCPUs: n}
	for i, id := range ids {
		if len(cpus[i]) > 0 {
			topo.Nodes = append(topo.Nodes, Node{ID: id, CPUs: cpus[i]})
		}
	}
	return topo
}

// TestAppendReducesLikePlainSum is a property test of the per-node
// reduction: whatever the topology, a key's total is the plain sum of its
// per-CPU words (mod 2^64). Two rounds per reader check that reused buffers
// start from zero, as Read reuses them.
func TestAppendReducesLikePlainSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(20240611, 7))
	for tc := range 200 {
		n := 1 + rng.IntN(64)
		k := []int{1, 2, 4}[rng.IntN(3)]
		words := 1 + rng.IntN(8)
		topo := randomTopology(rng, n, k)
		checkInvariants(t, topo)
		r := &PerCPUReader[uint32]{topo: topo, words: words, node: make([]uint64, words)}

		for round := range 2 {
			// What Read does before filling the snapshot.
			r.n, r.keys, r.vals = 0, r.keys[:0], r.vals[:0]
			nkeys := 1 + rng.IntN(20)
			want := make([][]uint64, nkeys)
			for key := range nkeys {
				perCPU := make([]uint64, n*words)
				sum := make([]uint64, words)
				for c := range n {
					for j := range words {
						var v uint64
						switch rng.IntN(4) {
						case 0: // leave zero
						case 1:
							v = rng.Uint64() // sums wrap, as in the kernel
						default:
							v = rng.Uint64N(1 << 32)
						}
						perCPU[c*words+j] = v
						sum[j] += v
					}
				}
				want[key] = sum
				r.append(uint32(key*3+round), perCPU)
			}
			if r.Len() != nkeys {
				t.Fatalf("case %d round %d: Len() = %d, want %d", tc, round, r.Len(), nkeys)
			}
			for key := range nkeys {
				if got := r.Key(key); got != uint32(key*3+round) {
					t.Fatalf("case %d round %d: Key(%d) = %d", tc, round, key, got)
				}
				if got := r.Value(key); !slices.Equal(got, want[key]) {
					t.Fatalf("case %d round %d (n=%d words=%d topo=%+v): Value(%d) = %v, want %v",
						tc, round, n, words, topo, key, got, want[key])
				}
			}
		}
	}
}
