// Package blockio is the blockio probe: bytes, operations, device time and
// queue time of block read and write requests per (process, disk,
// direction), from the block request tracepoints.
package blockio

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type blockio_key -type blockio_entry_key -type blockio_value -type inflight blockio ../../bpf/blockio.bpf.c -- -I../../bpf/include

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// ProbeName is the probe's name on the command line.
const ProbeName = "blockio"

var set = entity.MetricSetBlockio

// Defaults of Config.
const (
	// DefaultInflightMaxEntries bounds the requests followed at once, host
	// wide. Requests in flight are bounded by the queues' tags (a few
	// hundred per busy device), so this is room for dozens of busy disks.
	DefaultInflightMaxEntries = 16384
	// DefaultMaxAge is how long a request may stay in flight before it
	// counts as lost: well above the block layer's default timeout (30 s)
	// with the SCSI/NVMe retries.
	DefaultMaxAge = 5 * time.Minute
)

// Drop reasons: the first three are the indexes of the BPF blockio_drops
// array; missed is the programs' recursion misses, read from the kernel.
var dropReasons = [...]string{"expired", "table_full", "unmatched", "missed"}

const (
	dropExpired = 0
	dropMissed  = 3
	bpfReasons  = 3
)

// tracepoints in the order of the objects' programs.
var tracepoints = []string{"block_rq_insert", "block_rq_issue", "block_rq_complete", "block_rq_merge", "block_rq_requeue"}

// Config tunes the probe.
type Config struct {
	// MaxEntries bounds the (process, disk, direction) keys; more go into
	// the overflow series. 0 means the schema's default.
	MaxEntries uint32
	// InflightMaxEntries bounds the in-flight table; 0 means
	// DefaultInflightMaxEntries.
	InflightMaxEntries uint32
	// MaxAge is the age after which an in-flight request counts as lost and
	// is removed; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// Attach forces "tp_btf" or "raw_tp"; empty tries tp_btf first.
	Attach string
	// SysRoot is where sysfs is mounted (device names); empty means /sys.
	SysRoot string
}

// Probe implements probes.Probe.
type Probe struct {
	cfg    Config
	maxAge time.Duration
	objs   objects
	links  []link.Link
	attach string

	stats   *probes.ProcessSet[blockioBlockioKey, blockioBlockioEntryKey, blockioBlockioValue]
	devices *deviceNames
	attrs   map[blockioBlockioKey]keyAttrs // per (dev, direction); tgid 0
	aged    uint64                         // entries the agent aged out
	drops   [len(dropReasons)]uint64       // last read, BPF + aged
	dropBuf []uint64
	dropSet [len(dropReasons)]attribute.Set
}

// keyAttrs is a key's data-point attributes for the device name they were
// built with.
type keyAttrs struct {
	name string
	set  attribute.Set
}

// objects is the bpf2go collection subset of the tp_btf variant; loading
// only these leaves the raw_tp programs unverified and unloaded.
type objects struct {
	Insert   *ebpf.Program `ebpf:"block_rq_insert"`
	Issue    *ebpf.Program `ebpf:"block_rq_issue"`
	Complete *ebpf.Program `ebpf:"block_rq_complete"`
	Merge    *ebpf.Program `ebpf:"block_rq_merge"`
	Requeue  *ebpf.Program `ebpf:"block_rq_requeue"`
	Inflight *ebpf.Map     `ebpf:"blockio_inflight"`
	Drops    *ebpf.Map     `ebpf:"blockio_drops"`
}

// rawObjects is the same for the raw_tp fallback.
type rawObjects struct {
	Insert   *ebpf.Program `ebpf:"raw_block_rq_insert"`
	Issue    *ebpf.Program `ebpf:"raw_block_rq_issue"`
	Complete *ebpf.Program `ebpf:"raw_block_rq_complete"`
	Merge    *ebpf.Program `ebpf:"raw_block_rq_merge"`
	Requeue  *ebpf.Program `ebpf:"raw_block_rq_requeue"`
	Inflight *ebpf.Map     `ebpf:"blockio_inflight"`
	Drops    *ebpf.Map     `ebpf:"blockio_drops"`
}

// New returns the probe; nothing is loaded until Start.
func New(cfg Config) *Probe { return &Probe{cfg: cfg} }

// Info implements probes.Probe.
func (p *Probe) Info() probes.Info {
	return probes.Info{
		Name:     ProbeName,
		Measures: "block read/write requests per process, disk and direction: bytes, operations, device time (issue → completion), queue time (insert → issue)",
		Hooks:    "tracepoints block:block_rq_insert, block_rq_issue, block_rq_complete, block_rq_merge, block_rq_requeue (tp_btf, raw_tp fallback)",
		Requires: "BTF (/sys/kernel/btf/vmlinux) with the block_rq_* tracepoints",
		Metrics: []string{entity.MetricProcessDiskIO.Name, entity.MetricProcessDiskOperations.Name,
			entity.MetricTelagentDiskOperationDuration.Name, entity.MetricTelagentDiskQueueDuration.Name,
			entity.MetricTelagentDiskRequestDrops.Name},
		Sets: []entity.MetricSetDesc{set},
	}
}

