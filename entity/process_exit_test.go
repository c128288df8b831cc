package entity

import (
	"path/filepath"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

// An exit event marks a process gone in the generation being collected,
// without /proc: one never seen alive gets its identity from the event,
// one seen alive keeps the Resource it was described with.
func TestMarkExited(t *testing.T) {
	r := newFixtureResolver(t, filepath.Join("..", "testdata", "proc"))
	r.NextGeneration(30)
	alive := r.Process(100)
	if r.Gone(100) {
		t.Fatal("pid 100 is in the fixture /proc")
	}

	r.NextGeneration(30)
	r.MarkExited(100, 12345, "ignored")
	r.MarkExited(999, 12345, "short")
	if got := r.Process(100); got != alive || !r.Gone(100) {
		t.Errorf("pid 100 after its exit: same resource %v, gone %v; want true, true", got == alive, r.Gone(100))
	}
	gone := r.Process(999)
	if !r.Gone(999) {
		t.Error("pid 999 not gone after its exit event")
	}
	want := alive.Set() // the same start time gives the same creation time
	ct, _ := want.Value(AttrProcessCreationTime)
	if v, _ := gone.Set().Value(AttrProcessCreationTime); v != ct {
		t.Errorf("creation time from the event %v, want %v (same ticks as pid 100)", v.Emit(), ct.Emit())
	}
	if v, _ := gone.Set().Value(AttrProcessExecutableName); v.AsString() != "short" {
		t.Errorf("executable name %q, want the event's", v.AsString())
	}

	// Next generation: a pid reused by a new process (the fixture's 100,
	// different start time from the exited one) is a new entity.
	r.NextGeneration(30)
	r.MarkExited(100, 99, "old")
	r.NextGeneration(30)
	if r.Process(100) == alive || r.Gone(100) {
		t.Error("the live pid 100 after an older process with its pid exited: want a fresh, live entity")
	}
}

// An exit event that arrives after /proc already showed the process gone
// does not finalize it a second time (a new process may own the pid now).
func TestMarkExitedLate(t *testing.T) {
	r := newFixtureResolver(t, filepath.Join("..", "testdata", "proc"))
	r.NextGeneration(30)
	r.MarkExited(999, 7, "x") // gone this generation
	r.Process(999)
	r.NextGeneration(30)
	r.MarkExited(999, 7, "x") // the same exit reported again, a generation later
	if r.Gone(999) {
		t.Error("a process finalized in an earlier generation was finalized again")
	}
}

// With exit events, a process first met already gone from /proc is final a
// generation later (its keys may have been read before it died); its exit
// event finalizes it as soon as it arrives.
func TestDeferredWithExitEvents(t *testing.T) {
	r := newFixtureResolver(t, filepath.Join("..", "testdata", "proc"))
	r.ExitEvents = true
	r.NextGeneration(30)
	r.Process(300)
	r.Process(301)
	if r.Gone(300) || r.Gone(301) {
		t.Fatal("a process first met gone is final in the same generation")
	}
	r.NextGeneration(30)
	r.MarkExited(301, 5, "x")
	r.Process(300)
	if !r.Gone(300) || !r.Gone(301) {
		t.Errorf("a generation later: gone %v (no event), %v (exit event); want both", r.Gone(300), r.Gone(301))
	}
}

// The resolver's identity decision: a pid gets its own Resource only with
// its whole identity (process.pid and process.creation.time, from /proc,
// the kernel's record or an exit event); without it Process gives the host
// Resource and Identified is false, and it stays so until one of those
// sources knows it. No Resource it returns ever has process.pid without
// process.creation.time.
func TestIdentified(t *testing.T) {
	r := newFixtureResolver(t, filepath.Join("..", "testdata", "proc"))
	known := map[uint32]uint64{} // the kernel's record, as the test fills it
	r.Kernel = func(pid uint32) (uint64, string, bool) {
		s, ok := known[pid]
		return s, "k", ok
	}
	complete := func(what string, pid uint32) {
		t.Helper()
		set := r.Process(pid).Set()
		_, hasPID := set.Value(AttrProcessPID)
		_, hasCT := set.Value(AttrProcessCreationTime)
		if hasPID != hasCT {
			t.Errorf("%s: process.pid %v without process.creation.time %v: %v", what, hasPID, hasCT, set.ToSlice())
		}
		if hasPID != r.Identified(pid) {
			t.Errorf("%s: Identified %v, but the Resource has process.pid %v", what, r.Identified(pid), hasPID)
		}
	}

	r.NextGeneration(30)
	if r.Identified(100) {
		t.Error("Identified(100) before pid 100 was resolved in this generation")
	}
	complete("alive pid 100", 100)
	complete("gone pid 999, no record", 999)
	if !r.Identified(100) || r.Identified(999) || r.Process(999) != r.Host() || !r.Gone(999) {
		t.Errorf("alive 100 identified %v; unrecorded 999 identified %v, host %v, gone %v; want true, false, true, true",
			r.Identified(100), r.Identified(999), r.Process(999) == r.Host(), r.Gone(999))
	}

	// The kernel's record appears (the process was recorded late): the
	// next generation identifies it.
	known[999] = 300
	r.NextGeneration(30)
	complete("gone pid 999, recorded now", 999)
	if !r.Identified(999) {
		t.Error("pid 999 not identified once the kernel recorded it")
	}

	// With exit events, an unidentified process first met gone waits a
	// generation, not final: its exit event then identifies it. An exit
	// event's start time of 0 (started in the first tick after boot) is a
	// start time like any other.
	r.ExitEvents = true
	r.NextGeneration(30)
	complete("gone pid 998, no record, exit events", 998)
	if r.Identified(998) || r.Gone(998) {
		t.Errorf("pid 998: identified %v, gone %v; want false, false (deferred)", r.Identified(998), r.Gone(998))
	}
	r.NextGeneration(30)
	r.MarkExited(998, 0, "early")
	complete("pid 998 after its exit event", 998)
	if !r.Identified(998) || !r.Gone(998) {
		t.Errorf("pid 998 after its exit event: identified %v, gone %v; want true, true", r.Identified(998), r.Gone(998))
	}
	if v, _ := r.Process(998).Set().Value(AttrProcessCreationTime); v.AsString() != r.CreationTime(0) {
		t.Errorf("pid 998 creation time %q, want the boot time %q", v.AsString(), r.CreationTime(0))
	}

	// No exit event: final, without identity, a generation later; and at
	// once in the last generation.
	r.NextGeneration(30)
	r.Process(997)
	r.NextGeneration(30)
	complete("gone pid 997 a generation later", 997)
	if r.Identified(997) || !r.Gone(997) {
		t.Errorf("pid 997 a generation later: identified %v, gone %v; want false, true", r.Identified(997), r.Gone(997))
	}
	r.NextGeneration(30)
	r.FinalGeneration()
	complete("gone pid 996 in the last generation", 996)
	if r.Identified(996) || !r.Gone(996) {
		t.Errorf("pid 996 in the last generation: identified %v, gone %v; want false, true", r.Identified(996), r.Gone(996))
	}
}

// A process known from the kernel only is described the same way on its
// metrics and its events (both go through ProcessResource and
// KernelDescription): comm as process.executable.name, invalid UTF-8
// replaced, nothing when empty.
func TestKernelDescription(t *testing.T) {
	if d := KernelDescription(""); d != nil {
		t.Errorf("empty comm: %v, want no attribute", d)
	}
	res := ProcessResource([]attribute.KeyValue{AttrHostID.String("h")}, 7, "2026-01-01T00:00:00Z", KernelDescription("bad\xffname")...)
	want := []attribute.KeyValue{
		AttrHostID.String("h"), AttrProcessCreationTime.String("2026-01-01T00:00:00Z"),
		AttrProcessExecutableName.String("bad\uFFFDname"), AttrProcessPID.Int64(7),
	}
	if got := res.Set().ToSlice(); !slices.Equal(got, want) {
		t.Errorf("Resource %v, want %v", got, want)
	}
	if res.SchemaURL() != SchemaURL {
		t.Errorf("schema URL %q, want %q", res.SchemaURL(), SchemaURL)
	}
}
