package probes

import (
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/metrics"
)

// SetEmitter turns one metric-set value (its u64 words, reduced over CPUs)
// into OTLP points, following the schema's value-field declarations: which
// words feed which metric, in which role, with which constant attributes.
// It is built once per probe, so the mapping is declared in one place (the
// registry) and never restated in probe code.
type SetEmitter struct {
	set    entity.MetricSetDesc
	series []series
	sets   map[attribute.Distinct][]attribute.Set // key attributes → per-series sets, built once

	breakdown *Breakdown
	parts     map[partKey]attribute.Set // key attributes + a breakdown part, built once
}

type partKey struct {
	key  attribute.Distinct
	part int
}

// series is one point per key: a histogram (count, sum, buckets) or a
// counter (value), with the constant attributes of its value fields.
type series struct {
	metric                    entity.MetricDesc
	consts                    []attribute.KeyValue
	count, sum, buckets, vals int // word offsets; -1 when absent
	nbuckets                  int
	scale                     float64
}

// NewSetEmitter checks the descriptor against the schema's metrics. bd,
// when not nil, splits the set's points (EmitKey).
func NewSetEmitter(set entity.MetricSetDesc, bd *Breakdown) (*SetEmitter, error) {
	metrics := map[string]entity.MetricDesc{}
	for _, m := range entity.Metrics() {
		metrics[m.Name] = m
	}
	e := &SetEmitter{set: set, sets: map[attribute.Distinct][]attribute.Set{}}
	if bd != nil && set.MapType == "node_hash" {
		e.breakdown, e.parts = bd, map[partKey]attribute.Set{}
	}
	index := map[string]int{}
	for _, v := range set.Values {
		m, ok := metrics[v.Metric]
		if !ok {
			return nil, fmt.Errorf("metric set %s: value field %s feeds unknown metric %s", set.Name, v.Field, v.Metric)
		}
		id := v.Metric
		for _, a := range v.Attributes {
			id += "|" + string(a.Key) + "=" + a.Value.Emit()
		}
		i, ok := index[id]
		if !ok {
			i = len(e.series)
			index[id] = i
			e.series = append(e.series, series{metric: m, consts: v.Attributes, count: -1, sum: -1, buckets: -1, vals: -1, scale: 1})
		}
		s := &e.series[i]
		switch v.Role {
		case "count":
			s.count = v.Offset
		case "sum":
			s.sum, s.scale = v.Offset, v.Scale
		case "buckets":
			s.buckets, s.nbuckets = v.Offset, v.Words
		case "value":
			s.vals, s.scale = v.Offset, v.Scale
		}
	}
	for _, s := range e.series {
		hist := s.metric.Instrument == entity.InstrumentHistogram
		if hist && (s.count < 0 || s.sum < 0 || s.buckets < 0 || s.nbuckets != entity.HistBuckets) ||
			!hist && s.vals < 0 {
			return nil, fmt.Errorf("metric set %s: metric %s lacks value fields for its instrument %s", set.Name, s.metric.Name, s.metric.Instrument)
		}
	}
	return e, nil
}

// Emit adds one key's points to b on res. keyAttrs are the data-point
// attributes the key's fields carry (or otel.metric.overflow=true for the
// overflow key); each series adds its constant attributes to them. Sets
// are cached per keyAttrs, so a steady state allocates no attribute sets.
func (e *SetEmitter) Emit(b *metrics.Builder, res *resource.Resource, keyAttrs attribute.Set, v []uint64) {
	sets, ok := e.sets[keyAttrs.Equivalent()]
	if !ok {
		sets = make([]attribute.Set, len(e.series))
		for i, s := range e.series {
			if len(s.consts) == 0 {
				sets[i] = keyAttrs
				continue
			}
			sets[i] = attribute.NewSet(append(keyAttrs.ToSlice(), s.consts...)...)
		}
		e.sets[keyAttrs.Equivalent()] = sets
	}
	for i, s := range e.series {
		if s.metric.Instrument == entity.InstrumentHistogram {
			b.Histogram(res, s.metric, sets[i], v[s.count], v[s.buckets:s.buckets+s.nbuckets], float64(v[s.sum])*s.scale)
			continue
		}
		if s.scale == 1 {
			b.Counter(res, s.metric, sets[i], int64(v[s.vals]))
		} else { // a unit conversion (ns → s): a float sum
			b.CounterFloat(res, s.metric, sets[i], float64(v[s.vals])*s.scale)
		}
	}
}

// partAttrs is keyAttrs with a breakdown part's attribute, cached like the
// per-series sets.
func (e *SetEmitter) partAttrs(keyAttrs attribute.Set, n int, part attribute.KeyValue) attribute.Set {
	k := partKey{keyAttrs.Equivalent(), n}
	s, ok := e.parts[k]
	if !ok {
		s = attribute.NewSet(append(keyAttrs.ToSlice(), part)...)
		e.parts[k] = s
	}
	return s
}

// OverflowAttrs are the data-point attributes of every overflow series.
var OverflowAttrs = attribute.NewSet(entity.AttrOtelMetricOverflow.Bool(true))

// AllZero reports whether a value holds nothing (an overflow key created
// in advance that nothing has folded into yet).
func AllZero(v []uint64) bool {
	for _, w := range v {
		if w != 0 {
			return false
		}
	}
	return true
}