// Supported implements probes.Probe.
func (p *Probe) Supported() error {
	if err := probes.RequireBTF(); err != nil {
		return err
	}
	if err := probes.RequireStorage(); err != nil {
		return err
	}
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("load kernel BTF: %w", err)
	}
	for _, tp := range tracepoints {
		var typ *btf.Typedef
		if err := kernel.TypeByName("btf_trace_"+tp, &typ); err != nil {
			return fmt.Errorf("tracepoint block:%s missing from the kernel's BTF (no CONFIG_BLOCK?)", tp)
		}
	}
	return nil
}

// Start implements probes.Probe: create the metric set's storage, load, attach.
func (p *Probe) Start(_ context.Context, env probes.Env) error {
	spec, err := loadBlockio()
	if err != nil {
		return fmt.Errorf("load blockio spec: %w", err)
	}
	inflight := p.cfg.InflightMaxEntries
	if inflight == 0 {
		inflight = DefaultInflightMaxEntries
	}
	p.maxAge = p.cfg.MaxAge
	if p.maxAge <= 0 {
		p.maxAge = DefaultMaxAge
	}
	spec.Maps["blockio_inflight"].MaxEntries = inflight
	if err := spec.Variables["max_age_ns"].Set(uint64(p.maxAge.Nanoseconds())); err != nil {
		return fmt.Errorf("set blockio max age: %w", err)
	}
	p.devices = newDeviceNames(p.cfg.SysRoot)
	p.attrs = map[blockioBlockioKey]keyAttrs{}
	p.stats, err = probes.NewProcessSet[blockioBlockioKey, blockioBlockioEntryKey, blockioBlockioValue](spec, set, env, p.cfg.MaxEntries,
		probes.SetKeys[blockioBlockioKey]{Owner: func(k blockioBlockioKey) (uint32, bool) { return k.Tgid, true }, Attrs: p.keyAttrs})
	if err != nil {
		return err
	}
	opts, err := env.CollectionOptions(spec, p.stats)
	if err != nil {
		p.Close()
		return err
	}
	if err := p.loadAndAttach(spec, opts); err != nil {
		p.Close()
		return err
	}
	p.dropBuf = make([]uint64, env.Topology.PossibleCPUs)
	for i, r := range dropReasons {
		p.dropSet[i] = attribute.NewSet(entity.AttrTelagentDiskRequestDropReason.String(r))
	}
	return nil
}

// loadAndAttach prefers the tp_btf programs (typed arguments, direct reads, the
// issuer's identity recorded at completion where the kernel has
// bpf_task_from_pid, 6.2+) and falls back to raw_tp where they do not load
// or attach.
func (p *Probe) loadAndAttach(spec *ebpf.CollectionSpec, opts *ebpf.CollectionOptions) (err error) {
	var raw rawObjects
	p.attach, err = probes.LoadAndAttach("blockio", spec, opts, &p.links, p.cfg.Attach,
		probes.Variant{Name: "tp_btf", Objects: &p.objs, Attach: func(links *[]link.Link) error {
			return probes.AttachTracing(links, p.programs()...)
		}},
		probes.Variant{Name: "raw_tp", Objects: &raw, Attach: func(links *[]link.Link) error {
			p.objs = objects(raw)
			if err := probes.AttachRawTracepoints(links, tracepoints, p.programs()...); err != nil {
				p.objs = objects{}
				return err
			}
			return nil
		}})
	return err
}

// keyAttrs returns the data-point attributes of k: the disk's name and
// the direction. Names are resolved once per Collect per disk (a major:minor
// can be reused by another disk after a removal), sets are built only when
// a name changes.
func (p *Probe) keyAttrs(k blockioBlockioKey) attribute.Set {
	id := blockioBlockioKey{Dev: k.Dev, Direction: k.Direction}
	name := p.devices.name(k.Dev)
	a, ok := p.attrs[id]
	if !ok || a.name != name {
		dir := "read"
		if k.Direction == 1 {
			dir = "write"
		}
		a = keyAttrs{name: name, set: attribute.NewSet(entity.AttrSystemDevice.String(name), entity.AttrDiskIODirection.String(dir))}
		p.attrs[id] = a
	}
	return a.set
}

// Collect implements probes.Probe: one read of the metric set, the aging
// of the in-flight table and the drop counters.
func (p *Probe) Collect(_ context.Context, c *probes.Collection) error {
	p.devices.nextGeneration()
	if err := p.stats.Collect(c); err != nil {
		return err
	}
	n, err := p.age(monotonicNow())
	p.aged += n
	if err != nil {
		return err
	}
	if err := p.readDrops(); err != nil {
		return err
	}
	host := c.Processes.Host()
	for i := range dropReasons {
		c.Metrics.Counter(host, entity.MetricTelagentDiskRequestDrops, p.dropSet[i], int64(p.drops[i]))
	}
	return nil
}

