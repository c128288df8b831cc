package export

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/credentials"
)

// otlpWorkers bounds the goroutines one Export uses. Each resource is its
// own request (otlpmetricgrpc exports one ResourceMetrics at a time).
const otlpWorkers = 8

// OTLPOptions configures NewOTLPGRPC. Everything not set here comes from the
// standard OTEL_EXPORTER_OTLP_* / OTEL_EXPORTER_OTLP_METRICS_* environment
// variables (endpoint, headers, certificates, compression, timeout,
// insecure), which otlpmetricgrpc reads itself.
type OTLPOptions struct {
	// Endpoint is "host:port" (or a URL: http://, https://, unix://). When
	// set it overrides OTEL_EXPORTER_OTLP_ENDPOINT and
	// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT.
	//
	// A bare "host:port" given here is dialled WITHOUT TLS unless Insecure
	// is set to false: an endpoint typed on the command line is almost
	// always a local or sidecar Collector, whose OTLP receiver listens in
	// plaintext by default, and TLS there fails with an opaque handshake
	// error. Use an https:// URL (or Insecure=false) for a TLS endpoint.
	// With a URL the scheme decides: https is TLS, http is not. A client
	// certificate or CA in the environment (OTEL_EXPORTER_OTLP_CERTIFICATE
	// etc.) still turns TLS on, as otlpmetricgrpc gives it priority.
	Endpoint string
	// Insecure, when non-nil, forces plaintext (true) or TLS with the
	// system roots (false), over both the default above and the
	// environment. Nil keeps the default.
	Insecure *bool
}

// otlpGRPC sends every resource of an interval through one otlpmetricgrpc
// exporter.
type otlpGRPC struct {
	exp *otlpmetricgrpc.Exporter
}

// NewOTLPGRPC builds the OTLP/gRPC exporter. It does not wait for a
// connection: gRPC connects lazily, so a Collector that starts after the
// agent is picked up on a later interval.
func NewOTLPGRPC(ctx context.Context, opts OTLPOptions) (Exporter, error) {
	o := []otlpmetricgrpc.Option{
		// The agent produces cumulative data itself; declaring cumulative
		// makes the exporter's Temporality agree with what it sends, and
		// ignores OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, which
		// could not be honoured anyway (we do not re-aggregate).
		otlpmetricgrpc.WithTemporalitySelector(func(metric.InstrumentKind) metricdata.Temporality {
			return metricdata.CumulativeTemporality
		}),
	}
	insecure := opts.Insecure
	if ep := strings.TrimSpace(opts.Endpoint); ep != "" {
		if scheme := endpointScheme(ep); scheme == "http" || scheme == "https" {
			// WithEndpointURL sets plaintext for http and TLS for https.
			o = append(o, otlpmetricgrpc.WithEndpointURL(ep))
		} else {
			// "host:port", or a gRPC target such as unix:///run/otel.sock
			// that gRPC resolves itself; plaintext unless told otherwise
			// (see OTLPOptions.Endpoint).
			o = append(o, otlpmetricgrpc.WithEndpoint(ep))
			if insecure == nil {
				o = append(o, otlpmetricgrpc.WithInsecure())
			}
		}
	}
	if insecure != nil {
		if *insecure {
			o = append(o, otlpmetricgrpc.WithInsecure())
		} else if !envHasCertificate() {
			// otlpmetricgrpc has no public "secure" option; explicit
			// credentials take priority over any insecure setting. When
			// the environment names a certificate, its TLS config already
			// wins over insecure, so leave it in place.
			o = append(o, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(nil)))
		}
	}
	exp, err := otlpmetricgrpc.New(ctx, o...)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	return &otlpGRPC{exp: exp}, nil
}

// endpointScheme returns the lower-case URL scheme of ep, or "" for a bare
// "host:port" (which url.Parse would misread as scheme "host").
func endpointScheme(ep string) string {
	if i := strings.Index(ep, "://"); i > 0 {
		return strings.ToLower(ep[:i])
	}
	return ""
}

func envHasCertificate() bool {
	for _, k := range []string{
		"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
	} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

// Export sends each resource as its own request, at most otlpWorkers at a
// time, and waits for all of them before returning (the caller reuses rms).
// Failures are per resource and joined; one bad resource does not stop the
// rest.
//
// Note: otlpmetricgrpc v1.47 holds a mutex around the upload inside
// Exporter.Export, so the RPCs of one exporter are in fact sent one after
// another; the workers overlap only the metricdata→protobuf transform. The
// concurrency is kept so nothing here changes if that lock goes away.
func (e *otlpGRPC) Export(ctx context.Context, rms []metricdata.ResourceMetrics) error {
	if len(rms) == 0 {
		return nil
	}
	errs := make([]error, len(rms))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(otlpWorkers, len(rms)) {
		wg.Go(func() {
			for i := range next {
				if err := e.exp.Export(ctx, &rms[i]); err != nil {
					errs[i] = fmt.Errorf("otlp export of resource %s: %w", resourceLabel(&rms[i]), err)
				}
			}
		})
	}
	for i := range rms {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// Shutdown closes the gRPC connection.
func (e *otlpGRPC) Shutdown(ctx context.Context) error {
	if err := e.exp.Shutdown(ctx); err != nil {
		return fmt.Errorf("otlp exporter shutdown: %w", err)
	}
	return nil
}

// resourceLabel names a resource in error messages by its identity.
func resourceLabel(rm *metricdata.ResourceMetrics) string {
	if rm.Resource == nil {
		return "(none)"
	}
	set := rm.Resource.Set()
	if v, ok := set.Value(attribute.Key("process.pid")); ok {
		return "process.pid=" + v.Emit()
	}
	if v, ok := set.Value(attribute.Key("host.id")); ok {
		return "host.id=" + v.Emit()
	}
	return set.Encoded(attribute.DefaultEncoder())
}
