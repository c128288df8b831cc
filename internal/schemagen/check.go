package schemagen

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
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
	{"yaml", "every model file parses as YAML"},
	{"duplicate-id", "group ids, attribute ids, metric names, entity names and event names are each declared once"},
	{"naming", "group ids, attribute ids, metric, entity and event names are lowercase, dot-separated namespaces of snake_case words, each starting with a letter: ^[a-z][a-z0-9]*(_[a-z0-9]+)*(\\.[a-z][a-z0-9]*(_[a-z0-9]+)*)*$"},
	{"brief", "every group and every attribute definition has a brief"},
	{"stability", "every entity, metric, event and span group and every attribute definition has a stability: development, alpha, beta, release_candidate or stable"},
	{"telagent-namespace", "names the registry invents (attribute ids, metric, entity and event names) live under telagent.; a metric outside it must be a semconv v1.44.0 metric of the pinned excerpt, an entity a semconv v1.44.0 entity; otel. is reserved; a semconv attribute is referenced (ref:), never redefined"},
	{"semconv-metric", "a metric reusing a semconv name has semconv's instrument and unit"},
	{"plural-namespace", "namespaces are singular: every segment but the last of a metric name, attribute id, entity or event name must not end in 's', unless its last word ends in 'ss' (process, address) or is a known singular word or acronym ending in 's' (" + strings.Join(singularS(), ", ") + ")"},
	{"no-total", "no metric name segment is total or ends in _total"},
	{"unit", "metric units are UCUM: 1, a {annotation} of lowercase snake_case, or [prefix]atom[exponent] (s, By, bit, Hz, Cel, %, …) joined by /; durations are in s, never ms, us, ns, min, h or d"},
	{"count-unit", "counts take {annotation} units: a counter or updowncounter never has unit 1, one whose name is plural or ends in .count has a {annotation} unit, annotations are singular, and updowncounter names are not plural (end in .count instead)"},
	{"duration", "a metric ending in .duration is a histogram in s; one ending in .time is a counter in s"},
	{"ref", "every ref: resolves to an attribute of the registry, of the semconv v1.44.0 excerpt or a built-in"},
	{"entity-identity", "every entity has at least one identifying attribute and every entity attribute has role identifying or descriptive"},
	{"entity-note", "every entity has a note stating its stability promise (what its identity survives)"},
	{"event-name", "events are named telagent.<entity>[.<thing>].<verb>, <entity> a declared entity (without its telagent. prefix), <verb> one lowercase word"},
	{"bound", "every attribute of a metric set and every data-point attribute of a metric has a bound: a key field bound (a number or max_entries), annotations.telagent.bound, an enum or a boolean"},
	{"structure", "the registry loads: schemagen's structural validation (metric-set layouts, overflow keys, value fields, entity associations)"},
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

// semconvEntities are the entity names semantic conventions v1.44.0 defines
// (every `type: entity` group of model/**/entities.yaml at tag v1.44.0).
var semconvEntities = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`android app aws.ecs aws.eks aws.log browser browser.document
		cicd.pipeline cicd.pipeline.run cicd.worker cloud cloudfoundry.app cloudfoundry.org
		cloudfoundry.process cloudfoundry.space cloudfoundry.system container container.image
		container.runtime deployment device faas gcp.apphub.application gcp.apphub.service
		gcp.apphub.workload gcp.cloud_run gcp.gce gcp.gce.instance_group_manager heroku host host.cpu
		k8s.cluster k8s.container k8s.cronjob k8s.daemonset k8s.deployment k8s.hpa k8s.job
		k8s.namespace k8s.node k8s.node.system_container k8s.persistentvolume
		k8s.persistentvolumeclaim k8s.pod k8s.replicaset k8s.replicationcontroller
		k8s.resourcequota k8s.service k8s.statefulset openshift.clusterquota os process
		process.executable process.runtime service service.instance service.namespace
		telemetry.distro vcs.ref vcs.repository webengine zos.software`) {
		semconvEntities[n] = true
	}
}

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

type semconvMetric struct{ instrument, unit string }

type semconvIndex struct {
	version string
	attrs   map[string]bool
	metrics map[string]semconvMetric
}

func loadSemconvIndex() (*semconvIndex, error) {
	var sc yamlFile
	if err := yaml.Unmarshal(semconvExcerpt, &sc); err != nil {
		return nil, fmt.Errorf("embedded semconv excerpt: %w", err)
	}
	ix := &semconvIndex{version: sc.SemconvVersion, attrs: map[string]bool{}, metrics: map[string]semconvMetric{}}
	for _, g := range sc.Groups {
		switch g.Type {
		case "attribute_group":
			for _, a := range g.Attributes {
				ix.attrs[a.ID] = true
			}
		case "metric":
			ix.metrics[g.MetricName] = semconvMetric{g.Instrument, g.Unit}
		}
	}
	return ix, nil
}

// ---- the checker -----------------------------------------------------------

