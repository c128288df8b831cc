package aggregator_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/cilium/ebpf/rlimit"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/bench/readbench/readpath"
)

// BenchmarkCollect measures one collection interval per key end to end
// except the network, on a map of the syscalls metric set's layout (32
// words per key and CPU) holding keys live series: read + reduce, then
// the OTLP data built from the snapshot (process resolution, SetEmitter,
// metrics.Builder), then encoded as OTLP/protobuf (what the otlp exporter
// does before the network). path=batch is aggregator.PerCPUReader;
// path=naive reads with one NextKey and one Lookup syscall per key;
// path=stream is the agent's path: PerCPUReader.Each straight into the
// builder, a chunk at a time (its "read" stage is Each alone). It
// uses bench/readbench's harness, so go test and readbench measure the
// same code; readbench adds the otlp-json exporter, RSS and CPU.
func BenchmarkCollect(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to create BPF maps")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		b.Fatal(err)
	}
	topo, err := aggregator.DiscoverTopology("/sys")
	if err != nil {
		b.Fatal(err)
	}
	for _, keys := range []int{1_000, 10_000, 100_000} {
		env, err := readpath.New(keys, topo)
		if err != nil {
			b.Fatal(err)
		}
		reader, err := env.NewReader()
		if err != nil {
			b.Fatal(err)
		}
		for _, path := range []struct {
			name   string
			snap   readpath.Snapshot
			stream bool
		}{{"batch", reader, false}, {"naive", env.NewNaive(), false}, {"stream", reader, true}} {
			for _, stage := range []string{"read", "read+build", "read+build+proto"} {
				b.Run(fmt.Sprintf("keys=%d/path=%s/stage=%s", keys, path.name, stage), func(b *testing.B) {
					run := func() {
						switch {
						case path.stream && stage == "read":
							if err := reader.Each(func(int, readpath.Key) error { return nil }); err != nil {
								b.Fatal(err)
							}
							return
						case path.stream:
							if err := env.Stream(reader); err != nil {
								b.Fatal(err)
							}
						default:
							if err := path.snap.Read(); err != nil {
								b.Fatal(err)
							}
							if stage == "read" {
								return
							}
							env.Build(path.snap)
						}
						if stage == "read+build+proto" {
							if err := env.EncodeProto(); err != nil {
								b.Fatal(err)
							}
						}
					}
					run() // size every buffer and cache before timing
					run()
					var before, after runtime.MemStats
					runtime.ReadMemStats(&before)
					for b.Loop() {
						run()
					}
					runtime.ReadMemStats(&after)
					if path.snap.Len() != keys { // the batch reader's Len counts Each's keys too
						b.Fatalf("read %d keys, want %d", path.snap.Len(), keys)
					}
					n := float64(b.N * keys)
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/key")
					b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/key")
				})
			}
		}
		if err := reader.Close(); err != nil {
			b.Error(err)
		}
		if err := env.Close(); err != nil {
			b.Error(err)
		}
	}
}
