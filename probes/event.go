package probes

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/entity"
)

// Event is one occurrence a probe reports as it happens (a process exec,
// fork or exit, an OOM kill), as opposed to the metric sets it reads every
// interval. The agent exports it as an OTLP log record named Desc.Name
// whose Resource is the process identified by (Pid, StartTicks).
type Event struct {
	Desc entity.EventDesc
	Time time.Time
	// Pid and StartTicks identify the process the event is about:
	// StartTicks is its start time in /proc clock ticks (what
	// ProcessResolver.CreationTime turns into process.creation.time), so the
	// event's Resource is the same process as that pid's metric series. It
	// is always the kernel's (task->start_boottime of the group leader;
	// 0 only for a process started in the first tick after boot): an event
	// always carries the whole identity, and a source that cannot read the
	// start time must not report the event as the process's.
	Pid        uint32
	StartTicks uint64
	Comm       string // process.executable.name as the kernel had it
	// Attributes are the record's attributes, as the schema declares them
	// for Desc.
	Attributes []attribute.KeyValue
	// Exited is set on the event after which the process has no live
	// thread: its metric series are final and can be exported one last time
	// and deleted.
	Exited bool
	// Node is the NUMA node whose ring buffer carried the event, CPU the
	// CPU it happened on.
	Node, CPU int
}

// EventSink receives a probe's events. Deliver must not block: it returns
// false when the event could not be queued, and the probe counts it as
// dropped.
type EventSink interface {
	Deliver(Event) bool
}

// EventSource is a probe that reports events. The agent calls SetEventSink
// before Start.
type EventSource interface {
	SetEventSink(EventSink)
	// SyncEvents returns once every event recorded by the kernel before the
	// call has been handed to the sink (or counted as dropped), or ctx ends.
	// The agent calls it before its final collection so that a command's
	// exit is exported with its final metrics.
	SyncEvents(ctx context.Context) error
}
