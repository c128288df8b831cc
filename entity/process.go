package entity

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat starttime. It is 100 on
// every architecture Linux supports from user space.
const clockTicks = 100

// ProcessResolver turns a pid seen in a BPF key into the process entity's
// OTLP Resource. Results are cached per pid and revalidated once per
// generation by the process's start time, so a reused pid yields a new
// entity and a process that has exited keeps the identity it was seen with.
type ProcessResolver struct {
	procRoot string
	bootTime time.Time
	host     []attribute.KeyValue
	hostRes  *resource.Resource

	gen   uint64
	final bool // FinalGeneration: nothing is deferred
	cache map[uint32]*processEntry
	buf   []byte // a stat file, read by startTicks
	path  []byte // its path, NUL-terminated

	// ExitEvents is set when exit events mark exited processes
	// (MarkExited, process_exit.go); see deferred.
	ExitEvents bool

	// Kernel, when set, answers for processes that are gone from /proc:
	// their start time (in /proc clock ticks) and command name as the BPF
	// side recorded them.
	Kernel func(pid uint32) (startTicks uint64, comm string, ok bool)

	// Discovered, when set, is called with each process the resolver
	// describes from /proc (alive, its identity whole), once per process,
	// when it is first resolved: the agent announces it (entity.state).
	Discovered func(pid uint32, startTicks uint64, res *resource.Resource)
}

type processEntry struct {
	startTicks uint64
	// res is the process's Resource; nil when its identity is incomplete
	// (gone before /proc was read and unknown to the kernel's record: no
	// creation time), and then its data belongs to the host.
	res      *resource.Resource
	checked  uint64 // generation of the last /proc check
	lastUsed uint64
	alive    bool   // /proc had it at the last check
	created  uint64 // generation the entry was made in (process_exit.go)
}

// NewProcessResolver reads the boot time from procRoot/stat (procRoot is
// normally "/proc") and attaches host to every process resource.
func NewProcessResolver(procRoot string, host []attribute.KeyValue) (*ProcessResolver, error) {
	bt, err := readBootTime(procRoot)
	if err != nil {
		return nil, err
	}
	return &ProcessResolver{
		procRoot: procRoot, bootTime: bt, host: host, hostRes: resource.NewWithAttributes(SchemaURL, host...),
		cache: make(map[uint32]*processEntry),
	}, nil
}

// Host returns the resource for data that belongs to no process (for
// example the overflow series): host attributes only.
func (r *ProcessResolver) Host() *resource.Resource { return r.hostRes }

// NextGeneration starts a collection interval: every pid is revalidated
// against /proc at most once per generation, and entries not used for
// keepGenerations are forgotten.
func (r *ProcessResolver) NextGeneration(keepGenerations uint64) {
	r.gen++
	for pid, e := range r.cache {
		if r.gen-e.lastUsed > keepGenerations {
			delete(r.cache, pid)
		}
	}
}

// Process returns the resource of pid. A process that is gone is resolved
// from the cache. One whose identity cannot be obtained (never seen alive
// and unknown to the kernel's record: its creation time is unknowable)
// gets the host Resource, never a process.pid alone (an incomplete
// identity names no entity); Identified then reports false, and a metric
// set folds its series into the host's overflow series
// (probes.ProcessSet.Collect).
func (r *ProcessResolver) Process(pid uint32) *resource.Resource {
	e := r.resolve(pid)
	if e.res == nil {
		return r.hostRes
	}
	return e.res
}

// Identified reports whether pid, as resolved by Process in this
// generation, has its whole identity (process.pid and
// process.creation.time) and so its own Resource. False for a pid not
// resolved in this generation.
func (r *ProcessResolver) Identified(pid uint32) bool {
	e := r.cache[pid]
	return e != nil && e.checked == r.gen && e.res != nil
}