var (
	nameRE       = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*(\.[a-z][a-z0-9]*(_[a-z0-9]+)*)*$`)
	annotationRE = regexp.MustCompile(`^\{[a-z][a-z0-9]*(_[a-z0-9]+)*(\.[a-z][a-z0-9]*(_[a-z0-9]+)*)*\}$`)
	verbRE       = regexp.MustCompile(`^[a-z]+$`)
	stabilities  = map[string]bool{"development": true, "alpha": true, "beta": true, "release_candidate": true, "stable": true}
)

const namingHint = "lowercase, dot-separated namespaces of snake_case words, each starting with a letter"

type checker struct {
	display  string
	sc       *semconvIndex
	findings []Finding
}

func newChecker(display string) *checker { return &checker{display: display} }

func (c *checker) add(rule, file, group, format string, args ...any) {
	c.findings = append(c.findings, Finding{Rule: rule, File: file, Group: group, Msg: fmt.Sprintf(format, args...)})
}

type parsedFile struct {
	path   string
	groups []yamlGroup
}

// where records the first declaration of a name.
type where struct{ file, group string }

func (c *checker) run(fsys fs.FS) {
	sc, err := loadSemconvIndex()
	if err != nil {
		c.add("yaml", "", "", "%v", err)
		return
	}
	c.sc = sc

	manifest := path.Join(c.display, "manifest.yaml")
	if b, err := fs.ReadFile(fsys, "manifest.yaml"); err != nil {
		c.add("yaml", manifest, "", "cannot read the manifest: %v", err)
	} else if err := yaml.Unmarshal(b, new(Manifest)); err != nil {
		c.add("yaml", manifest, "", "%v", err)
	}
	var paths []string
	for _, pat := range []string{"model/*.yaml", "model/*.yml"} {
		m, _ := fs.Glob(fsys, pat)
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		c.add("yaml", path.Join(c.display, "model"), "", "no model files (*.yaml)")
		return
	}
	var files []parsedFile
	for _, p := range paths {
		display := path.Join(c.display, p)
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			c.add("yaml", display, "", "%v", err)
			continue
		}
		var f yamlFile
		if err := yaml.Unmarshal(b, &f); err != nil {
			c.add("yaml", display, "", "%v", err)
			continue
		}
		files = append(files, parsedFile{display, f.Groups})
	}

	// Declarations, for duplicates and for resolving refs and event names.
	groups, attrs, metrics, entities, events := map[string]where{}, map[string]where{}, map[string]where{}, map[string]where{}, map[string]where{}
	declare := func(seen map[string]where, what, name, file, group string) {
		if name == "" {
			return
		}
		if prev, dup := seen[name]; dup {
			if what == "group id" {
				c.add("duplicate-id", file, group, "group id is already used in %s", prev.file)
			} else {
				c.add("duplicate-id", file, group, "%s %q is already declared by group %s in %s", what, name, prev.group, prev.file)
			}
			return
		}
		seen[name] = where{file, group}
	}
	for _, f := range files {
		for _, g := range f.groups {
			declare(groups, "group id", g.ID, f.path, g.ID)
			for _, a := range g.Attributes {
				if a.ID != "" {
					declare(attrs, "attribute", a.ID, f.path, g.ID)
				}
			}
			switch g.Type {
			case "metric":
				declare(metrics, "metric", g.MetricName, f.path, g.ID)
			case "entity":
				declare(entities, "entity", g.Name, f.path, g.ID)
			case "event":
				declare(events, "event", g.Name, f.path, g.ID)
			}
		}
	}
	var entityNames []string
	for n := range entities {
		entityNames = append(entityNames, n)
	}
	sort.Strings(entityNames)

	for _, f := range files {
		for _, g := range f.groups {
			c.checkGroup(f.path, g, attrs, entityNames)
		}
	}
}

func (c *checker) checkGroup(file string, g yamlGroup, own map[string]where, entityNames []string) {
	id := g.ID
	if id == "" {
		c.add("naming", file, "", "a group has no id")
		id = "(no id)"
	}
	add := func(rule, format string, args ...any) { c.add(rule, file, id, format, args...) }

	// naming
	if g.ID != "" && !nameRE.MatchString(g.ID) {
		add("naming", "group id %q does not follow OTel naming (%s)", g.ID, namingHint)
	}
	for _, a := range g.Attributes {
		if a.ID != "" && !nameRE.MatchString(a.ID) {
			add("naming", "attribute %q does not follow OTel naming (%s)", a.ID, namingHint)
		}
	}
	name, kind := "", ""
	switch g.Type {
	case "metric":
		name, kind = g.MetricName, "metric"
	case "entity":
		name, kind = g.Name, "entity"
	case "event":
		name, kind = g.Name, "event"
	}
	if kind != "" && name == "" {
		add("naming", "%s has no name (%s)", kind, map[string]string{"metric": "metric_name", "entity": "name", "event": "name"}[kind])
	}
	named := name != "" && nameRE.MatchString(name)
	if name != "" && !named {
		add("naming", "%s name %q does not follow OTel naming (%s)", kind, name, namingHint)
	}

	// brief
	if strings.TrimSpace(g.Brief) == "" {
		add("brief", "group has no brief")
	}
	for _, a := range g.Attributes {
		if a.ID != "" && strings.TrimSpace(a.Brief) == "" {
			add("brief", "attribute %q has no brief", a.ID)
		}
	}

	// stability
	switch g.Type {
	case "entity", "metric", "event", "span":
		if g.Stability == "" {
			add("stability", "%s has no stability (want development, alpha, beta, release_candidate or stable)", g.Type)
		} else if !stabilities[g.Stability] {
			add("stability", "%s stability %q is not one of development, alpha, beta, release_candidate, stable", g.Type, g.Stability)
		}
	}
	for _, a := range g.Attributes {
		if a.ID == "" {
			continue
		}
		if a.Stability == "" {
			add("stability", "attribute %q has no stability (want development, alpha, beta, release_candidate or stable)", a.ID)
		} else if !stabilities[a.Stability] {
			add("stability", "attribute %q: stability %q is not one of development, alpha, beta, release_candidate, stable", a.ID, a.Stability)
		}
	}

	// telagent-namespace and semconv-metric
	for _, a := range g.Attributes {
		if a.ID == "" || !nameRE.MatchString(a.ID) || strings.HasPrefix(a.ID, "telagent.") {
			continue
		}
		switch {
		case c.sc.attrs[a.ID]:
			add("telagent-namespace", "attribute %q redefines the semconv %s attribute: reference it with ref: %s", a.ID, c.sc.version, a.ID)
		case strings.HasPrefix(a.ID, "otel."):
			add("telagent-namespace", "attribute %q: the otel. namespace is reserved for OpenTelemetry", a.ID)
		default:
			add("telagent-namespace", "attribute %q is outside the telagent. namespace: names telagent invents live under telagent.", a.ID)
		}
	}
	if named && !strings.HasPrefix(name, "telagent.") {
		switch kind {
		case "metric":
			if sm, ok := c.sc.metrics[name]; !ok {
				add("telagent-namespace", "metric %q is outside the telagent. namespace and is not a semconv %s metric of the pinned excerpt (invent names under telagent., or copy the upstream definition into internal/schemagen/semconv_%s.yaml)",
					name, c.sc.version, c.sc.version)
			} else if sm.instrument != g.Instrument || sm.unit != g.Unit {
				add("semconv-metric", "metric %q reuses the semconv %s metric, which is a %s in %q, but is declared a %s in %q",
					name, c.sc.version, sm.instrument, sm.unit, g.Instrument, g.Unit)
			}
		case "entity":
			if !semconvEntities[name] {
				add("telagent-namespace", "entity %q is outside the telagent. namespace and is not a semconv %s entity", name, c.sc.version)
			}
		case "event":
			// event-name below says what an event name looks like.
		}
	}

	// plural-namespace
	if named {
		if seg, ok := pluralNamespace(name); ok {
			add("plural-namespace", "%s name %q: namespace %q is plural (namespaces are singular)", kind, name, seg)
		}
	}
	for _, a := range g.Attributes {
		if a.ID != "" && nameRE.MatchString(a.ID) {
			if seg, ok := pluralNamespace(a.ID); ok {
				add("plural-namespace", "attribute %q: namespace %q is plural (namespaces are singular)", a.ID, seg)
			}
		}
	}

	if g.Type == "metric" && named {
		c.checkMetric(add, g)
	}

	// ref
	for _, a := range g.Attributes {
		if a.Ref == "" {
			continue
		}
		if _, ok := own[a.Ref]; ok || c.sc.attrs[a.Ref] || isBuiltin(a.Ref) {
			continue
		}
		add("ref", "ref %q resolves to nothing (not defined in the registry, in the semconv %s excerpt, nor built in)", a.Ref, c.sc.version)
	}

	switch g.Type {
	case "entity":
		identifying := 0
		for _, a := range g.Attributes {
			an := a.Ref + a.ID
			switch a.Role {
			case "identifying":
				identifying++
			case "descriptive":
			case "":
				add("entity-identity", "entity %q: attribute %q has no role (want identifying or descriptive)", g.Name, an)
			default:
				add("entity-identity", "entity %q: attribute %q has role %q (want identifying or descriptive)", g.Name, an, a.Role)
			}
		}
		if identifying == 0 {
			add("entity-identity", "entity %q has no identifying attribute (role: identifying)", g.Name)
		}
		if strings.TrimSpace(g.Note) == "" {
			add("entity-note", "entity %q has no note stating its stability promise (what its identity survives: agent restarts, reboots, …)", g.Name)
		}
	case "event":
		if named && !eventNameOK(name, entityNames) {
			var tokens []string
			for _, e := range entityNames {
				tokens = append(tokens, strings.TrimPrefix(e, "telagent."))
			}
			add("event-name", "event name %q is not telagent.<entity>[.<thing>].<verb> (<entity> one of %s; <verb> one lowercase word)",
				name, strings.Join(tokens, ", "))
		}
	case "attribute_group":
		c.checkSetBounds(add, g)
	}
}

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

func isBuiltin(id string) bool {
	for _, a := range builtinAttributes {
		if a.ID == id {
			return true
		}
	}
	return false
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
