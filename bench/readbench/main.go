// Command readbench measures telagent's read path per key, end to end
// except the network, on real per-CPU maps of the syscalls metric set's
// layout filled from user space: read + reduce (aggregator.PerCPUReader:
// batch lookups, node workers) against a naive per-key lookup loop,
// interleaved in one run, then the OTLP data built from the snapshot
// (probes.SetEmitter into metrics.Builder, each key's process resolved from
// a fake /proc) and exported as OTLP/JSON to /dev/null. It then measures the
// agent's steady state in fresh child processes: peak RSS with 100k live
// series and CPU per interval with 10k live series at a 10 s interval.
//
//	go run ./bench/readbench [-keys 1000,10000,100000] [-count 5] [-split]
//	                         [-rss-keys 100000] [-cpu-keys 10000] [-cpu-interval 10s] [-cpu-intervals 3]
//
// Root only (BPF maps). Output lines starting with "Benchmark" are in the
// Go benchmark format (benchstat reads them; one line per round); the
// lines starting with "#" summarise medians, ratios and targets.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/bench/readbench/readpath"
	"github.com/telagent/telagent/entity"
)

type options struct {
	keys            []int
	count           int
	split           bool
	rssKeys         int
	cpuKeys         int
	cpuInterval     time.Duration
	cpuIntervals    int
	exporters       []string // export stages of the per-key benchmarks
	export          string   // a steady-state child's exporter
	steadyExporters []string
	child           string
	memProfile      string
}

// agentGCPercent is the agent's default GOGC (cmd/telagent, gcPercent).
const agentGCPercent = 50

func main() {
	var o options
	keyList := flag.String("keys", "1000,10000,100000", "comma-separated live series counts")
	flag.IntVar(&o.count, "count", 5, "rounds (benchmark lines) per key count and path")
	flag.BoolVar(&o.split, "split", false, "reduce with a fake two-node topology (even CPUs on node 0, odd on node 1) instead of /sys's")
	flag.IntVar(&o.rssKeys, "rss-keys", 100000, "live series of the RSS measurement (0 skips it)")
	flag.IntVar(&o.cpuKeys, "cpu-keys", 10000, "live series of the CPU measurement (0 skips it)")
	flag.DurationVar(&o.cpuInterval, "cpu-interval", 10*time.Second, "collection interval of the CPU measurement")
	flag.IntVar(&o.cpuIntervals, "cpu-intervals", 3, "intervals the CPU measurement runs")
	exporters := flag.String("exporters", "none,proto,json", "export stages measured per key: none (read + build only), proto (OTLP/protobuf encoding: what the otlp exporter does before the network), json (the otlp-json exporter, to /dev/null)")
	steadyExporters := flag.String("steady-exporters", "none,proto,json", "exporters of the RSS and CPU measurements, one child process each")
	flag.StringVar(&o.export, "export", "none", "internal: the exporter of a -child measurement")
	flag.StringVar(&o.child, "child", "", "internal: run one steady-state measurement (rss or cpu) and print it")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the per-key benchmarks to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile at the end of each RSS measurement to this file (suffixed with the exporter)")
	flag.Parse()
	var err error
	o.exporters = strings.Split(*exporters, ",")
	o.steadyExporters = strings.Split(*steadyExporters, ",")
	validExp := func(x string) bool { return x == "json" || x == "proto" || x == "none" }
	if o.keys, err = parseInts(*keyList); err != nil || flag.NArg() != 0 || o.count <= 0 ||
		!validExp(o.export) || slices.ContainsFunc(o.exporters, func(x string) bool { return !validExp(x) }) ||
		slices.ContainsFunc(o.steadyExporters, func(x string) bool { return !validExp(x) }) {
		flag.Usage()
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "readbench: needs root to create BPF maps")
		os.Exit(2)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		fatal(fmt.Errorf("raise RLIMIT_MEMLOCK: %w", err))
	}
	topo, err := topology(o.split)
	if err != nil {
		fatal(err)
	}
	// The steady-state children run the collection path as the agent runs
	// it: at its GOGC (cmd/telagent's gcPercent) unless GOGC is set.
	if o.child != "" && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(agentGCPercent)
	}
	switch o.child {
	case "":
	case "rss":
		fatal(childRSS(o, topo))
		return
	case "cpu":
		fatal(childCPU(o, topo))
		return
	default:
		fatal(fmt.Errorf("unknown -child %q", o.child))
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	printHeader(topo)
	var s summary
	for _, keys := range o.keys {
		if err := benchKeys(o, topo, keys, &s); err != nil {
			fatal(fmt.Errorf("keys=%d: %w", keys, err))
		}
	}
	s.print(o.keys, o.exporters)
	pprof.StopCPUProfile()
	steady(o)
}

