package runconfig

import (
	"testing"
	"time"
)

// The same check gives the same message in either spelling: only the
// option's name differs.
func TestResolveSpelling(t *testing.T) {
	o := Options{Interval: 10 * time.Second, IntervalExample: "10s", BPFMemory: "1MiB", MaxEntries: map[string]uint{}}
	for _, set := range MaxEntriesSets() {
		o.MaxEntries[set.Flag] = 1
	}
	o.MaxEntries["syscalls-max-entries"] = 0
	for _, tc := range []struct {
		sp   Spell
		want string
	}{
		{Flag, "--syscalls-max-entries 0: must be between 1 and 1048576"},
		{Key, "syscalls_max_entries 0: must be between 1 and 1048576"},
	} {
		_, err := Resolve(tc.sp, o)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Resolve: %v, want %q", err, tc.want)
		}
		if _, ok := err.(*Error); !ok {
			t.Errorf("Resolve: %T, want *Error (bad input)", err)
		}
	}
	o.Interval = 50 * time.Millisecond
	_, err := Resolve(Key, o)
	if want := "interval 50ms: must be at least 100ms (every interval reads each metric set and exports), e.g. 10s"; err == nil || err.Error() != want {
		t.Errorf("Resolve: %v, want %q", err, want)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{"1": 1, "2KiB": 2048, "3 M": 3 << 20, "1gib": 1 << 30} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "0", "1TiB", "99999999999999999999"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q): no error", in)
		}
	}
}
