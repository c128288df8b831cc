package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/internal/episode"
	"github.com/telagent/telagent/metrics"
	"github.com/telagent/telagent/probes"
)

// Event pipeline tuning.
const (
	// eventQueue bounds the events waiting for export; past it the probes
	// count drops (queue_full) and nothing blocks.
	eventQueue = 16384
	// eventBatch is the most records in one export.
	eventBatch = 1024
	// eventFlush is how long an event may wait for its batch.
	eventFlush = time.Second
	// eventBacklog bounds the events kept for retry while exports fail
	// (~16 MiB at most): an outage shorter than that many events loses
	// none; past it the oldest go, counted as export_failed.
	eventBacklog = 32768
	// eventRetryMin and eventRetryMax bound the wait between export
	// attempts while the backend fails (doubling in between), so a dead
	// backend is not hammered and a stalled one does not hold the
	// pipeline on every tick.
	eventRetryMin = time.Second
	eventRetryMax = 16 * time.Second
	// earlyExits exited processes since the last collection make the
	// agent collect (and so export and evict) before the interval ends, so
	// that a burst of short-lived processes does not fill the metric-set
	// maps with keys of the dead; earlyMinGap rate-limits it.
	earlyMinGap = time.Second
)

// earlyExits is a variable so that tests can turn early collection off.
var earlyExits = 512

// eventPipeline receives the probes' events (it is their EventSink),
// exports them in batches from its own goroutine through a bounded queue,
// and records exits for the collector, which uses them to export a dead
// process's series one last time and then delete them without waiting for
// /proc to say it is gone.
type eventPipeline struct {
	exporter export.EventExporter // nil: events are not exported
	builder  *export.EventBuilder
	host     []attribute.KeyValue
	creation func(startTicks uint64) string
	log      *slog.Logger
	sources  []probes.EventSource

	queue   chan probes.Event
	stop    chan struct{}
	stopCtx context.Context // set before stop is closed: bounds the last flushes
	done    chan struct{}

	mu        sync.Mutex
	exits     []exitNote
	lastEarly time.Time
	early     chan struct{} // a token: collect now

	resources map[procKey]*resource.Resource // pipeline goroutine only
	// entities, when set (--entity-events), announces entities
	// (entityevents.go) on hostRes; pipeline goroutine only.
	entities *entityReporter
	hostRes  *resource.Resource
	nodes    []int // node of each record in the builder, in order
	// backlog holds the records not yet delivered, oldest first, with the
	// node each came through (pipeline goroutine only).
	backlog      []sdklog.Record
	backlogNodes []int
	retryAt      time.Time
	retryWait    time.Duration
	outage       episode.Episode // one warning per failing episode
	exported     uint64
	failed       map[int]uint64 // per node: events lost to failed exports (under mu)
	dropAttrs    map[int]attribute.Set
}

type exitNote struct {
	pid        uint32
	startTicks uint64
	comm       string
}

type procKey struct {
	pid        uint32
	startTicks uint64
	comm       string
}

// newEventPipeline wires every probe that reports events to a pipeline;
// it returns nil when no probe does.
func newEventPipeline(ps []probes.Probe, exp export.EventExporter, version string, host []attribute.KeyValue,
	creation func(uint64) string, log *slog.Logger) *eventPipeline {
	e := newPipeline(exp, version, host, creation, log)
	for _, p := range ps {
		if src, ok := p.(probes.EventSource); ok {
			src.SetEventSink(e)
			e.sources = append(e.sources, src)
		}
	}
	if len(e.sources) == 0 {
		return nil
	}
	return e
}

func newPipeline(exp export.EventExporter, version string, host []attribute.KeyValue,
	creation func(uint64) string, log *slog.Logger) *eventPipeline {
	return &eventPipeline{
		exporter: exp, builder: export.NewEventBuilder(version), host: host, creation: creation, log: log,
		queue: make(chan probes.Event, eventQueue), stop: make(chan struct{}), done: make(chan struct{}),
		early: make(chan struct{}, 1), resources: map[procKey]*resource.Resource{},
		failed: map[int]uint64{}, dropAttrs: map[int]attribute.Set{},
	}
}

// start runs the export goroutine (after the probes started).
func (e *eventPipeline) start() {
	if e == nil {
		return
	}
	go e.run()
}

