package telagentreceiver

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/internal/agent"
	"github.com/telagent/telagent/internal/runconfig"
	"github.com/telagent/telagent/probes"
)

// Config mirrors `telagent run`'s options: each key is the flag's long
// name with '_' for '-' (--syscalls-max-entries: syscalls_max_entries),
// and Validate runs the command's own checks (internal/runconfig), so a
// bad value gets the command's message with the key's spelling. What
// the Collector does itself is not here: where the data goes (the
// pipeline's exporters), resource attributes (processors), the command
// to start (the Collector starts none).
type Config struct {
	// Probes to run (default: every probe this kernel supports).
	Probes []string `mapstructure:"probes"`
	// Targets: processes by pid, executable, command name or cgroup v2
	// directory, each with its descendants. None: the whole host.
	Pid    []int    `mapstructure:"pid"`
	Exe    []string `mapstructure:"exe"`
	Comm   []string `mapstructure:"comm"`
	Cgroup []string `mapstructure:"cgroup"`
	// Uprobe functions, BINARY:SYMBOL (the uprobe probe).
	Uprobe []string `mapstructure:"uprobe"`

	ProcessCommandArgs bool `mapstructure:"process_command_args"`
	ForkEvents         bool `mapstructure:"fork_events"`
	EntityEvents       bool `mapstructure:"entity_events"`
	// EntityStateInterval: nil is the default period (5m); set without
	// entity_events it is an error, as on the command line.
	EntityStateInterval *time.Duration `mapstructure:"entity_state_interval"`

	// ResourceAttributes are added to every Resource the receiver sends,
	// the host's and each process's, as OTEL_RESOURCE_ATTRIBUTES does for
	// `telagent run`: node-wide attributes such as k8s.node.name (a
	// process's pod comes from its cgroup and the k8sattributes processor).
	ResourceAttributes map[string]string `mapstructure:"resource_attributes"`

	// Interval of collection and of the metrics sent down the pipeline.
	Interval time.Duration `mapstructure:"interval"`

	// Bounds of the metric sets (the schema's max_entries_flag keys;
	// defaults: its max_entries).
	SyscallsMaxEntries uint   `mapstructure:"syscalls_max_entries"`
	SchedMaxEntries    uint   `mapstructure:"sched_max_entries"`
	MemoryMaxEntries   uint   `mapstructure:"memory_max_entries"`
	BlockioMaxEntries  uint   `mapstructure:"blockio_max_entries"`
	TCPMaxEntries      uint   `mapstructure:"tcp_max_entries"`
	BPFMemory          string `mapstructure:"bpf_memory"`

	// Breakdowns (the schema's; one at most), as --numa-breakdown and
	// --cpu-breakdown. config_test.go checks there is a key for each.
	NUMABreakdown bool `mapstructure:"numa_breakdown"`
	CPUBreakdown  bool `mapstructure:"cpu_breakdown"`
}

func createDefaultConfig() *Config {
	cfg := &Config{
		Interval:  10 * time.Second,
		BPFMemory: fmt.Sprintf("%dMiB", probes.DefaultBPFMemory>>20),
	}
	for _, set := range runconfig.MaxEntriesSets() {
		if f := cfg.maxEntries(set.Flag); f != nil {
			*f = uint(set.MaxEntries)
		}
	}
	return cfg
}

// maxEntries is the field whose key is flag's (syscalls-max-entries:
// syscalls_max_entries), nil if Config has none (config_test.go checks
// every flag has one).
func (cfg *Config) maxEntries(flag string) *uint {
	v := reflect.ValueOf(cfg).Elem()
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("mapstructure") == runconfig.Key(flag) {
			if p, ok := v.Field(i).Addr().Interface().(*uint); ok {
				return p
			}
		}
	}
	return nil
}

// options are the settings as runconfig takes them.
func (cfg *Config) options() runconfig.Options {
	o := runconfig.Options{
		Interval: cfg.Interval, IntervalExample: "10s",
		Exes: cfg.Exe, Comms: cfg.Comm, Cgroups: cfg.Cgroup, Uprobes: cfg.Uprobe,
		Probes: strings.Join(cfg.Probes, ","), ProbesSet: cfg.Probes != nil,
		MaxEntries: map[string]uint{},
		BPFMemory:  cfg.BPFMemory,
		Breakdowns: map[string]bool{"numa-breakdown": cfg.NUMABreakdown, "cpu-breakdown": cfg.CPUBreakdown},
		ForkEvents: cfg.ForkEvents, CommandArgs: cfg.ProcessCommandArgs,
		EntityEvents: cfg.EntityEvents, EntityStateInterval: agent.DefaultEntityStateInterval,
	}
	for _, set := range runconfig.MaxEntriesSets() {
		if f := cfg.maxEntries(set.Flag); f != nil {
			o.MaxEntries[set.Flag] = *f
		}
	}
	for _, p := range cfg.Pid {
		o.Pids = append(o.Pids, strconv.Itoa(p))
	}
	if cfg.EntityStateInterval != nil {
		o.EntityStateInterval, o.EntityStateIntervalSet = *cfg.EntityStateInterval, true
	}
	return o
}

// Validate runs `telagent run`'s checks: the first bad setting, one line.
func (cfg *Config) Validate() error {
	if _, err := runconfig.Resolve(runconfig.Key, cfg.options()); err != nil {
		return err
	}
	if _, ok := cfg.ResourceAttributes[""]; ok {
		return &runconfig.Error{Msg: "resource_attributes: an attribute with an empty name; name it, e.g. k8s.node.name"}
	}
	return nil
}

// resourceAttributes are ResourceAttributes in name order.
func (cfg *Config) resourceAttributes() []attribute.KeyValue {
	var kvs []attribute.KeyValue
	for _, k := range slices.Sorted(maps.Keys(cfg.ResourceAttributes)) {
		kvs = append(kvs, attribute.String(k, cfg.ResourceAttributes[k]))
	}
	return kvs
}
