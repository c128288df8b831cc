package export

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/metrics"
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
	mu     sync.Mutex
	path   string
	f      *os.File
	w      *bufio.Writer
	stdout bool
	closed bool
	// regular says f is a regular file (not a pipe or terminal), which a
	// failed line can be truncated out of.
	regular bool
	// lineStart is the file's size before the line being written
	// (beginLine): a failed write truncates the file back to it, so that
	// no torn line is ever left for a reader. -1: unknown.
	lineStart int64
	line      bytes.Buffer // reused between event batches (eventexporters.go)
	enc       []byte       // metrics encoding buffer, reused between intervals
	encoder   otlpJSONEncoder
	mat       metrics.Materializer // ExportInterval's view of one resource
}

// NewOTLPJSON opens path for appending (creating it 0644 if needed); "-"
// writes to standard output. The file is opened here, not on first Export,
// so a bad path fails at startup with a clear message instead of an
// interval later. The returned exporter is safe for use from one goroutine.
func NewOTLPJSON(path string) (Exporter, error) {
	if path == "-" {
		return &otlpJSON{path: path, f: os.Stdout, w: bufio.NewWriterSize(os.Stdout, 64<<10), stdout: true, regular: isRegular(os.Stdout)}, nil
	}
	if path == "" {
		return nil, errors.New("open output: empty path (use - for standard output)")
	}
	f, err := openOutput(path)
	if err != nil {
		return nil, err
	}
	return &otlpJSON{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10), regular: isRegular(f)}, nil
}

func isRegular(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode().IsRegular()
}

// openOutput opens path for appending, creating it 0644 if needed.
func openOutput(path string) (*os.File, error) {
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
	return f, nil
}

// Reopener is an exporter writing to a file that it can close and open
// again by name: after logrotate (or an operator) moved or deleted the
// file, the agent writes to a new file of that name (SIGHUP).
type Reopener interface {
	// Reopen opens the output by name again. It reports false, and does
	// nothing, when the output is no named file (standard output).
	Reopen() (bool, error)
}

// Reopen opens the file by its name again and writes there from the next
// line on; the old file is closed (a line in progress is finished first:
// the mutex is held across every line). If the open fails, the old file
// is kept and written to, so nothing is lost, and the error is returned.
func (e *otlpJSON) Reopen() (bool, error) {
	if e.stdout {
		return false, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return true, fmt.Errorf("otlp-json %s: reopen after shutdown", e.path)
	}
	f, err := openOutput(e.path)
	if err != nil {
		return true, err
	}
	// Between lines the buffer is empty (every line is flushed or rolled
	// back), so nothing of the old file is left in it.
	old := e.f
	e.f, e.regular = f, isRegular(f)
	e.w.Reset(f)
	if err := old.Close(); err != nil {
		return true, fmt.Errorf("otlp-json %s: close the old file: %w", e.path, err)
	}
	return true, nil
}

// beginLine records where the line about to be written starts: the end
// of the file, where O_APPEND puts it (a seek, not a stat: nothing is
// allocated per line).
func (e *otlpJSON) beginLine() {
	e.lineStart = -1
	if !e.regular {
		return
	}
	if end, err := e.f.Seek(0, io.SeekEnd); err == nil {
		e.lineStart = end
	}
}

// abortLine undoes a line whose write failed (ENOSPC, EIO, EFBIG): the
// buffered writer would keep its first error for good, so it is reset,
// and whatever part of the line reached the file is truncated away, so
// that the file holds only whole lines and the next attempt (the queue
// retries the interval, the event pipeline its batch) starts clean once
// the disk has room again. It returns err, with the rollback's own
// failure if there was one.
func (e *otlpJSON) abortLine(err error) error {
	e.w.Reset(e.f)
	if e.lineStart < 0 {
		return err
	}
	if terr := e.f.Truncate(e.lineStart); terr != nil {
		return errors.Join(err, fmt.Errorf("otlp-json %s: remove the partly written line: %w", e.path, terr))
	}
	// Without O_APPEND (standard output redirected to a file) the next
	// write goes to the file offset, which must not stay past the end.
	if _, serr := e.f.Seek(e.lineStart, io.SeekStart); serr != nil {
		return errors.Join(err, fmt.Errorf("otlp-json %s: seek: %w", e.path, serr))
	}
	return err
}

// Export writes the interval's request as exactly one line and flushes it,
// so a reader tailing the file never sees half an interval for long and a
// crash loses at most the interval being written.
func (e *otlpJSON) Export(ctx context.Context, rms []metricdata.ResourceMetrics) error {
	return e.write(ctx, resources{rms: rms})
}

// ExportInterval is Export reading the builder's compact form one resource
// at a time: the interval never exists whole as metricdata.
func (e *otlpJSON) ExportInterval(ctx context.Context, iv *metrics.Interval) error {
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
	e.beginLine()
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
				return e.abortLine(fmt.Errorf("otlp-json %s: write: %w", e.path, err))
			}
			b = b[:0]
		}
	}
	b = append(b, otlpJSONRequestTail+"\n"...)
	_, err := e.w.Write(b)
	e.enc = b[:0]
	if err != nil {
		return e.abortLine(fmt.Errorf("otlp-json %s: write: %w", e.path, err))
	}
	if err := e.w.Flush(); err != nil {
		return e.abortLine(fmt.Errorf("otlp-json %s: flush: %w", e.path, err))
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
