// Package runconfig checks and resolves the settings that `telagent run`
// and the Collector receiver (collector/receiver/telagentreceiver) share:
// targets, interval, probes, uprobes, breakdowns and the metric sets'
// bounds and memory budget. Both front ends call the same checks, so a bad
// value gets the same message from either; only the option's spelling
// differs ("--interval" on the command line, "interval" in a Collector
// configuration), given by the caller's Spell.
package runconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/all"
	"github.com/telagent/telagent/probes/shared"
	"github.com/telagent/telagent/probes/targets"
	"github.com/telagent/telagent/probes/uprobe"
)

// Error is bad input: one line saying what is wrong and how to fix it.
// `telagent run` exits 2 on it; the receiver's Validate returns it.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errorf(format string, args ...any) error { return &Error{fmt.Sprintf(format, args...)} }

// Spell names an option in messages from its flag name ("interval",
// "syscalls-max-entries").
type Spell func(flag string) string

// Flag spells options as `telagent run` flags: --interval.
func Flag(name string) string { return "--" + name }

// Key spells options as YAML keys: syscalls_max_entries.
func Key(name string) string { return strings.ReplaceAll(name, "-", "_") }

// MinInterval bounds the interval from below: each interval reads every
// metric set and exports one request (one line), so a tiny interval burns
// CPU and disk for nothing (--interval 1ns: 183 % CPU, 1.9 GB of output
// in 6 s). 100 ms still gives tests and stress runs fast intervals.
const MinInterval = 100 * time.Millisecond

// MaxEntriesSets are the metric sets whose bound an option overrides (the
// schema's max_entries_flag: --syscalls-max-entries), in entity.MetricSets'
// order, which is also the order Resolve checks them in.
func MaxEntriesSets() []entity.MetricSetDesc {
	var sets []entity.MetricSetDesc
	for _, s := range entity.MetricSets() {
		if s.Flag != "" {
			sets = append(sets, s)
		}
	}
	return sets
}

// Bounds of the entity-state interval: entity.report.interval is whole
// seconds, and each period announces every tracked process again.
const (
	MinEntityStateInterval = 10 * time.Second
	MaxEntityStateInterval = 24 * time.Hour
)

// Interval checks the collection interval (example: a sensible value).
func Interval(sp Spell, interval time.Duration, example string) error {
	if interval <= 0 {
		return errorf("%s %s: must be positive, e.g. %s", sp("interval"), interval, example)
	}
	if interval < MinInterval {
		return errorf("%s %s: must be at least %s (every interval reads each metric set and exports), e.g. %s", sp("interval"), interval, MinInterval, example)
	}
	return nil
}

// Duration checks how long to run (0: until stopped).
func Duration(sp Spell, d time.Duration) error {
	if d < 0 {
		return errorf("%s %s: must not be negative", sp("duration"), d)
	}
	return nil
}

// Pids parses process ids, each value a comma-separated list, and checks
// that each process exists.
func Pids(sp Spell, vals []string) ([]uint32, error) {
	var pids []uint32
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 31)
			if err != nil || n == 0 {
				return nil, errorf("%s %q: not a process id", sp("pid"), s)
			}
			if _, err := os.Stat("/proc/" + strconv.FormatUint(n, 10)); err != nil {
				return nil, errorf("%s %d: no such process", sp("pid"), n)
			}
			pids = append(pids, uint32(n))
		}
	}
	return pids, nil
}

// Selectors resolves the exe, comm and cgroup selectors. A selector that
// can never match (a missing or non-executable file, a command name longer
// than the kernel keeps, a path that is no cgroup v2 directory) is bad
// input: the run would otherwise observe nothing, silently.
func Selectors(sp Spell, exes, comms, cgroups []string) (targets.Selectors, error) {
	var sel targets.Selectors
	for _, p := range exes {
		if p == "" {
			return sel, errorf("%s empty path: name an executable file, e.g. /usr/sbin/nginx", sp("exe"))
		}
		e, err := targets.ResolveExe(p)
		if err != nil {
			return sel, errorf("%s %s", sp("exe"), DescribePathError(err))
		}
		sel.Exes = append(sel.Exes, e)
	}
	for _, name := range comms {
		if err := targets.CheckComm(name); err != nil {
			return sel, errorf("%s %v", sp("comm"), err)
		}
		sel.Comms = append(sel.Comms, name)
	}
	for _, p := range cgroups {
		cg, err := targets.ResolveCgroup(p, "/proc")
		if err != nil {
			return sel, errorf("%s %s", sp("cgroup"), DescribePathError(err))
		}
		sel.Cgroups = append(sel.Cgroups, cg)
	}
	for _, s := range []struct {
		name string
		n    int
	}{{"exe", len(sel.Exes)}, {"comm", len(sel.Comms)}, {"cgroup", len(sel.Cgroups)}} {
		if s.n > shared.MaxSelectors {
			return sel, errorf("%s: at most %d values", sp(s.name), shared.MaxSelectors)
		}
	}
	return sel, nil
}

