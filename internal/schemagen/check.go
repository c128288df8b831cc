package schemagen

import (
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Rule is one convention `telagent schema check` enforces. Its Name is the
// tag at the end of every finding and the directory of its failing example
// registry under internal/schemagen/testdata/schema/.
type Rule struct {
	Name string
	Doc  string
}

// Rules are the checks of Check, in the order they run on a group.
var Rules = []Rule{
	{"yaml", "every model file and the manifest parse as YAML"},
	{"manifest", "manifest.yaml is a Weaver v0.25.1 definition manifest: only schema_url, description, stability and dependencies; schema_url is http[s]://server/path/<MAJOR.MINOR.PATCH>; stability one of development, alpha, beta, release_candidate, stable; one dependency, the semantic conventions of the pinned excerpt (https://opentelemetry.io/schemas/1.44.0) with a registry_path"},
	{"weaver-syntax", "every key is one Weaver v0.25.1 reads (a file: groups, imports; imports: metrics, events, entities, spans, attribute_groups; the group and attribute keys of weaver_semconv group.rs and attribute.rs); a group has a type Weaver knows and no prefix; an attribute has exactly one of id and ref, a ref at most once per group; a metric has metric_name, instrument and unit; a group other than a metric or event has attributes; entity_associations only on metrics, events and spans"},
	{"requirement-level", "requirement_level is required, recommended, opt_in, or a mapping of one of conditionally_required, recommended, opt_in to its condition (Weaver cannot parse a bare conditionally_required)"},
	{"examples", "an attribute definition of type string or string[] has examples, and examples have the attribute's type (Weaver warns on the first and reports the second as an error)"},
	{"duplicate-id", "group ids, attribute ids, metric names, entity names and event names are each declared once"},
	{"naming", "group ids, attribute ids, metric, entity and event names are lowercase, dot-separated namespaces of snake_case words, each starting with a letter: ^[a-z][a-z0-9]*(_[a-z0-9]+)*(\\.[a-z][a-z0-9]*(_[a-z0-9]+)*)*$; an attribute id has a namespace and enum member ids match ^[a-z][a-z0-9]*([._][a-z0-9]+)*$ (naming_conventions policy)"},
	{"brief", "every group and every attribute definition has a brief"},
	{"metric-brief", "a metric's brief ends with a period (naming_conventions policy)"},
	{"stability", "every entity, metric, event and span group and every attribute definition has a stability: development, alpha, beta, release_candidate or stable"},
	{"stability-order", "a metric, event, span or entity is not more stable than an attribute it references, unless the reference is opt_in (stability policy)"},
	{"import", "imports name semconv v1.44.0 metrics and entities exactly (no wildcards), each once, and each is in the pinned excerpt schemagen generates from (internal/schemagen/semconv_v1.44.0.yaml); spans, events and attribute groups are not imported"},
	{"no-fork", "no local group id, metric name, entity name or event name is one semconv v1.44.0 has (Weaver takes a local copy as a different item, silently): import the semconv item instead"},
	{"telagent-namespace", "names the registry invents (attribute ids, metric, entity and event names) live under telagent.; otel. is reserved (but for the SDK-specified otel.metric.overflow); a semconv attribute is referenced (ref:), never redefined"},
	{"entity-association", "entity_associations name an entity of the registry, declared or imported (entity_associations policy)"},
	{"namespace-collision", "no attribute id is the namespace of another attribute and no metric name the namespace of another metric, semconv ones the registry uses included (naming_conventions policy)"},
	{"constant-collision", "attribute ids, and metric, event and entity names within their kind, stay distinct with '.' replaced by '_'; enum member ids, values and constant names are unique within an attribute (naming_conventions policy)"},
	{"complex-type", "attributes of type any or template[any] are only on events and spans (naming_conventions policy)"},
	{"plural-namespace", "namespaces are singular: every segment but the last of a metric name, attribute id, entity or event name must not end in 's', unless its last word ends in 'ss' (process, address) or is a known singular word or acronym ending in 's' (" + strings.Join(singularS(), ", ") + ")"},
	{"no-total", "no metric name segment is total or ends in _total"},
	{"unit", "metric units are UCUM: 1, a {annotation} of lowercase snake_case, or [prefix]atom[exponent] (s, By, bit, Hz, Cel, %, …) joined by /; durations are in s, never ms, us, ns, min, h or d"},
	{"count-unit", "counts take {annotation} units: a counter or updowncounter never has unit 1, one whose name is plural or ends in .count has a {annotation} unit, annotations are singular, and updowncounter names are not plural (end in .count instead)"},
	{"duration", "a metric ending in .duration is a histogram in s; one ending in .time is a counter in s"},
	{"ref", "every ref: resolves to an attribute of the registry or of the semconv v1.44.0 excerpt"},
	{"entity-identity", "every entity has at least one identifying attribute and every entity attribute has role identifying or descriptive"},
	{"entity-note", "every entity has a note stating its stability promise (what its identity survives)"},
	{"event-name", "events are named telagent.<entity>[.<thing>].<verb>, <entity> a declared or imported entity (without its telagent. prefix), <verb> one lowercase word"},
	{"bound", "every attribute of a metric set and every data-point attribute of a metric has a bound: a key field bound (a number or max_entries), annotations.telagent.bound, an enum or a boolean"},
	{"structure", "the registry loads: schemagen's structural validation (metric-set layouts, overflow keys, value fields, imported metrics, entity associations)"},
}

// Finding is one violation of a Rule.
type Finding struct {
	Rule  string // Rules[i].Name
	File  string // display path of the file, "" when Msg names it itself
	Group string // group id, "" for findings about a file
	Msg   string
}

// String is "FILE: group ID: MESSAGE [RULE]".
func (f Finding) String() string {
	var b strings.Builder
	if f.File != "" {
		b.WriteString(f.File + ": ")
	}
	if f.Group != "" {
		b.WriteString("group " + f.Group + ": ")
	}
	b.WriteString(f.Msg + " [" + f.Rule + "]")
	return b.String()
}

// CheckDir checks the registry in dir (manifest.yaml and model/); files
// are named relative to the Go module root when dir is inside one.
func CheckDir(dir string) (*Registry, []Finding) {
	r, findings := Check(os.DirFS(dir), displayPath(dir))
	if r != nil {
		r.Dir = dir
	}
	return r, findings
}

// Check checks the registry at the root of fsys against every Rule; files
// are named display/<path>. It returns the loaded registry when the
// registry loads, and the findings in file order, group order and Rules
// order. No findings means the registry passes.
func Check(fsys fs.FS, display string) (*Registry, []Finding) {
	c := newChecker(display)
	c.run(fsys)
	if len(c.findings) > 0 {
		// The structural load would mostly restate them.
		return nil, c.findings
	}
	r, err := LoadFS(fsys, display)
	if err != nil {
		return nil, []Finding{{Rule: "structure", Msg: err.Error()}}
	}
	c.checkBounds(r)
	return r, c.findings
}

// ---- semconv knowledge -----------------------------------------------------

// singularWords are words ending in 's' that are not plurals.
var singularWords = map[string]bool{
	"alias": true, "analysis": true, "aws": true, "basis": true, "bias": true, "bus": true,
	"canvas": true, "dns": true, "ecs": true, "eks": true, "gas": true, "https": true,
	"ios": true, "k8s": true, "lens": true, "nfs": true, "os": true, "series": true,
	"species": true, "status": true, "tls": true,
}

func singularS() []string {
	var ws []string
	for w := range singularWords {
		ws = append(ws, w)
	}
	sort.Strings(ws)
	return ws
}

// plural reports whether a name segment reads as a plural: its last
// snake_case word ends in 's' but not in "ss" and is not a known singular.
func plural(seg string) bool {
	w := seg[strings.LastIndexByte(seg, '_')+1:]
	return strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !singularWords[w]
}

// ---- the checker -----------------------------------------------------------

var (
	nameRE       = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*(\.[a-z][a-z0-9]*(_[a-z0-9]+)*)*$`)
	annotationRE = regexp.MustCompile(`^\{[a-z][a-z0-9]*(_[a-z0-9]+)*(\.[a-z][a-z0-9]*(_[a-z0-9]+)*)*\}$`)
	verbRE       = regexp.MustCompile(`^[a-z]+$`)
	stabilities  = map[string]bool{"development": true, "alpha": true, "beta": true, "release_candidate": true, "stable": true}
)

const namingHint = "lowercase, dot-separated namespaces of snake_case words, each starting with a letter"

// pluralNamespace returns the first plural namespace segment of name.
func pluralNamespace(name string) (string, bool) {
	segs := strings.Split(name, ".")
	for _, s := range segs[:len(segs)-1] {
		if plural(s) {
			return s, true
		}
	}
	return "", false
}

func (c *checker) checkMetric(add func(rule, format string, args ...any), g yamlGroup) {
	name, inst, unit := g.MetricName, g.Instrument, g.Unit
	segs := strings.Split(name, ".")
	last := segs[len(segs)-1]

	// no-total
	for _, s := range segs {
		if s == "total" || strings.HasSuffix(s, "_total") {
			add("no-total", "metric name %q: %q: no _total (a cumulative counter is a total already)", name, s)
			break
		}
	}

	// unit
	if msg := ucumProblem(unit); msg != "" {
		add("unit", "metric %q: %s", name, msg)
	}

	// count-unit
	if inst == "counter" || inst == "updowncounter" {
		isAnnotation := annotationRE.MatchString(unit)
		switch {
		case unit == "1":
			add("count-unit", "%s %q has unit 1: counts take a {annotation} unit (e.g. {error}); ratios are gauges", inst, name)
		case (last == "count" || plural(last)) && !isAnnotation:
			add("count-unit", "%s %q counts things (its name ends in %q) but its unit %q is not a {annotation}", inst, name, last, unit)
		}
		if inst == "updowncounter" && plural(last) {
			add("count-unit", "updowncounter %q is plural: UpDownCounters are not pluralized (name the count …%s.count)", name, strings.TrimSuffix(last, "s"))
		}
	}
	if annotationRE.MatchString(unit) {
		word := strings.Trim(unit, "{}")
		if plural(word[strings.LastIndexByte(word, '.')+1:]) {
			add("count-unit", "metric %q: annotation %s is plural (annotations are singular)", name, unit)
		}
	}

	// duration
	switch last {
	case "duration":
		if inst != "histogram" || unit != "s" {
			add("duration", "metric %q ends in .duration: it must be a histogram in s, not a %s in %q", name, inst, unit)
		}
	case "time":
		if inst != "counter" || unit != "s" {
			add("duration", "metric %q ends in .time: it must be a counter in s (seconds in total), not a %s in %q", name, inst, unit)
		}
	}
}

// UCUM atoms accepted, and which take a metric or binary prefix.
var (
	ucumAtoms = map[string]bool{ // prefixable
		"s": true, "By": true, "bit": true, "Hz": true, "m": true, "g": true, "W": true, "J": true,
		"V": true, "A": true, "K": true, "Bd": true,
	}
	ucumPlainAtoms = map[string]bool{"min": true, "h": true, "d": true, "Cel": true, "%": true}
	ucumPrefixes   = []string{"Ki", "Mi", "Gi", "Ti", "da", "k", "M", "G", "T", "P", "m", "u", "n", "p"}
	timeAtoms      = map[string]bool{"s": true, "min": true, "h": true, "d": true}
)

// ucumProblem says what is wrong with a metric unit, "" when nothing.
func ucumProblem(unit string) string {
	const hint = "use s, By, 1 or a {annotation}, e.g. By for bytes, s for seconds"
	if unit == "" {
		return "unit is missing (" + hint + ")"
	}
	for _, factor := range strings.Split(unit, "/") {
		if factor == "1" {
			continue
		}
		if strings.HasPrefix(factor, "{") {
			if !annotationRE.MatchString(factor) {
				return fmt.Sprintf("unit %q: annotation %q is not {lowercase_snake_case}", unit, factor)
			}
			continue
		}
		atom := strings.TrimRight(factor, "0123456789")
		prefix, base, ok := splitUCUM(atom)
		if !ok {
			return fmt.Sprintf("unit %q is not a UCUM unit (%s)", unit, hint)
		}
		if timeAtoms[base] && (prefix != "" || base != "s") {
			return fmt.Sprintf("unit %q: durations are in s (convert at export), not %s", unit, atom)
		}
	}
	return ""
}

func splitUCUM(atom string) (prefix, base string, ok bool) {
	if ucumAtoms[atom] || ucumPlainAtoms[atom] {
		return "", atom, true
	}
	for _, p := range ucumPrefixes {
		if rest, found := strings.CutPrefix(atom, p); found && ucumAtoms[rest] {
			return p, rest, true
		}
	}
	return "", "", false
}

// eventNameOK reports whether name is telagent.<entity>[.<thing>].<verb>.
func eventNameOK(name string, entities []string) bool {
	rest, ok := strings.CutPrefix(name, "telagent.")
	if !ok {
		return false
	}
	for _, e := range entities {
		tail, ok := strings.CutPrefix(rest, strings.TrimPrefix(e, "telagent.")+".")
		if !ok {
			continue
		}
		segs := strings.Split(tail, ".")
		if len(segs) <= 2 && verbRE.MatchString(segs[len(segs)-1]) {
			return true
		}
	}
	return false
}

// checkSetBounds: every attribute of a metric-set group is carried by a key
// field with a bound (structure checks the rest of the annotation).
func (c *checker) checkSetBounds(add func(rule, format string, args ...any), g yamlGroup) {
	if g.Annotations.Telagent.IsZero() {
		return
	}
	var ann struct {
		MetricSet struct {
			Name string         `yaml:"name"`
			Key  []yamlKeyField `yaml:"key"`
		} `yaml:"metric_set"`
	}
	if err := g.Annotations.Telagent.Decode(&ann); err != nil {
		return // structure reports it
	}
	for _, a := range g.Attributes {
		id := a.Ref + a.ID
		for _, k := range ann.MetricSet.Key {
			if k.Attribute == id && strings.TrimSpace(k.Bound) == "" {
				add("bound", "metric set %q: attribute %q (key field %s) has no bound (a number, or max_entries)", ann.MetricSet.Name, id, k.Field)
			}
		}
	}
}

// checkBounds: every data-point attribute of every metric is bounded.
func (c *checker) checkBounds(r *Registry) {
	sets := map[string]*MetricSet{}
	for _, s := range r.MetricSets {
		sets[s.Name] = s
	}
	for _, m := range r.Metrics {
		for _, a := range m.Attributes {
			if a.Bound != 0 || a.Type == "enum" || a.Type == "boolean" {
				continue
			}
			bounded := false
			if s := sets[m.MetricSet]; s != nil {
				for _, k := range s.Key {
					bounded = bounded || k.Attribute == a
				}
				for _, v := range s.Values {
					for _, ca := range v.Attributes {
						bounded = bounded || (v.Metric == m.Name && ca.Attribute == a)
					}
				}
			}
			if !bounded {
				c.add("bound", m.File, m.ID, "metric %q: attribute %q has no bound (declare annotations.telagent.bound, make it an enum, or carry it in a metric-set key field)", m.Name, a.ID)
			}
		}
	}
}

// MetricValueType is the OTLP value type of a metric's points as the schema
// implies it: "double" for histograms and for counters, updowncounters and
// gauges whose value fields are scaled to their unit (scale_to_unit, e.g.
// ns counted, s exported), "int" for the others (raw counts, and metrics
// outside metric sets, which the agent counts itself).
func (r *Registry) MetricValueType(m *Metric) string {
	if m.Instrument == "histogram" {
		return "double"
	}
	// A gauge of unit 1 is a ratio (semconv's *.utilization), a double.
	if m.Instrument == "gauge" && m.Unit == "1" {
		return "double"
	}
	for _, s := range r.MetricSets {
		for _, v := range s.Values {
			if v.Metric == m.Name && v.Role == "value" && v.Scale != 1 {
				return "double"
			}
		}
	}
	return "int"
}
