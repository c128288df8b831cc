package export

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Protocols of the OTLP exporters (OTEL_EXPORTER_OTLP_PROTOCOL values).
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
	ProtocolHTTPJSON     = "http/json"
)

// OTLPOptions configures NewOTLP and the event exporter. Everything not set
// here comes from the standard OTEL_EXPORTER_OTLP_* variables and their
// per-signal forms (OTEL_EXPORTER_OTLP_METRICS_* / _LOGS_*): endpoint,
// protocol, headers, certificate, client certificate and key, compression,
// timeout and insecure. A per-signal variable wins over the generic one.
type OTLPOptions struct {
	// Protocol is grpc, http/protobuf or http/json; "" reads
	// OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL, default grpc.
	Protocol string
	// Endpoint is "host:port" or a URL (http://, https://; unix:// for
	// gRPC). When set it overrides the endpoint variables.
	//
	// A bare "host:port" given here is dialled WITHOUT TLS unless Insecure
	// is set to false: an endpoint typed on the command line is almost
	// always a local or sidecar Collector, whose OTLP receiver listens in
	// plaintext by default, and TLS there fails with an opaque handshake
	// error. Use an https:// URL (or Insecure=false) for a TLS endpoint.
	// A CA or client certificate in the environment still turns TLS on.
	Endpoint string
	// Insecure, when non-nil, forces plaintext (true) or TLS (false) over
	// both the default above and the environment.
	Insecure *bool
	// UserAgent is sent with every request ("telagent/<version>").
	UserAgent string
}

// otlpConfig is OTLPOptions resolved against the environment for one
// signal.
type otlpConfig struct {
	protocol    string
	target      string // gRPC: host:port or unix:... ; HTTP: the full URL
	tls         *tls.Config
	headers     map[string]string
	gzip        bool
	timeout     time.Duration
	userAgent   string
	description string // endpoint as the operator wrote it, for messages
}

// otlpEnv reads OTEL_EXPORTER_OTLP_<SIGNAL>_<key>, else
// OTEL_EXPORTER_OTLP_<key>. It also says which one it read: a per-signal
// HTTP endpoint is used as is, a generic one gets the signal's path.
func otlpEnv(signal, key string) (val string, perSignal bool) {
	if v := strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_" + signal + "_" + key)); v != "" {
		return v, true
	}
	return strings.TrimSpace(os.Getenv("OTEL_EXPORTER_OTLP_" + key)), false
}

