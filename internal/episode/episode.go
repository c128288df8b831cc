// Package episode logs a condition that lasts (a backend outage, a full
// metric set) twice: one warning when it starts and one line when it
// ends, however often it is seen in between, so that a log is not flooded
// and an operator still learns of every episode.
package episode

import (
	"log/slog"
	"time"
)

// Episode is one condition's state. The zero value is ready to use; it
// is not safe for concurrent use (callers hold their own lock).
type Episode struct {
	active bool
	since  time.Time
}

// Begin reports the condition present now. The first call of an episode
// logs msg with args as a warning and returns true; later calls, until
// End, do nothing.
func (e *Episode) Begin(log *slog.Logger, msg string, args ...any) bool {
	if e.active {
		return false
	}
	e.active, e.since = true, time.Now()
	log.Warn(msg, args...)
	return true
}

// End reports the condition gone. If an episode was going on, it logs msg
// with durationKey set to how long it lasted, then args, as an info line,
// and returns true.
func (e *Episode) End(log *slog.Logger, msg, durationKey string, args ...any) bool {
	if !e.active {
		return false
	}
	e.active = false
	log.Info(msg, append([]any{durationKey, time.Since(e.since).Round(time.Millisecond)}, args...)...)
	return true
}

// Active says whether an episode is going on.
func (e *Episode) Active() bool { return e.active }
