// Package export ships the agent's metric data to where people and backends
// read it: OTLP over gRPC or HTTP (NewOTLP; events with NewOTLPLogs), OTLP/JSON
// lines in a file (NewOTLPJSON), a human-readable console summary
// (NewConsole) and a Prometheus scrape endpoint (NewPrometheus).
//
// The collection loop builds one metrics.Interval per interval
// (metrics.Builder, the data model probes write): one resource per observed
// process (each process is its own OTLP Resource), cumulative temporality,
// stored compactly as columns. The agent puts a Queue in front of the
// exporter, which takes the Interval by ownership: collection never waits
// for a backend, the queue is bounded (oldest interval dropped first), and
// it converts to delta temporality on the way out when asked. Exporters
// that implement IntervalExporter (otlp, otlp-json) encode the Interval
// resource by resource (metrics.Interval.ResourcePoints) with this package's
// hand-written encoders; every other Exporter receives the interval as
// []metricdata.ResourceMetrics through the same Exporter interface, so the
// loop does not care which one (or how many) is configured.
package export

import (
	"context"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Exporter ships one interval's data.
//
// Export must not keep references to rms after it returns: the caller reuses
// the slices (bucket counts, bounds, data points) for the next interval, so an
// implementation that needs anything later copies it before returning.
type Exporter interface {
	Export(ctx context.Context, rms []metricdata.ResourceMetrics) error
	Shutdown(ctx context.Context) error
}
