// Package livecheck checks telemetry the agent actually emitted against the
// registry, the way `weaver registry live-check` does: every metric must be
// declared, with the declared unit, instrument (OTLP data type and
// monotonicity), cumulative temporality and value type; every data-point
// attribute must be one the metric declares (or otel.metric.overflow on a
// metric-set metric), of the declared type and enum values; every resource
// attribute must belong to a declared entity, with each entity present on a
// resource identified completely. Expectations come from the registry alone
// (loaded by internal/schemagen), so probes added later are covered as soon
// as they emit. Events (log records with an event name) are checked by
// CheckEvents: declared name, declared and well-typed record attributes,
// required ones present, and for the specification's entity events
// (entity.state, entity.delete) an entity.id that is exactly a declared
// entity's identity and a description of declared descriptive attributes.
package livecheck

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/telagent/telagent/internal/schemagen"
)

// overflowAttr is the built-in attribute of every metric set's overflow series.
const overflowAttr = "otel.metric.overflow"

// Report is the outcome of a check.
type Report struct {
	// Violations are the distinct problems, sorted, each with how many
	// times it was seen ("… (3 points)").
	Violations []string
	// Points counts the data points seen per metric name.
	Points map[string]int
	// Resources counts the resources seen.
	Resources int
	// Events counts the event records seen per event name (CheckEvents).
	Events map[string]int
}

// Unseen lists the registry's metrics that no data point was seen for.
func (rep *Report) Unseen(r *schemagen.Registry) []string {
	var out []string
	for _, m := range r.Metrics {
		if rep.Points[m.Name] == 0 {
			out = append(out, m.Name)
		}
	}
	return out
}

// hostIdentity is what identifies the host on every resource. Semantic
// conventions v1.44.0 mark no attribute of their host entity identifying
// (docs/schema.md); the agent identifies the host by its machine-id.
const hostIdentity = "host.id"

type checker struct {
	r          *schemagen.Registry
	metrics    map[string]*schemagen.Metric
	sets       map[string]*schemagen.MetricSet
	entityOf   map[string][]*schemagen.Entity // resource attribute → entities declaring it
	histBounds []float64
	counts     map[string]int
	rep        *Report
}

// Check checks every request against r.
func Check(r *schemagen.Registry, reqs []*colmetricspb.ExportMetricsServiceRequest) *Report {
	c := &checker{r: r, metrics: map[string]*schemagen.Metric{}, sets: map[string]*schemagen.MetricSet{},
		entityOf: map[string][]*schemagen.Entity{}, counts: map[string]int{},
		rep: &Report{Points: map[string]int{}}}
	for _, m := range r.Metrics {
		c.metrics[m.Name] = m
	}
	for _, s := range r.MetricSets {
		c.sets[s.Name] = s
	}
	for _, e := range r.Entities {
		for _, a := range append(slices.Clone(e.Identifying), e.Descriptive...) {
			c.entityOf[a.ID] = append(c.entityOf[a.ID], e)
		}
	}
	if r.HistBuckets > 0 {
		c.histBounds = schemagen.HistBoundsSeconds(r.HistBuckets, r.HistMinShift)
	}
	for _, req := range reqs {
		for _, rm := range req.GetResourceMetrics() {
			c.rep.Resources++
			entities := c.resource(rm.GetResource())
			c.schemaURL("resource", rm.GetSchemaUrl())
			for _, sm := range rm.GetScopeMetrics() {
				c.schemaURL("scope", sm.GetSchemaUrl())
				for _, m := range sm.GetMetrics() {
					c.metric(m, entities)
				}
			}
		}
	}
	for v, n := range c.counts {
		c.rep.Violations = append(c.rep.Violations, fmt.Sprintf("%s (%d %s)", v, n, map[bool]string{true: "time", false: "times"}[n == 1]))
	}
	sort.Strings(c.rep.Violations)
	return c.rep
}

func (c *checker) violation(format string, args ...any) { c.counts[fmt.Sprintf(format, args...)]++ }

