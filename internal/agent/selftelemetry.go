package agent

import (
	"slices"
	"sort"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/entity"
)

// selfTelemetry adds the agent's own health metrics (telagent.* and
// otel.sdk.metric_reader.collection.duration, declared in
// schema/model/agent.yaml) to every interval, on the host resource:
// metric-set overflow folds and fill ratio, probes attached and skipped,
// the collection's duration, and the export queue's counters. The queue's
// counters are those at collection time, so an interval reports the
// attempts made for the intervals before it.
type selfTelemetry struct {
	sets    map[string]attribute.Set // metric-set name attribute, built once
	probes  []attribute.Set          // one per selected probe, built once
	outcome [2]attribute.Set         // success, failure
	reader  attribute.Set            // otel.component.* of the collection loop, built once

	// Cumulative histogram of collection durations (entity.HistBoundsSeconds).
	durCounts []uint64
	durN      uint64
	durSum    float64
}

// readerComponentType is the otel.component.type of the collection loop.
const readerComponentType = "periodic_metric_reader"

func (s *selfTelemetry) setAttrs(name string) attribute.Set {
	a, ok := s.sets[name]
	if !ok {
		if s.sets == nil {
			s.sets = map[string]attribute.Set{}
		}
		a = attribute.NewSet(entity.AttrTelagentMetricSetName.String(name))
		s.sets[name] = a
	}
	return a
}

// add records this collection's duration d and adds every self-metric to
// c's builder.
func (s *selfTelemetry) add(c *collector, d time.Duration) {
	host := c.resolver.Host()
	b := c.builder
	if s.probes == nil {
		for _, p := range c.probes {
			s.probes = append(s.probes, attribute.NewSet(entity.AttrTelagentProbeName.String(p.Info().Name),
				entity.AttrTelagentProbeState.String("attached")))
		}
		for _, name := range c.skipped {
			s.probes = append(s.probes, attribute.NewSet(entity.AttrTelagentProbeName.String(name),
				entity.AttrTelagentProbeState.String("skipped")))
		}
		s.outcome[0] = attribute.NewSet(entity.AttrTelagentExportOutcome.String("success"))
		s.outcome[1] = attribute.NewSet(entity.AttrTelagentExportOutcome.String("failure"))
		s.durCounts = make([]uint64, len(entity.HistBoundsSeconds)+1)
		// The collection loop is the agent's one periodic metric reader
		// (semconv's naming: <otel.component.type>/<instance>).
		s.reader = attribute.NewSet(entity.AttrOtelComponentType.String(readerComponentType),
			entity.AttrOtelComponentName.String(readerComponentType+"/0"))
	}
	for _, a := range s.probes {
		b.Counter(host, entity.MetricTelagentProbeCount, a, 1)
	}
	for _, p := range c.probes {
		for _, ms := range p.Stats().MetricSets {
			c.overflow.observe(c.log, p.Info().Name, ms) // the same stats, read once
			a := s.setAttrs(ms.Name)
			b.Counter(host, entity.MetricTelagentMetricSetOverflows, a, int64(ms.OverflowFolds))
			b.Counter(host, entity.MetricTelagentMetricSetEntryFolds, a, int64(ms.EntryFolds))
			b.Counter(host, entity.MetricTelagentMetricSetIdentityFolds, a, int64(ms.IdentityFolds))
			if ms.MaxEntries > 0 {
				b.Gauge(host, entity.MetricTelagentMetricSetUtilization, a, float64(ms.Keys)/float64(ms.MaxEntries))
			}
			if st := ms.Storage; st.Entries > 0 {
				b.Gauge(host, entity.MetricTelagentMetricSetStorageUtilization, a, float64(st.Peak)/float64(st.Entries))
				b.Counter(host, entity.MetricTelagentMetricSetStorageMemory, a, int64(st.Bytes))
			}
		}
	}

	sec := d.Seconds()
	// Bucket i holds values <= bound i (OTLP explicit bounds are inclusive
	// upper bounds); past the last bound, the +Inf bucket.
	s.durCounts[sort.SearchFloat64s(entity.HistBoundsSeconds, sec)]++
	s.durN++
	s.durSum += sec
	b.Histogram(host, entity.MetricOtelSdkMetricReaderCollectionDuration, s.reader, s.durN, slices.Clone(s.durCounts), s.durSum)

	st := c.queue.Stats()
	b.Counter(host, entity.MetricTelagentExportAttempts, s.outcome[0], int64(st.Exports))
	b.Counter(host, entity.MetricTelagentExportAttempts, s.outcome[1], int64(st.Failures))
	b.Counter(host, entity.MetricTelagentExportDrops, attribute.Set{}, int64(st.Dropped))
	b.Counter(host, entity.MetricTelagentExportQueueCount, attribute.Set{}, int64(st.Len))
}

// mergeAttributes returns own followed by the extra attributes whose keys
// own does not have: the agent's identifying attributes are never
// overridden by the environment.
func mergeAttributes(own, extra []attribute.KeyValue) []attribute.KeyValue {
	out := slices.Clip(own)
	for _, kv := range extra {
		if !slices.ContainsFunc(own, func(o attribute.KeyValue) bool { return o.Key == kv.Key }) {
			out = append(out, kv)
		}
	}
	return out
}
