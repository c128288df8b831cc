package export

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// otlpJSONChunk is how much encoded JSON the exporter gathers before
// handing it to the bufio.Writer: large enough that writes are few, small
// enough that the buffer stays a resource or two, not the whole interval.
const otlpJSONChunk = 32 << 10

// otlpJSON appends one OTLP/JSON ExportMetricsServiceRequest per Export, one
// per line, the format the Collector's file exporter writes and its
// otlpjsonfile receiver reads.
type otlpJSON struct {
	// mu serialises writers: metric intervals and event batches
	// (otlpjson_events.go) come from different goroutines.
	mu      sync.Mutex
	path    string
	f       *os.File
	w       *bufio.Writer
	stdout  bool
	closed  bool
	line    bytes.Buffer // reused between event batches (eventexporters.go)
	enc     []byte       // metrics encoding buffer, reused between intervals
	encoder otlpJSONEncoder
	mat     Materializer // ExportInterval's view of one resource
}

// NewOTLPJSON opens path for appending (creating it 0644 if needed); "-"
// writes to standard output. The file is opened here, not on first Export,
// so a bad path fails at startup with a clear message instead of an
// interval later. The returned exporter is safe for use from one goroutine.
func NewOTLPJSON(path string) (Exporter, error) {
	if path == "-" {
		return &otlpJSON{path: path, f: os.Stdout, w: bufio.NewWriterSize(os.Stdout, 64<<10), stdout: true}, nil
	}
	if path == "" {
		return nil, errors.New("open output: empty path (use - for standard output)")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		// Reword os's "open PATH: reason" into "open output PATH: reason"
		// while keeping the errno in the chain for errors.Is(fs.ErrNotExist).
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("open output %s: %w", path, pe.Err)
		}
		return nil, fmt.Errorf("open output %s: %w", path, err)
	}
	return &otlpJSON{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Export writes the interval's request as exactly one line and flushes it,
// so a reader tailing the file never sees half an interval for long and a
// crash loses at most the interval being written.
func (e *otlpJSON) Export(ctx context.Context, rms []metricdata.ResourceMetrics) error {
	return e.write(ctx, resources{rms: rms})
}

// ExportInterval is Export reading the builder's compact form one resource
// at a time: the interval never exists whole as metricdata.
func (e *otlpJSON) ExportInterval(ctx context.Context, iv *Interval) error {
	return e.write(ctx, resources{iv: iv, mat: &e.mat})
}

// write encodes src as one line.
func (e *otlpJSON) write(ctx context.Context, src resources) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("otlp-json %s: export after shutdown", e.path)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("otlp-json %s: %w", e.path, err)
	}
	if src.len() == 0 {
		return nil // nothing was counted: a line of "{}" would only be noise
	}
	// The request is streamed resource by resource through the reused
	// line buffer (otlpjson_encode.go: no reflection, no intermediate proto
	// messages, nothing allocated per data point), so memory beyond the
	// interval is one resource's JSON plus the bufio buffer.
	e.encoder.reset()
	b := append(e.enc[:0], otlpJSONRequestHead...)
	for i := range src.len() {
		if i > 0 {
			b = append(b, ',')
		}
		if src.iv != nil {
			b = e.encoder.appendIntervalResource(b, src.iv, i, src.mat)
		} else {
			b = e.encoder.appendResourceMetrics(b, &src.rms[i])
		}
		if len(b) >= otlpJSONChunk {
			if _, err := e.w.Write(b); err != nil {
				e.enc = b[:0]
				return fmt.Errorf("otlp-json %s: write: %w", e.path, err)
			}
			b = b[:0]
		}
	}
	b = append(b, otlpJSONRequestTail+"\n"...)
	_, err := e.w.Write(b)
	e.enc = b[:0]
	if err != nil {
		return fmt.Errorf("otlp-json %s: write: %w", e.path, err)
	}
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("otlp-json %s: flush: %w", e.path, err)
	}
	return nil
}

// Shutdown flushes, fsyncs and closes the file (standard output is flushed
// but neither synced nor closed: it is not ours, and fsync on a pipe or
// terminal fails with EINVAL).
func (e *otlpJSON) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	if err := e.w.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("otlp-json %s: flush: %w", e.path, err))
	}
	if !e.stdout {
		if err := e.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("otlp-json %s: fsync: %w", e.path, err))
		}
		if err := e.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("otlp-json %s: close: %w", e.path, err))
		}
	}
	return errors.Join(errs...)
}