// readDrops sums the BPF drop counters over CPUs and adds the agent's own.
func (p *Probe) readDrops() error {
	for i := range bpfReasons {
		if err := p.objs.Drops.Lookup(uint32(i), p.dropBuf); err != nil {
			return fmt.Errorf("read blockio drops: %w", err)
		}
		var n uint64
		for _, v := range p.dropBuf {
			n += v
		}
		p.drops[i] = n
	}
	p.drops[dropExpired] += p.aged
	p.drops[dropMissed] = 0
	for _, prog := range p.programs() {
		st, err := prog.Stats()
		if err != nil {
			return fmt.Errorf("read blockio program stats: %w", err)
		}
		p.drops[dropMissed] += st.RecursionMisses
	}
	return nil
}

// programs are the attached programs, in the order of tracepoints.
func (p *Probe) programs() []*ebpf.Program {
	return []*ebpf.Program{p.objs.Insert, p.objs.Issue, p.objs.Complete, p.objs.Merge, p.objs.Requeue}
}

// monotonicNow is CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns().
func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for this clock
	return uint64(ts.Nano())
}

// age removes the in-flight entries whose last insert or issue is older
// than the maximum age at now and returns how many it removed. The table is
// small (requests in flight), so one iteration per interval is cheap. An
// entry is taken out with lookup-and-delete; if what came out is recent,
// the request completed and its address was reused between the iteration
// and the delete, so it is put back.
func (p *Probe) age(now uint64) (uint64, error) {
	maxAge := uint64(p.maxAge.Nanoseconds())
	stale := func(v *blockioInflight) bool {
		last := v.IssueNs
		if last == 0 {
			last = v.InsertNs
		}
		return now > last && now-last > maxAge
	}
	var (
		key  uint64
		val  blockioInflight
		old  []uint64
		aged uint64
	)
	it := p.objs.Inflight.Iterate()
	for it.Next(&key, &val) {
		if stale(&val) {
			old = append(old, key)
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("iterate blockio in-flight table: %w", err)
	}
	for _, k := range old {
		if err := p.objs.Inflight.LookupAndDelete(k, &val); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue // completed meanwhile
			}
			return aged, fmt.Errorf("age blockio in-flight table: %w", err)
		}
		if !stale(&val) {
			// Reused since: put it back unless its request is already done.
			if err := p.objs.Inflight.Update(k, &val, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
				return aged, fmt.Errorf("restore blockio in-flight entry: %w", err)
			}
			continue
		}
		aged++
	}
	return aged, nil
}

// Evict implements probes.Probe: keys of exited processes go after their
// final values were exported.
func (p *Probe) Evict() error { return p.stats.Evict() }

// Stats implements probes.Probe.
func (p *Probe) Stats() probes.Stats {
	st := probes.Stats{Attach: p.attach}
	if p.stats != nil {
		st.MetricSets = []probes.MetricSetStats{p.stats.Stats()}
	}
	return st
}

// Close implements probes.Probe: detach first so nothing writes into maps
// being freed, then release every kernel object.
func (p *Probe) Close() error {
	errs := []error{probes.CloseLinks(p.links)}
	p.links = nil
	errs = append(errs, p.stats.Close())
	p.stats = nil
	// Closing a nil program or map is a no-op: Close after a failed Start is fine.
	errs = append(errs, p.objs.Insert.Close(), p.objs.Issue.Close(), p.objs.Complete.Close(), p.objs.Merge.Close(), p.objs.Requeue.Close(),
		p.objs.Inflight.Close(), p.objs.Drops.Close())
	p.objs = objects{}
	return errors.Join(errs...)
}

// deviceNames resolves disk numbers to kernel names through sysfs: the
// /sys/dev/block/MAJOR:MINOR symlink ends in the name (.../block/sda,
// .../block/loop0). Each number is resolved at most once per generation
// (one Collect); a number that no longer resolves keeps its last name, and
// one never resolved is exported as "MAJOR:MINOR".
type deviceNames struct {
	root  string
	gen   uint64
	names map[uint32]deviceName
}

type deviceName struct {
	name string
	gen  uint64
}

func newDeviceNames(sysRoot string) *deviceNames {
	if sysRoot == "" {
		sysRoot = "/sys"
	}
	return &deviceNames{root: sysRoot, names: map[uint32]deviceName{}}
}

func (d *deviceNames) nextGeneration() { d.gen++ }

// devNumber is "MAJOR:MINOR" of the kernel's dev_t encoding (major << 20 | minor).
func devNumber(dev uint32) string {
	return strconv.FormatUint(uint64(dev>>20), 10) + ":" + strconv.FormatUint(uint64(dev&0xfffff), 10)
}

func (d *deviceNames) name(dev uint32) string {
	n, ok := d.names[dev]
	if ok && n.gen == d.gen {
		return n.name
	}
	target, err := os.Readlink(filepath.Join(d.root, "dev", "block", devNumber(dev)))
	switch {
	case err == nil:
		n.name = filepath.Base(target)
	case !ok:
		n.name = devNumber(dev)
	}
	n.gen = d.gen
	d.names[dev] = n
	return n.name
}
