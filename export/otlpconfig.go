package export

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
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
	// EndpointName is how errors name Endpoint ("--endpoint"); an
	// endpoint from the environment is named by its variable.
	EndpointName string
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
	// Errors name where the endpoint came from.
	src := "otlp endpoint"
	switch {
	case fromFlag && opts.EndpointName != "":
		src = opts.EndpointName
	case !fromFlag && perSignal:
		src = "OTEL_EXPORTER_OTLP_" + signal + "_ENDPOINT"
	case !fromFlag && ep != "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		src = "OTEL_EXPORTER_OTLP_ENDPOINT"
	}
	scheme := endpointScheme(ep)
	switch {
	case scheme == "http" || scheme == "https":
		u, err := url.Parse(ep)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("%s %q: not a valid URL", src, ep)
		}
		if p := u.Port(); p != "" {
			if err := checkPort(p); err != nil {
				return nil, fmt.Errorf("%s %q: %v", src, ep, err)
			}
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
			return nil, fmt.Errorf("%s %q: %s needs an http:// or https:// URL", src, ep, cfg.protocol)
		}
		if err := checkHostPort(ep); err != nil {
			return nil, fmt.Errorf("%s %q: %v", src, ep, err)
		}
		// host:port on the command line: plaintext, like gRPC's.
		plaintext = true
		cfg.target = "http://" + ep + path
	case scheme != "" && scheme != "unix":
		// gRPC would take ftp://… for a resolver name it does not know
		// and never connect.
		return nil, fmt.Errorf("%s %q: want HOST:PORT or an http://, https:// or unix:// URL", src, ep)
	default:
		if scheme == "" {
			if err := checkHostPort(ep); err != nil {
				return nil, fmt.Errorf("%s %q: %v", src, ep, err)
			}
		}
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

// checkHostPort checks a bare "host:port" endpoint without looking the
// host up: a port out of range or a missing host would otherwise show only
// as exports that never arrive.
func checkHostPort(ep string) error {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return errors.New("want HOST:PORT or an http:// or https:// URL")
	}
	if host == "" {
		return errors.New("no host (want HOST:PORT, e.g. localhost:4317)")
	}
	return checkPort(port)
}

// checkPort checks that a port is a number from 1 to 65535.
func checkPort(port string) error {
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil || n == 0 || n > 65535 {
		return fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return nil
}

// CheckOTLP resolves the metric and log exporters' settings from opts and
// the environment the way NewOTLP and NewOTLPLogs do, without creating
// either: bad settings are found before anything is attached.
func CheckOTLP(opts OTLPOptions) error {
	if _, err := resolveOTLP(opts, "METRICS", "/v1/metrics"); err != nil {
		return err
	}
	_, err := resolveOTLP(opts, "LOGS", "/v1/logs")
	return err
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
		// What both HTTP and gRPC accept: gRPC metadata keys are
		// lower-case letters, digits, '-', '_' and '.', values printable
		// ASCII; anything else fails every export, not the start.
		for _, r := range k {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return nil, fmt.Errorf("header %q: key %q may hold only letters, digits, '-', '_' and '.'", part, k)
			}
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		for i := 0; i < len(dv); i++ {
			if dv[i] < 0x20 || dv[i] > 0x7e {
				return nil, fmt.Errorf("header %q: the value may hold only printable ASCII (byte %#x)", k, dv[i])
			}
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
