package schemagen

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/telagent/telagent/internal/schemagen/yamlnode"
)

type checker struct {
	display  string
	sc       *excerpt
	findings []Finding

	// What the model files declare, for the rules that need the whole
	// registry.
	ownAttrs        map[string]attrDecl // attribute definitions (id:)
	importedEntity  map[string]bool
	importedMetric  map[string]bool
	localEntity     map[string]bool
	usedAttrs       map[string]attrDecl // every attribute the registry uses: own, referenced, of imported groups
	localMetricDecl map[string]where
	localEventDecl  map[string]where
	localEntityDecl map[string]where
}

// attrDecl is what the checker knows of an attribute: its definition
// (node), where the registry uses or defines it, and whether it is the
// registry's own.
type attrDecl struct {
	file, group string
	own         bool
	typ         *yaml.Node // type: of the definition
	stability   string
}

func newChecker(display string) *checker {
	return &checker{display: display, ownAttrs: map[string]attrDecl{}, importedEntity: map[string]bool{},
		importedMetric: map[string]bool{}, localEntity: map[string]bool{}, usedAttrs: map[string]attrDecl{},
		localMetricDecl: map[string]where{}, localEventDecl: map[string]where{}, localEntityDecl: map[string]where{}}
}

func (c *checker) add(rule, file, group, format string, args ...any) {
	c.findings = append(c.findings, Finding{Rule: rule, File: file, Group: group, Msg: fmt.Sprintf(format, args...)})
}

type parsedFile struct {
	path    string
	groups  []yamlGroup
	nodes   []*yaml.Node // the groups' mappings, same order
	root    *yaml.Node
	imports yamlImports
}

// where records the first declaration of a name.
type where struct{ file, group string }

func (c *checker) run(fsys fs.FS) {
	sc, err := loadExcerpt()
	if err != nil {
		c.add("yaml", "", "", "%v", err)
		return
	}
	c.sc = sc

	manifest := path.Join(c.display, "manifest.yaml")
	if b, err := fs.ReadFile(fsys, "manifest.yaml"); err != nil {
		c.add("yaml", manifest, "", "cannot read the manifest: %v", err)
	} else {
		var n yaml.Node
		if err := yaml.Unmarshal(b, &n); err != nil {
			c.add("yaml", manifest, "", "%v", err)
		} else {
			c.checkManifest(manifest, &n)
		}
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
	var files []*parsedFile
	for _, p := range paths {
		display := path.Join(c.display, p)
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			c.add("yaml", display, "", "%v", err)
			continue
		}
		var f yamlFile
		var n yaml.Node
		if err := yaml.Unmarshal(b, &f); err != nil {
			c.add("yaml", display, "", "%v", err)
			continue
		}
		if err := yaml.Unmarshal(b, &n); err != nil || len(n.Content) == 0 {
			continue // empty file
		}
		pf := &parsedFile{path: display, groups: f.Groups, root: n.Content[0], imports: f.Imports}
		pf.nodes = yamlnode.Seq(pf.root, "groups")
		if len(pf.nodes) != len(pf.groups) {
			pf.nodes = make([]*yaml.Node, len(pf.groups))
		}
		files = append(files, pf)
	}

	for _, f := range files {
		c.checkFile(f)
	}
	c.checkImports(files)

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
					if _, ok := c.ownAttrs[a.ID]; !ok {
						t := a.Type
						c.ownAttrs[a.ID] = attrDecl{file: f.path, group: g.ID, own: true, typ: &t, stability: a.Stability}
					}
				}
			}
			switch g.Type {
			case "metric":
				declare(metrics, "metric", g.MetricName, f.path, g.ID)
			case "entity":
				declare(entities, "entity", g.Name, f.path, g.ID)
				c.localEntity[g.Name] = true
			case "event":
				declare(events, "event", g.Name, f.path, g.ID)
			}
		}
	}
	c.localMetricDecl, c.localEventDecl, c.localEntityDecl = metrics, events, entities
	entitySet := map[string]bool{}
	for n := range entities {
		entitySet[n] = true
	}
	for n := range c.importedEntity {
		entitySet[n] = true
	}
	var entityNames []string
	for n := range entitySet {
		entityNames = append(entityNames, n)
	}
	sort.Strings(entityNames)

	for _, f := range files {
		for i, g := range f.groups {
			c.checkGroup(f.path, g, f.nodes[i], attrs, entityNames, entitySet)
		}
	}
	c.checkCollisions()
}

