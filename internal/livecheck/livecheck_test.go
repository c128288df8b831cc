package livecheck

import (
	"slices"
	"strings"
	"testing"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/telagent/telagent/internal/schemagen"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func integer(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

func boolean(k string, v bool) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}}
}

const cumulative = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE

func sum(name, unit string, monotonic bool, points ...*metricspb.NumberDataPoint) *metricspb.Metric {
	return &metricspb.Metric{Name: name, Unit: unit, Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
		AggregationTemporality: cumulative, IsMonotonic: monotonic, DataPoints: points}}}
}

func intPoint(v int64, attrs ...*commonpb.KeyValue) *metricspb.NumberDataPoint {
	return &metricspb.NumberDataPoint{Attributes: attrs, Value: &metricspb.NumberDataPoint_AsInt{AsInt: v}}
}

func doublePoint(v float64, attrs ...*commonpb.KeyValue) *metricspb.NumberDataPoint {
	return &metricspb.NumberDataPoint{Attributes: attrs, Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: v}}
}

// testSchemaURL is testdata/schema's schema_url.
const testSchemaURL = "https://telagent.dev/schemas/test/0.0.0"

func load(t *testing.T) *schemagen.Registry {
	t.Helper()
	r, err := schemagen.Load("testdata/schema")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// good is what a correct agent emits for the demo registry: one process
// resource with a point of each metric-set metric, and a host resource with
// the overflow series and the self-metric.
func good() *colmetricspb.ExportMetricsServiceRequest {
	host := []*commonpb.KeyValue{str("host.id", "abc"), str("host.name", "box")}
	proc := append(slices.Clone(host), integer("process.pid", 42), str("process.creation.time", "2026-01-01T00:00:00Z"),
		str("process.executable.name", "demo"))
	op := str("telagent.demo.op", "read")
	hist := func(attrs ...*commonpb.KeyValue) *metricspb.Metric {
		return &metricspb.Metric{Name: "telagent.demo.duration", Unit: "s", Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
			AggregationTemporality: cumulative,
			DataPoints: []*metricspb.HistogramDataPoint{{Attributes: attrs, Count: 1, BucketCounts: make([]uint64, 29),
				ExplicitBounds: schemagen.HistBoundsSeconds(29, 10)}},
		}}}
	}
	overflow := boolean("otel.metric.overflow", true)
	hostRef := &commonpb.EntityRef{SchemaUrl: testSchemaURL, Type: "host", IdKeys: []string{"host.id"}, DescriptionKeys: []string{"host.name"}}
	procRef := &commonpb.EntityRef{SchemaUrl: testSchemaURL, Type: "process", IdKeys: []string{"process.pid", "process.creation.time"}}
	return &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{
		{Resource: &resourcepb.Resource{Attributes: proc, EntityRefs: []*commonpb.EntityRef{hostRef, procRef}}, SchemaUrl: testSchemaURL,
			ScopeMetrics: []*metricspb.ScopeMetrics{{SchemaUrl: testSchemaURL, Metrics: []*metricspb.Metric{
				hist(op),
				sum("process.context_switches", "{context_switch}", true,
					intPoint(3, op, str("process.context_switch.type", "voluntary")),
					intPoint(1, op, str("process.context_switch.type", "involuntary"))),
				sum("telagent.demo.busy.time", "s", true, doublePoint(0.5, op)),
			}}}},
		{Resource: &resourcepb.Resource{Attributes: host, EntityRefs: []*commonpb.EntityRef{proto.Clone(hostRef).(*commonpb.EntityRef)}}, SchemaUrl: testSchemaURL,
			ScopeMetrics: []*metricspb.ScopeMetrics{{SchemaUrl: testSchemaURL, Metrics: []*metricspb.Metric{
				hist(overflow),
				sum("process.context_switches", "{context_switch}", true,
					intPoint(3, overflow, str("process.context_switch.type", "voluntary")),
					intPoint(1, overflow, str("process.context_switch.type", "involuntary"))),
				sum("telagent.demo.drops", "{drop}", true, intPoint(2, str("telagent.demo.reason", "full"))),
			}}}},
	}}
}

func TestGood(t *testing.T) {
	r := load(t)
	rep := Check(r, []*colmetricspb.ExportMetricsServiceRequest{good()})
	if len(rep.Violations) != 0 {
		t.Errorf("violations:\n%s", strings.Join(rep.Violations, "\n"))
	}
	if rep.Points["telagent.demo.duration"] != 2 || rep.Points["process.context_switches"] != 4 || rep.Resources != 2 {
		t.Errorf("points %v, resources %d", rep.Points, rep.Resources)
	}
	if u := rep.Unseen(r); len(u) != 0 {
		t.Errorf("unseen %v", u)
	}
}

