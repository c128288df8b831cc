// Package export ships the agent's metric data to where people and backends
// read it: OTLP over gRPC or HTTP (NewOTLP; events with NewOTLPLogs), OTLP/JSON
// lines in a file (NewOTLPJSON), a human-readable console summary
// (NewConsole) and a Prometheus scrape endpoint (NewPrometheus).
//
// The collection loop produces one []metricdata.ResourceMetrics per interval,
// one element per observed process (each process is its own OTLP Resource),
// with cumulative temporality. Every exporter here receives that slice
// through the same Exporter interface, so the loop does not care which one
// (or how many) is configured. The agent puts a Queue in front of the
// exporter: collection never waits for a backend, the queue is bounded
// (oldest interval dropped first), and it converts to delta temporality on
// the way out when asked.
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
