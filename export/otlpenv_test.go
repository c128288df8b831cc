package export

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telagent/telagent/export/otlptest"
)

// Every protocol sends one request per interval with the headers and gzip
// that the OTEL_EXPORTER_OTLP_* variables ask for, for metrics and events.
func TestOTLPProtocolsHeadersGzip(t *testing.T) {
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTPProtobuf, ProtocolHTTPJSON} {
		t.Run(strings.ReplaceAll(proto, "/", "_"), func(t *testing.T) {
			srv := otlptest.NewServer(t, otlptest.Options{HTTP: proto != ProtocolGRPC})
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL())
			// URL-encoded value; the per-signal variable wins for metrics.
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Api-Key=s3cret%20value,tenant=generic")
			t.Setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "api-key=metrics-key")
			t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
			ctx := waitCtx(t)

			m, err := NewOTLP(ctx, OTLPOptions{UserAgent: "telagent/test"})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Shutdown(ctx)
			if err := m.Export(ctx, threeResources()); err != nil {
				t.Fatalf("metrics: %v", err)
			}
			l, err := NewOTLPLogs(ctx, OTLPOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Shutdown(ctx)
			if err := l.ExportEvents(ctx, twoEvents(t)); err != nil {
				t.Fatalf("events: %v", err)
			}

			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2 (one interval, one event batch)", len(reqs))
			}
			if reqs[0].Metrics == nil || len(reqs[0].Metrics.ResourceMetrics) != 3 {
				t.Errorf("first request is not the interval's 3 resources: %v", reqs[0].Metrics)
			}
			if reqs[1].Logs == nil || len(reqs[1].Logs.ResourceLogs) != 2 {
				t.Errorf("second request is not the 2 processes' events: %v", reqs[1].Logs)
			}
			for i, want := range []string{"metrics-key", "s3cret value"} {
				if got := reqs[i].Headers["api-key"]; len(got) != 1 || got[0] != want {
					t.Errorf("request %d: api-key %q, want %q", i, got, want)
				}
				if !reqs[i].Gzip {
					t.Errorf("request %d not gzip-compressed", i)
				}
			}
			if got := reqs[1].Headers["tenant"]; len(got) != 1 || got[0] != "generic" {
				t.Errorf("events: tenant header %q", got)
			}
			if ua := strings.Join(reqs[0].Headers["user-agent"], " "); !strings.Contains(ua, "telagent/test") {
				t.Errorf("user agent %q", ua)
			}
		})
	}
}

// mTLS from the certificate variables: a CA generated here signs the
// server's and the client's certificates; the server requires the client's.
func TestOTLPMutualTLSFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caPEM := newCA(t)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", caPEM)
	srvCert := issue(t, ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	cliCertPEM, cliKeyPEM := issuePEM(t, ca, caKey, "telagent", x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	for _, http := range []bool{false, true} {
		name := "grpc"
		if http {
			name = "http"
		}
		t.Run(name, func(t *testing.T) {
			srv := otlptest.NewServer(t, otlptest.Options{HTTP: http, TLS: &tls.Config{
				Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
			}})
			if !strings.HasPrefix(srv.URL(), "https://") {
				t.Fatalf("server URL %s", srv.URL())
			}
			proto := ProtocolGRPC
			if http {
				proto = ProtocolHTTPProtobuf
			}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL())
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
			t.Setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", caFile)
			t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2000")
			ctx := waitCtx(t)

			// Without the client certificate the server refuses.
			exp, err := NewOTLP(ctx, OTLPOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := exp.Export(ctx, threeResources()); err == nil {
				t.Error("export without a client certificate succeeded")
			}
			exp.Shutdown(ctx)

			t.Setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", write(name+"-client.pem", cliCertPEM))
			t.Setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", write(name+"-client.key", cliKeyPEM))
			exp, err = NewOTLP(ctx, OTLPOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Shutdown(ctx)
			if err := exp.Export(ctx, threeResources()); err != nil {
				t.Fatalf("mTLS export: %v", err)
			}
			if n := len(srv.Metrics()); n != 1 {
				t.Errorf("%d requests over mTLS, want 1", n)
			}
		})
	}
}

// OTEL_EXPORTER_OTLP_TIMEOUT bounds an export to a backend that accepts
// and never answers.
func TestOTLPTimeoutOnStalledBackend(t *testing.T) {
	srv := otlptest.NewServer(t, otlptest.Options{})
	srv.SetStall(true)
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "300")
	exp, err := NewOTLP(context.Background(), OTLPOptions{Endpoint: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	start := time.Now()
	err = exp.Export(context.Background(), threeResources())
	if d := time.Since(start); err == nil || d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("export to a stalled backend: err %v after %v, want a timeout after ~300ms", err, d)
	}
}

func TestOTLPConfigErrors(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		opts OTLPOptions
		want string
	}{
		{opts: OTLPOptions{Protocol: "http"}, want: `protocol "http"`},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, want: "COMPRESSION"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "10s"}, want: "TIMEOUT"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, want: "HEADERS"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}, want: "CA certificate"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/x.pem"}, want: "go together"},
		{opts: OTLPOptions{Protocol: ProtocolHTTPProtobuf, Endpoint: "unix:///run/otel.sock"}, want: "needs an http"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		_, err := NewOTLP(context.Background(), c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v opts %+v: err %v, want it to mention %q", c.env, c.opts, err, c.want)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}

func TestOTLPEndpointResolution(t *testing.T) {
	for _, c := range []struct {
		env    map[string]string
		opts   OTLPOptions
		target string
		tls    bool
	}{
		{target: "localhost:4317"},
		{opts: OTLPOptions{Protocol: ProtocolHTTPProtobuf}, target: "http://localhost:4318/v1/metrics"},
		{opts: OTLPOptions{Endpoint: "collector:4317"}, target: "collector:4317"},
		{opts: OTLPOptions{Endpoint: "https://collector:4317"}, target: "collector:4317", tls: true},
		{opts: OTLPOptions{Protocol: ProtocolHTTPProtobuf, Endpoint: "collector:4318"}, target: "http://collector:4318/v1/metrics"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://gw.example:443/otlp"}, opts: OTLPOptions{Protocol: ProtocolHTTPProtobuf},
			target: "https://gw.example:443/otlp/v1/metrics", tls: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://gw:4318/custom"}, opts: OTLPOptions{Protocol: ProtocolHTTPProtobuf},
			target: "http://gw:4318/custom"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "gw:4317", "OTEL_EXPORTER_OTLP_INSECURE": "false"}, target: "gw:4317", tls: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "gw:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true"}, target: "gw:4317"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		cfg, err := resolveOTLP(c.opts, "METRICS", "/v1/metrics")
		if err != nil {
			t.Errorf("%v %+v: %v", c.env, c.opts, err)
		} else if cfg.target != c.target || (cfg.tls != nil) != c.tls {
			t.Errorf("%v %+v: target %q tls %v, want %q tls %v", c.env, c.opts, cfg.target, cfg.tls != nil, c.target, c.tls)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}

// ---- certificates -----------------------------------------------------------

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "telagent test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func issuePEM(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	c, k := issuePEM(t, ca, caKey, cn, usage)
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}