// resource checks a resource's attributes and returns the entities it
// carries attributes of (by name).
func (c *checker) resource(res *resourcepb.Resource) map[string]bool {
	present := map[string]bool{}
	entities := map[string]bool{}
	for _, kv := range res.GetAttributes() {
		es := c.entityOf[kv.GetKey()]
		if len(es) == 0 {
			c.violation("resource attribute %q is not an attribute of any entity the registry declares", kv.GetKey())
			continue
		}
		present[kv.GetKey()] = true
		// An entity some of whose attributes are there counts as present
		// for its metrics: what is missing is reported once, below.
		for _, e := range es {
			entities[e.Name] = true
		}
		c.value("resource attribute", kv, c.r.AttributeByID[kv.GetKey()])
	}
	// An entity is on the resource when one of its identifying attributes
	// is; then all of them must be (its identity is complete).
	for _, e := range c.r.Entities {
		var have, missing []string
		for _, a := range e.Identifying {
			if present[a.ID] {
				have = append(have, a.ID)
			} else {
				missing = append(missing, a.ID)
			}
		}
		if len(have) == 0 {
			continue
		}
		if len(missing) > 0 && !c.partOfLarger(e, present) {
			c.violation("resource has %s but not %s: entity %s is identified incompletely", strings.Join(have, ", "), strings.Join(missing, ", "), e.Name)
		}
	}
	if c.hasEntity("host") && !present[hostIdentity] {
		c.violation("resource lacks %s (every resource carries the host attributes)", hostIdentity)
	}
	c.entityRefs(res, present)
	return entities
}

// schemaURL checks the schema URL of a resource or scope: the registry's.
func (c *checker) schemaURL(where, u string) {
	if u != c.r.Manifest.SchemaURL {
		c.violation("%s schema URL %q, want the registry's %q", where, u, c.r.Manifest.SchemaURL)
	}
}

// entityRefs checks the resource's OTLP entity refs against the registry:
// exactly one per entity whose ref id keys are all on the resource, in any
// order, each with the registry's schema URL, the entity's id keys (in the
// registry's order) and as description keys the entity's other attributes
// the resource has; no ref of an undeclared entity or one whose identity is
// not on the resource.
func (c *checker) entityRefs(res *resourcepb.Resource, present map[string]bool) {
	ids := func(as []*schemagen.Attribute, only bool) []string {
		var out []string
		for _, a := range as {
			if !only || present[a.ID] {
				out = append(out, a.ID)
			}
		}
		return out
	}
	seen := map[string]bool{}
	for _, ref := range res.GetEntityRefs() {
		typ := ref.GetType()
		i := slices.IndexFunc(c.r.Entities, func(e *schemagen.Entity) bool { return e.Name == typ })
		switch {
		case i < 0:
			c.violation("entity ref of type %q, which the registry does not declare", typ)
			continue
		case seen[typ]:
			c.violation("two entity refs of type %q on one resource", typ)
			continue
		}
		seen[typ] = true
		e := c.r.Entities[i]
		if ref.GetSchemaUrl() != c.r.Manifest.SchemaURL {
			c.violation("entity ref %s: schema URL %q, want %q", typ, ref.GetSchemaUrl(), c.r.Manifest.SchemaURL)
		}
		if want := ids(e.RefID, false); len(want) == 0 || !slices.Equal(ref.GetIdKeys(), want) {
			c.violation("entity ref %s: id_keys %v, want %v", typ, ref.GetIdKeys(), want)
		}
		for _, k := range append(slices.Clone(ref.GetIdKeys()), ref.GetDescriptionKeys()...) {
			if !present[k] {
				c.violation("entity ref %s names %q, which the resource does not have", typ, k)
			}
		}
		if want := ids(e.RefDescriptive, true); !slices.Equal(ref.GetDescriptionKeys(), want) {
			c.violation("entity ref %s: description_keys %v, want %v", typ, ref.GetDescriptionKeys(), want)
		}
	}
	for _, e := range c.r.Entities {
		if len(e.RefID) > 0 && !seen[e.Name] && len(ids(e.RefID, true)) == len(e.RefID) {
			c.violation("resource has the identity of entity %s (%s) but no entity ref for it", e.Name, strings.Join(ids(e.RefID, false), ", "))
		}
	}
}

