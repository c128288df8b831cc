package export

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/telagent/telagent/metrics"
)

// maxRequestBytes bounds one request's encoded (uncompressed) size. An
// interval is one request unless it is bigger than this: a Collector's
// OTLP/gRPC receiver refuses messages over 4 MiB by default (after
// decompression), so a host with thousands of processes is split into
// several requests rather than refused whole.
const maxRequestBytes = 3 << 20

// otlpJSONUnmarshal reads http/json responses; unknown fields (a newer
// backend's) are not an error.
var otlpJSONUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// otlpClient sends OTLP requests of one signal over gRPC or HTTP, with the
// configuration resolveOTLP read from the OTEL_EXPORTER_OTLP_* variables.
//
// Metrics: the otlpmetric* SDK exporters take one ResourceMetrics per call,
// which made an interval with N processes N sequential requests; this client
// sends the interval's resources together (split only past 3 MiB), so an
// interval is one RPC or POST. Both signals' requests arrive here already
// encoded by hand (otlpproto_encode.go, otlplogs_encode.go, or the JSON
// encoders for http/json), and both read the environment identically.
type otlpClient struct {
	cfg    *otlpConfig
	conn   *grpc.ClientConn // gRPC only
	http   *http.Client     // HTTP only
	closed atomic.Bool

	// requests counts requests sent (successful or not), for tests and
	// the measurements in the README.
	requests atomic.Uint64
	bufMu    sync.Mutex
	buf      bytes.Buffer // HTTP gzip body, reused
	sendBufs sendBufs     // gRPC copies of pre-encoded requests (otlp_raw.go)
}

func newOTLPClient(opts OTLPOptions, signal, path string) (*otlpClient, error) {
	cfg, err := resolveOTLP(opts, signal, path)
	if err != nil {
		return nil, err
	}
	c := &otlpClient{cfg: cfg}
	if cfg.protocol == ProtocolGRPC {
		if c.conn, err = dialGRPC(cfg); err != nil {
			return nil, err
		}
	} else {
		c.http = newHTTPClient(cfg)
	}
	return c, nil
}

// otlpMetrics is the OTLP metric exporter.
type otlpMetrics struct {
	c          *otlpClient
	maxRequest int // maxRequestBytes; tests lower it

	mu   sync.Mutex // the encoding state below: one export at a time
	enc  requestEncoder
	mat  metrics.Materializer // ExportInterval's view of one resource
	body []byte               // http/json: a request's resources wrapped as a request object
}

// NewOTLP builds the OTLP metric exporter for opts.Protocol (or the
// environment's). It does not connect: gRPC connects lazily and HTTP per
// request, so a Collector that starts after the agent is picked up on a
// later interval.
func NewOTLP(_ context.Context, opts OTLPOptions) (Exporter, error) {
	c, err := newOTLPClient(opts, "METRICS", "/v1/metrics")
	if err != nil {
		return nil, err
	}
	return &otlpMetrics{c: c, maxRequest: maxRequestBytes}, nil
}

// NewOTLPGRPC is NewOTLP over gRPC whatever the environment says.
func NewOTLPGRPC(ctx context.Context, opts OTLPOptions) (Exporter, error) {
	opts.Protocol = ProtocolGRPC
	return NewOTLP(ctx, opts)
}

func dialGRPC(cfg *otlpConfig) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if cfg.tls != nil {
		creds = credentials.NewTLS(cfg.tls)
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// gRPC's default reconnect backoff grows to 2 minutes: a Collector
		// restarted after a long outage would get data that late. An agent
		// reconnects within a few seconds (one dial every 5 s at most).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if cfg.userAgent != "" {
		dopts = append(dopts, grpc.WithUserAgent(cfg.userAgent))
	}
	if cfg.gzip {
		dopts = append(dopts, grpc.WithDefaultCallOptions(grpc.UseCompressor(grpcgzip.Name)))
	}
	conn, err := grpc.NewClient(cfg.target, dopts...)
	if err != nil {
		return nil, fmt.Errorf("otlp endpoint %s: %w", cfg.description, err)
	}
	return conn, nil
}

func newHTTPClient(cfg *otlpConfig) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // telemetry to a Collector does not go through HTTP_PROXY unasked
	if cfg.tls != nil {
		tr.TLSClientConfig = cfg.tls.Clone()
	}
	return &http.Client{Transport: tr}
}

// Export sends the interval, split only when it exceeds maxRequestBytes.
// Each request is bounded by the configured timeout (and ctx).
func (e *otlpMetrics) Export(ctx context.Context, rms []metricdata.ResourceMetrics) error {
	return e.export(ctx, resources{rms: rms})
}

// ExportInterval is Export reading the builder's compact form one resource
// at a time: the interval never exists whole as metricdata.
func (e *otlpMetrics) ExportInterval(ctx context.Context, iv *metrics.Interval) error {
	return e.export(ctx, resources{iv: iv, mat: &e.mat})
}