func fatal(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "readbench:", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func topology(split bool) (aggregator.Topology, error) {
	topo, err := aggregator.DiscoverTopology("/sys")
	if err != nil || !split {
		return topo, err
	}
	if topo.PossibleCPUs < 2 {
		return topo, errors.New("-split needs 2 possible CPUs")
	}
	t := aggregator.Topology{PossibleCPUs: topo.PossibleCPUs, Nodes: []aggregator.Node{{ID: 0}, {ID: 1}}}
	for c := range topo.PossibleCPUs {
		t.Nodes[c%2].CPUs = append(t.Nodes[c%2].CPUs, c)
	}
	return t, nil
}

func printHeader(topo aggregator.Topology) {
	fmt.Printf("goos: %s\ngoarch: %s\npkg: github.com/telagent/telagent/bench/readbench\n", runtime.GOOS, runtime.GOARCH)
	fmt.Printf("cpu: %s\n", cpuModel())
	var u unix.Utsname
	_ = unix.Uname(&u)
	var nodes []string
	for _, n := range topo.Nodes {
		nodes = append(nodes, fmt.Sprintf("node%d=%v", n.ID, n.CPUs))
	}
	fmt.Printf("# kernel %s, %d possible CPUs, GOMAXPROCS %d, NUMA %s, metric set syscalls (%d words per key and CPU), %d series per process\n",
		unix.ByteSliceToString(u.Release[:]), topo.PossibleCPUs, runtime.GOMAXPROCS(0), strings.Join(nodes, " "),
		entity.MetricSetSyscalls.ValueWords, readpath.SyscallsPerProcess)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// stageNames are the stages of one interval as measured with exporters:
// read (the whole map into a snapshot), build (the snapshot into the
// builder), stream (the agent's path: the reader's Each, a chunk at a
// time, straight into the builder; batch reader only), then each
// exporter's stage, then each exporter's end to end: stream + export for
// the batch reader, read + build + export for the naive one.
func stageNames(exporters []string) []string {
	names := []string{"read", "build", "stream"}
	for _, x := range exporters {
		names = append(names, "export-"+x)
	}
	for _, x := range exporters {
		names = append(names, "e2e-"+x)
	}
	return names
}

// sample is one stage of one interval.
type sample struct {
	ns, allocs, bytes uint64
}

// stageMeter measures stages one after another: wall time and allocations
// (ReadMemStats between stages, not inside the timed part).
type stageMeter struct {
	ms           runtime.MemStats
	prevA, prevB uint64
}

func newStageMeter() *stageMeter {
	m := &stageMeter{}
	runtime.ReadMemStats(&m.ms)
	m.prevA, m.prevB = m.ms.Mallocs, m.ms.TotalAlloc
	return m
}

func (m *stageMeter) run(out *sample, f func() error) error {
	t0 := time.Now()
	err := f()
	d := time.Since(t0)
	runtime.ReadMemStats(&m.ms)
	*out = sample{ns: uint64(d.Nanoseconds()), allocs: m.ms.Mallocs - m.prevA, bytes: m.ms.TotalAlloc - m.prevB}
	m.prevA, m.prevB = m.ms.Mallocs, m.ms.TotalAlloc
	return err
}

func (x *sample) add(y sample) {
	x.ns += y.ns
	x.allocs += y.allocs
	x.bytes += y.bytes
}

// exportStage is exporter x's stage on the last built interval.
func exportStage(env *readpath.Env, x string) func() error {
	switch x {
	case "proto":
		return env.EncodeProto
	case "none":
		return func() error { env.Result(); return nil }
	}
	return func() error { return env.ExportJSON(context.Background()) }
}

// interval runs one collection interval on s, stage by stage. With the
// batch reader (reader not nil) it also streams, and the exporters encode
// the streamed interval; with the naive one, the built snapshot.
func interval(env *readpath.Env, s readpath.Snapshot, reader *aggregator.PerCPUReader[readpath.Key], exporters []string) ([]sample, error) {
	out := make([]sample, 3+2*len(exporters))
	m := newStageMeter()
	if err := m.run(&out[0], s.Read); err != nil {
		return nil, err
	}
	if s.Len() != env.Keys {
		return nil, fmt.Errorf("read %d keys, want %d", s.Len(), env.Keys)
	}
	_ = m.run(&out[1], func() error { env.Build(s); return nil })
	if reader != nil {
		if err := m.run(&out[2], func() error { return env.Stream(reader) }); err != nil {
			return nil, err
		}
	}
	for i, x := range exporters {
		if err := m.run(&out[3+i], exportStage(env, x)); err != nil {
			return nil, err
		}
		e2e := &out[3+len(exporters)+i]
		if reader != nil {
			e2e.add(out[2])
		} else {
			e2e.add(out[0])
			e2e.add(out[1])
		}
		e2e.add(out[3+i])
	}
	return out, nil
}

// nodeInterval is one interval of the storage path (map_type node_hash):
// the programs' writes stood in for by Touch (not measured), then read =
// the drain into the totals, build = the totals into the builder, stream
// = the two (the agent's whole collection path), then the exporters.
func nodeInterval(env *readpath.Env, n *readpath.Node, exporters []string) ([]sample, error) {
	out := make([]sample, 3+2*len(exporters))
	if err := n.Touch(); err != nil {
		return nil, err
	}
	m := newStageMeter()
	if err := m.run(&out[0], n.Read); err != nil {
		return nil, err
	}
	if n.Len() != env.Keys {
		return nil, fmt.Errorf("totals hold %d keys, want %d", n.Len(), env.Keys)
	}
	if err := m.run(&out[1], n.Build); err != nil {
		return nil, err
	}
	out[2].add(out[0])
	out[2].add(out[1])
	for i, x := range exporters {
		if err := m.run(&out[3+i], exportStage(env, x)); err != nil {
			return nil, err
		}
		e2e := &out[3+len(exporters)+i]
		e2e.add(out[2])
		e2e.add(out[3+i])
	}
	return out, nil
}

// steadyInterval is one interval of the agent's path only (drain into the
// totals, build, then export), as the steady-state children run it, after
// the stand-in for the programs' writes (Touch), whose CPU time it
// returns so that it is not counted as the agent's.
func steadyInterval(env *readpath.Env, node *readpath.Node, exporters []string) (time.Duration, error) {
	t0, err := cpuTime()
	if err != nil {
		return 0, err
	}
	if err := node.Touch(); err != nil {
		return 0, err
	}
	t1, err := cpuTime()
	if err != nil {
		return 0, err
	}
	touch := t1 - t0
	if err := node.Read(); err != nil {
		return touch, err
	}
	if err := node.Build(); err != nil {
		return touch, err
	}
	for _, x := range exporters {
		if err := exportStage(env, x)(); err != nil {
			return touch, err
		}
	}
	return touch, nil
}

type summaryKey struct {
	keys        int
	path, stage string
}

type summary struct {
	ns     map[summaryKey][]float64 // per key
	allocs map[summaryKey][]float64 // per key
	perOp  map[summaryKey][]float64 // allocations per interval
}

func (s *summary) add(k summaryKey, keys int, x sample) {
	if s.ns == nil {
		s.ns, s.allocs, s.perOp = map[summaryKey][]float64{}, map[summaryKey][]float64{}, map[summaryKey][]float64{}
	}
	s.ns[k] = append(s.ns[k], float64(x.ns)/float64(keys))
	s.allocs[k] = append(s.allocs[k], float64(x.allocs)/float64(keys))
	s.perOp[k] = append(s.perOp[k], float64(x.allocs))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func benchKeys(o options, topo aggregator.Topology, keys int, s *summary) error {
	env, err := readpath.New(keys, topo)
	if err != nil {
		return err
	}
	defer env.Close()
	reader, err := env.NewReader()
	if err != nil {
		return err
	}
	defer reader.Close()
	node, err := env.NewNode()
	if err != nil {
		return err
	}
	defer node.Close()
	paths := []struct {
		name   string
		snap   readpath.Snapshot
		stream *aggregator.PerCPUReader[readpath.Key]
		node   *readpath.Node
	}{{"batch", reader, reader, nil}, {"naive", env.NewNaive(), nil, nil}, {"node", nil, nil, node}}
	run := func(i int) ([]sample, error) {
		if p := paths[i]; p.node != nil {
			return nodeInterval(env, p.node, o.exporters)
		}
		return interval(env, paths[i].snap, paths[i].stream, o.exporters)
	}
	stages := stageNames(o.exporters)
	for i, p := range paths { // warm up: size every buffer and cache
		for range 2 {
			if _, err := run(i); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	procs := runtime.GOMAXPROCS(0)
	for round := range o.count {
		for i := range paths {
			j := (i + round) % len(paths) // rotate which path goes first
			p := paths[j]
			res, err := run(j)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			for j, st := range stages {
				x := res[j]
				fmt.Printf("BenchmarkReadPath/keys=%d/path=%s/stage=%s-%d\t1\t%d ns/op\t%.1f ns/key\t%.4f allocs/key\t%d allocs/op\t%.1f B/key\n",
					keys, p.name, st, procs, x.ns, float64(x.ns)/float64(keys), float64(x.allocs)/float64(keys), x.allocs, float64(x.bytes)/float64(keys))
				s.add(summaryKey{keys, p.name, st}, keys, x)
			}
		}
	}
	fmt.Printf("# keys=%d: %d resources (processes) per interval; kernel memory: per-CPU hash %d bytes, node storage %d bytes\n",
		keys, env.Resources(), env.Memory(), node.Memory())
	return nil
}

func (s *summary) print(keyCounts []int, exporters []string) {
	stages := stageNames(exporters)
	fmt.Println("#")
	fmt.Println("# medians, ns per key and interval (batch = aggregator.PerCPUReader of a per-CPU hash, the layout before node_hash;")
	fmt.Println("# naive = one NextKey + one Lookup syscall per key; node = the agent's storage: drain of an interval that touched every key + totals)")
	head := fmt.Sprintf("# %-7s %-6s", "keys", "path")
	for _, st := range stages {
		head += fmt.Sprintf(" %12s", st)
	}
	fmt.Println(head + "   allocs/key: read, build, e2e-" + strings.Join(exporters, ", e2e-"))
	for _, keys := range keyCounts {
		for _, path := range []string{"batch", "naive", "node"} {
			line := fmt.Sprintf("# %-7d %-6s", keys, path)
			for _, st := range stages {
				line += fmt.Sprintf(" %12.0f", median(s.ns[summaryKey{keys, path, st}]))
			}
			a := func(st string) string { return fmt.Sprintf("%.4g", median(s.allocs[summaryKey{keys, path, st}])) }
			allocs := []string{a("read"), a("build")}
			for _, x := range exporters {
				allocs = append(allocs, a("e2e-"+x))
			}
			fmt.Printf("%s   %s\n", line, strings.Join(allocs, ", "))
		}
	}
	fmt.Println("#")
	for _, keys := range keyCounts {
		b := func(st string) float64 { return median(s.ns[summaryKey{keys, "batch", st}]) }
		n := func(st string) float64 { return median(s.ns[summaryKey{keys, "naive", st}]) }
		nd := func(st string) float64 { return median(s.ns[summaryKey{keys, "node", st}]) }
		line := fmt.Sprintf("# keys=%d: naive/batch read %.2fx;", keys, n("read")/b("read"))
		for _, x := range exporters {
			e2e := nd("e2e-" + x)
			verdict := "PASS"
			if e2e > 1000 {
				verdict = "MISS"
			}
			line += fmt.Sprintf(" e2e-%s node %.0f ns/key (node/batch %.2fx, target <= 1000: %s);", x, e2e, e2e/b("e2e-"+x), verdict)
		}
		perOp := median(s.perOp[summaryKey{keys, "node", "stream"}])
		fmt.Printf("%s node drain+totals+build %.0f allocations per interval (%.5f per key)\n", line, perOp, perOp/float64(keys))
	}
}

// steady runs the RSS and CPU measurements in fresh processes, so that
// nothing the per-key benchmarks allocated counts.
func steady(o options) {
	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	args := func(mode, export string) []string {
		a := []string{"-child", mode, "-rss-keys", strconv.Itoa(o.rssKeys), "-cpu-keys", strconv.Itoa(o.cpuKeys),
			"-cpu-interval", o.cpuInterval.String(), "-cpu-intervals", strconv.Itoa(o.cpuIntervals), "-export", export}
		if o.split {
			a = append(a, "-split")
		}
		if o.memProfile != "" {
			a = append(a, "-memprofile", o.memProfile)
		}
		return a
	}
	for _, mode := range []string{"rss", "cpu"} {
		if mode == "rss" && o.rssKeys == 0 || mode == "cpu" && o.cpuKeys == 0 {
			continue
		}
		for _, x := range o.steadyExporters {
			cmd := exec.Command(self, args(mode, x)...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				fatal(fmt.Errorf("steady-state %s measurement, export %s: %w", mode, x, err))
			}
		}
	}
}

// childRSS collects and exports rssKeys live series a few times and
// prints the process's peak and current RSS. The peak is reset after the
// map is filled, so it covers the collection path only (plus the Go
// runtime and this binary).
func childRSS(o options, topo aggregator.Topology) error {
	env, node, err := steadyEnv(o.rssKeys, topo, childExporters(o))
	if err != nil {
		return err
	}
	defer env.Close()
	defer node.Close()
	base, _, err := resetPeakRSS()
	if err != nil {
		return err
	}
	const intervals = 5
	for range intervals {
		if _, err := steadyInterval(env, node, childExporters(o)); err != nil {
			return err
		}
	}
	hwm, rss, err := rssKiB()
	if err != nil {
		return err
	}
	if o.memProfile != "" {
		f, err := os.Create(o.memProfile + "." + o.export)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("BenchmarkSteadyRSS/keys=%d/export=%s-%d\t%d\t%.1f VmHWM-MiB\t%.1f VmRSS-MiB\t%.1f baseline-MiB\t%.1f heap-sys-MiB\n",
		o.rssKeys, o.export, runtime.GOMAXPROCS(0), intervals, float64(hwm)/1024, float64(rss)/1024, float64(base)/1024, float64(ms.HeapSys)/(1<<20))
	verdict := "PASS"
	if hwm > 64<<10 {
		verdict = "MISS"
	}
	fmt.Printf("# RSS with %d live series, export %s: peak %.1f MiB (VmHWM over %d collect+export intervals; %.1f MiB before the first), target <= 64 MiB: %s\n",
		o.rssKeys, o.export, float64(hwm)/1024, intervals, float64(base)/1024, verdict)
	return nil
}

// childCPU runs cpuIntervals real intervals of cpuInterval with cpuKeys
// live series and prints the process's CPU time (user + system, every
// thread, getrusage) per interval and as a share of one core.
func childCPU(o options, topo aggregator.Topology) error {
	env, node, err := steadyEnv(o.cpuKeys, topo, childExporters(o))
	if err != nil {
		return err
	}
	defer env.Close()
	defer node.Close()
	ticker := time.NewTicker(o.cpuInterval)
	defer ticker.Stop()
	<-ticker.C // start on a tick: the measured span is exactly cpuIntervals intervals
	before, err := cpuTime()
	if err != nil {
		return err
	}
	t0 := time.Now()
	var busy, touch time.Duration
	for range o.cpuIntervals {
		t := time.Now()
		tt, err := steadyInterval(env, node, childExporters(o))
		if err != nil {
			return err
		}
		busy += time.Since(t)
		touch += tt
		<-ticker.C // the interval's idle time counts too
	}
	wall := time.Since(t0)
	after, err := cpuTime()
	if err != nil {
		return err
	}
	cpu := after - before - touch // the stand-in for the programs is not the agent's
	pct := 100 * cpu.Seconds() / wall.Seconds()
	perInterval := cpu / time.Duration(o.cpuIntervals)
	fmt.Printf("BenchmarkSteadyCPU/keys=%d/interval=%s/export=%s-%d\t%d\t%d ns/op\t%.3f %%core\t%d wall-ns/op\n",
		o.cpuKeys, o.cpuInterval, o.export, runtime.GOMAXPROCS(0), o.cpuIntervals, perInterval.Nanoseconds(), pct, (busy / time.Duration(o.cpuIntervals)).Nanoseconds())
	verdict := "PASS"
	if pct > 1 {
		verdict = "MISS"
	}
	fmt.Printf("# CPU with %d live series at a %s interval, export %s: %.2f ms per interval (user+sys, all threads, idle time included), %.3f%% of one core, target <= 1%%: %s\n",
		o.cpuKeys, o.cpuInterval, o.export, float64(perInterval.Microseconds())/1000, pct, verdict)
	return nil
}

// childExporters is the export stage of a steady-state child.
func childExporters(o options) []string {
	if o.export == "none" {
		return nil
	}
	return []string{o.export}
}

// steadyEnv fills a map and runs one warm-up interval (it builds the
// resolver's and emitter's caches, as an agent's first interval does),
// then gives the setup's garbage back to the kernel.
func steadyEnv(keys int, topo aggregator.Topology, exporters []string) (*readpath.Env, *readpath.Node, error) {
	env, err := readpath.New(keys, topo)
	if err != nil {
		return nil, nil, err
	}
	node, err := env.NewNode()
	if err != nil {
		return nil, nil, errors.Join(err, env.Close())
	}
	if _, err := steadyInterval(env, node, exporters); err != nil {
		return nil, nil, errors.Join(err, node.Close(), env.Close())
	}
	runtime.GC()
	debug.FreeOSMemory()
	return env, node, nil
}

// resetPeakRSS sets VmHWM to the current RSS (/proc/self/clear_refs, 5)
// and returns it.
func resetPeakRSS() (hwm, rss uint64, err error) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, 0, fmt.Errorf("reset peak RSS: %w", err)
	}
	return rssKiB()
}

// rssKiB reads VmHWM and VmRSS from /proc/self/status.
func rssKiB() (hwm, rss uint64, err error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	if hwm == 0 || rss == 0 {
		return 0, 0, errors.New("read RSS: no VmHWM/VmRSS in /proc/self/status")
	}
	return hwm, rss, nil
}

func cpuTime() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
