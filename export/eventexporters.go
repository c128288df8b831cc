package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// ---- otlp-json ------------------------------------------------------------

// otlpJSONEvents writes ExportLogsServiceRequest lines into the file of an
// otlp-json metric exporter, between its metric lines: one file holds both
// signals, in the Collector file exporter's format (its otlpjsonfile
// receiver tells the request types apart by their top-level key).
//
// Records are encoded by hand (otlplogs_encode.go) and streamed to the
// file's buffered writer in chunks of otlpJSONChunk, through the file's
// reused line buffer, as metric intervals are: memory is a chunk, not the
// batch, and nothing is allocated per record.
type otlpJSONEvents struct {
	e   *otlpJSON
	enc *otlpLogsEncoder // guarded by e.mu
}

// OTLPJSONEvents returns the event exporter writing into the same file as
// metrics, which must come from NewOTLPJSON. The file belongs to metrics:
// shut metrics down last; this exporter's Shutdown does nothing.
func OTLPJSONEvents(metrics Exporter) (EventExporter, error) {
	e, ok := metrics.(*otlpJSON)
	if !ok {
		return nil, fmt.Errorf("otlp-json events: %T is not an otlp-json exporter", metrics)
	}
	return otlpJSONEvents{e: e, enc: &otlpLogsEncoder{}}, nil
}

// ExportEvents writes the batch as exactly one line and flushes it.
func (x otlpJSONEvents) ExportEvents(ctx context.Context, records []sdklog.Record) error {
	e := x.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("otlp-json %s: events after shutdown", e.path)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("otlp-json %s: %w", e.path, err)
	}
	if len(records) == 0 {
		return nil
	}
	// The line buffer's memory, reused: it only ever holds a chunk and a
	// record, so it stays that size.
	e.line.Reset()
	e.beginLine()
	write := func(p []byte) error {
		if _, err := e.w.Write(p); err != nil {
			return fmt.Errorf("otlp-json %s: write: %w", e.path, err)
		}
		return nil
	}
	b, err := x.enc.appendJSON(e.line.AvailableBuffer(), records, otlpJSONChunk, write)
	if err == nil {
		err = write(append(b, '\n'))
	}
	if cap(b) > e.line.Cap() {
		e.line.Grow(cap(b)) // keep the grown memory for the next batch
	}
	if err != nil {
		return e.abortLine(err)
	}
	if err := e.w.Flush(); err != nil {
		return e.abortLine(fmt.Errorf("otlp-json %s: flush: %w", e.path, err))
	}
	return nil
}

func (otlpJSONEvents) Shutdown(context.Context) error { return nil }

// ---- console --------------------------------------------------------------

// consoleEvents prints one line per event:
//
//	12:51:47.123 telagent.process.exit pid=27180 exe=sh process.exit.code=3 telagent.process.lifetime=0.0021
type consoleEvents struct {
	w   io.Writer
	buf bytes.Buffer
}

// NewConsoleEvents returns the human-readable event exporter writing to w,
// one Write per batch.
func NewConsoleEvents(w io.Writer) EventExporter { return &consoleEvents{w: w} }

func (c *consoleEvents) ExportEvents(_ context.Context, records []sdklog.Record) error {
	if len(records) == 0 {
		return nil
	}
	c.buf.Reset()
	for i := range records {
		r := &records[i]
		c.buf.WriteString(r.Timestamp().Local().Format("15:04:05.000"))
		c.buf.WriteByte(' ')
		c.buf.WriteString(r.EventName())
		if res := r.Resource(); res != nil {
			set := res.Set()
			if v, ok := set.Value(keyPID); ok {
				c.buf.WriteString(" pid=" + v.Emit())
			}
			if v, ok := set.Value(keyExecutable); ok {
				c.buf.WriteString(" exe=" + quoteIfNeeded(v.Emit()))
			}
		}
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			c.buf.WriteString(" " + string(kv.Key) + "=" + quoteIfNeeded(consoleValue(kv.Value)))
			return true
		})
		c.buf.WriteByte('\n')
	}
	if _, err := c.w.Write(c.buf.Bytes()); err != nil {
		return fmt.Errorf("console events: %w", err)
	}
	return nil
}

func (*consoleEvents) Shutdown(context.Context) error { return nil }

func consoleValue(v attribute.Value) string {
	switch v.Type() {
	case attribute.FLOAT64:
		return strconv.FormatFloat(v.AsFloat64(), 'g', 6, 64)
	case attribute.STRINGSLICE:
		parts := v.AsStringSlice()
		for i, p := range parts {
			parts[i] = quoteIfNeeded(p)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return v.Emit()
}

// quoteIfNeeded quotes values a reader could not split on spaces (and any
// control character, so one event is always one line).
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=") || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

// eventTimeout bounds one batch export, so a dead backend delays the next
// batch by at most this long.
const eventTimeout = 5 * time.Second

// EventExportTimeout is how long one event batch may take to export.
func EventExportTimeout() time.Duration { return eventTimeout }
