package probes

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

func TestSetEmitterFollowsSchema(t *testing.T) {
	e, err := NewSetEmitter(entity.MetricSetSyscalls, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]uint64, entity.MetricSetSyscalls.ValueWords)
	v[0], v[1], v[2] = 7, 2, 3_000_000_000 // calls, errors, 3 s in ns
	v[3], v[3+15] = 5, 2                   // 5 short calls, 2 around 20 ms
	b := metrics.NewBuilder("test", time.Unix(0, 0))
	b.Begin(time.Unix(10, 0))
	res := resource.NewSchemaless(entity.AttrProcessPID.Int(1))
	attrs := attribute.NewSet(entity.AttrTelagentSyscallName.String("read"))
	e.Emit(b, res, attrs, v)
	rms := b.Result()
	if len(rms) != 1 || len(rms[0].ScopeMetrics[0].Metrics) != 2 {
		t.Fatalf("got %+v", rms)
	}
	for _, m := range rms[0].ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Histogram[float64]:
			dp := d.DataPoints[0]
			if m.Name != entity.MetricTelagentSyscallDuration.Name || dp.Count != 7 || dp.Sum != 3 ||
				dp.BucketCounts[0] != 5 || dp.BucketCounts[15] != 2 || !dp.Attributes.Equals(&attrs) {
				t.Errorf("histogram %s: %+v", m.Name, dp)
			}
		case metricdata.Sum[int64]:
			if dp := d.DataPoints[0]; m.Name != entity.MetricTelagentSyscallErrors.Name || dp.Value != 2 || !d.IsMonotonic {
				t.Errorf("counter %s: %+v", m.Name, dp)
			}
		default:
			t.Errorf("unexpected %s: %T", m.Name, m.Data)
		}
	}
}

func TestSetEmitterRejectsIncompleteSet(t *testing.T) {
	set := entity.MetricSetSyscalls
	set.Values = set.Values[1:] // no count for the histogram
	if _, err := NewSetEmitter(set, nil); err == nil {
		t.Fatal("a histogram without its count field was accepted")
	}
}
