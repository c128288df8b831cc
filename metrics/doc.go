// Package metrics is the agent's metric data model: what probes write and
// exporters read. The collection loop builds one Interval per collection
// interval with a Builder: one resource per observed process (each process
// is its own OTLP Resource), cumulative temporality, points stored
// compactly as columns. Exporters (package export) read an Interval
// resource by resource, with its points typed (Interval.ResourcePoints)
// or as OTel SDK metricdata (Interval.ResourceMetrics,
// Interval.Metricdata). Cumulatives is the one cumulative → delta rule the
// delta-temporality exporters, the console and top share.
//
// The package depends on the OTel SDK's data types (resource, metricdata)
// and on entity, but on no exporter: probes link it without gRPC,
// Prometheus or the log SDK.
package metrics
