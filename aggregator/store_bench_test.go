package aggregator

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// benchWords is a syscalls-sized value: 32 u64 words (256 bytes).
const benchWords = 32

type benchValue [benchWords]uint64

type benchEntryKey struct {
	Tuple testKey
	CPU   uint32
}

// BenchmarkStorage is one interval's read of a metric set whose keys
// were all touched on one CPU, in the layout the agent used before and in
// today's, side by side:
//
//   - percpu: a per-CPU hash of keys entries, batch-read and reduced over
//     every possible CPU (PerCPUReader): the kernel copies each key's slot
//     of every possible CPU, offline ones included;
//   - node: the storage (Store) after an epoch flip, drained with
//     LOOKUP_AND_DELETE_BATCH into the cumulative Totals: one entry per
//     key and CPU that touched it;
//     Beside each drain, untimed, the node layout batch-reads a plain
//     array of as many values: the control. No code in that read depends
//     on the possible CPUs, so it measures how fast the machine itself is
//     at that moment (under TCG a guest with 255 possible CPUs runs
//     everything slower than one with 2, and the host's load drifts);
//     x-array, drain time over control time in the same iterations, is
//     what is compared between guests, not times.
//
// ns/key is wall time per key and read; kernel-bytes is what the layout
// holds in the kernel for those keys (fdinfo memlock; the node layout's
// two epochs included). Run it on the host (make bench) and in the kernel
// matrix's guests (make bench-kernels: 2 and 255 possible CPUs): the
// node layout's cost must not follow the possible CPUs.
func BenchmarkStorage(b *testing.B) {
	requireRoot(b)
	ncpu := possibleCPUs(b)
	topo := SingleNode(ncpu)
	for _, keys := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("layout=percpu/keys=%d", keys), func(b *testing.B) {
			// The kernel holds the value once per possible CPU and key: in
			// the 255-CPU guest 100k keys need 6.5 GB, more than it has.
			if need := uint64(keys) * uint64(ncpu) * benchWords * 8; need > memAvailable(b)/2 {
				b.Skipf("a %d-key per-CPU hash on %d possible CPUs needs %d MiB, more than half of this machine's available memory", keys, ncpu, need>>20)
			}
			m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUHash, KeySize: 8, ValueSize: benchWords * 8, MaxEntries: uint32(keys)})
			if err != nil {
				b.Skipf("a %d-key per-CPU hash on %d possible CPUs: %v", keys, ncpu, err)
			}
			defer m.Close()
			one := make([]benchValue, ncpu)
			one[0][0] = 1
			for i := range keys {
				if err := m.Update(testKey{uint32(i), 1}, one, ebpf.UpdateNoExist); err != nil {
					b.Fatal(err)
				}
			}
			r := newTestReader[testKey](b, m, 8, benchWords, topo)
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Each(func(int, testKey) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
			if r.Len() != keys {
				b.Fatalf("read %d keys, want %d", r.Len(), keys)
			}
			report(b, keys, memlock(b, m), ncpu)
		})
		b.Run(fmt.Sprintf("layout=node/keys=%d", keys), func(b *testing.B) {
			spec := storeSpec()
			spec.Maps["s"].InnerMap.KeySize, spec.Maps["s"].InnerMap.ValueSize = 12, benchWords*8
			spec.Maps["s_overflow"].ValueSize = benchWords * 8
			st, err := NewStore[testKey, benchEntryKey, benchValue](spec, "s", 8, benchWords, uint32(keys), topo, newEpoch(b), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			totals, err := NewTotals[testKey](benchWords, keys)
			if err != nil {
				b.Fatal(err)
			}
			defer totals.Close()
			ks, vs := make([]benchEntryKey, keys), make([]benchValue, keys)
			for i := range ks {
				ks[i] = benchEntryKey{Tuple: testKey{uint32(i), 1}}
				vs[i][0] = 1
			}
			idle := st.nodes[0].halves[1] // the epoch map reads 0: epoch 1 is drained
			fillIdle := func() {
				if _, err := idle.BatchUpdate(ks, vs, nil); err != nil {
					b.Fatal(err)
				}
			}
			add := func(e *Entry[testKey]) error {
				_, err := totals.Add(TotalKey[testKey]{Key: e.Key}, e.Value)
				return err
			}
			ctl, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: benchWords * 8, MaxEntries: uint32(keys)})
			if err != nil {
				b.Fatal(err)
			}
			defer ctl.Close()
			ctlKeys := make([]uint32, keys)
			var ctlTime time.Duration
			readControl := func() {
				start := time.Now()
				var cursor ebpf.MapBatchCursor
				n, err := ctl.BatchLookup(&cursor, ctlKeys, vs, nil)
				if n != keys || (err != nil && !errors.Is(err, ebpf.ErrKeyNotExist)) {
					b.Fatalf("control: read %d of %d array entries: %v", n, keys, err)
				}
				ctlTime += time.Since(start)
			}
			fillIdle()
			if err := st.Drain(add); err != nil { // the totals' keys exist, as in a steady state
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				readControl()
				fillIdle()
				b.StartTimer()
				if err := st.Drain(add); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if n, _ := st.LastDrain(); n != keys {
				b.Fatalf("drained %d entries, want %d", n, keys)
			}
			report(b, keys, st.Memory(), ncpu)
			b.ReportMetric(float64(b.Elapsed())/float64(ctlTime), "x-array")
		})
	}
}

// memAvailable is /proc/meminfo's MemAvailable in bytes.
func memAvailable(b *testing.B) uint64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kib uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err != nil {
				b.Fatalf("/proc/meminfo: %q: %v", line, err)
			}
			return kib << 10
		}
	}
	b.Fatal("/proc/meminfo has no MemAvailable")
	return 0
}

func memlock(b *testing.B, m *ebpf.Map) uint64 {
	info, err := m.Info()
	if err != nil {
		b.Fatal(err)
	}
	n, _ := info.Memlock()
	return n
}

func report(b *testing.B, keys int, kernelBytes uint64, ncpu int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
	b.ReportMetric(float64(kernelBytes), "kernel-bytes")
	b.ReportMetric(float64(ncpu), "possible-cpus")
}
