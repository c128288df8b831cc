package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// otlpMetricsExportMethod is the gRPC method sendEncoded calls for metrics.
const otlpMetricsExportMethod = colmetricspb.MetricsService_Export_FullMethodName

// sendEncoded sends one request already encoded as protobuf (body, e.g. an
// ExportMetricsServiceRequest from otlpProtoEncoder) over gRPC (method, the
// full method name) or http/protobuf (to the signal's URL), with the same
// timeout, headers, gzip, user agent and error wording as send, and decodes
// the response into resp. The caller may reuse body once it returns.
// http/json cannot carry a protobuf body: it is an error.
func (c *otlpClient) sendEncoded(ctx context.Context, method string, body []byte, resp proto.Message) error {
	if c.conn == nil && c.cfg.protocol == ProtocolHTTPJSON {
		return errors.New("otlp export: a protobuf-encoded request cannot be sent over http/json")
	}
	return c.call(ctx,
		func(ctx context.Context) error {
			// The connection's default call options (gzip) still apply:
			// the codec only replaces how messages become bytes.
			return c.conn.Invoke(ctx, method, encodedMessage(body), resp, grpc.ForceCodecV2(encodedCodec{&c.sendBufs}))
		},
		func(ctx context.Context) error { return c.postBody(ctx, body, "application/x-protobuf", resp) })
}

// encodedMessage is a request already in protobuf wire format.
type encodedMessage []byte

// encodedCodec is the gRPC codec for sendEncoded: a request is an
// encodedMessage, sent as is; a response is a proto.Message, decoded as
// grpc's own proto codec does. Its name is "proto", so the content type
// (application/grpc+proto) is what a receiver expects of OTLP.
type encodedCodec struct{ bufs *sendBufs }

// Marshal copies the request into a buffer gRPC owns: gRPC may still hold
// the message's buffers after Invoke returns (the transport writes and frees
// them asynchronously, e.g. when the server answered early), and the caller
// reuses its buffer. A copy is a small fraction of encoding's cost. The
// copies come from the client's own small free list, not gRPC's shared
// pool: that one (a sync.Pool) kept ~14 request-sized buffers (42 MB) alive
// after a backlog of intervals was sent.
func (c encodedCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(encodedMessage)
	if !ok {
		return nil, fmt.Errorf("encoded codec: cannot send %T", v)
	}
	return mem.BufferSlice{mem.Copy(b, c.bufs)}, nil
}

// sendBufs is a mem.BufferPool of the request copies in flight: one
// exporter sends one request at a time and gRPC has usually freed the copy
// when Invoke returns, so one kept copy serves every request; a copy still
// held makes another, which goes to the garbage collector afterwards.
type sendBufs struct {
	mu   sync.Mutex
	free []*[]byte
	made int // buffers allocated (tests)
}

const maxFreeSendBufs = 1

// Get returns a buffer of length n, reusing a free one big enough.
func (p *sendBufs) Get(n int) *[]byte {
	p.mu.Lock()
	for i, b := range p.free {
		if cap(*b) >= n {
			p.free = slices.Delete(p.free, i, i+1)
			p.mu.Unlock()
			*b = (*b)[:n]
			return b
		}
	}
	p.made++
	p.mu.Unlock()
	b := make([]byte, n)
	return &b
}

// Put keeps b for reuse unless one is kept already.
func (p *sendBufs) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < maxFreeSendBufs {
		p.free = append(p.free, b)
	}
}

func (encodedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("encoded codec: cannot decode into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

func (encodedCodec) Name() string { return "proto" }

// trackedBody hands out readers of one HTTP request body (the first one,
// and one per GetBody for a retry or redirect) and waits until the
// transport has closed them all: net/http may close, so still read, a
// request body after RoundTrip returns.
type trackedBody struct {
	body   []byte
	mu     sync.Mutex
	open   int
	closed chan struct{} // a token per Close
}

func newTrackedBody(body []byte) *trackedBody {
	return &trackedBody{body: body, closed: make(chan struct{}, 1)}
}

func (t *trackedBody) reader() io.ReadCloser {
	t.mu.Lock()
	t.open++
	t.mu.Unlock()
	return &trackedReader{Reader: bytes.NewReader(t.body), t: t}
}

func (t *trackedBody) getBody() (io.ReadCloser, error) { return t.reader(), nil }

// wait returns once every reader is closed, or when ctx ends: the request
// is then cancelled, and the bound keeps a transport that never closed a
// body from hanging the exporter.
func (t *trackedBody) wait(ctx context.Context) {
	for {
		t.mu.Lock()
		open := t.open
		t.mu.Unlock()
		if open == 0 {
			return
		}
		select {
		case <-t.closed:
		case <-ctx.Done():
			return
		}
	}
}

type trackedReader struct {
	*bytes.Reader
	t    *trackedBody
	once sync.Once
}

func (r *trackedReader) Close() error {
	r.once.Do(func() {
		r.t.mu.Lock()
		r.t.open--
		r.t.mu.Unlock()
		select {
		case r.t.closed <- struct{}{}:
		default: // a token is pending: wait rechecks the count anyway
		}
	})
	return nil
}