// export sends src in requests of at most maxRequest bytes.
func (e *otlpMetrics) export(ctx context.Context, src resources) error {
	if e.c.closed.Load() {
		return errors.New("otlp export after shutdown")
	}
	if src.len() == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	asJSON := e.c.conn == nil && e.c.cfg.protocol == ProtocolHTTPJSON
	var errs []error
	e.enc.encode(src, asJSON, e.maxRequest, func(req []byte) {
		if err := e.send(ctx, req, asJSON); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}

// resources is what an exporter encodes: an interval's metricdata, or the
// builder's compact form read through mat.
type resources struct {
	rms []metricdata.ResourceMetrics
	iv  *metrics.Interval
	mat *metrics.Materializer
}

func (r resources) len() int {
	if r.iv != nil {
		return r.iv.Len()
	}
	return len(r.rms)
}

// requestEncoder encodes resources straight into the wire format, by hand
// (otlpproto_encode.go, or otlpjson_encode.go for http/json), and cuts
// requests whenever the next resource takes one past the bound (a resource
// over the bound alone goes alone: splitting inside one would repeat its
// attributes for little gain). Memory is one request's bytes, reused,
// never the interval as proto messages; nothing is allocated per point.
type requestEncoder struct {
	proto otlpProtoEncoder
	json  otlpJSONEncoder
	buf   []byte
}

// encode hands each request's resources (a protobuf request body, or the
// members of a JSON resourceMetrics array) to emit, valid during the call.
func (r *requestEncoder) encode(src resources, asJSON bool, max int, emit func([]byte)) {
	r.proto.reset()
	r.json.reset()
	b := r.buf[:0]
	held := 0 // resources in b
	for i := range src.len() {
		start := len(b)
		if asJSON && held > 0 {
			b = append(b, ',')
		}
		b = r.appendResource(b, src, i, asJSON)
		held++
		if len(b) > max && held > 1 {
			// The resources before this one are a request; this one
			// opens the next.
			emit(b[:start])
			rest := b[start:]
			if asJSON {
				rest = rest[1:] // its separating comma
			}
			b, held = b[:copy(b, rest)], 1
		}
	}
	emit(b)
	r.buf = b[:0]
}

func (r *requestEncoder) appendResource(b []byte, src resources, i int, asJSON bool) []byte {
	switch {
	case src.iv != nil && asJSON:
		return r.json.appendIntervalResource(b, src.iv, i, src.mat)
	case src.iv != nil:
		return r.proto.appendIntervalResource(b, src.iv, i, src.mat)
	case asJSON:
		return r.json.appendResourceMetrics(b, &src.rms[i])
	default:
		return r.proto.appendResourceMetrics(b, &src.rms[i])
	}
}

// send sends one request of encoded resources and reports a partial
// success as a RejectedError.
func (e *otlpMetrics) send(ctx context.Context, resources []byte, asJSON bool) error {
	resp := &colmetricspb.ExportMetricsServiceResponse{}
	var err error
	if asJSON {
		e.body = append(append(append(e.body[:0], otlpJSONRequestHead...), resources...), otlpJSONRequestTail...)
		err = e.c.call(ctx, nil, func(ctx context.Context) error { return e.c.postBody(ctx, e.body, "application/json", resp) })
	} else {
		err = e.c.sendEncoded(ctx, otlpMetricsExportMethod, resources, resp)
	}
	if err == nil {
		if ps := resp.GetPartialSuccess(); ps.GetRejectedDataPoints() > 0 {
			err = &RejectedError{Points: ps.GetRejectedDataPoints(), Message: ps.GetErrorMessage()}
		}
	}
	return err
}

// Shutdown closes the connection; in-flight requests end with it.
func (e *otlpMetrics) Shutdown(context.Context) error { return e.c.close() }

// RequestsSent is the number of export requests an OTLP exporter (metrics
// or events) has sent, successful or not; ok is false for other exporters.
func RequestsSent(e any) (n uint64, ok bool) {
	switch x := e.(type) {
	case *otlpMetrics:
		return x.c.requests.Load(), true
	case *otlpLogs:
		return x.c.requests.Load(), true
	}
	return 0, false
}

// RejectedError is a partial success: the backend accepted the request but
// refused some points or records for good (OTLP says: do not retry).
type RejectedError struct {
	Points  int64
	Message string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("otlp backend rejected %d items: %s", e.Points, e.Message)
}

// call runs one request, grpcCall over gRPC (with the headers as
// metadata) or httpCall over HTTP, bounded by the configured timeout, and
// words its error the same for every signal and encoding.
func (c *otlpClient) call(ctx context.Context, grpcCall, httpCall func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	c.requests.Add(1)
	var err error
	if c.conn != nil {
		if len(c.cfg.headers) > 0 {
			ctx = metadata.NewOutgoingContext(ctx, metadata.New(c.cfg.headers))
		}
		err = grpcCall(ctx)
	} else {
		err = httpCall(ctx)
	}
	if err != nil {
		return fmt.Errorf("otlp export to %s: %w", c.cfg.description, err)
	}
	return nil
}

// postBody POSTs an encoded request (gzip-compressed when configured) and
// decodes a 2xx response's body into resp, as JSON when contentType is
// application/json. It returns only once the HTTP transport is done with
// body, so the caller may reuse its bytes.
func (c *otlpClient) postBody(ctx context.Context, body []byte, contentType string, resp proto.Message) error {
	c.bufMu.Lock()
	defer c.bufMu.Unlock()
	if c.cfg.gzip {
		c.buf.Reset()
		zw := gzip.NewWriter(&c.buf)
		_, _ = zw.Write(body) // writes to a bytes.Buffer do not fail
		if err := zw.Close(); err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		body = c.buf.Bytes()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.target, http.NoBody)
	if err != nil {
		return err
	}
	if len(body) > 0 {
		// http.RoundTripper may still read (and close) a request body after
		// it returns, e.g. when the server answered before reading it all;
		// body and c.buf are reused once this returns.
		tb := newTrackedBody(body)
		defer tb.wait(ctx)
		hreq.Body, hreq.GetBody = tb.reader(), tb.getBody
		hreq.ContentLength = int64(len(body))
	}
	hreq.Header.Set("Content-Type", contentType)
	if c.cfg.gzip {
		hreq.Header.Set("Content-Encoding", "gzip")
	}
	if c.cfg.userAgent != "" {
		hreq.Header.Set("User-Agent", c.cfg.userAgent)
	}
	for k, v := range c.cfg.headers {
		hreq.Header.Set(k, v)
	}
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return err
	}
	defer hresp.Body.Close()
	// Bounded: a misbehaving endpoint cannot make the agent buffer much.
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if hresp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(raw))
		if len(msg) > 200 || !strings.HasPrefix(hresp.Header.Get("Content-Type"), "text/") {
			msg = "" // a protobuf Status or an HTML page: the code says enough
		}
		return fmt.Errorf("HTTP %s %s", hresp.Status, msg)
	}
	if len(raw) > 0 {
		// A 2xx without a valid body is still a success.
		if contentType == "application/json" {
			_ = otlpJSONUnmarshal.Unmarshal(raw, resp)
		} else {
			_ = proto.Unmarshal(raw, resp)
		}
	}
	return nil
}