// Each mutation of the good request is one violation, reported exactly.
func TestViolations(t *testing.T) {
	procMetric := func(req *colmetricspb.ExportMetricsServiceRequest, i int) *metricspb.Metric {
		return req.ResourceMetrics[0].ScopeMetrics[0].Metrics[i]
	}
	for _, tc := range []struct {
		name   string
		mutate func(req *colmetricspb.ExportMetricsServiceRequest)
		want   string
	}{
		{"undeclared metric", func(req *colmetricspb.ExportMetricsServiceRequest) {
			procMetric(req, 2).Name = "telagent.demo.idle.time"
		}, `metric "telagent.demo.idle.time" is not declared in the registry (1 time)`},
		{"unit", func(req *colmetricspb.ExportMetricsServiceRequest) {
			procMetric(req, 2).Unit = "ns"
		}, `metric telagent.demo.busy.time: unit "ns", the registry declares "s" (1 time)`},
		{"counter as gauge", func(req *colmetricspb.ExportMetricsServiceRequest) {
			m := procMetric(req, 2)
			m.Data = &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: m.GetSum().GetDataPoints()}}
		}, `metric telagent.demo.busy.time: a gauge, the registry declares a counter (monotonic cumulative sum) (1 time)`},
		{"not monotonic", func(req *colmetricspb.ExportMetricsServiceRequest) {
			procMetric(req, 2).GetSum().IsMonotonic = false
		}, `metric telagent.demo.busy.time: a non-monotonic cumulative sum, the registry declares a counter (monotonic cumulative sum) (1 time)`},
		{"delta", func(req *colmetricspb.ExportMetricsServiceRequest) {
			procMetric(req, 0).GetHistogram().AggregationTemporality = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
		}, `metric telagent.demo.duration: a delta explicit-bucket histogram, the registry declares a histogram (cumulative explicit-bucket histogram) (1 time)`},
		{"int for a scaled counter", func(req *colmetricspb.ExportMetricsServiceRequest) {
			procMetric(req, 2).GetSum().DataPoints[0].Value = &metricspb.NumberDataPoint_AsInt{AsInt: 1}
		}, `metric telagent.demo.busy.time: int values, the registry implies double (1 time)`},
		{"undeclared data-point attribute", func(req *colmetricspb.ExportMetricsServiceRequest) {
			dp := procMetric(req, 2).GetSum().DataPoints[0]
			dp.Attributes = append(dp.Attributes, str("telagent.demo.file", "/etc/passwd"))
		}, `metric telagent.demo.busy.time: data-point attribute "telagent.demo.file" is not declared for it (1 time)`},
		{"attribute type", func(req *colmetricspb.ExportMetricsServiceRequest) {
			procMetric(req, 2).GetSum().DataPoints[0].Attributes[0] = integer("telagent.demo.op", 7)
		}, `metric telagent.demo.busy.time: data-point attribute "telagent.demo.op" is a int, the registry declares string (1 time)`},
		{"enum value", func(req *colmetricspb.ExportMetricsServiceRequest) {
			procMetric(req, 1).GetSum().DataPoints[1].Attributes[1] = str("process.context_switch.type", "forced")
		}, `metric process.context_switches: data-point attribute "process.context_switch.type" = "forced" is not one of its enum values voluntary, involuntary (1 time)`},
		{"key attribute missing", func(req *colmetricspb.ExportMetricsServiceRequest) {
			procMetric(req, 2).GetSum().DataPoints[0].Attributes = nil
		}, `metric telagent.demo.busy.time: a data point lacks telagent.demo.op (1 time)`},
		{"constant attribute missing on the overflow series", func(req *colmetricspb.ExportMetricsServiceRequest) {
			dp := req.ResourceMetrics[1].ScopeMetrics[0].Metrics[1].GetSum().DataPoints[0]
			dp.Attributes = dp.Attributes[:1]
		}, `metric process.context_switches: a data point lacks process.context_switch.type (1 time)`},
		{"undeclared resource attribute", func(req *colmetricspb.ExportMetricsServiceRequest) {
			res := req.ResourceMetrics[0].Resource
			res.Attributes = append(res.Attributes, str("service.name", "demo"))
		}, `resource attribute "service.name" is not an attribute of any entity the registry declares (1 time)`},
		{"incomplete identity", func(req *colmetricspb.ExportMetricsServiceRequest) {
			res := req.ResourceMetrics[0].Resource
			res.Attributes = slices.DeleteFunc(res.Attributes, func(kv *commonpb.KeyValue) bool { return kv.Key == "process.creation.time" })
			res.EntityRefs = res.EntityRefs[:1] // the host's ref stays right
		}, `resource has process.pid but not process.creation.time: entity process is identified incompletely (1 time)`},
		{"no host", func(req *colmetricspb.ExportMetricsServiceRequest) {
			res := req.ResourceMetrics[1].Resource
			res.Attributes, res.EntityRefs = res.Attributes[1:], nil
		}, `resource lacks host.id (every resource carries the host attributes) (1 time)`},
		{"no entity refs", func(req *colmetricspb.ExportMetricsServiceRequest) {
			req.ResourceMetrics[1].Resource.EntityRefs = nil
		}, `resource has the identity of entity host (host.id) but no entity ref for it (1 time)`},
		{"ref id keys", func(req *colmetricspb.ExportMetricsServiceRequest) {
			req.ResourceMetrics[0].Resource.EntityRefs[1].IdKeys = []string{"process.pid"}
		}, `entity ref process: id_keys [process.pid], want [process.pid process.creation.time] (1 time)`},
		{"ref description keys", func(req *colmetricspb.ExportMetricsServiceRequest) {
			req.ResourceMetrics[1].Resource.EntityRefs[0].DescriptionKeys = nil
		}, `entity ref host: description_keys [], want [host.name] (1 time)`},
		{"ref schema URL", func(req *colmetricspb.ExportMetricsServiceRequest) {
			req.ResourceMetrics[1].Resource.EntityRefs[0].SchemaUrl = "https://opentelemetry.io/schemas/1.44.0"
		}, `entity ref host: schema URL "https://opentelemetry.io/schemas/1.44.0", want "https://telagent.dev/schemas/test/0.0.0" (1 time)`},
		{"ref of an undeclared entity", func(req *colmetricspb.ExportMetricsServiceRequest) {
			res := req.ResourceMetrics[1].Resource
			res.EntityRefs = append(res.EntityRefs, &commonpb.EntityRef{SchemaUrl: testSchemaURL, Type: "service", IdKeys: []string{"host.id"}})
		}, `entity ref of type "service", which the registry does not declare (1 time)`},
		{"resource schema URL", func(req *colmetricspb.ExportMetricsServiceRequest) {
			req.ResourceMetrics[0].SchemaUrl = ""
		}, `resource schema URL "", want the registry's "https://telagent.dev/schemas/test/0.0.0" (1 time)`},
		{"scope schema URL", func(req *colmetricspb.ExportMetricsServiceRequest) {
			req.ResourceMetrics[1].ScopeMetrics[0].SchemaUrl = "https://telagent.dev/schemas/0.1.0"
		}, `scope schema URL "https://telagent.dev/schemas/0.1.0", want the registry's "https://telagent.dev/schemas/test/0.0.0" (1 time)`},
		{"histogram bounds", func(req *colmetricspb.ExportMetricsServiceRequest) {
			procMetric(req, 0).GetHistogram().DataPoints[0].ExplicitBounds = []float64{0.001, 0.01}
		}, `metric telagent.demo.duration: explicit bounds differ from the registry's log2 layout (29 buckets from 2^10 ns) (1 time)`},
		{"process metric without its process", func(req *colmetricspb.ExportMetricsServiceRequest) {
			host := req.ResourceMetrics[1].ScopeMetrics[0]
			host.Metrics = append(host.Metrics, sum("telagent.demo.busy.time", "s", true, doublePoint(1, str("telagent.demo.op", "x"))))
		}, `metric telagent.demo.busy.time: its resource does not carry its entity process (1 time)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := proto.Clone(good()).(*colmetricspb.ExportMetricsServiceRequest)
			tc.mutate(req)
			rep := Check(load(t), []*colmetricspb.ExportMetricsServiceRequest{req})
			if len(rep.Violations) != 1 || rep.Violations[0] != tc.want {
				t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(rep.Violations, "\n"), tc.want)
			}
		})
	}
}

// A process Resource with process.pid alone fails the check twice over
// when it keeps its process entity ref: the identity is incomplete and the
// ref names a key the Resource lacks (what the agent exported before
// issue #19 for a process gone before it was read, minus the ref).
func TestIncompleteProcessRef(t *testing.T) {
	req := proto.Clone(good()).(*colmetricspb.ExportMetricsServiceRequest)
	res := req.ResourceMetrics[0].Resource
	res.Attributes = slices.DeleteFunc(res.Attributes, func(kv *commonpb.KeyValue) bool { return kv.Key == "process.creation.time" })
	rep := Check(load(t), []*colmetricspb.ExportMetricsServiceRequest{req})
	want := []string{
		`resource has process.pid but not process.creation.time: entity process is identified incompletely (1 time)`,
		`entity ref process names "process.creation.time", which the resource does not have (1 time)`,
	}
	for _, w := range want {
		if !slices.Contains(rep.Violations, w) {
			t.Errorf("violations:\n%s\nwant among them:\n%s", strings.Join(rep.Violations, "\n"), w)
		}
	}
}