// DescribePathError says "PATH: no such file" rather than Go's wording.
func DescribePathError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%v (no such file or directory)", trimErrno(err))
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%v (permission denied)", trimErrno(err))
	}
	return err.Error()
}

// trimErrno drops a trailing ": <errno text>" that DescribePathError
// restates in its own words.
func trimErrno(err error) string {
	s := err.Error()
	if u := errors.Unwrap(err); u != nil {
		if t := ": " + u.Error(); len(s) > len(t) && s[len(s)-len(t):] == t {
			return s[:len(s)-len(t)]
		}
	}
	return s
}

// Uprobes resolves the uprobe BINARY:SYMBOL specs: the file, the symbol's
// offsets, a Go function's RET sites. Any failure (bad syntax, no such
// file or process, a missing symbol with its close matches) is bad input.
// probesSpec and probesSet are the probes option: naming the uprobe probe
// needs functions, and functions need the probe. Attachments are never
// restricted to the pids: a PID-restricted uprobe does not follow fork,
// and targets include their descendants, so the in-kernel target filter
// decides at the first instruction.
func Uprobes(sp Spell, specs []string, probesSpec string, probesSet bool, pids []uint32) ([]uprobe.Function, error) {
	named := slices.ContainsFunc(strings.Split(probesSpec, ","), func(s string) bool {
		return strings.TrimSpace(s) == uprobe.ProbeName
	})
	switch {
	case len(specs) == 0 && probesSet && named:
		return nil, errorf("%s %s: give the functions to probe with %s BINARY:SYMBOL", sp("probes"), uprobe.ProbeName, sp("uprobe"))
	case len(specs) == 0:
		return nil, nil
	case probesSet && !named:
		return nil, errorf("%s needs the %s probe: add it to %s", sp("uprobe"), uprobe.ProbeName, sp("probes"))
	}
	fns, err := uprobe.Resolve(specs, pids)
	if err != nil {
		return nil, errorf("%s %v", sp("uprobe"), err)
	}
	return fns, nil
}

// Breakdown returns the breakdown chosen (on tells whether a breakdown's
// flag is set), nil for none.
func Breakdown(sp Spell, on func(flag string) bool) (*entity.BreakdownDesc, error) {
	var chosen *entity.BreakdownDesc
	for _, b := range entity.Breakdowns() {
		if !on(b.Flag) {
			continue
		}
		if chosen != nil {
			return nil, errorf("%s and %s: choose one breakdown", sp(chosen.Flag), sp(b.Flag))
		}
		chosen = &b
	}
	return chosen, nil
}

// MaxEntries checks a metric set's bound, given by its flag (a
// MaxEntriesSets Flag, e.g. syscalls-max-entries).
func MaxEntries(sp Spell, flag string, v uint) (uint32, error) {
	const most = 1 << 20
	if v < 1 || v > most {
		return 0, errorf("%s %d: must be between 1 and %d", sp(flag), v, most)
	}
	return uint32(v), nil
}

// SelectProbes resolves the probes option. Named probes that this kernel
// cannot run are errors; by default (set false) every probe is returned
// and unsupported ones are skipped by the agent with their reason.
func SelectProbes(sp Spell, known []probes.Probe, spec string, set bool) ([]probes.Probe, error) {
	if !set {
		return known, nil
	}
	var names []string
	for _, p := range known {
		names = append(names, p.Info().Name)
	}
	var out []probes.Probe
	for _, want := range strings.Split(spec, ",") {
		want = strings.TrimSpace(want)
		i := slices.Index(names, want)
		if i < 0 {
			return nil, errorf("%s: unknown probe %q (valid: %s)", sp("probes"), want, strings.Join(names, ", "))
		}
		if !slices.Contains(out, known[i]) {
			out = append(out, known[i])
		}
	}
	return out, nil
}

// PlanStorage sizes every metric set of the selected probes from the
// bpf-memory budget on this host's topology, each weighted by its series
// bound (bounds by set name, the schema's where absent).
func PlanStorage(sp Spell, memory string, selected []probes.Probe, bounds map[string]uint32) (probes.StoragePlan, error) {
	budget, err := ParseBytes(memory)
	if err != nil {
		return probes.StoragePlan{}, errorf("%s %q: %v, e.g. 48MiB", sp("bpf-memory"), memory, err)
	}
	topo, err := aggregator.DiscoverTopology("/sys")
	if err != nil {
		return probes.StoragePlan{}, fmt.Errorf("CPU topology: %w", err)
	}
	var sets []entity.MetricSetDesc
	for _, p := range selected {
		for _, s := range p.Info().Sets {
			if b := bounds[s.Name]; b > 0 {
				s.MaxEntries = b
			}
			sets = append(sets, s)
		}
	}
	plan, err := probes.PlanStorage(budget, sets, topo)
	var small *probes.BudgetError
	if errors.As(err, &small) {
		return plan, errorf("%s %s: too small for the %d metric sets of the selected probes on this host "+
			"(%d possible CPUs, NUMA nodes: %d): they need at least %s; raise it or select fewer probes",
			sp("bpf-memory"), metrics.FormatBytes(float64(budget)), small.Sets, small.PossibleCPUs, small.Nodes, metrics.FormatBytes(float64(small.Need)))
	}
	return plan, err
}

