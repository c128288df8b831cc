package export

import (
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/protobuf/encoding/protojson"
)

const testScope = "github.com/telagent/telagent"

var (
	testStart = time.Unix(1_700_000_000, 123_456_789)
	// log2 buckets in seconds, as the agent emits them: 1024ns, 2048ns, ...
	testBounds = []float64{1.024e-6, 2.048e-6, 4.096e-6, 8.192e-6}
)

func hostAttrs() []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("host.id", "0123456789abcdef0123456789abcdef"),
		attribute.String("host.name", "node-1"),
		attribute.String("os.type", "linux"),
	}
}

func processResource(pid int64, exe string) *resource.Resource {
	return resource.NewSchemaless(append(hostAttrs(),
		attribute.Int64("process.pid", pid),
		attribute.String("process.creation.time", "2026-11-25T12:00:00.5Z"),
		attribute.String("process.executable.name", exe),
		attribute.String("process.command", "/usr/bin/"+exe),
	)...)
}

func hostResource() *resource.Resource { return resource.NewSchemaless(hostAttrs()...) }

func syscallAttrs(name string) attribute.Set {
	return attribute.NewSet(attribute.String("telagent.syscall.name", name))
}

func overflowAttrs() attribute.Set {
	return attribute.NewSet(attribute.Bool("otel.metric.overflow", true))
}

// hpoint is a cumulative histogram point over testBounds; count and sum are
// derived from the buckets so every test point is self-consistent.
func hpoint(attrs attribute.Set, at time.Time, sum float64, buckets ...uint64) metricdata.HistogramDataPoint[float64] {
	var n uint64
	for _, b := range buckets {
		n += b
	}
	return metricdata.HistogramDataPoint[float64]{
		Attributes: attrs, StartTime: testStart, Time: at,
		Count: n, Bounds: slices.Clone(testBounds), BucketCounts: buckets, Sum: sum, // own copy: tests mutate points
	}
}

func cpoint(attrs attribute.Set, at time.Time, v int64) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: attrs, StartTime: testStart, Time: at, Value: v}
}

// syscallRM is one resource's interval in the shape the agent produces.
func syscallRM(res *resource.Resource, hist []metricdata.HistogramDataPoint[float64], errs []metricdata.DataPoint[int64]) metricdata.ResourceMetrics {
	ms := []metricdata.Metrics{{
		Name: "telagent.syscall.duration", Description: "Duration of system calls.", Unit: "s",
		Data: metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality, DataPoints: hist},
	}}
	if errs != nil {
		ms = append(ms, metricdata.Metrics{
			Name: "telagent.syscall.errors", Description: "System calls that returned an error.", Unit: "{error}",
			Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: errs},
		})
	}
	return metricdata.ResourceMetrics{
		Resource:     res,
		ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: testScope, Version: "0.1.0"}, Metrics: ms}},
	}
}

// otlpJSONMarshal is the tests' reference OTLP/JSON encoder (the
// exporters encode by hand, otlpjson_encode.go). It follows the encoding
// (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding), which is
// the proto3 JSON mapping with these OTLP-specific rules:
//   - keys are lowerCamelCase field names (protojson's default JSON names;
//     UseProtoNames stays false), original snake_case names are not valid;
//   - enum values MUST be integers, never names: UseEnumNumbers, so
//     aggregationTemporality is 2, not "AGGREGATION_TEMPORALITY_CUMULATIVE";
//   - 64-bit integers (timeUnixNano, count, asInt, intValue) are decimal
//     strings, and bytes values base64: protojson does both by default;
//   - traceId/spanId would have to be hex, not base64; ToProto emits no
//     exemplars, so no such field is ever written.
//
// Fields with default values are omitted (EmitUnpopulated false), as the
// Collector's pdata JSON marshaler (used by its file exporter) does.
var otlpJSONMarshal = protojson.MarshalOptions{UseEnumNumbers: true}