// resolveOTLP builds the configuration of signal ("METRICS" or "LOGS",
// HTTP path "/v1/metrics" or "/v1/logs"). Errors name the variable or
// option at fault.
func resolveOTLP(opts OTLPOptions, signal, path string) (*otlpConfig, error) {
	cfg := &otlpConfig{userAgent: opts.UserAgent, timeout: 10 * time.Second}
	cfg.protocol = strings.TrimSpace(opts.Protocol)
	if cfg.protocol == "" {
		cfg.protocol, _ = otlpEnv(signal, "PROTOCOL")
	}
	if cfg.protocol == "" {
		cfg.protocol = ProtocolGRPC
	}
	switch cfg.protocol {
	case ProtocolGRPC, ProtocolHTTPProtobuf, ProtocolHTTPJSON:
	default:
		return nil, fmt.Errorf("otlp protocol %q: want grpc, http/protobuf or http/json", cfg.protocol)
	}
	isHTTP := cfg.protocol != ProtocolGRPC

	// Endpoint and whether it is plaintext.
	var plaintext bool
	ep, perSignal, fromFlag := strings.TrimSpace(opts.Endpoint), true, true
	if ep == "" {
		fromFlag = false
		ep, perSignal = otlpEnv(signal, "ENDPOINT")
	}
	if ep == "" {
		perSignal = false
		if isHTTP {
			ep = "http://localhost:4318"
		} else {
			ep = "http://localhost:4317"
		}
	}
	cfg.description = ep
	scheme := endpointScheme(ep)
	switch {
	case scheme == "http" || scheme == "https":
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("otlp endpoint %q: not a valid URL", ep)
		}
		plaintext = scheme == "http"
		if isHTTP {
			if !perSignal || (fromFlag && (u.Path == "" || u.Path == "/")) {
				// A generic endpoint is the base URL: the signal's path is
				// appended (OTLP exporter spec); a per-signal one is used as
				// is.
				u.Path = strings.TrimSuffix(u.Path, "/") + path
			}
			cfg.target = u.String()
		} else {
			cfg.target = u.Host
		}
	case isHTTP:
		if scheme != "" {
			return nil, fmt.Errorf("otlp endpoint %q: %s needs an http:// or https:// URL", ep, cfg.protocol)
		}
		// host:port on the command line: plaintext, like gRPC's.
		plaintext = true
		cfg.target = "http://" + ep + path
	default:
		// host:port, or a gRPC target such as unix:///run/otel.sock.
		cfg.target = ep
		plaintext = fromFlag || scheme == "unix"
		if v, _ := otlpEnv(signal, "INSECURE"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_%s_INSECURE/OTEL_EXPORTER_OTLP_INSECURE %q: not a boolean", signal, v)
			}
			plaintext = b
		}
	}
	if opts.Insecure != nil {
		plaintext = *opts.Insecure
	}

	// TLS material: a CA or client certificate means TLS.
	ca, _ := otlpEnv(signal, "CERTIFICATE")
	cert, _ := otlpEnv(signal, "CLIENT_CERTIFICATE")
	key, _ := otlpEnv(signal, "CLIENT_KEY")
	if ca != "" || cert != "" {
		if opts.Insecure != nil && *opts.Insecure {
			return nil, errors.New("otlp: insecure requested but OTEL_EXPORTER_OTLP_*CERTIFICATE names a certificate")
		}
		plaintext = false
	}
	if !plaintext {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("otlp CA certificate: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("otlp CA certificate %s: no PEM certificate in it", ca)
			}
			tc.RootCAs = pool
		}
		if (cert == "") != (key == "") {
			return nil, errors.New("otlp client certificate: OTEL_EXPORTER_OTLP_*CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_*CLIENT_KEY go together")
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("otlp client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cfg.tls = tc
		if isHTTP && strings.HasPrefix(cfg.target, "http://") {
			cfg.target = "https://" + strings.TrimPrefix(cfg.target, "http://")
		}
	} else if isHTTP && strings.HasPrefix(cfg.target, "https://") {
		cfg.target = "http://" + strings.TrimPrefix(cfg.target, "https://")
	}

	if h, _ := otlpEnv(signal, "HEADERS"); h != "" {
		hs, err := parseHeaders(h)
		if err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_%s_HEADERS/OTEL_EXPORTER_OTLP_HEADERS: %w", signal, err)
		}
		cfg.headers = hs
	}
	switch c, _ := otlpEnv(signal, "COMPRESSION"); c {
	case "", "none":
	case "gzip":
		cfg.gzip = true
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_%s_COMPRESSION/OTEL_EXPORTER_OTLP_COMPRESSION %q: want gzip or none", signal, c)
	}
	if t, _ := otlpEnv(signal, "TIMEOUT"); t != "" {
		ms, err := strconv.ParseUint(t, 10, 31)
		if err != nil || ms == 0 {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_%s_TIMEOUT/OTEL_EXPORTER_OTLP_TIMEOUT %q: want positive milliseconds", signal, t)
		}
		cfg.timeout = time.Duration(ms) * time.Millisecond
	}
	return cfg, nil
}

// parseHeaders parses the W3C-baggage-like "k1=v1,k2=v2" list of the OTLP
// headers variables; values are URL-decoded.
func parseHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("header %q: want key=value", part)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		out[strings.ToLower(k)] = dv
	}
	return out, nil
}

// endpointScheme returns the lower-case URL scheme of ep, or "" for a bare
// "host:port" (which url.Parse would misread as scheme "host").
func endpointScheme(ep string) string {
	if i := strings.Index(ep, "://"); i > 0 {
		return strings.ToLower(ep[:i])
	}
	if strings.HasPrefix(strings.ToLower(ep), "unix:") {
		return "unix"
	}
	return ""
}
