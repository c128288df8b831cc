package otlptest

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // clients (a Collector's otlp exporter) compress by default
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Options configure NewServer.
type Options struct {
	// HTTP serves OTLP/HTTP (/v1/metrics, /v1/logs, protobuf or JSON)
	// instead of OTLP/gRPC.
	HTTP bool
	// TLS, when set, is the server's TLS configuration (set ClientAuth and
	// ClientCAs to require a client certificate).
	TLS *tls.Config
}

// Request is one export request as received, with what came with it.
type Request struct {
	Metrics *colmetricspb.ExportMetricsServiceRequest // nil for logs
	Logs    *collogspb.ExportLogsServiceRequest       // nil for metrics
	// Headers are the request's metadata (gRPC) or HTTP headers, with
	// lower-case keys.
	Headers map[string][]string
	// Gzip: the body arrived gzip-compressed.
	Gzip bool
}

// Server is an OTLP endpoint for metrics and logs on 127.0.0.1, over gRPC
// or HTTP, optionally TLS, that records every request. It can be told to
// fail or to stall (accept and never answer).
type Server struct {
	colmetricspb.UnimplementedMetricsServiceServer
	collogspb.UnimplementedLogsServiceServer

	lis  net.Listener
	url  string
	grpc *grpc.Server
	http *http.Server

	mu      sync.Mutex
	reqs    []Request
	changed chan struct{}
	fail    error
	stall   chan struct{}   // non-nil: handlers block until it is closed
	gzipped map[uint64]bool // by RPC number (rpcs)
	rpcs    uint64
	stopped chan struct{}
}

// NewServer starts a server on 127.0.0.1:0; it stops when the test ends.
func NewServer(t testing.TB, o Options) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("otlptest: listen: %v", err)
	}
	s := &Server{lis: lis, changed: make(chan struct{}), stopped: make(chan struct{})}
	scheme := "http"
	if o.TLS != nil {
		scheme = "https"
	}
	s.url = scheme + "://" + lis.Addr().String()
	if o.HTTP {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /v1/metrics", s.serveHTTP)
		mux.HandleFunc("POST /v1/logs", s.serveHTTP)
		s.http = &http.Server{Handler: mux, TLSConfig: o.TLS}
		go func() {
			if o.TLS != nil {
				_ = s.http.ServeTLS(lis, "", "")
			} else {
				_ = s.http.Serve(lis)
			}
		}()
	} else {
		var opts []grpc.ServerOption
		if o.TLS != nil {
			opts = append(opts, grpc.Creds(credentials.NewTLS(o.TLS)))
		}
		opts = append(opts, grpc.StatsHandler(gzipSeen{s}))
		s.grpc = grpc.NewServer(opts...)
		colmetricspb.RegisterMetricsServiceServer(s.grpc, s)
		collogspb.RegisterLogsServiceServer(s.grpc, logsService{s})
		go func() { _ = s.grpc.Serve(lis) }()
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is the "host:port" the server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// URL is the server's base URL (http:// or https://).
func (s *Server) URL() string { return s.url }

// Stop closes the server and releases stalled handlers.
func (s *Server) Stop() {
	s.mu.Lock()
	select {
	case <-s.stopped:
		s.mu.Unlock()
		return
	default:
	}
	close(s.stopped)
	if s.stall != nil {
		close(s.stall)
		s.stall = nil
	}
	s.mu.Unlock()
	if s.grpc != nil {
		s.grpc.Stop()
	}
	if s.http != nil {
		_ = s.http.Close()
	}
}

// SetError makes following requests fail with err (a gRPC status error;
// over HTTP every error is a 503); nil restores success.
func (s *Server) SetError(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

// SetStall(true) makes following requests hang until SetStall(false) or
// Stop: the backend accepts the connection and never answers.
func (s *Server) SetStall(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.stall == nil:
		s.stall = make(chan struct{})
	case !on && s.stall != nil:
		close(s.stall)
		s.stall = nil
	}
}

// Requests returns every request recorded so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Metrics returns the metric requests recorded so far.
func (s *Server) Metrics() []*colmetricspb.ExportMetricsServiceRequest {
	var out []*colmetricspb.ExportMetricsServiceRequest
	for _, r := range s.Requests() {
		if r.Metrics != nil {
			out = append(out, r.Metrics)
		}
	}
	return out
}

// Logs returns the log requests recorded so far.
func (s *Server) Logs() []*collogspb.ExportLogsServiceRequest {
	var out []*collogspb.ExportLogsServiceRequest
	for _, r := range s.Requests() {
		if r.Logs != nil {
			out = append(out, r.Logs)
		}
	}
	return out
}

// WaitFor blocks until cond(requests so far) is true or ctx ends.
func (s *Server) WaitFor(ctx context.Context, cond func([]Request) bool) error {
	for {
		s.mu.Lock()
		reqs := append([]Request(nil), s.reqs...)
		changed := s.changed
		s.mu.Unlock()
		if cond(reqs) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("otlptest: condition not met after %d requests: %w", len(reqs), ctx.Err())
		}
	}
}

