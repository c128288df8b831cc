package telagentreceiver

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/runconfig"
)

// unmarshal decodes a configuration the way the Collector does (confmap
// over the default config).
func unmarshal(t *testing.T, m map[string]any) *Config {
	t.Helper()
	cfg := createDefaultConfig()
	if err := confmap.NewFromStringMap(m).Unmarshal(cfg); err != nil {
		t.Fatalf("unmarshal %v: %v", m, err)
	}
	return cfg
}

func TestDefaultConfigValid(t *testing.T) {
	if err := createDefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}

// A bad setting is one line, `telagent run`'s message with the key's
// spelling; the first bad setting in run's order is the one reported.
func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		conf map[string]any
		want string
	}{
		{map[string]any{"interval": "50ms"}, "interval 50ms: must be at least 100ms (every interval reads each metric set and exports), e.g. 10s"},
		{map[string]any{"interval": "50ms", "syscalls_max_entries": 0}, "interval 50ms: must be at least 100ms (every interval reads each metric set and exports), e.g. 10s"},
		{map[string]any{"syscalls_max_entries": 0}, "syscalls_max_entries 0: must be between 1 and 1048576"},
		{map[string]any{"pid": []any{0}}, `pid "0": not a process id`},
		{map[string]any{"probes": []any{"syscalls", "nope"}}, `probes: unknown probe "nope" (valid: syscalls, sched, memory, process, uprobe, blockio, tcp)`},
		{map[string]any{"probes": []any{"uprobe"}}, "probes uprobe: give the functions to probe with uprobe BINARY:SYMBOL"},
		{map[string]any{"numa_breakdown": true, "cpu_breakdown": true}, "cpu_breakdown and numa_breakdown: choose one breakdown"},
		{map[string]any{"entity_state_interval": "1m"}, "entity_state_interval 1m0s: only with entity_events (add entity_events, or drop the interval)"},
		{map[string]any{"entity_events": true, "entity_state_interval": "1500ms"}, "entity_state_interval 1.5s: must be whole seconds from 10s to 24h (entity.report.interval is in seconds), e.g. 5m"},
		{map[string]any{"bpf_memory": "lots"}, `bpf_memory "lots": not a size, e.g. 48MiB`},
		{map[string]any{"exe": []any{""}}, "exe empty path: name an executable file, e.g. /usr/sbin/nginx"},
		{map[string]any{"comm": []any{"a-command-name-longer-than-15"}}, ""},
		{map[string]any{"resource_attributes": map[string]any{"": "x"}}, "resource_attributes: an attribute with an empty name; name it, e.g. k8s.node.name"},
	} {
		err := unmarshal(t, tc.conf).Validate()
		if err == nil {
			t.Errorf("%v: valid", tc.conf)
			continue
		}
		if _, ok := err.(*runconfig.Error); !ok {
			t.Errorf("%v: %T %v, want bad input (*runconfig.Error)", tc.conf, err, err)
		}
		if strings.Contains(err.Error(), "\n") || tc.want != "" && err.Error() != tc.want {
			t.Errorf("%v:\n got %q\nwant %q", tc.conf, err, tc.want)
		}
	}
}

// Every breakdown the schema declares is a key, spelled as its flag.
func TestBreakdownKeys(t *testing.T) {
	keys := map[string]bool{}
	ty := reflect.TypeFor[Config]()
	for i := range ty.NumField() {
		keys[ty.Field(i).Tag.Get("mapstructure")] = true
	}
	for _, b := range entity.Breakdowns() {
		if !keys[runconfig.Key(b.Flag)] {
			t.Errorf("breakdown --%s has no key %s in Config", b.Flag, runconfig.Key(b.Flag))
		}
	}
	on := unmarshal(t, map[string]any{"numa_breakdown": true})
	if st, err := runconfig.Resolve(runconfig.Key, on.options()); err != nil || st.Breakdown == nil || st.Breakdown.Flag != "numa-breakdown" {
		t.Errorf("numa_breakdown: true resolves to %v, %v", st.Breakdown, err)
	}
}

// Every metric-set bound the schema gives a flag has a key, defaulting to
// the schema's max_entries, and reaches runconfig under the flag's name.
func TestMaxEntriesKeys(t *testing.T) {
	def := createDefaultConfig()
	o := def.options()
	for _, set := range runconfig.MaxEntriesSets() {
		f := def.maxEntries(set.Flag)
		if f == nil {
			t.Errorf("--%s has no key %s (uint) in Config", set.Flag, runconfig.Key(set.Flag))
			continue
		}
		if *f != uint(set.MaxEntries) || o.MaxEntries[set.Flag] != uint(set.MaxEntries) {
			t.Errorf("%s: default %d, passed on as %d; want the schema's max_entries %d", runconfig.Key(set.Flag), *f, o.MaxEntries[set.Flag], set.MaxEntries)
		}
	}
	// Set keys are what runconfig checks: an out-of-range one is refused.
	for _, set := range runconfig.MaxEntriesSets() {
		cfg := unmarshal(t, map[string]any{runconfig.Key(set.Flag): 1 << 21})
		want := runconfig.Key(set.Flag) + " 2097152: must be between 1 and 1048576"
		if err := cfg.Validate(); err == nil || err.Error() != want {
			t.Errorf("%s 2097152: %v, want %q", runconfig.Key(set.Flag), err, want)
		}
	}
}

func TestEntityStateIntervalDefault(t *testing.T) {
	cfg := unmarshal(t, map[string]any{"entity_events": true})
	if cfg.EntityStateInterval != nil {
		t.Fatalf("entity_state_interval unset decodes as %v", *cfg.EntityStateInterval)
	}
	if o := cfg.options(); o.EntityStateInterval != 5*time.Minute || o.EntityStateIntervalSet {
		t.Errorf("unset entity_state_interval: %v set=%v, want the 5m default", o.EntityStateInterval, o.EntityStateIntervalSet)
	}
	cfg = unmarshal(t, map[string]any{"entity_events": true, "entity_state_interval": "30s"})
	if err := cfg.Validate(); err != nil || *cfg.EntityStateInterval != 30*time.Second {
		t.Errorf("entity_state_interval 30s: %v, %v", cfg.EntityStateInterval, err)
	}
}

// Start with a bad configuration fails with Validate's error, before
// anything is loaded: the Collector does not start.
func TestStartRefusesBadConfig(t *testing.T) {
	f := NewFactory()
	cfg := unmarshal(t, map[string]any{"interval": "50ms"})
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, new(consumertest.MetricsSink))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Start(context.Background(), componenttest.NewNopHost())
	if want := cfg.Validate(); err == nil || want == nil || err.Error() != want.Error() {
		t.Fatalf("Start: %v, want Validate's %v", err, want)
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}