// lookupAttr is what the registry, the excerpt or the built-ins say of an
// attribute id.
func (c *checker) lookupAttr(id string) (attrDecl, bool) {
	if d, ok := c.ownAttrs[id]; ok {
		return d, true
	}
	if a, ok := c.sc.attrs[id]; ok {
		return attrDecl{file: a.File, group: a.GroupID, stability: a.Stability, typ: &yaml.Node{Kind: yaml.ScalarNode, Value: a.Type}}, true
	}
	return attrDecl{}, false
}

func (c *checker) checkGroup(file string, g yamlGroup, node *yaml.Node, own map[string]where, entityNames []string, entitySet map[string]bool) {
	id := g.ID
	if id == "" {
		c.add("naming", file, "", "a group has no id")
		id = "(no id)"
	}
	add := func(rule, format string, args ...any) { c.add(rule, file, id, format, args...) }

	c.checkGroupSyntax(add, g, node)

	// naming
	if g.ID != "" && !nameRE.MatchString(g.ID) {
		add("naming", "group id %q does not follow OTel naming (%s)", g.ID, namingHint)
	}
	for _, a := range g.Attributes {
		if a.ID == "" {
			continue
		}
		if !nameRE.MatchString(a.ID) {
			add("naming", "attribute %q does not follow OTel naming (%s)", a.ID, namingHint)
		} else if !strings.Contains(a.ID, ".") {
			add("naming", "attribute %q has no namespace (name it <namespace>.%s)", a.ID, a.ID)
		}
		for _, m := range enumMembers(&a.Type) {
			if !memberRE.MatchString(m.id) {
				add("naming", "attribute %q: enum member id %q does not follow OTel naming (%s)", a.ID, m.id, namingHint)
			}
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
	if g.Type == "metric" {
		if b := strings.TrimSpace(g.Brief); b != "" && !strings.HasSuffix(b, ".") {
			add("metric-brief", "metric %q: brief %q does not end with a period", name, clean(b))
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
	if rank := stabilityRank[g.Stability]; rank > 0 && (g.Type == "metric" || g.Type == "event" || g.Type == "span" || g.Type == "entity") {
		for _, a := range g.Attributes {
			aid := a.Ref + a.ID
			d, ok := c.lookupAttr(aid)
			if !ok || stabilityRank[d.stability] == 0 || isOptIn(&a.RequirementLevel) {
				continue
			}
			if rank > stabilityRank[d.stability] {
				add("stability-order", "%s %q has stability %s, above the %s of attribute %q it references (allowed only at requirement_level opt_in)",
					g.Type, name, g.Stability, d.stability, aid)
			}
		}
	}

	// no-fork, telagent-namespace
	forked := false
	if named {
		if c.sc.names[kind][name] {
			forked = true
			add("no-fork", "%s %q is semconv %s's: import it (imports: %s: [%s]) instead of redefining it", kind, name, c.sc.version, importKey(kind), name)
		}
	}
	if !forked && g.ID != "" && c.sc.names["group"][g.ID] {
		add("no-fork", "group id %q is semconv %s's: a local group of the same id is a silent fork (choose an id of the registry's own, e.g. under telagent.)", g.ID, c.sc.version)
	}
	for _, a := range g.Attributes {
		if a.ID == "" || !nameRE.MatchString(a.ID) || strings.HasPrefix(a.ID, "telagent.") || sdkAttributes[a.ID] != "" {
			continue
		}
		switch {
		case c.sc.names["attribute"][a.ID]:
			add("telagent-namespace", "attribute %q redefines the semconv %s attribute: reference it with ref: %s", a.ID, c.sc.version, a.ID)
		case strings.HasPrefix(a.ID, "otel."):
			add("telagent-namespace", "attribute %q: the otel. namespace is reserved for OpenTelemetry", a.ID)
		default:
			add("telagent-namespace", "attribute %q is outside the telagent. namespace: names telagent invents live under telagent.", a.ID)
		}
	}
	if named && !forked && !strings.HasPrefix(name, "telagent.") {
		switch kind {
		case "metric", "entity":
			add("telagent-namespace", "%s %q is outside the telagent. namespace (invent names under telagent., or import a semconv %s: imports: %s:)", kind, name, kind, importKey(kind))
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

	// entity-association
	for _, en := range g.EntityAssociations {
		if !entitySet[en] {
			add("entity-association", "entity_associations: no entity %q (declare it, or import it: imports: entities: [%s])", en, en)
		}
	}

	// complex-type
	if g.Type == "metric" || g.Type == "entity" {
		for _, a := range g.Attributes {
			aid := a.Ref + a.ID
			if d, ok := c.lookupAttr(aid); ok && d.typ != nil && d.typ.Kind == yaml.ScalarNode && (d.typ.Value == "any" || d.typ.Value == "template[any]") {
				add("complex-type", "attribute %q has type %s, allowed on events and spans only, not on a %s group", aid, d.typ.Value, g.Type)
			}
		}
	}

	// ref
	for _, a := range g.Attributes {
		if a.Ref == "" {
			if a.ID != "" {
				c.use(a.ID, file, id)
			}
			continue
		}
		if _, ok := own[a.Ref]; ok || c.sc.attrs[a.Ref] != nil {
			c.use(a.Ref, file, id)
			continue
		}
		if c.sc.names["attribute"][a.Ref] {
			add("ref", "ref %q is a semconv %s attribute missing from the pinned excerpt (regenerate it: go run ./internal/schemagen/cmd/semconvexcerpt)", a.Ref, c.sc.version)
			continue
		}
		add("ref", "ref %q resolves to nothing (not defined in the registry nor in the semconv %s excerpt)", a.Ref, c.sc.version)
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
		if named && specEvents[name] == "" && !eventNameOK(name, entityNames) {
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

// use records an attribute the registry uses, for the collision rules.
func (c *checker) use(id, file, group string) {
	if _, ok := c.usedAttrs[id]; ok {
		return
	}
	d, _ := c.lookupAttr(id)
	d.file, d.group = file, group
	c.usedAttrs[id] = d
}

func importKey(kind string) string {
	return map[string]string{"metric": "metrics", "entity": "entities", "event": "events"}[kind]
}

// sdkAttributes are attributes the OpenTelemetry specification defines
// outside the semantic conventions (semconv v1.44.0 registers none of
// them), which the registry declares itself (with where they are
// specified): they keep the specification's names, outside telagent.
var sdkAttributes = map[string]string{
	"otel.metric.overflow":   "OpenTelemetry metrics SDK specification, cardinality limits",
	"entity.type":            entityEventsSpec,
	"entity.id":              entityEventsSpec,
	"entity.description":     entityEventsSpec,
	"entity.report.interval": entityEventsSpec,
	"entity.delete.reason":   entityEventsSpec,
}

// specEvents are the events the OpenTelemetry specification names itself,
// which keep its names (not telagent.<entity>.<verb>).
var specEvents = map[string]string{
	"entity.state":  entityEventsSpec,
	"entity.delete": entityEventsSpec,
}

const entityEventsSpec = "OpenTelemetry specification, entities/entity-events.md"

var (
	memberRE      = regexp.MustCompile(`^[a-z][a-z0-9]*([._][a-z0-9]+)*$`)
	stabilityRank = map[string]int{"development": 1, "alpha": 2, "beta": 3, "release_candidate": 4, "stable": 5}
)

func isOptIn(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value == "opt_in"
	case yaml.MappingNode:
		return len(n.Content) == 2 && n.Content[0].Value == "opt_in"
	}
	return false
}

type enumMember struct{ id, value string }

func enumMembers(t *yaml.Node) []enumMember {
	var ms []enumMember
	for _, m := range yamlnode.Seq(t, "members") {
		id := yamlnode.Scalar(m, "id")
		v := yamlnode.Get(m, "value")
		val := id
		if v != nil {
			val = v.Value
		}
		ms = append(ms, enumMember{id, val})
	}
	return ms
}

// ---- Weaver v0.25.1 syntax -------------------------------------------------

var (
	manifestKeys  = keySet("schema_url description stability dependencies")
	dependencyKey = keySet("schema_url registry_path")
	fileKeys      = keySet("groups imports file_format")
	importKeys    = keySet("metrics events entities spans attribute_groups")
	// weaver_semconv group.rs GroupSpec (serde deny_unknown_fields), less
	// the fields only the v2 format fills.
	groupKeys = keySet("id type brief note prefix extends stability deprecated attributes span_kind events metric_name instrument unit name display_name body annotations entity_associations")
	// attribute.rs AttributeSpec::Ref and ::Id.
	refKeys    = keySet("ref brief examples tag requirement_level sampling_relevant note stability deprecated prefix annotations role")
	idKeys     = keySet("id type brief examples tag requirement_level sampling_relevant note stability deprecated annotations role")
	groupTypes = keySet("attribute_group span event metric metric_group entity resource scope")
)

func keySet(s string) map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(s) {
		m[k] = true
	}
	return m
}

func (c *checker) checkManifest(file string, doc *yaml.Node) {
	add := func(rule, format string, args ...any) { c.add(rule, file, "", format, args...) }
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		add("manifest", "the manifest is not a mapping (schema_url, description, stability, dependencies)")
		return
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i].Value; !manifestKeys[k] {
			add("manifest", "key %q is not part of a Weaver v0.25.1 definition manifest (schema_url, description, stability, dependencies; the registry's name and version come from schema_url)", k)
		}
	}
	u := yamlnode.Scalar(m, "schema_url")
	if u == "" {
		add("manifest", "schema_url is missing (http[s]://server/path/<version>)")
	} else if _, v, ok := splitSchemaURL(u); !ok {
		add("manifest", "schema_url %q is not http[s]://server/path/<version>", u)
	} else if !semverRE.MatchString(v) {
		add("manifest", "schema_url %q: version %q is not MAJOR.MINOR.PATCH", u, v)
	}
	if s := yamlnode.Scalar(m, "stability"); s != "" && !stabilities[s] {
		add("manifest", "stability %q is not one of development, alpha, beta, release_candidate, stable", s)
	}
	deps := yamlnode.Seq(m, "dependencies")
	want := c.sc.schemaURL()
	if len(deps) != 1 {
		add("manifest", "dependencies: want exactly one, the semantic conventions %s (Weaver supports one dependency)", want)
	}
	for _, d := range deps {
		for i := 0; i+1 < len(d.Content); i += 2 {
			if k := d.Content[i].Value; !dependencyKey[k] {
				add("manifest", "dependencies: key %q is not part of a Weaver dependency (schema_url, registry_path)", k)
			}
		}
		if u := yamlnode.Scalar(d, "schema_url"); u != want {
			add("manifest", "dependencies: schema_url %q is not %s, the semantic conventions of the pinned excerpt (%s)", u, want, c.sc.file)
		}
		if yamlnode.Scalar(d, "registry_path") == "" {
			add("manifest", "dependencies: registry_path is missing (where Weaver reads the semantic conventions, e.g. https://github.com/open-telemetry/semantic-conventions/archive/refs/tags/%s.zip[model])", c.sc.version)
		}
	}
}

var semverRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// checkFile checks the top-level keys of a model file.
func (c *checker) checkFile(f *parsedFile) {
	if f.root.Kind != yaml.MappingNode {
		c.add("weaver-syntax", f.path, "", "a model file is a mapping (groups, imports)")
		return
	}
	for i := 0; i+1 < len(f.root.Content); i += 2 {
		k, v := f.root.Content[i].Value, f.root.Content[i+1]
		switch {
		case !fileKeys[k]:
			c.add("weaver-syntax", f.path, "", "key %q is not part of a Weaver v1 model file (groups, imports)", k)
		case k == "file_format" && v.Value != "definition/1":
			c.add("weaver-syntax", f.path, "", "file_format %q: this registry is in Weaver's definition/1 format", v.Value)
		case k == "imports":
			for j := 0; j+1 < len(v.Content); j += 2 {
				if ik := v.Content[j].Value; !importKeys[ik] {
					c.add("weaver-syntax", f.path, "", "imports: key %q is not a Weaver import kind (metrics, events, entities, spans, attribute_groups)", ik)
				}
			}
		}
	}
}

// checkImports: every import names a semconv item the excerpt holds.
func (c *checker) checkImports(files []*parsedFile) {
	seen := map[string]string{}
	for _, f := range files {
		add := func(format string, args ...any) { c.add("import", f.path, "", format, args...) }
		im := f.imports
		for _, x := range []struct {
			what string
			list []string
		}{{"events", im.Events}, {"spans", im.Spans}, {"attribute_groups", im.AttributeGroups}} {
			if len(x.list) > 0 {
				add("imports: %s: schemagen generates imported metrics and entities only", x.what)
			}
		}
		for _, kind := range []string{"entity", "metric"} {
			list := im.Entities
			if kind == "metric" {
				list = im.Metrics
			}
			for _, n := range list {
				switch {
				case strings.ContainsAny(n, "*?[]{}"):
					add("imports: %s: %q is a wildcard: import semconv %s by exact name", importKey(kind), n, importKey(kind))
					continue
				case !c.sc.names[kind][n]:
					add("imports: %s: %q is not a semconv %s %s", importKey(kind), n, c.sc.version, kind)
					continue
				case seen[kind+" "+n] != "":
					add("imports: %s: %q is already imported by %s", importKey(kind), n, seen[kind+" "+n])
					continue
				}
				seen[kind+" "+n] = f.path
				var g yamlGroup
				var ok bool
				if kind == "entity" {
					g, ok = c.sc.entities[n]
					c.importedEntity[n] = true
				} else {
					g, ok = c.sc.metrics[n]
					c.importedMetric[n] = true
				}
				if !ok {
					add("imports: %s: %q is not in the pinned excerpt %s (regenerate it: go run ./internal/schemagen/cmd/semconvexcerpt)", importKey(kind), n, c.sc.file)
					continue
				}
				for _, a := range g.Attributes {
					c.use(a.Ref, c.sc.file, g.ID)
				}
			}
		}
	}
}

// checkGroupSyntax: the keys, type and shape Weaver v0.25.1 accepts.
func (c *checker) checkGroupSyntax(add func(rule, format string, args ...any), g yamlGroup, n *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; !groupKeys[k] {
			add("weaver-syntax", "key %q is not a Weaver group key", k)
		}
	}
	switch {
	case g.Type == "":
		add("weaver-syntax", "group has no type")
	case !groupTypes[g.Type]:
		add("weaver-syntax", "type %q is not a Weaver group type (attribute_group, span, event, metric, metric_group, entity, scope)", g.Type)
	}
	if yamlnode.Get(n, "prefix") != nil {
		add("weaver-syntax", "prefix is not supported by Weaver (spell attribute ids out in full)")
	}
	if g.Type == "metric" {
		for _, k := range []string{"metric_name", "instrument", "unit"} {
			if yamlnode.Get(n, k) == nil {
				add("weaver-syntax", "metric has no %s", k)
			}
		}
	}
	if g.Type != "metric" && g.Type != "event" && yamlnode.Get(n, "extends") == nil && len(g.Attributes) == 0 {
		add("weaver-syntax", "group has no attributes (Weaver requires attributes or extends on a %s group)", g.Type)
	}
	if len(g.EntityAssociations) > 0 && g.Type != "metric" && g.Type != "event" && g.Type != "span" {
		add("weaver-syntax", "entity_associations on group type %s (only metrics, events and spans have them)", g.Type)
	}
	refs := map[string]bool{}
	for i, a := range yamlnode.Seq(n, "attributes") {
		id, ref := yamlnode.Scalar(a, "id"), yamlnode.Scalar(a, "ref")
		name := id + ref
		switch {
		case id != "" && ref != "":
			add("weaver-syntax", "attribute #%d has both id %q and ref %q", i+1, id, ref)
		case id == "" && ref == "":
			add("weaver-syntax", "attribute #%d has neither id nor ref", i+1)
		}
		keys := idKeys
		if ref != "" {
			keys = refKeys
			if refs[ref] {
				add("weaver-syntax", "attribute ref %q is listed twice", ref)
			}
			refs[ref] = true
		}
		for j := 0; j+1 < len(a.Content); j += 2 {
			if k := a.Content[j].Value; !keys[k] {
				add("weaver-syntax", "attribute %q: key %q is not a Weaver attribute key", name, k)
			}
		}
		if rl := yamlnode.Get(a, "requirement_level"); rl != nil {
			checkRequirementLevel(add, name, rl)
		}
		if id != "" {
			checkExamples(add, id, yamlnode.Get(a, "type"), yamlnode.Get(a, "examples"))
		}
	}
}

func checkRequirementLevel(add func(rule, format string, args ...any), attr string, n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Value {
		case "required", "recommended", "opt_in":
			return
		case "conditionally_required":
			add("requirement-level", "attribute %q: requirement_level conditionally_required needs its condition (conditionally_required: <when it is set>); Weaver cannot parse the bare word", attr)
			return
		}
	case yaml.MappingNode:
		if len(n.Content) == 2 && n.Content[1].Kind == yaml.ScalarNode && n.Content[1].Tag == "!!str" && n.Content[1].Value != "" {
			switch n.Content[0].Value {
			case "conditionally_required", "recommended", "opt_in":
				return
			}
		}
	}
	v, _ := yaml.Marshal(n)
	add("requirement-level", "attribute %q: requirement_level %s is not a Weaver form (required, recommended, opt_in, or one of conditionally_required, recommended, opt_in: <condition>)",
		attr, strings.Join(strings.Fields(string(v)), " "))
}

// exampleShape is the variant of weaver_semconv's untagged Examples enum
// that a YAML examples value deserializes to.
func exampleShape(n *yaml.Node) string {
	scalarKind := func(s *yaml.Node) string {
		switch s.Tag {
		case "!!bool":
			return "bool"
		case "!!int":
			return "int"
		case "!!float":
			return "double"
		case "!!str":
			return "string"
		}
		return "any"
	}
	listKind := func(l []*yaml.Node) string {
		kinds := map[string]bool{}
		for _, e := range l {
			if e.Kind != yaml.ScalarNode {
				return "invalid"
			}
			kinds[scalarKind(e)] = true
		}
		switch {
		case len(kinds) == 1 && kinds["bool"]:
			return "bools"
		case len(kinds) == 1 && kinds["int"]:
			return "ints"
		case len(kinds) <= 2 && !kinds["bool"] && !kinds["string"] && !kinds["any"]:
			return "doubles"
		case len(kinds) == 1 && kinds["string"]:
			return "strings"
		}
		return "anys"
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return scalarKind(n)
	case yaml.SequenceNode:
		if len(n.Content) > 0 && n.Content[0].Kind == yaml.SequenceNode {
			inner := ""
			for _, e := range n.Content {
				if e.Kind != yaml.SequenceNode {
					return "invalid"
				}
				k := listKind(e.Content)
				if inner == "" || inner == k || (inner == "ints" && k == "doubles") {
					inner = k
				} else if !(inner == "doubles" && k == "ints") {
					return "invalid"
				}
			}
			return "list_of_" + inner
		}
		return listKind(n.Content)
	}
	return "invalid"
}

// checkExamples mirrors weaver_semconv Examples::validate and the missing
// examples warning of GroupSpec::validate.
func checkExamples(add func(rule, format string, args ...any), id string, typ, ex *yaml.Node) {
	if typ == nil || typ.Kind != yaml.ScalarNode {
		return // enums take any example
	}
	t := typ.Value
	if ex == nil {
		if t == "string" || t == "string[]" {
			add("examples", "attribute %q is a %s without examples (Weaver warns: give one or more)", id, t)
		}
		return
	}
	ok := map[string][]string{
		"boolean": {"bool", "bools"}, "int": {"int", "ints"}, "double": {"double", "doubles"}, "string": {"string", "strings"},
		"boolean[]": {"list_of_bools"}, "int[]": {"list_of_ints"}, "double[]": {"list_of_doubles"}, "string[]": {"list_of_strings"},
	}[t]
	if ok == nil {
		return // any and templates
	}
	if !contains(ok, exampleShape(ex)) {
		add("examples", "attribute %q: examples are not of type %s (as Weaver requires, e.g. %s)", id, t, exampleHint[t])
	}
}

var exampleHint = map[string]string{
	"boolean": "[true, false]", "int": "[1, 42]", "double": "[0.5, 1.25]", "string": `["a", "b"]`,
	"boolean[]": "[[true, false]]", "int[]": "[[1, 2]]", "double[]": "[[0.5, 1.5]]", "string[]": `[["a", "b"]]`,
}

// checkCollisions: the naming_conventions policy's collision rules on
// every attribute, metric, event and entity the registry has (semconv's
// that it uses included); a collision is reported where the registry
// declares or uses the first of the pair.
func (c *checker) checkCollisions() {
	ids := sortedKeys(c.usedAttrs)
	for _, a := range ids {
		for _, b := range ids {
			da, db := c.usedAttrs[a], c.usedAttrs[b]
			if !da.own && !db.own {
				continue // semconv's own business
			}
			if strings.HasPrefix(b, a+".") {
				c.add("namespace-collision", da.file, da.group, "attribute %q is the namespace of attribute %q", a, b)
			}
			if a < b && strings.ReplaceAll(a, ".", "_") == strings.ReplaceAll(b, ".", "_") {
				c.add("constant-collision", da.file, da.group, "attributes %q and %q have the same constant name %q", a, b, strings.ReplaceAll(a, ".", "_"))
			}
		}
	}
	metrics := c.declaredOrImported(c.localMetricDecl, c.importedMetric)
	entities := c.declaredOrImported(c.localEntityDecl, c.importedEntity)
	for _, kind := range []struct {
		name  string
		decls map[string]where
		local map[string]where
	}{{"metric", metrics, c.localMetricDecl}, {"event", c.localEventDecl, c.localEventDecl}, {"entity", entities, c.localEntityDecl}} {
		names := sortedKeys(kind.decls)
		for _, a := range names {
			for _, b := range names {
				_, la := kind.local[a]
				_, lb := kind.local[b]
				if !la && !lb {
					continue
				}
				w := kind.decls[a]
				if !la {
					w = kind.decls[b]
				}
				if kind.name == "metric" && strings.HasPrefix(b, a+".") {
					c.add("namespace-collision", w.file, w.group, "metric %q is the namespace of metric %q", a, b)
				}
				if a < b && strings.ReplaceAll(a, ".", "_") == strings.ReplaceAll(b, ".", "_") {
					c.add("constant-collision", w.file, w.group, "%ss %q and %q have the same constant name %q", kind.name, a, b, strings.ReplaceAll(a, ".", "_"))
				}
			}
		}
	}
	for _, id := range sortedKeys(c.ownAttrs) {
		d := c.ownAttrs[id]
		ids, vals, consts := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, m := range enumMembers(d.typ) {
			cn := strings.ReplaceAll(m.id, ".", "_")
			switch {
			case ids[m.id]:
				c.add("constant-collision", d.file, d.group, "attribute %q: enum member id %q is listed twice", id, m.id)
			case vals[m.value]:
				c.add("constant-collision", d.file, d.group, "attribute %q: enum member value %q is listed twice", id, m.value)
			case consts[cn]:
				c.add("constant-collision", d.file, d.group, "attribute %q: enum member %q has the constant name %q of another member", id, m.id, cn)
			}
			ids[m.id], vals[m.value], consts[cn] = true, true, true
		}
	}
}

// declaredOrImported is every name the registry declares (where it does)
// or imports from semconv (placed in the semconv excerpt's file).
func (c *checker) declaredOrImported(local map[string]where, imported map[string]bool) map[string]where {
	all := make(map[string]where, len(local)+len(imported))
	for n, w := range local {
		all[n] = w
	}
	for n := range imported {
		if _, ok := all[n]; !ok {
			all[n] = where{file: c.sc.file}
		}
	}
	return all
}