// ParseBytes reads a size: a whole number of bytes with an optional
// binary unit (B, KiB, MiB, GiB, or Ki, Mi, Gi, K, M, G).
func ParseBytes(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, errors.New("not a size")
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil {
		return 0, errors.New("not a size")
	}
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KI": 10, "KIB": 10, "M": 20, "MI": 20, "MIB": 20, "G": 30, "GI": 30, "GIB": 30}
	sh, ok := shift[strings.ToUpper(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (B, KiB, MiB, GiB)", strings.TrimSpace(t[i:]))
	}
	if n > math.MaxUint64>>sh {
		return 0, errors.New("too large")
	}
	if n<<sh == 0 {
		return 0, errors.New("must be positive")
	}
	return n << sh, nil
}

// EntityEvents checks the entity-events switch and its period (set: the
// period was given explicitly).
func EntityEvents(sp Spell, on, set bool, d time.Duration) error {
	if set && !on {
		return errorf("%s %s: only with %s (add %s, or drop the interval)", sp("entity-state-interval"), d, sp("entity-events"), sp("entity-events"))
	}
	if d < MinEntityStateInterval || d > MaxEntityStateInterval || d%time.Second != 0 {
		return errorf("%s %s: must be whole seconds from 10s to 24h (entity.report.interval is in seconds), e.g. 5m", sp("entity-state-interval"), d)
	}
	return nil
}

// Options are the shared settings as given, before any check.
type Options struct {
	Interval        time.Duration
	IntervalExample string // a sensible interval for the messages, e.g. 10s
	Duration        time.Duration
	Pids            []string
	Exes, Comms     []string
	Cgroups         []string
	Uprobes         []string
	// Probes is the comma-separated probe list; ProbesSet says it was given.
	Probes    string
	ProbesSet bool
	// MaxEntries by flag name (MaxEntriesSets' Flag); absent or 0 is
	// checked as 0 (out of range): callers fill in the sets' MaxEntries.
	MaxEntries map[string]uint
	BPFMemory  string
	// Breakdowns: the breakdown flags set (entity.Breakdowns' Flag).
	Breakdowns          map[string]bool
	ForkEvents          bool
	CommandArgs         bool
	EntityEvents        bool
	EntityStateInterval time.Duration
	// EntityStateIntervalSet says the period was given explicitly.
	EntityStateIntervalSet bool
}

// Settings are checked Options, ready for agent.Config.
type Settings struct {
	Interval            time.Duration
	Duration            time.Duration
	Pids                []uint32
	Selectors           targets.Selectors
	Probes              []probes.Probe
	Breakdown           *entity.BreakdownDesc
	Storage             probes.StoragePlan
	EntityEvents        bool
	EntityStateInterval time.Duration
}

// Resolve checks every option, in the order `telagent run` always has
// (the first bad one is reported), and builds the probes.
func Resolve(sp Spell, o Options) (Settings, error) {
	var s Settings
	if err := Interval(sp, o.Interval, o.IntervalExample); err != nil {
		return s, err
	}
	if err := Duration(sp, o.Duration); err != nil {
		return s, err
	}
	s.Interval, s.Duration = o.Interval, o.Duration
	var err error
	if s.Pids, err = Pids(sp, o.Pids); err != nil {
		return s, err
	}
	if s.Selectors, err = Selectors(sp, o.Exes, o.Comms, o.Cgroups); err != nil {
		return s, err
	}
	fns, err := Uprobes(sp, o.Uprobes, o.Probes, o.ProbesSet, s.Pids)
	if err != nil {
		return s, err
	}
	if s.Breakdown, err = Breakdown(sp, func(f string) bool { return o.Breakdowns[f] }); err != nil {
		return s, err
	}
	sets := map[string]uint32{} // bound by set name
	for _, set := range MaxEntriesSets() {
		if sets[set.Name], err = MaxEntries(sp, set.Flag, o.MaxEntries[set.Flag]); err != nil {
			return s, err
		}
	}
	if s.Probes, err = SelectProbes(sp, all.New(all.Options{MaxEntries: sets,
		ForkEvents: o.ForkEvents, CommandArgs: o.CommandArgs, Uprobes: fns}), o.Probes, o.ProbesSet); err != nil {
		return s, err
	}
	if s.Storage, err = PlanStorage(sp, o.BPFMemory, s.Probes, sets); err != nil {
		return s, err
	}
	if err := EntityEvents(sp, o.EntityEvents, o.EntityStateIntervalSet, o.EntityStateInterval); err != nil {
		return s, err
	}
	s.EntityEvents, s.EntityStateInterval = o.EntityEvents, o.EntityStateInterval
	return s, nil
}
