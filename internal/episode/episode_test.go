package episode

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestEpisodeLogsOncePerEpisode(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var e Episode
	if e.End(log, "over", "lasted") {
		t.Error("End without Begin logged")
	}
	for i := range 2 {
		for j := range 5 {
			if got := e.Begin(log, "started", "round", i); got != (j == 0) {
				t.Errorf("round %d, Begin %d returned %v", i, j, got)
			}
		}
		if !e.Active() || !e.End(log, "over", "lasted", "round", i) || e.End(log, "over", "lasted") || e.Active() {
			t.Errorf("round %d: End did not end the episode once", i)
		}
	}
	out := buf.String()
	if n := strings.Count(out, "level=WARN msg=started"); n != 2 {
		t.Errorf("%d start warnings, want one per episode (2):\n%s", n, out)
	}
	if n := strings.Count(out, "level=INFO msg=over lasted="); n != 2 {
		t.Errorf("%d end lines, want 2:\n%s", n, out)
	}
}
