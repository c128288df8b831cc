package entity

import (
	"path/filepath"
	"testing"
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
