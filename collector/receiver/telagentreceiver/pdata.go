package telagentreceiver

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/proto"

	"github.com/telagent/telagent/export"
)

// metricsExporter hands every interval to the next consumer as pmetric.
// The interval goes through the agent's own OTLP mapping (export.ToProto:
// Resources with their entity refs and schema URL, scopes, sums with
// their temporality and monotonicity, gauges, histograms with explicit
// bounds) and pdata reads that message: the pipeline sees exactly what
// the standalone agent sends over OTLP, with no second mapping to keep
// in step with it. pdata (v1.71) keeps the Resources' entity refs
// (go.opentelemetry.io/collector/pdata/xpdata/entity).
type metricsExporter struct {
	next consumer.Metrics
	um   pmetric.ProtoUnmarshaler
}

// Export converts and consumes synchronously: the queue reuses rms
// afterwards, the pmetric owns copies.
func (e *metricsExporter) Export(ctx context.Context, rms []metricdata.ResourceMetrics) error {
	// ExportMetricsServiceRequest and MetricsData share their wire form
	// (field 1: the ResourceMetrics).
	b, err := proto.Marshal(export.ToProto(rms))
	if err != nil {
		return fmt.Errorf("encode metrics for the pipeline: %w", err)
	}
	md, err := e.um.UnmarshalMetrics(b)
	if err != nil {
		return fmt.Errorf("decode metrics into pdata: %w", err)
	}
	return e.next.ConsumeMetrics(ctx, md)
}

func (e *metricsExporter) Shutdown(context.Context) error { return nil }

// logsExporter hands events to the next consumer as plog, each record
// with its event name, through the agent's OTLP mapping as above.
type logsExporter struct {
	next consumer.Logs
	um   plog.ProtoUnmarshaler
}

func (e *logsExporter) ExportEvents(ctx context.Context, records []sdklog.Record) error {
	b, err := proto.Marshal(export.LogsToProto(records))
	if err != nil {
		return fmt.Errorf("encode events for the pipeline: %w", err)
	}
	ld, err := e.um.UnmarshalLogs(b)
	if err != nil {
		return fmt.Errorf("decode events into pdata: %w", err)
	}
	return e.next.ConsumeLogs(ctx, ld)
}

func (e *logsExporter) Shutdown(context.Context) error { return nil }

// discard is the exporter of a receiver in no metrics pipeline: the agent
// collects anyway (its intervals drive the eviction of exited processes).
type discard struct{}

func (discard) Export(context.Context, []metricdata.ResourceMetrics) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