func (r *ProcessResolver) resolve(pid uint32) *processEntry {
	e := r.cache[pid]
	if e != nil && e.checked == r.gen {
		e.lastUsed = r.gen
		return e
	}
	start, ok := r.startTicks(pid)
	switch {
	case e != nil && e.res != nil && ok && start == e.startTicks:
		e.alive = true // the same process
	case e != nil && e.alive:
		// Gone, or replaced by a new process since the last check: this
		// interval's points are the old process's final ones (the keys are
		// then evicted); the new process is described from the next one.
		e.alive = false
	case ok:
		e = &processEntry{startTicks: start, res: r.describe(pid, start), alive: true}
		r.cache[pid] = e
		if r.Discovered != nil {
			r.Discovered(pid, start, e.res)
		}
	default:
		// Not in /proc. Still the process last seen, unless the kernel's
		// record says the pid has had a new owner since, gone already too.
		// One not identified yet is looked up again: the kernel may know
		// it now.
		k := r.kernelRecord(pid)
		if e == nil || k.ok && (e.res == nil || k.start != e.startTicks) {
			e = &processEntry{startTicks: k.start, res: r.describeGone(pid, k), created: r.gen}
			r.cache[pid] = e
		}
	}
	e.checked, e.lastUsed = r.gen, r.gen
	return e
}

// Gone reports whether pid was found exited (or replaced by a new process
// with the same pid) when it was resolved in this generation. Its data
// points of this interval are its final ones.
func (r *ProcessResolver) Gone(pid uint32) bool {
	e := r.cache[pid]
	return e != nil && e.checked == r.gen && !e.alive && !r.deferred(e)
}

// CreationTime is the ISO 8601 creation time of a process whose
// /proc/<pid>/stat starttime is startTicks: boot time plus ticks. It is the
// same in every agent run for the life of the process.
func (r *ProcessResolver) CreationTime(startTicks uint64) string {
	t := r.bootTime.Add(time.Duration(startTicks) * (time.Second / clockTicks))
	return t.UTC().Format(time.RFC3339Nano)
}

func (r *ProcessResolver) describe(pid uint32, start uint64) *resource.Resource {
	dir := filepath.Join(r.procRoot, strconv.FormatUint(uint64(pid), 10))
	desc := appendDescription(nil, dir)
	// container.id and k8s.pod.uid, when the process runs in a container:
	// read once per process like the rest of its description (a process
	// stays in the container it was started in).
	if cg, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		desc = append(desc, ParseCgroup(cg).Attributes()...)
	}
	return ProcessResource(r.host, pid, r.CreationTime(start), desc...)
}

// appendDescription appends what describes the live process of dir (a
// process directory of /proc): process.executable.name and
// process.command. semconv: the executable name is the base name of
// /proc/<pid>/exe's target, not comm (15 bytes the process may set
// itself); a process without an executable (a kernel thread) or whose exe
// cannot be read has none.
func appendDescription(attrs []attribute.KeyValue, dir string) []attribute.KeyValue {
	if name, ok := exeName(dir); ok {
		attrs = append(attrs, AttrProcessExecutableName.String(name))
	}
	if cmd, err := readHead(filepath.Join(dir, "cmdline"), maxCommandLen+1); err == nil && len(cmd) > 0 {
		attrs = append(attrs, AttrProcessCommand.String(commandOf(cmd)))
	}
	return attrs
}

// DescribeLive returns the descriptive attributes of the process (pid,
// startTicks) as its Resource would carry them if it were described now
// (process.executable.name, process.command), read from procRoot; false
// when that process is gone (the pid is free or has a new owner). The
// start time is checked before and after the read, so a description is
// never a reused pid's.
func DescribeLive(procRoot string, pid uint32, startTicks uint64) ([]attribute.KeyValue, bool) {
	same := func() bool {
		v, ok := StartTicks(procRoot, pid)
		return ok && v == startTicks
	}
	if !same() {
		return nil, false
	}
	attrs := appendDescription(nil, filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10)))
	return attrs, same()
}

// StartTicks is /proc/<pid>/stat's start time of pid (clock ticks since
// boot), read from procRoot; false when the pid has no process.
func StartTicks(procRoot string, pid uint32) (uint64, bool) {
	stat, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "stat"))
	if err != nil {
		return 0, false
	}
	v, err := ParseStartTicks(stat)
	return v, err == nil
}