// partOfLarger: e's identifying attributes that are present all belong to
// another entity that is completely present (process.pid is part of a
// thread's identity too; a process resource is not an incomplete thread).
func (c *checker) partOfLarger(e *schemagen.Entity, present map[string]bool) bool {
	for _, other := range c.r.Entities {
		if other == e {
			continue
		}
		complete := true
		for _, a := range other.Identifying {
			complete = complete && present[a.ID]
		}
		if !complete {
			continue
		}
		all := true
		for _, a := range e.Identifying {
			if present[a.ID] && !slices.Contains(other.Identifying, a) {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (c *checker) hasEntity(name string) bool {
	return slices.ContainsFunc(c.r.Entities, func(e *schemagen.Entity) bool { return e.Name == name })
}

// value checks one attribute value against its declaration.
func (c *checker) value(where string, kv *commonpb.KeyValue, a *schemagen.Attribute) {
	if a == nil {
		return
	}
	v := kv.GetValue()
	var got string
	switch v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		got = "string"
	case *commonpb.AnyValue_IntValue:
		got = "int"
	case *commonpb.AnyValue_DoubleValue:
		got = "double"
	case *commonpb.AnyValue_BoolValue:
		got = "boolean"
	case *commonpb.AnyValue_ArrayValue:
		got = "array"
	default:
		got = fmt.Sprintf("%T", v.GetValue())
	}
	want := a.Type
	if want == "any" { // any AnyValue (entity.id, entity.description: checked by entityEvent)
		return
	}
	if want == "enum" {
		want = "string"
	}
	if strings.HasSuffix(want, "[]") {
		want = "array"
	}
	if got != want {
		c.violation("%s %q is a %s, the registry declares %s", where, a.ID, got, a.Type)
		return
	}
	if a.Type == "enum" && !slices.Contains(a.EnumValues, v.GetStringValue()) {
		c.violation("%s %q = %q is not one of its enum values %s", where, a.ID, v.GetStringValue(), strings.Join(a.EnumValues, ", "))
	}
}

func (c *checker) metric(m *metricspb.Metric, entities map[string]bool) {
	name := m.GetName()
	d := c.metrics[name]
	if d == nil {
		c.violation("metric %q is not declared in the registry", name)
		return
	}
	if m.GetUnit() != d.Unit {
		c.violation("metric %s: unit %q, the registry declares %q", name, m.GetUnit(), d.Unit)
	}

	// Instrument: OTLP data type, monotonicity, temporality.
	var want string
	switch d.Instrument {
	case "counter":
		want = "monotonic cumulative sum"
	case "updowncounter":
		want = "non-monotonic cumulative sum"
	case "gauge":
		want = "gauge"
	case "histogram":
		want = "cumulative explicit-bucket histogram"
	}
	var got string
	switch data := m.GetData().(type) {
	case *metricspb.Metric_Sum:
		got = map[bool]string{true: "monotonic", false: "non-monotonic"}[data.Sum.GetIsMonotonic()] + " " + temporality(data.Sum.GetAggregationTemporality()) + " sum"
	case *metricspb.Metric_Gauge:
		got = "gauge"
	case *metricspb.Metric_Histogram:
		got = temporality(data.Histogram.GetAggregationTemporality()) + " explicit-bucket histogram"
	case *metricspb.Metric_ExponentialHistogram:
		got = "exponential histogram"
	case *metricspb.Metric_Summary:
		got = "summary"
	default:
		got = "no data"
	}
	if got != want {
		c.violation("metric %s: a %s, the registry declares a %s (%s)", name, got, d.Instrument, want)
		return
	}

	wantValue := c.r.MetricValueType(d)
	set := c.sets[d.MetricSet]
	point := func(attrs []*commonpb.KeyValue) {
		c.rep.Points[name]++
		c.pointAttributes(d, set, attrs, entities)
	}
	switch data := m.GetData().(type) {
	case *metricspb.Metric_Sum:
		for _, dp := range data.Sum.GetDataPoints() {
			c.numberValue(name, wantValue, dp)
			point(dp.GetAttributes())
		}
	case *metricspb.Metric_Gauge:
		for _, dp := range data.Gauge.GetDataPoints() {
			c.numberValue(name, wantValue, dp)
			point(dp.GetAttributes())
		}
	case *metricspb.Metric_Histogram:
		for _, dp := range data.Histogram.GetDataPoints() {
			if c.histBounds != nil && fedByLog2(set, name) && !slices.Equal(dp.GetExplicitBounds(), c.histBounds) {
				c.violation("metric %s: explicit bounds differ from the registry's log2 layout (%d buckets from 2^%d ns)", name, c.r.HistBuckets, c.r.HistMinShift)
			}
			point(dp.GetAttributes())
		}
	}
}

func temporality(t metricspb.AggregationTemporality) string {
	switch t {
	case metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE:
		return "cumulative"
	case metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA:
		return "delta"
	}
	return "unspecified-temporality"
}

func fedByLog2(s *schemagen.MetricSet, metric string) bool {
	if s == nil {
		return false
	}
	return slices.ContainsFunc(s.Values, func(v schemagen.ValueField) bool { return v.Metric == metric && v.Kind == "log2_histogram" })
}

func (c *checker) numberValue(name, want string, dp *metricspb.NumberDataPoint) {
	var got string
	switch dp.GetValue().(type) {
	case *metricspb.NumberDataPoint_AsInt:
		got = "int"
	case *metricspb.NumberDataPoint_AsDouble:
		got = "double"
	default:
		got = "no value"
	}
	if got != want {
		c.violation("metric %s: %s values, the registry implies %s", name, got, want)
	}
}

// pointAttributes checks a data point's attributes: declared by the metric
// (or the overflow attribute of a metric-set metric), of the declared type;
// a metric-set point carries every key-field attribute and constant of its
// series, or is the overflow series; the metric's entity is on the resource
// unless the point is the overflow series.
func (c *checker) pointAttributes(d *schemagen.Metric, set *schemagen.MetricSet, attrs []*commonpb.KeyValue, entities map[string]bool) {
	keys := map[string]bool{}
	overflow := false
	for _, kv := range attrs {
		k := kv.GetKey()
		keys[k] = true
		if k == overflowAttr && set != nil {
			overflow = kv.GetValue().GetBoolValue()
			if !overflow {
				c.violation("metric %s: %s is present but not true", d.Name, overflowAttr)
			}
			continue
		}
		i := slices.IndexFunc(d.Attributes, func(a *schemagen.Attribute) bool { return a.ID == k })
		if i < 0 {
			if b := c.breakdown(set, k); b != nil {
				c.value("metric "+d.Name+": breakdown attribute", kv, b.Attribute)
				continue
			}
			c.violation("metric %s: data-point attribute %q is not declared for it", d.Name, k)
			continue
		}
		c.value("metric "+d.Name+": data-point attribute", kv, d.Attributes[i])
	}
	if set != nil {
		var missing []string
		for _, a := range d.Attributes {
			if keys[a.ID] {
				continue
			}
			constant := slices.ContainsFunc(set.Values, func(v schemagen.ValueField) bool {
				return v.Metric == d.Name && slices.ContainsFunc(v.Attributes, func(ca schemagen.ConstAttribute) bool { return ca.Attribute == a })
			})
			if overflow && !constant {
				continue // the overflow series has lost its key attributes
			}
			missing = append(missing, a.ID)
		}
		if len(missing) > 0 {
			c.violation("metric %s: a data point lacks %s", d.Name, strings.Join(missing, ", "))
		}
	}
	if len(d.EntityAssociations) > 0 && !overflow {
		ok := slices.ContainsFunc(d.EntityAssociations, func(e string) bool { return entities[e] })
		if !ok {
			c.violation("metric %s: its resource does not carry its entity %s", d.Name, strings.Join(d.EntityAssociations, " or "))
		}
	}
}

// breakdown is the schema's breakdown whose attribute is k, when set is a
// per-CPU metric set (the only ones a breakdown splits).
func (c *checker) breakdown(set *schemagen.MetricSet, k string) *schemagen.Breakdown {
	if set == nil || !set.PerCPU() {
		return nil
	}
	for _, b := range c.r.Breakdowns {
		if b.Attribute.ID == k {
			return b
		}
	}
	return nil
}

// CheckEvents checks event records (OTLP log records with an event name)
// against r's events and adds what it finds to rep: an undeclared event
// name, a record attribute the event does not declare or of the wrong
// type, a required attribute missing, resource attributes as for metrics.
// rep.Events counts the records seen per event name.
func CheckEvents(r *schemagen.Registry, reqs []*collogspb.ExportLogsServiceRequest, rep *Report) {
	c := &checker{r: r, entityOf: map[string][]*schemagen.Entity{}, counts: map[string]int{}, rep: rep}
	for _, e := range r.Entities {
		for _, a := range append(slices.Clone(e.Identifying), e.Descriptive...) {
			c.entityOf[a.ID] = append(c.entityOf[a.ID], e)
		}
	}
	events := map[string]*schemagen.Event{}
	for _, e := range r.Events {
		events[e.Name] = e
	}
	if rep.Events == nil {
		rep.Events = map[string]int{}
	}
	for _, req := range reqs {
		for _, rl := range req.GetResourceLogs() {
			rep.Resources++
			c.resource(rl.GetResource())
			c.schemaURL("resource", rl.GetSchemaUrl())
			for _, sl := range rl.GetScopeLogs() {
				c.schemaURL("scope", sl.GetSchemaUrl())
				for _, lr := range sl.GetLogRecords() {
					c.event(events, lr)
				}
			}
		}
	}
	for v, n := range c.counts {
		rep.Violations = append(rep.Violations, fmt.Sprintf("%s (%d %s)", v, n, map[bool]string{true: "time", false: "times"}[n == 1]))
	}
	sort.Strings(rep.Violations)
}

func (c *checker) event(events map[string]*schemagen.Event, lr *logspb.LogRecord) {
	name := lr.GetEventName()
	e := events[name]
	if e == nil {
		c.violation("event %q is not declared in the registry", name)
		return
	}
	c.rep.Events[name]++
	have := map[string]bool{}
	for _, kv := range lr.GetAttributes() {
		i := slices.IndexFunc(e.Attributes, func(a *schemagen.Attribute) bool { return a.ID == kv.GetKey() })
		if i < 0 {
			c.violation("event %s: attribute %q is not declared for the event", name, kv.GetKey())
			continue
		}
		have[kv.GetKey()] = true
		c.value("event "+name+" attribute", kv, e.Attributes[i])
	}
	for i, a := range e.Attributes {
		if i < len(e.Required) && e.Required[i] && !have[a.ID] {
			c.violation("event %s: required attribute %q is missing", name, a.ID)
		}
	}
	if name == entityStateEvent || name == entityDeleteEvent {
		c.entityEvent(name, lr)
	}
}

// The OpenTelemetry specification's entity events (entities/entity-events.md).
const (
	entityStateEvent  = "entity.state"
	entityDeleteEvent = "entity.delete"
)

// entityEvent checks what the specification requires of an entity event
// against the registry's entities: entity.type a declared entity with an
// identity; entity.id a map of exactly that entity's identifying (ref id)
// attributes, string values, none empty; entity.description a map of
// descriptive attributes of declared entities, none an identifying one
// (another entity's identity is a relationship, not a description), each
// of its declared type; entity.report.interval not negative.
func (c *checker) entityEvent(name string, lr *logspb.LogRecord) {
	var typ string
	var id, desc *commonpb.AnyValue
	for _, kv := range lr.GetAttributes() {
		switch kv.GetKey() {
		case "entity.type":
			typ = kv.GetValue().GetStringValue()
		case "entity.id":
			id = kv.GetValue()
		case "entity.description":
			desc = kv.GetValue()
		case "entity.report.interval":
			if kv.GetValue().GetIntValue() < 0 {
				c.violation("event %s: entity.report.interval %d is negative", name, kv.GetValue().GetIntValue())
			}
		}
	}
	i := slices.IndexFunc(c.r.Entities, func(e *schemagen.Entity) bool { return e.Name == typ })
	if i < 0 || len(c.r.Entities[i].RefID) == 0 {
		c.violation("event %s: entity.type %q is not a registry entity with an identity", name, typ)
		return
	}
	e := c.r.Entities[i]
	var want, got []string
	for _, a := range e.RefID {
		want = append(want, a.ID)
	}
	if _, ok := id.GetValue().(*commonpb.AnyValue_KvlistValue); !ok {
		c.violation("event %s: entity.id of %s is not a map", name, typ)
		return
	}
	for _, kv := range id.GetKvlistValue().GetValues() {
		got = append(got, kv.GetKey())
		if _, ok := kv.GetValue().GetValue().(*commonpb.AnyValue_StringValue); !ok || kv.GetValue().GetStringValue() == "" {
			c.violation("event %s: entity.id %s of %s is not a non-empty string (the specification: keys and values are strings)", name, kv.GetKey(), typ)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		c.violation("event %s: entity.id of %s has %v, want its identifying attributes %v", name, typ, got, want)
	}
	if desc == nil {
		return
	}
	if _, ok := desc.GetValue().(*commonpb.AnyValue_KvlistValue); !ok {
		c.violation("event %s: entity.description of %s is not a map", name, typ)
		return
	}
	for _, kv := range desc.GetKvlistValue().GetValues() {
		k := kv.GetKey()
		identifying := slices.ContainsFunc(c.r.Entities, func(o *schemagen.Entity) bool {
			return slices.ContainsFunc(o.RefID, func(a *schemagen.Attribute) bool { return a.ID == k })
		})
		switch {
		case len(c.entityOf[k]) == 0:
			c.violation("event %s: entity.description of %s has %q, not an attribute of any entity the registry declares", name, typ, k)
		case identifying:
			c.violation("event %s: entity.description of %s has %q, which identifies an entity (a relationship, not a description)", name, typ, k)
		default:
			c.value("event "+name+" entity.description", kv, c.r.AttributeByID[k])
		}
	}
}