// admit applies stall and failure; it returns the error to answer with.
func (s *Server) admit(ctx context.Context) error {
	s.mu.Lock()
	stall, fail := s.stall, s.fail
	s.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fail
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Export implements the OTLP MetricsService.
func (s *Server) Export(ctx context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	if err := s.admit(ctx); err != nil {
		return nil, err
	}
	s.record(Request{Metrics: proto.Clone(req).(*colmetricspb.ExportMetricsServiceRequest), Headers: grpcHeaders(ctx), Gzip: s.takeGzip(ctx)})
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

// logsService adapts the Server to the LogsService, whose Export method
// has the same name as the MetricsService's.
type logsService struct{ *Server }

func (l logsService) Export(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	if err := l.admit(ctx); err != nil {
		return nil, err
	}
	l.record(Request{Logs: proto.Clone(req).(*collogspb.ExportLogsServiceRequest), Headers: grpcHeaders(ctx), Gzip: l.takeGzip(ctx)})
	return &collogspb.ExportLogsServiceResponse{}, nil
}

func grpcHeaders(ctx context.Context) map[string][]string {
	md, _ := metadata.FromIncomingContext(ctx)
	return md
}

// gzipSeen notes, per RPC, whether its request payload arrived compressed
// (the stats handler sees compressed and uncompressed sizes; grpc-go does
// not put grpc-encoding into the metadata).
type gzipSeen struct{ s *Server }

type rpcKey struct{}

func (g gzipSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	g.s.mu.Lock()
	g.s.rpcs++
	n := g.s.rpcs
	g.s.mu.Unlock()
	return context.WithValue(ctx, rpcKey{}, n)
}

func (g gzipSeen) HandleRPC(ctx context.Context, st stats.RPCStats) {
	if in, ok := st.(*stats.InPayload); ok {
		n, _ := ctx.Value(rpcKey{}).(uint64)
		g.s.mu.Lock()
		if g.s.gzipped == nil {
			g.s.gzipped = map[uint64]bool{}
		}
		g.s.gzipped[n] = in.CompressedLength > 0 && in.CompressedLength != in.Length
		g.s.mu.Unlock()
	}
}

func (gzipSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (gzipSeen) HandleConn(context.Context, stats.ConnStats)                       {}

func (s *Server) takeGzip(ctx context.Context) bool {
	n, _ := ctx.Value(rpcKey{}).(uint64)
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.gzipped[n]
	delete(s.gzipped, n)
	return z
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.admit(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	var body io.Reader = r.Body
	gz := r.Header.Get("Content-Encoding") == "gzip"
	if gz {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	isJSON := strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
	unmarshal := func(m proto.Message) error {
		if isJSON {
			return protojson.Unmarshal(raw, m)
		}
		return proto.Unmarshal(raw, m)
	}
	hdr := map[string][]string{}
	for k, v := range r.Header {
		hdr[strings.ToLower(k)] = v
	}
	var resp proto.Message
	req := Request{Headers: hdr, Gzip: gz}
	if r.URL.Path == "/v1/metrics" {
		req.Metrics = &colmetricspb.ExportMetricsServiceRequest{}
		err = unmarshal(req.Metrics)
		resp = &colmetricspb.ExportMetricsServiceResponse{}
	} else {
		req.Logs = &collogspb.ExportLogsServiceRequest{}
		err = unmarshal(req.Logs)
		resp = &collogspb.ExportLogsServiceResponse{}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.record(req)
	var out []byte
	if isJSON {
		w.Header().Set("Content-Type", "application/json")
		out, _ = protojson.Marshal(resp)
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ = proto.Marshal(resp)
	}
	_, _ = w.Write(out)
}