func (c *otlpClient) close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
	if c.conn != nil {
		if err := c.conn.Close(); err != nil {
			return fmt.Errorf("otlp exporter shutdown: %w", err)
		}
	}
	return nil
}

// otlpLogs is the OTLP event exporter: one ExportLogsServiceRequest per
// batch (at most a batch of the agent's event queue, so never split),
// encoded by hand (otlplogs_encode.go) into a reused buffer.
type otlpLogs struct {
	c *otlpClient

	mu   sync.Mutex // the encoding state below: one export at a time
	enc  otlpLogsEncoder
	body []byte
}

// NewOTLPLogs builds the OTLP event exporter. It reads the same variables
// as NewOTLP, with OTEL_EXPORTER_OTLP_LOGS_* as the per-signal forms, and
// opts overrides them the same way.
func NewOTLPLogs(_ context.Context, opts OTLPOptions) (EventExporter, error) {
	c, err := newOTLPClient(opts, "LOGS", "/v1/logs")
	if err != nil {
		return nil, err
	}
	return &otlpLogs{c: c}, nil
}

// NewOTLPLogGRPC is NewOTLPLogs over gRPC whatever the environment says.
func NewOTLPLogGRPC(ctx context.Context, opts OTLPOptions) (EventExporter, error) {
	opts.Protocol = ProtocolGRPC
	return NewOTLPLogs(ctx, opts)
}

func (e *otlpLogs) ExportEvents(ctx context.Context, records []sdklog.Record) error {
	if e.c.closed.Load() {
		return errors.New("otlp log export after shutdown")
	}
	if len(records) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	resp := &collogspb.ExportLogsServiceResponse{}
	var err error
	if e.c.conn == nil && e.c.cfg.protocol == ProtocolHTTPJSON {
		e.body, _ = e.enc.appendJSON(e.body[:0], records, 0, nil) // no emit: no error
		err = e.c.call(ctx, nil, func(ctx context.Context) error { return e.c.postBody(ctx, e.body, "application/json", resp) })
	} else {
		e.body = e.enc.appendProto(e.body[:0], records)
		err = e.c.sendEncoded(ctx, collogspb.LogsService_Export_FullMethodName, e.body, resp)
	}
	if err != nil {
		return err
	}
	if ps := resp.GetPartialSuccess(); ps.GetRejectedLogRecords() > 0 {
		return &RejectedError{Points: ps.GetRejectedLogRecords(), Message: ps.GetErrorMessage()}
	}
	return nil
}

func (e *otlpLogs) Shutdown(context.Context) error { return e.c.close() }