// Deliver implements probes.EventSink; it runs on the probes' reader
// threads and never blocks. An exit is recorded for eviction even when the
// queue is full: map hygiene must not depend on the export keeping up.
func (e *eventPipeline) Deliver(ev probes.Event) bool {
	if ev.Exited {
		e.mu.Lock()
		e.exits = append(e.exits, exitNote{ev.Pid, ev.StartTicks, ev.Comm})
		if len(e.exits) >= earlyExits && time.Since(e.lastEarly) >= earlyMinGap {
			e.lastEarly = time.Now()
			select {
			case e.early <- struct{}{}:
			default:
			}
		}
		e.mu.Unlock()
	}
	if e.exporter == nil {
		return true // nowhere to go: not a drop
	}
	select {
	case e.queue <- ev:
		return true
	default:
		return false
	}
}

// earlyC fires when enough processes exited to collect before the
// interval ends; nil (never fires) without a pipeline.
func (e *eventPipeline) earlyC() <-chan struct{} {
	if e == nil {
		return nil
	}
	return e.early
}

// beforeCollect tells the resolver which processes exited since the last
// collection, in the generation about to be collected: their series are
// exported with the identity the kernel reported and then evicted. It also
// adds the events lost to failed exports to telagent.events.dropped.
func (e *eventPipeline) beforeCollect(r *entity.ProcessResolver, b *metrics.Builder) {
	if e == nil {
		return
	}
	e.mu.Lock()
	exits := e.exits
	e.exits = nil
	failed := make(map[int]uint64, len(e.failed))
	for n, v := range e.failed {
		failed[n] = v
	}
	e.mu.Unlock()
	for _, x := range exits {
		r.MarkExited(x.pid, x.startTicks, x.comm)
	}
	r.ExitEvents = true
	r.CheckLiveness() // the rest, before the maps are read
	for n, v := range failed {
		s, ok := e.dropAttrs[n]
		if !ok {
			s = attribute.NewSet(entity.AttrTelagentEventDropReason.String("export_failed"), entity.AttrTelagentNUMANode.Int(n))
			e.dropAttrs[n] = s
		}
		b.Counter(r.Host(), entity.MetricTelagentEventDrops, s, int64(v))
	}
}

// sync waits until every event the kernel recorded so far has been
// delivered (before the final collection).
func (e *eventPipeline) sync(ctx context.Context) {
	if e == nil {
		return
	}
	// ctx is the agent's shutdown deadline (not the cancelled run context).
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, s := range e.sources {
		if err := s.SyncEvents(ctx); err != nil {
			e.log.Warn("drain events", "err", err)
		}
	}
}

// close exports what is queued and shuts the event exporter down.
func (e *eventPipeline) close(ctx context.Context) {
	if e == nil {
		return
	}
	// The last flushes end with ctx (the agent's shutdown deadline).
	e.stopCtx = ctx
	close(e.stop)
	<-e.done
	if e.exporter != nil {
		if err := e.exporter.Shutdown(ctx); err != nil {
			e.log.Warn("event exporter shutdown", "err", err)
		}
	}
}

func (e *eventPipeline) run() {
	defer close(e.done)
	tick := time.NewTicker(eventFlush)
	defer tick.Stop()
	var period <-chan time.Time
	if e.entities != nil {
		e.entities.hostState(time.Now())
		t := time.NewTicker(e.entities.interval)
		defer t.Stop()
		period = t.C
	}
	n := 0
	for {
		select {
		case now := <-period:
			e.entities.period(now)
		case ev := <-e.queue:
			e.add(ev)
			if n++; n >= eventBatch {
				e.flush()
				n = 0
			}
		case <-tick.C:
			e.flush()
			n = 0
		case <-e.stop:
			for {
				select {
				case ev := <-e.queue:
					e.add(ev)
					if n++; n >= eventBatch {
						e.flush()
						n = 0
					}
					continue
				default:
				}
				break
			}
			e.flush()
			return
		}
	}
}