// kernelProcess is what the kernel recorded of a pid's process.
type kernelProcess struct {
	start uint64
	comm  string
	ok    bool
}

func (r *ProcessResolver) kernelRecord(pid uint32) kernelProcess {
	if r.Kernel == nil {
		return kernelProcess{}
	}
	start, comm, ok := r.Kernel(pid)
	return kernelProcess{start, comm, ok}
}

// exeName is the base name of the target of dir/exe (a process directory
// of /proc), without the " (deleted)" the kernel appends when the file was
// removed since the exec.
func exeName(dir string) (string, bool) {
	target, err := os.Readlink(filepath.Join(dir, "exe"))
	if err != nil || target == "" {
		return "", false
	}
	base := filepath.Base(strings.TrimSuffix(target, " (deleted)"))
	if base == "/" || base == "." {
		return "", false
	}
	return kernelString([]byte(base), maxExeNameLen), true
}

// describeGone is the identity of a process that exited before /proc was
// read, from the kernel's record; nil without one (the pid alone is an
// incomplete identity: its data goes to the host). Its
// process.executable.name is then the kernel's command name (comm, at
// most 15 bytes, which the process may have changed): /proc/<pid>/exe is
// gone with the process (schema/model/entities.yaml says so).
func (r *ProcessResolver) describeGone(pid uint32, k kernelProcess) *resource.Resource {
	if !k.ok {
		return nil
	}
	return r.describeExited(pid, k.start, k.comm)
}

// commandOf is argv[0] of a NUL-separated cmdline: semconv's process.command
// is the command without its arguments (those are unbounded and may hold
// secrets), cut at PATH_MAX.
func commandOf(cmdline []byte) string {
	return kernelString(cmdline, maxCommandLen)
}

// startTicks reads field 22 of /proc/<pid>/stat. The comm field may contain
// spaces and parentheses, so fields are counted after the last ')'.
func (r *ProcessResolver) startTicks(pid uint32) (uint64, bool) {
	// Every live process is revalidated every interval: the path is built
	// in a reused buffer and the file read with raw syscalls into another,
	// so that a steady state allocates nothing per process.
	p := append(append(r.path[:0], r.procRoot...), '/')
	p = strconv.AppendUint(p, uint64(pid), 10)
	r.path = append(p, "/stat\x00"...)
	if r.buf == nil {
		r.buf = make([]byte, 1024)
	}
	n, err := readInto(r.path, r.buf)
	if err != nil || n == 0 {
		return 0, false
	}
	v, err := ParseStartTicks(r.buf[:n])
	return v, err == nil
}

// readInto reads the start of the file at path (NUL-terminated) into buf
// without allocating (os.Open allocates a File and a C string).
func readInto(path, buf []byte) (int, error) {
	dirfd := unix.AT_FDCWD
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])),
		uintptr(unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	n, err := unix.Read(int(fd), buf)
	_ = unix.Close(int(fd))
	return n, err
}

// ParseStartTicks extracts starttime (field 22) from a /proc/<pid>/stat line.
func ParseStartTicks(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no comm terminator")
	}
	// The first field after comm is field 3 (state); starttime is field
	// 22. Scanned in place: bytes.Fields would allocate on every
	// revalidation.
	const idx = 22 - 3
	rest := stat[i+1:]
	for n := 0; ; n++ {
		rest = bytes.TrimLeft(rest, " \t\n")
		if len(rest) == 0 {
			return 0, fmt.Errorf("stat: %d fields after comm, want > %d", n, idx)
		}
		end := bytes.IndexAny(rest, " \t\n")
		if end < 0 {
			end = len(rest)
		}
		if n == idx {
			return strconv.ParseUint(string(rest[:end]), 10, 64)
		}
		rest = rest[end:]
	}
}

func readBootTime(procRoot string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return time.Time{}, fmt.Errorf("boot time: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("boot time: %w", err)
			}
			return time.Unix(secs, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("boot time: no btime in %s/stat", procRoot)
}
