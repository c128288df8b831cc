package agent

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// Entity events (--entity-events): the OpenTelemetry specification's
// entity.state and entity.delete log events (entities/entity-events.md),
// on the host's Resource, about the host and the processes the agent
// reports on. A process is announced when the agent discovers it (a held
// command or --pid target at start, its first event, or the first time a
// collection describes it from /proc), again after an exec that changed
// its description, and every period while it lives; it is deleted at its
// exit event, or, without one, when a period finds it gone from /proc.

const (
	// maxEntities bounds the processes the reporter tracks; past it a new
	// process is not announced (logged once per episode of being full).
	maxEntities = 16384
	// maxTombstones is how many deleted processes are remembered, so that
	// a discovery that raced with the exit (read from /proc just before)
	// does not announce a process already deleted.
	maxTombstones = 4096
	// deleteReason is entity.delete.reason for a process that exited.
	deleteReason = "terminated"
)

type entityKey struct {
	pid        uint32
	startTicks uint64
}

// entityReporter keeps the processes announced and their current
// description; it runs on the event pipeline's goroutine only and adds its
// records to the pipeline's builder (emit).
type entityReporter struct {
	interval time.Duration
	procRoot string
	creation func(startTicks uint64) string
	hostID   []attribute.KeyValue // the host's entity.id
	hostDesc []attribute.KeyValue // the host's entity.description
	emit     func(name string, t time.Time, attrs []attribute.KeyValue, node int)

	known      map[entityKey][]attribute.KeyValue // description, by process
	tombstones map[entityKey]struct{}
	tombOrder  []entityKey
	full       bool // a process went unannounced since the table was last below the bound
	log        *slog.Logger
}

func newEntityReporter(interval time.Duration, procRoot string, host []attribute.KeyValue, creation func(uint64) string,
	emit func(string, time.Time, []attribute.KeyValue, int), log *slog.Logger) *entityReporter {
	r := &entityReporter{interval: interval, procRoot: procRoot, creation: creation, emit: emit, log: log,
		known: map[entityKey][]attribute.KeyValue{}, tombstones: map[entityKey]struct{}{}}
	for _, kv := range host {
		switch {
		case slices.Contains(entity.EntityHost.RefIDKeys, kv.Key):
			r.hostID = append(r.hostID, attribute.String(string(kv.Key), kv.Value.Emit()))
		case slices.Contains(entity.EntityHost.RefDescriptionKeys, kv.Key):
			r.hostDesc = append(r.hostDesc, kv)
		}
	}
	return r
}

// reportSeconds is entity.report.interval: the period in whole seconds.
func (r *entityReporter) reportSeconds() int64 {
	return int64((r.interval + time.Second - 1) / time.Second)
}

func (r *entityReporter) state(typ string, id, desc []attribute.KeyValue, t time.Time, node int) {
	attrs := []attribute.KeyValue{
		entity.AttrEntityType.String(typ),
		attribute.Map(string(entity.AttrEntityID), id...),
	}
	if len(desc) > 0 {
		attrs = append(attrs, attribute.Map(string(entity.AttrEntityDescription), desc...))
	}
	attrs = append(attrs, entity.AttrEntityReportInterval.Int64(r.reportSeconds()))
	r.emit(entity.EventEntityState.Name, t, attrs, node)
}

// processID is a process's entity.id: its identifying attributes with
// string values (the specification), the same text as on its Resource.
func (r *entityReporter) processID(k entityKey) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(string(entity.AttrProcessPID), strconv.FormatUint(uint64(k.pid), 10)),
		attribute.String(string(entity.AttrProcessCreationTime), r.creation(k.startTicks)),
	}
}

// hostState announces the host (at start and every period).
func (r *entityReporter) hostState(t time.Time) {
	if len(r.hostID) == 0 {
		return
	}
	r.state(entity.EntityHost.Name, r.hostID, r.hostDesc, t, 0)
}

// discover announces a process met for the first time, with desc as its
// description; a process already known (or deleted) is left alone: only
// an exec or a period updates a description.
func (r *entityReporter) discover(k entityKey, desc []attribute.KeyValue, t time.Time, node int) {
	if _, ok := r.known[k]; ok {
		return
	}
	if _, ok := r.tombstones[k]; ok {
		return
	}
	if len(r.known) >= maxEntities {
		if !r.full {
			r.full = true
			r.log.Warn("entity events: too many processes tracked; new ones are not announced until some exit", "max", maxEntities)
		}
		return
	}
	r.full = false
	r.known[k] = desc
	r.state(entity.EntityProcess.Name, r.processID(k), desc, t, node)
}

// observe handles a probe's event about process (ev.Pid, ev.StartTicks)
// before it is exported: the first event of an unknown process announces
// it; an exec announces the new description if it changed; the exit
// deletes it.
func (r *entityReporter) observe(ev probes.Event) {
	k := entityKey{ev.Pid, ev.StartTicks}
	if ev.Exited {
		r.delete(k, ev.Time, ev.Node)
		return
	}
	if _, gone := r.tombstones[k]; gone {
		return
	}
	old, known := r.known[k]
	exec := ev.Desc.Name == entity.EventTelagentProcessExec.Name
	if known && !exec {
		return
	}
	desc := r.describe(k, ev)
	switch {
	case !known:
		r.discover(k, desc, ev.Time, ev.Node)
	case !slices.Equal(old, desc):
		r.known[k] = desc
		r.state(entity.EntityProcess.Name, r.processID(k), desc, ev.Time, ev.Node)
	}
}