// add builds the event's record on its process's Resource: the host, and
// the process's identifying attributes exactly as its metrics carry them
// (process.pid, and process.creation.time from the same start time), so
// backends join the two. An event's identity is always whole: its start
// time is the kernel's (probes.Event), 0 only for a process started in the
// first tick after boot, whose creation time is then the boot time; the
// resolver takes an exit event's start time the same way (MarkExited).
func (e *eventPipeline) add(ev probes.Event) {
	if ev.Desc.Name == entity.EventEntityState.Name { // a discovery (entityevents.go), not a probe's event
		if e.entities != nil {
			e.entities.discover(entityKey{ev.Pid, ev.StartTicks}, ev.Attributes, ev.Time, ev.Node)
		}
		return
	}
	if e.entities != nil {
		defer e.entities.observe(ev) // after the event: an exec's new state, the delete after the exit
	}
	k := procKey{ev.Pid, ev.StartTicks, ev.Comm}
	res, ok := e.resources[k]
	if !ok {
		if len(e.resources) >= maxEventResources {
			clear(e.resources)
		}
		res = entity.ProcessResource(e.host, ev.Pid, e.creation(ev.StartTicks), entity.KernelDescription(ev.Comm)...)
		e.resources[k] = res
	}
	e.builder.Add(res, ev.Desc.Name, ev.Time, ev.Attributes)
	e.nodes = append(e.nodes, ev.Node)
	if ev.Exited { // the last event of this process
		delete(e.resources, k)
		e.builder.Forget(res)
	}
}

// maxEventResources bounds the Resource cache of live processes.
const maxEventResources = 8192

// flush exports what was added since the last flush, after whatever a
// failing backend left in the backlog, in batches of eventBatch, oldest
// first. A failed batch stays, with everything after it, for the next
// attempt after a backoff; past eventBacklog records the oldest are
// dropped and counted. Stopping makes one last attempt and counts what is
// left.
func (e *eventPipeline) flush() {
	recs := e.builder.Take()
	e.backlog = append(e.backlog, recs...)
	e.backlogNodes = append(e.backlogNodes, e.nodes...)
	e.nodes = e.nodes[:0]
	stopping := false
	select {
	case <-e.stop:
		stopping = true
	default:
	}
	if len(e.backlog) > 0 && (stopping || !time.Now().Before(e.retryAt)) {
		e.exportBacklog(stopping)
	}
	if stopping {
		e.dropOldest(len(e.backlog))
		return
	}
	e.dropOldest(len(e.backlog) - eventBacklog)
}

// exportBacklog sends the backlog batch by batch until one fails.
func (e *eventPipeline) exportBacklog(stopping bool) {
	parent := context.Background()
	if stopping {
		parent = e.stopCtx
	}
	sent := 0
	defer func() { e.discard(sent) }()
	for sent < len(e.backlog) {
		batch := e.backlog[sent:min(len(e.backlog), sent+eventBatch)]
		ctx, cancel := context.WithTimeout(parent, export.EventExportTimeout())
		err := e.exporter.ExportEvents(ctx, batch)
		cancel()
		if err != nil {
			e.outage.Begin(e.log, "event export failing; events are kept and retried, the oldest dropped (and counted) past the backlog",
				"err", err, "backlog", eventBacklog)
			e.retryWait = min(max(2*e.retryWait, eventRetryMin), eventRetryMax)
			e.retryAt = time.Now().Add(e.retryWait)
			return
		}
		e.outage.End(e.log, "event export recovered", "outage", "backlog", len(e.backlog)-sent)
		e.retryWait, e.retryAt = 0, time.Time{}
		e.exported += uint64(len(batch))
		sent += len(batch)
	}
}

// dropOldest drops the n oldest records of the backlog: lost, and counted,
// like every other drop, by the node they came through.
func (e *eventPipeline) dropOldest(n int) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	for _, node := range e.backlogNodes[:n] {
		e.failed[node]++
	}
	e.mu.Unlock()
	e.discard(n)
}

// discard removes the n oldest records of the backlog.
func (e *eventPipeline) discard(n int) {
	if n <= 0 {
		return
	}
	k := copy(e.backlog, e.backlog[n:])
	clear(e.backlog[k:]) // release the records' attributes
	e.backlog = e.backlog[:k]
	e.backlogNodes = e.backlogNodes[:copy(e.backlogNodes, e.backlogNodes[n:])]
}

func (e *eventPipeline) String() string {
	return fmt.Sprintf("events(%d sources)", len(e.sources))
}
