package export

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

// EventExporter ships events as OTLP log records (event name set, severity
// INFO, the entity on the Resource). Like Exporter, it must not keep
// records after ExportEvents returns. It is called from one goroutine, but
// possibly at the same time as the Exporter it shares an output with.
type EventExporter interface {
	ExportEvents(ctx context.Context, records []sdklog.Record) error
	Shutdown(ctx context.Context) error
}

// EventBuilder turns events into SDK log records. The SDK puts a provider's
// Resource on every record it emits and offers no other way to set one, so
// the builder keeps one small LoggerProvider per entity Resource (each with
// its own processor, which hands the record back to the builder). Forget a
// Resource once its entity is gone; the cache is also bounded.
type EventBuilder struct {
	version string
	loggers map[*resource.Resource]otellog.Logger
	out     []sdklog.Record
}

// maxEventLoggers bounds the per-Resource cache: past it the cache starts
// over, which costs a provider per Resource again and nothing else.
const maxEventLoggers = 8192

// NewEventBuilder returns a builder whose records carry the agent's
// instrumentation scope.
func NewEventBuilder(version string) *EventBuilder {
	return &EventBuilder{version: version, loggers: map[*resource.Resource]otellog.Logger{}}
}

// captureProcessor hands every record back to its builder, synchronously.
type captureProcessor struct{ b *EventBuilder }

func (c captureProcessor) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.b.out = append(c.b.out, r.Clone())
	return nil
}
func (captureProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (captureProcessor) Shutdown(context.Context) error                         { return nil }
func (captureProcessor) ForceFlush(context.Context) error                       { return nil }

// Add appends one event record: name as the event name, severity INFO,
// observed now.
func (b *EventBuilder) Add(res *resource.Resource, name string, t time.Time, attrs []attribute.KeyValue) {
	l, ok := b.loggers[res]
	if !ok {
		if len(b.loggers) >= maxEventLoggers {
			clear(b.loggers)
		}
		lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(captureProcessor{b}))
		l = lp.Logger(metrics.ScopeName, otellog.WithInstrumentationVersion(b.version), otellog.WithSchemaURL(entity.SchemaURL))
		b.loggers[res] = l
	}
	var r otellog.Record
	r.SetEventName(name)
	r.SetTimestamp(t)
	r.SetObservedTimestamp(time.Now())
	r.SetSeverity(otellog.SeverityInfo)
	r.SetSeverityText("INFO")
	r.AddAttributes(attrs...)
	l.Emit(context.Background(), r)
}

// Forget drops the provider of res (its entity is gone).
func (b *EventBuilder) Forget(res *resource.Resource) { delete(b.loggers, res) }

// Take returns the records added since the last Take.
func (b *EventBuilder) Take() []sdklog.Record {
	out := b.out
	b.out = nil
	return out
}