// describe is the current description of the event's process: /proc's
// when the process is still there, else what the event says (the exec'd
// file's base name, or the kernel's command name, as the resolver does
// for a process gone before /proc was read).
//
// A process already exiting when its exec event is read (an exec'd
// readlink lives microseconds) is still in /proc with its start time but
// without an executable (its mm is gone): then the exec'd file's name is
// the description, not an empty one.
func (r *entityReporter) describe(k entityKey, ev probes.Event) []attribute.KeyValue {
	var path string
	for _, kv := range ev.Attributes {
		if kv.Key == entity.AttrProcessExecutablePath && kv.Value.AsString() != "" {
			path = kv.Value.AsString()
		}
	}
	if desc, ok := entity.DescribeLive(r.procRoot, k.pid, k.startTicks); ok &&
		(path == "" || slices.ContainsFunc(desc, func(kv attribute.KeyValue) bool { return kv.Key == entity.AttrProcessExecutableName })) {
		return desc
	}
	name := ev.Comm
	if path != "" {
		name = filepath.Base(path)
	}
	if name == "" {
		return nil
	}
	return []attribute.KeyValue{entity.AttrProcessExecutableName.String(name)}
}

// delete says the process is gone. One never announced is deleted too
// (its exit was its first event): a receiver that learnt of it from its
// other telemetry learns that it ended.
func (r *entityReporter) delete(k entityKey, t time.Time, node int) {
	if _, gone := r.tombstones[k]; gone {
		return
	}
	delete(r.known, k)
	if len(r.tombOrder) >= maxTombstones {
		delete(r.tombstones, r.tombOrder[0])
		r.tombOrder = r.tombOrder[1:]
	}
	r.tombstones[k] = struct{}{}
	r.tombOrder = append(r.tombOrder, k)
	r.emit(entity.EventEntityDelete.Name, t, []attribute.KeyValue{
		entity.AttrEntityType.String(entity.EntityProcess.Name),
		attribute.Map(string(entity.AttrEntityID), r.processID(k)...),
		entity.AttrEntityDeleteReason.String(deleteReason),
	}, node)
}

// period announces the host and every live process again, each with its
// description as /proc has it now, and deletes the processes /proc no
// longer has (their exit event was lost, or no probe reports exits).
func (r *entityReporter) period(t time.Time) {
	r.hostState(t)
	for k := range r.known {
		desc, ok := entity.DescribeLive(r.procRoot, k.pid, k.startTicks)
		if !ok {
			r.delete(k, t, 0)
			continue
		}
		r.known[k] = desc
		r.state(entity.EntityProcess.Name, r.processID(k), desc, t, 0)
	}
}

// processDescription is the part of a process's Resource that describes it
// in its entity.state (what DescribeLive reads).
func processDescription(res *resource.Resource) []attribute.KeyValue {
	var out []attribute.KeyValue
	for _, k := range []attribute.Key{entity.AttrProcessExecutableName, entity.AttrProcessCommand} {
		if v, ok := res.Set().Value(k); ok {
			out = append(out, attribute.KeyValue{Key: k, Value: v})
		}
	}
	return out
}

// enableEntityEvents turns the entity events on (before start), with
// period as their report interval.
func (e *eventPipeline) enableEntityEvents(period time.Duration, procRoot string) {
	e.hostRes = resource.NewWithAttributes(entity.SchemaURL, e.host...)
	e.entities = newEntityReporter(period, procRoot, e.host, e.creation,
		func(name string, t time.Time, attrs []attribute.KeyValue, node int) {
			e.builder.Add(e.hostRes, name, t, attrs)
			e.nodes = append(e.nodes, node)
		}, e.log)
}

// discovered tells the pipeline of a process a collection described for
// the first time (ProcessResolver.Discovered, on the agent's goroutine):
// announced unless it is known already. Through the event queue, so it
// never blocks; a full queue loses the announcement (the next period does
// not announce it either: it is announced at its next exec).
func (e *eventPipeline) discovered(pid uint32, startTicks uint64, res *resource.Resource) {
	e.Deliver(probes.Event{Desc: entity.EventEntityState, Time: time.Now(), Pid: pid, StartTicks: startTicks,
		Attributes: processDescription(res)})
}

// discoverPids announces the processes the agent was told to observe (a
// held command, --pid) as they are now, before any of their events.
func (e *eventPipeline) discoverPids(procRoot string, pids []uint32) {
	if e == nil || e.entities == nil {
		return
	}
	for _, pid := range pids {
		start, ok := entity.StartTicks(procRoot, pid)
		if !ok {
			continue
		}
		if desc, ok := entity.DescribeLive(procRoot, pid, start); ok {
			e.Deliver(probes.Event{Desc: entity.EventEntityState, Time: time.Now(), Pid: pid, StartTicks: start, Attributes: desc})
		}
	}
}
