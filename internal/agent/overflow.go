package agent

import (
	"log/slog"

	"github.com/telagent/telagent/internal/episode"
	"github.com/telagent/telagent/probes"
)

// overflowWatch turns the metric sets' fold counters into log lines: one
// warning when a set starts folding keys into its overflow series (its map
// holds its max_entries tuples, or a node's storage hash was full, so new
// processes lose their own series: under churn, typically) and one line
// when an interval passes without a fold, as the export queue does for a
// backend outage. The folds themselves are counted in
// telagent.metric_set.entry_folds and telagent.metric_set.overflows
// (selftelemetry.go).
type overflowWatch struct {
	sets map[string]*overflowSet
}

type overflowSet struct {
	folds   uint64 // the set's cumulative folds at the last interval
	atBegin uint64 // ... when the episode began
	episode episode.Episode
}

// observe takes one set's stats at an interval's collection.
func (w *overflowWatch) observe(log *slog.Logger, probe string, ms probes.MetricSetStats) {
	if w.sets == nil {
		w.sets = map[string]*overflowSet{}
	}
	s := w.sets[ms.Name]
	if s == nil {
		s = &overflowSet{}
		w.sets[ms.Name] = s
	}
	prev := s.folds
	folds := ms.OverflowFolds + ms.EntryFolds
	s.folds = folds
	switch {
	case folds > prev:
		if s.episode.Begin(log, "metric set full: new keys are counted in its overflow series, without per-process attribution; raise the probe's --<probe>-max-entries (its tuples) or --bpf-memory (its storage)",
			"metric_set", ms.Name, "probe", probe, "max_entries", ms.MaxEntries, "storage_entries", ms.Storage.Entries, "folds", folds-prev) {
			s.atBegin = prev
		}
	case folds == prev:
		s.episode.End(log, "metric set no longer full: new keys get their own series again", "lasted",
			"metric_set", ms.Name, "folds", s.folds-s.atBegin)
	}
}
