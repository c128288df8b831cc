// Package schemagen loads the telagent telemetry registry (schema/, in the
// OpenTelemetry Weaver registry format) and generates from it the Go
// descriptors in entity/, the C layouts shared with BPF in bpf/include/gen/
// and the reference page docs/telemetry.md.
//
// Only the part of the Weaver format that telagent uses is understood:
// attribute_group, entity and metric groups, attribute definitions (id) and
// references (ref), and the telagent annotations (annotations.telagent.bound
// on attributes, annotations.telagent.metric_set on groups). References that
// the registry does not define resolve against a pinned offline excerpt of
// the OpenTelemetry semantic conventions (semconv_v1.44.0.yaml), then against
// the built-in attributes (otel.metric.overflow). Loading never uses the
// network.
package schemagen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Attribute sources.
const (
	SourceRegistry = "registry" // defined in schema/model
	// semconv attributes use "semconv " + version, e.g. "semconv v1.44.0".
)

// Manifest is schema/manifest.yaml in the form of Weaver's definition
// manifest (crate weaver_semconv, manifest.rs): the registry is named and
// versioned by its schema_url, and depends on the semantic conventions.
type Manifest struct {
	SchemaURL    string               `yaml:"schema_url"`
	Description  string               `yaml:"description"`
	Stability    string               `yaml:"stability"`
	Dependencies []ManifestDependency `yaml:"dependencies"`
	// Name and Version are derived from SchemaURL as Weaver derives them:
	// the URL without its scheme and last path segment, and that segment.
	Name, Version string `yaml:"-"`
}

// ManifestDependency is one entry of the manifest's dependencies.
type ManifestDependency struct {
	SchemaURL    string `yaml:"schema_url"`
	RegistryPath string `yaml:"registry_path"`
}

// SemconvSchemaURLPrefix is the schema URL of the semantic conventions,
// without the version (https://opentelemetry.io/schemas/1.44.0).
const SemconvSchemaURLPrefix = "https://opentelemetry.io/schemas/"

// splitSchemaURL splits an OTel schema URL http[s]://server[:port]/path/<version>
// into the registry name (server and path) and the version, as Weaver does
// (schema_url.rs); ok is false when the URL has no such shape.
func splitSchemaURL(u string) (name, version string, ok bool) {
	u = strings.TrimRight(u, "/")
	rest, found := strings.CutPrefix(u, "https://")
	if !found {
		rest, found = strings.CutPrefix(u, "http://")
	}
	if !found || strings.ContainsAny(rest, " ?#") {
		return "", "", false
	}
	first, last := strings.IndexByte(rest, '/'), strings.LastIndexByte(rest, '/')
	if first <= 0 || last == len(rest)-1 {
		return "", "", false
	}
	return rest[:last], rest[last+1:], true
}

// Attribute is a resolved attribute definition.
type Attribute struct {
	ID         string
	Type       string   // string, int, double, boolean, string[], …, or "enum"
	EnumValues []string // for enums: the values of the members that are not deprecated
	Brief      string   // whitespace collapsed
	Note       string
	Stability  string
	Examples   []string
	Bound      uint32 // annotations.telagent.bound; 0 when not declared
	Source     string // SourceRegistry or "semconv vX.Y.Z"
	File       string // display path of the defining file (empty for built-ins)
	GroupID    string
}

// Entity is a group of type entity: one of the registry's, or one imported
// from the semantic conventions (Source "semconv vX.Y.Z"; its attributes
// without role: identifying are descriptive, as Weaver resolves them).
type Entity struct {
	ID, Name, Brief, Note, Stability, File string
	Source                                 string // SourceRegistry or "semconv vX.Y.Z"
	Identifying, Descriptive               []*Attribute
	// RefID are the id_keys of the entity's OTLP EntityRef: Identifying,
	// or, for a semconv entity that marks no attribute identifying (host,
	// os, container in v1.44.0), the keys the registry's entity_ref_ids
	// annotation chooses. RefDescriptive are the description_keys: the
	// descriptive attributes not in RefID.
	RefID, RefDescriptive []*Attribute
}

// Metric is a group of type metric: one of the registry's, or one imported
// from the semantic conventions (Source "semconv vX.Y.Z"), whose Note is the
// registry's (the imported_metrics entry of the metric set that feeds it)
// and whose Attributes are semconv's followed by the set's Extra ones.
type Metric struct {
	ID, Name, Instrument, Unit, Brief, Note, Stability, File string
	Source                                                   string       // SourceRegistry or "semconv vX.Y.Z"
	Attributes                                               []*Attribute // data-point attributes, declared order
	Extra                                                    []*Attribute // of Attributes, those an imported metric adds to semconv's
	EntityAssociations                                       []string
	MetricSet                                                string // annotations.telagent.metric_set (or the set importing it), "" if none
	// ErrorsOf is annotations.telagent.errors_of: the histogram whose
	// operations this counter counts the failed ones of (telagent.syscall.errors
	// of telagent.syscall.duration), so that a consumer can show both in one row.
	ErrorsOf string
}

// KeyField is one field of a metric set's map key.
type KeyField struct {
	Field     string
	CType     string // u8, u16, u32, u64
	Attribute *Attribute
	Entity    string // entity whose identity the field carries, "" for data-point attributes
	Bound     uint32 // 0 when bounded by the map's max_entries
	Size      int    // bytes
	Offset    int    // bytes
}

// ValueField is one field of a metric set's map value. Every value field is
// made of u64 words.
type ValueField struct {
	Field    string
	Kind     string // counter, sum, log2_histogram
	Metric   string
	Role     string  // count, value, sum, buckets
	Scale    float64 // scale_to_unit; 1 when not declared
	Buckets  int     // log2_histogram only
	MinShift int     // log2_histogram only
	Words    int
	Offset   int // in u64 words
	// Attributes are constant data-point attributes of the points this
	// field feeds (e.g. process.context_switch.type=voluntary), sorted by
	// attribute id: one metric can then take several fields of one value.
	Attributes []ConstAttribute
}

// ConstAttribute is an attribute with a fixed (string or enum) value.
type ConstAttribute struct {
	Attribute *Attribute
	Value     string
}

// constKey identifies a value field's constant attribute set.
func (v ValueField) constKey() string {
	var b strings.Builder
	for _, a := range v.Attributes {
		b.WriteString(a.Attribute.ID + "=" + a.Value + ";")
	}
	return b.String()
}

// MapTypeNodeHash is the storage of every metric set: per NUMA node and
// epoch one plain preallocated hash whose entries are keyed by the tuple
// and the CPU that writes them (bpf/include/telagent.h). Its kernel
// memory depends on what one interval touched, not on the possible CPUs.
const MapTypeNodeHash = "node_hash"

// MetricSet is an attribute_group carrying annotations.telagent.metric_set.
type MetricSet struct {
	ID, Name, Map, MapType, Brief, File string
	MaxEntries                          uint32
	// Flag overrides MaxEntries on the command line ("" none), FlagUsage
	// is its help.
	Flag, FlagUsage string
	Attributes      []*Attribute
	Key             []KeyField
	KeySize         int // bytes, C layout
	// EntryKeySize is the key of one storage entry of a node_hash set:
	// the tuple, the writing CPU (u32) and explicit padding to the tuple's
	// alignment (no implicit padding: every key byte is written).
	EntryKeySize int
	Values       []ValueField
	ValueWords   int
	OverflowKey  map[string]uint64
}

// Bound is the number of distinct key tuples the set can hold:
// min(product of the key field bounds, max_entries), where a field bounded by
// max_entries contributes max_entries. The overflow key comes on top.
func (s *MetricSet) Bound() uint64 {
	p := uint64(1)
	for _, f := range s.Key {
		b := uint64(f.Bound)
		if b == 0 {
			b = uint64(s.MaxEntries)
		}
		if p > math.MaxUint64/b {
			p = math.MaxUint64
		} else {
			p *= b
		}
	}
	return min(p, uint64(s.MaxEntries))
}

// Registry is the loaded and validated registry.
type Registry struct {
	Dir            string
	Manifest       Manifest
	SemconvVersion string                // version of the embedded excerpt
	Attributes     []*Attribute          // every attribute used (own, referenced, built-in), sorted by ID
	AttributeByID  map[string]*Attribute // same set
	Entities       []*Entity             // sorted by Name
	Metrics        []*Metric             // sorted by Name
	MetricSets     []*MetricSet          // sorted by Name
	Events         []*Event              // sorted by Name (events.go)
	Breakdowns     []*Breakdown          // sorted by Flag (breakdown.go)
	HistBuckets    int                   // shared by every log2_histogram value field
	HistMinShift   int
}

// ---- YAML shapes ---------------------------------------------------------

type yamlFile struct {
	SemconvVersion string      `yaml:"semconv_version"` // excerpt only
	Imports        yamlImports `yaml:"imports"`
	Groups         []yamlGroup `yaml:"groups"`
}

// yamlImports is Weaver's v1 `imports:` (semconv.rs Imports): semconv
// groups brought into the registry by metric name, entity name or event
// name, never copied.
type yamlImports struct {
	Metrics         []string `yaml:"metrics"`
	Events          []string `yaml:"events"`
	Entities        []string `yaml:"entities"`
	Spans           []string `yaml:"spans"`
	AttributeGroups []string `yaml:"attribute_groups"`
}

type yamlGroup struct {
	ID                 string     `yaml:"id"`
	Type               string     `yaml:"type"`
	Name               string     `yaml:"name"`
	MetricName         string     `yaml:"metric_name"`
	Instrument         string     `yaml:"instrument"`
	Unit               string     `yaml:"unit"`
	Stability          string     `yaml:"stability"`
	Brief              string     `yaml:"brief"`
	Note               string     `yaml:"note"`
	EntityAssociations []string   `yaml:"entity_associations"`
	Attributes         []yamlAttr `yaml:"attributes"`
	Annotations        struct {
		Telagent yaml.Node `yaml:"telagent"`
	} `yaml:"annotations"`
}

type yamlAttr struct {
	ID               string    `yaml:"id"`
	Ref              string    `yaml:"ref"`
	Type             yaml.Node `yaml:"type"`
	Brief            string    `yaml:"brief"`
	Note             string    `yaml:"note"`
	Stability        string    `yaml:"stability"`
	Examples         yaml.Node `yaml:"examples"`
	Role             string    `yaml:"role"`
	RequirementLevel yaml.Node `yaml:"requirement_level"`
	Annotations      struct {
		Telagent yaml.Node `yaml:"telagent"`
	} `yaml:"annotations"`
}

type yamlEnumType struct {
	Members []struct {
		ID         string    `yaml:"id"`
		Value      yaml.Node `yaml:"value"`
		Deprecated yaml.Node `yaml:"deprecated"`
	} `yaml:"members"`
}

type yamlAttrAnnotation struct {
	Bound uint32 `yaml:"bound"`
}

type yamlMetricSetSpec struct {
	Name            string               `yaml:"name"`
	Map             string               `yaml:"map"`
	MapType         string               `yaml:"map_type"`
	MaxEntries      uint32               `yaml:"max_entries"`
	MaxEntriesFlag  *yamlMaxEntriesFlag  `yaml:"max_entries_flag"`
	Key             []yamlKeyField       `yaml:"key"`
	OverflowKey     map[string]uint64    `yaml:"overflow_key"`
	ImportedMetrics []yamlImportedMetric `yaml:"imported_metrics"`
	Values          []yamlValueField     `yaml:"values"`
}

// yamlMaxEntriesFlag is the telagent run flag that overrides a set's
// max_entries (and the receiver key spelled from it), with its help text.
type yamlMaxEntriesFlag struct {
	Name  string `yaml:"name"`
	Usage string `yaml:"usage"`
}

// yamlImportedMetric is what the registry says about a semconv metric it
// imports and a metric set feeds: how the agent measures it (note) and the
// data-point attributes it adds to semconv's (extra_attributes, each one of
// the set's key attributes).
type yamlImportedMetric struct {
	Metric          string   `yaml:"metric"`
	Note            string   `yaml:"note"`
	ExtraAttributes []string `yaml:"extra_attributes"`
}

type yamlKeyField struct {
	Field     string `yaml:"field"`
	CType     string `yaml:"c_type"`
	Attribute string `yaml:"attribute"`
	Entity    string `yaml:"entity"`
	Bound     string `yaml:"bound"` // "max_entries" or a number
}

type yamlValueField struct {
	Field       string            `yaml:"field"`
	Kind        string            `yaml:"kind"`
	Metric      string            `yaml:"metric"`
	Role        string            `yaml:"role"`
	ScaleToUnit *float64          `yaml:"scale_to_unit"`
	Buckets     int               `yaml:"buckets"`
	MinShift    *int              `yaml:"min_shift"`
	Attributes  map[string]string `yaml:"attributes"`
}

// ---- loading -------------------------------------------------------------

type loadedFile struct {
	path    string // display path
	content yamlFile
}

// Load reads and validates the registry in dir (the directory holding
// manifest.yaml and model/).
func Load(dir string) (*Registry, error) {
	r, err := LoadFS(os.DirFS(dir), displayPath(dir))
	if r != nil {
		r.Dir = dir
	}
	return r, err
}

// LoadFS is Load on a file system whose root holds manifest.yaml and
// model/ (for example the registry embedded in the binary); errors name
// files as display/<path>.
func LoadFS(fsys fs.FS, display string) (*Registry, error) {
	r := &Registry{Dir: display, AttributeByID: map[string]*Attribute{}}

	manifestPath := path.Join(display, "manifest.yaml")
	mb, err := fs.ReadFile(fsys, "manifest.yaml")
	if err != nil {
		return nil, fmt.Errorf("registry manifest: %w", err)
	}
	if err := decodeStrict(mb, &r.Manifest); err != nil {
		return nil, fmt.Errorf("%s: %w (a Weaver definition manifest has schema_url, description, stability and dependencies)", manifestPath, err)
	}
	var ok bool
	if r.Manifest.Name, r.Manifest.Version, ok = splitSchemaURL(r.Manifest.SchemaURL); !ok {
		return nil, fmt.Errorf("%s: schema_url %q is not http[s]://server/path/<version>", manifestPath, r.Manifest.SchemaURL)
	}

	sc, err := loadExcerpt()
	if err != nil {
		return nil, err
	}
	r.SemconvVersion = sc.version
	if len(r.Manifest.Dependencies) != 1 || r.Manifest.Dependencies[0].SchemaURL != sc.schemaURL() {
		return nil, fmt.Errorf("%s: dependencies must be the one semantic conventions registry %s (the pinned offline excerpt internal/schemagen/semconv_%s.yaml)",
			manifestPath, sc.schemaURL(), sc.version)
	}
	// Copies: a registry may bound a semconv attribute (a ref carrying
	// annotations.telagent.bound), which must not change the shared excerpt.
	semconv := make(map[string]*Attribute, len(sc.attrs))
	for id, a := range sc.attrs {
		c := *a
		semconv[id] = &c
	}

	// Model files, in name order.
	var paths []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := fs.Glob(fsys, "model/"+pat)
		if err != nil {
			return nil, err
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s: no model files (*.yaml)", path.Join(display, "model"))
	}
	var files []loadedFile
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		var f yamlFile
		if err := yaml.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join(display, p), err)
		}
		files = append(files, loadedFile{path: path.Join(display, p), content: f})
	}

	// Pass 1: own attribute definitions and group ids.
	own := map[string]*Attribute{}
	groupSeen := map[string]string{}
	for _, f := range files {
		for i, g := range f.content.Groups {
			if g.ID == "" {
				return nil, fmt.Errorf("%s: group #%d has no id", f.path, i+1)
			}
			if prev, dup := groupSeen[g.ID]; dup {
				return nil, fmt.Errorf("%s: group %s: already defined in %s", f.path, g.ID, prev)
			}
			groupSeen[g.ID] = f.path
			for _, a := range g.Attributes {
				if a.ID == "" {
					continue
				}
				if a.Ref != "" {
					return nil, fmt.Errorf("%s: group %s: attribute has both id %q and ref %q", f.path, g.ID, a.ID, a.Ref)
				}
				if prev, dup := own[a.ID]; dup {
					return nil, fmt.Errorf("%s: group %s: attribute %q already defined in %s", f.path, g.ID, a.ID, prev.File)
				}
				attr, err := newAttribute(a, SourceRegistry, f.path, g.ID)
				if err != nil {
					return nil, fmt.Errorf("%s: group %s: %w", f.path, g.ID, err)
				}
				own[a.ID] = attr
			}
		}
	}
	use := func(a *Attribute) {
		if _, ok := r.AttributeByID[a.ID]; !ok {
			r.AttributeByID[a.ID] = a
		}
	}
	for _, a := range own {
		use(a)
	}
	resolve := func(file, group, name string) (*Attribute, error) {
		for _, m := range []map[string]*Attribute{own, semconv} {
			if a, ok := m[name]; ok {
				use(a)
				return a, nil
			}
		}
		return nil, fmt.Errorf("%s: group %s: ref %q resolves to nothing", file, group, name)
	}

	// Pass 2: groups.
	type setSrc = groupSrc
	var sets, refGroups []setSrc
	entityByName := map[string]*Entity{}
	metricByName := map[string]*Metric{}

	// Imports: semconv groups brought in by name, resolved from the
	// pinned excerpt (their refs are semconv's own attributes).
	importedFrom := map[string]string{} // "kind name" -> importing file
	for _, f := range files {
		im := f.content.Imports
		if len(im.Spans)+len(im.AttributeGroups)+len(im.Events) > 0 {
			return nil, fmt.Errorf("%s: imports: only metrics and entities are generated; spans, attribute_groups and events are not", f.path)
		}
		for _, kind := range []string{"entity", "metric"} {
			list := im.Entities
			if kind == "metric" {
				list = im.Metrics
			}
			for _, name := range list {
				if prev, dup := importedFrom[kind+" "+name]; dup {
					return nil, fmt.Errorf("%s: imports: %s %q is already imported by %s", f.path, kind, name, prev)
				}
				importedFrom[kind+" "+name] = f.path
				g, ok := sc.entities[name]
				if kind == "metric" {
					g, ok = sc.metrics[name]
				}
				if !ok {
					return nil, fmt.Errorf("%s: imports: %s %q is not in the pinned semconv %s excerpt (%s; regenerate it with internal/schemagen/cmd/semconvexcerpt)",
						f.path, kind, name, sc.version, sc.file)
				}
				attrs := make([]*Attribute, 0, len(g.Attributes))
				for _, a := range g.Attributes {
					attr, ok := semconv[a.Ref]
					if !ok {
						return nil, fmt.Errorf("%s: group %s: ref %q is not in the excerpt (regenerate it)", sc.file, g.ID, a.Ref)
					}
					use(attr)
					attrs = append(attrs, attr)
				}
				src := "semconv " + sc.version
				if kind == "entity" {
					e := &Entity{ID: g.ID, Name: g.Name, Brief: clean(g.Brief), Note: clean(g.Note), Stability: g.Stability, File: sc.file, Source: src}
					for i, a := range g.Attributes {
						if a.Role == "identifying" {
							e.Identifying = append(e.Identifying, attrs[i])
						} else {
							e.Descriptive = append(e.Descriptive, attrs[i])
						}
					}
					entityByName[e.Name] = e
					r.Entities = append(r.Entities, e)
					continue
				}
				m := &Metric{ID: g.ID, Name: g.MetricName, Instrument: g.Instrument, Unit: g.Unit, Brief: clean(g.Brief),
					Stability: g.Stability, File: sc.file, Source: src, Attributes: attrs, EntityAssociations: g.EntityAssociations}
				metricByName[m.Name] = m
				r.Metrics = append(r.Metrics, m)
			}
		}
	}

	for _, f := range files {
		for _, g := range f.content.Groups {
			// Resolve every attribute of the group, whatever its type.
			attrs := make([]*Attribute, 0, len(g.Attributes))
			seen := map[string]bool{}
			for _, a := range g.Attributes {
				var attr *Attribute
				switch {
				case a.Ref != "":
					attr, err = resolve(f.path, g.ID, a.Ref)
					if err != nil {
						return nil, err
					}
					if err := refBound(f.path, g.ID, a, attr); err != nil {
						return nil, err
					}
				case a.ID != "":
					attr = own[a.ID]
				default:
					return nil, fmt.Errorf("%s: group %s: attribute with neither id nor ref", f.path, g.ID)
				}
				if seen[attr.ID] {
					return nil, fmt.Errorf("%s: group %s: attribute %q listed twice", f.path, g.ID, attr.ID)
				}
				seen[attr.ID] = true
				attrs = append(attrs, attr)
			}

			switch g.Type {
			case "entity":
				e := &Entity{ID: g.ID, Name: g.Name, Brief: clean(g.Brief), Note: clean(g.Note), Stability: g.Stability, File: f.path, Source: SourceRegistry}
				if e.Name == "" {
					return nil, fmt.Errorf("%s: group %s: entity has no name", f.path, g.ID)
				}
				if _, dup := entityByName[e.Name]; dup {
					return nil, fmt.Errorf("%s: group %s: entity %q defined twice", f.path, g.ID, e.Name)
				}
				for i, a := range g.Attributes {
					switch a.Role {
					case "identifying":
						e.Identifying = append(e.Identifying, attrs[i])
					case "descriptive", "":
						e.Descriptive = append(e.Descriptive, attrs[i])
					default:
						return nil, fmt.Errorf("%s: group %s: attribute %q: role %q is neither identifying nor descriptive", f.path, g.ID, attrs[i].ID, a.Role)
					}
				}
				if len(e.Identifying) == 0 {
					return nil, fmt.Errorf("%s: group %s: entity %q has no identifying attribute", f.path, g.ID, e.Name)
				}
				entityByName[e.Name] = e
				r.Entities = append(r.Entities, e)

			case "metric":
				m := &Metric{ID: g.ID, Name: g.MetricName, Instrument: g.Instrument, Unit: g.Unit,
					Brief: clean(g.Brief), Note: clean(g.Note), Stability: g.Stability, File: f.path, Source: SourceRegistry,
					Attributes: attrs, EntityAssociations: g.EntityAssociations}
				if m.Name == "" {
					return nil, fmt.Errorf("%s: group %s: metric has no metric_name", f.path, g.ID)
				}
				if _, ok := instruments[m.Instrument]; !ok {
					return nil, fmt.Errorf("%s: group %s: instrument %q is not one of counter, updowncounter, gauge, histogram", f.path, g.ID, m.Instrument)
				}
				if _, dup := metricByName[m.Name]; dup {
					return nil, fmt.Errorf("%s: group %s: metric %q defined twice", f.path, g.ID, m.Name)
				}
				if !g.Annotations.Telagent.IsZero() {
					var ann struct {
						MetricSet string `yaml:"metric_set"`
						ErrorsOf  string `yaml:"errors_of"`
					}
					if err := decodeNodeStrict(&g.Annotations.Telagent, &ann); err != nil {
						return nil, fmt.Errorf("%s: group %s: annotations.telagent: %w", f.path, g.ID, err)
					}
					m.MetricSet, m.ErrorsOf = ann.MetricSet, ann.ErrorsOf
				}
				metricByName[m.Name] = m
				r.Metrics = append(r.Metrics, m)

			case "attribute_group":
				switch {
				case g.Annotations.Telagent.IsZero():
				case isEntityRefGroup(g):
					refGroups = append(refGroups, setSrc{file: f.path, group: g, attrs: attrs})
				case isBreakdownGroup(g):
					bd, err := buildBreakdown(f.path, g, attrs)
					if err != nil {
						return nil, err
					}
					r.Breakdowns = append(r.Breakdowns, bd)
				default:
					sets = append(sets, setSrc{file: f.path, group: g, attrs: attrs})
				}

			case "event":
				ev, err := buildEvent(f.path, g, attrs)
				if err != nil {
					return nil, err
				}
				r.Events = append(r.Events, ev)

			default:
				// Other Weaver group types (span, …) are not generated yet,
				// but their references were checked above.
			}
		}
	}

	// Imported metrics: the metric set feeding each says how it is
	// measured and which of its key attributes it adds.
	for _, src := range sets {
		spec, err := metricSetSpec(src.file, src.group)
		if err != nil {
			return nil, err
		}
		for _, im := range spec.ImportedMetrics {
			fail := func(format string, args ...any) error {
				return fmt.Errorf("%s: group %s: annotations.telagent.metric_set: imported_metrics: %s: %s", src.file, src.group.ID, im.Metric, fmt.Sprintf(format, args...))
			}
			m, ok := metricByName[im.Metric]
			if !ok || m.Source == SourceRegistry {
				return nil, fail("not a metric the registry imports (imports: metrics:)")
			}
			if m.MetricSet != "" {
				return nil, fail("already fed by metric set %s", m.MetricSet)
			}
			m.MetricSet, m.Note = spec.Name, clean(im.Note)
			for _, id := range im.ExtraAttributes {
				var a *Attribute
				for _, x := range src.attrs {
					if x.ID == id {
						a = x
					}
				}
				if a == nil {
					return nil, fail("extra attribute %q is not one of the metric set's attributes", id)
				}
				if containsAttr(m.Attributes, a) {
					return nil, fail("extra attribute %q is one of semconv's attributes of the metric already", id)
				}
				m.Attributes = append(m.Attributes, a)
				m.Extra = append(m.Extra, a)
			}
		}
	}
	if err := resolveEntityRefs(r.Entities, entityByName, refGroups); err != nil {
		return nil, err
	}
	// Error counters: a counter of the failed operations of a histogram
	// that the same points feed (same attributes).
	for _, m := range r.Metrics {
		if m.ErrorsOf == "" {
			continue
		}
		h, ok := metricByName[m.ErrorsOf]
		switch {
		case m.Instrument != "counter":
			return nil, fmt.Errorf("%s: group %s: annotations.telagent.errors_of: only a counter counts errors, this is a %s", m.File, m.ID, m.Instrument)
		case !ok || h.Instrument != "histogram":
			return nil, fmt.Errorf("%s: group %s: annotations.telagent.errors_of: %q is no histogram metric of the registry", m.File, m.ID, m.ErrorsOf)
		case !slices.Equal(m.Attributes, h.Attributes):
			return nil, fmt.Errorf("%s: group %s: annotations.telagent.errors_of: %q has other attributes: the errors cannot share its rows", m.File, m.ID, m.ErrorsOf)
		}
	}
	// Entity associations.
	for _, m := range r.Metrics {
		for _, en := range m.EntityAssociations {
			if _, ok := entityByName[en]; !ok {
				return nil, fmt.Errorf("%s: group %s: entity_associations: no entity named %q", m.File, m.ID, en)
			}
		}
	}

	// Metric sets.
	setByName := map[string]*MetricSet{}
	for _, s := range sets {
		ms, err := buildMetricSet(s.file, s.group, s.attrs, entityByName, metricByName, r)
		if err != nil {
			return nil, err
		}
		if prev, dup := setByName[ms.Name]; dup {
			return nil, fmt.Errorf("%s: group %s: metric set %q already declared by group %s", s.file, s.group.ID, ms.Name, prev.ID)
		}
		setByName[ms.Name] = ms
		r.MetricSets = append(r.MetricSets, ms)
	}
	for _, m := range r.Metrics {
		if m.MetricSet == "" {
			continue
		}
		ms, ok := setByName[m.MetricSet]
		if !ok {
			return nil, fmt.Errorf("%s: group %s: annotations.telagent.metric_set: no metric set named %q", m.File, m.ID, m.MetricSet)
		}
		if err := checkMetricInSet(m, ms); err != nil {
			return nil, fmt.Errorf("%s: group %s: %w", m.File, m.ID, err)
		}
	}

	for _, a := range r.AttributeByID {
		r.Attributes = append(r.Attributes, a)
	}
	sort.Slice(r.Attributes, func(i, j int) bool { return r.Attributes[i].ID < r.Attributes[j].ID })
	sort.Slice(r.Entities, func(i, j int) bool { return r.Entities[i].Name < r.Entities[j].Name })
	sort.Slice(r.Metrics, func(i, j int) bool { return r.Metrics[i].Name < r.Metrics[j].Name })
	sort.Slice(r.MetricSets, func(i, j int) bool { return r.MetricSets[i].Name < r.MetricSets[j].Name })
	sort.Slice(r.Breakdowns, func(i, j int) bool { return r.Breakdowns[i].Flag < r.Breakdowns[j].Flag })
	for i := 1; i < len(r.Breakdowns); i++ {
		if a, b := r.Breakdowns[i-1], r.Breakdowns[i]; a.Flag == b.Flag || a.Attribute == b.Attribute || a.Over == b.Over {
			return nil, fmt.Errorf("%s: group %s: breakdown repeats the flag, attribute or over of group %s", b.File, b.ID, a.ID)
		}
	}
	if err := r.finishEvents(entityByName); err != nil {
		return nil, err
	}
	return r, nil
}

// refBound applies the bound a ref declares (annotations.telagent.bound)
// to a semconv attribute, which the registry cannot annotate where it is
// defined; the attribute's own definition carries the bound of the
// registry's attributes.
func refBound(file, group string, a yamlAttr, attr *Attribute) error {
	if a.Annotations.Telagent.IsZero() {
		return nil
	}
	var ann yamlAttrAnnotation
	if err := decodeNodeStrict(&a.Annotations.Telagent, &ann); err != nil {
		return fmt.Errorf("%s: group %s: ref %q: annotations.telagent: %w", file, group, a.Ref, err)
	}
	switch {
	case attr.Source == SourceRegistry:
		return fmt.Errorf("%s: group %s: ref %q: declare the bound on the attribute's definition (%s)", file, group, a.Ref, attr.File)
	case ann.Bound == 0:
		return fmt.Errorf("%s: group %s: ref %q: annotations.telagent.bound must be positive", file, group, a.Ref)
	case attr.Bound != 0 && attr.Bound != ann.Bound:
		return fmt.Errorf("%s: group %s: ref %q: bound %d, but another ref bounds it to %d", file, group, a.Ref, ann.Bound, attr.Bound)
	}
	attr.Bound = ann.Bound
	return nil
}

// isFlagName: a command-line flag's long name, e.g. syscalls-max-entries.
func isFlagName(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return s != ""
}

// metricSetSpec decodes a metric-set group's annotations.telagent.metric_set.
func metricSetSpec(file string, g yamlGroup) (*yamlMetricSetSpec, error) {
	var ann struct {
		MetricSet yaml.Node `yaml:"metric_set"`
	}
	if err := decodeNodeStrict(&g.Annotations.Telagent, &ann); err != nil {
		return nil, fmt.Errorf("%s: group %s: annotations.telagent: %w", file, g.ID, err)
	}
	if ann.MetricSet.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: group %s: annotations.telagent.metric_set: must be a mapping (name, map, map_type, max_entries, key, overflow_key, imported_metrics, values)", file, g.ID)
	}
	var spec yamlMetricSetSpec
	if err := decodeNodeStrict(&ann.MetricSet, &spec); err != nil {
		return nil, fmt.Errorf("%s: group %s: annotations.telagent.metric_set: %v", file, g.ID, err)
	}
	return &spec, nil
}

var instruments = map[string]bool{"counter": true, "updowncounter": true, "gauge": true, "histogram": true}

var cTypeSizes = map[string]int{"u8": 1, "u16": 2, "u32": 4, "u64": 8}

func buildMetricSet(file string, g yamlGroup, attrs []*Attribute, entities map[string]*Entity, metrics map[string]*Metric, r *Registry) (*MetricSet, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: group %s: annotations.telagent.metric_set: %s", file, g.ID, fmt.Sprintf(format, args...))
	}
	spec, err := metricSetSpec(file, g)
	if err != nil {
		return nil, err
	}
	ms := &MetricSet{ID: g.ID, Name: spec.Name, Map: spec.Map, MapType: spec.MapType, Brief: clean(g.Brief),
		File: file, MaxEntries: spec.MaxEntries, Attributes: attrs, OverflowKey: spec.OverflowKey}
	if !isCIdent(ms.Name) || !isCIdent(ms.Map) {
		return nil, fail("name %q and map %q must be C identifiers", ms.Name, ms.Map)
	}
	switch ms.MapType {
	case MapTypeNodeHash:
	default:
		return nil, fail("map_type %q is not %s (per-node hashes of (tuple, CPU) entries, drained every interval)", ms.MapType, MapTypeNodeHash)
	}
	if ms.MaxEntries == 0 {
		return nil, fail("max_entries is required")
	}
	if f := spec.MaxEntriesFlag; f != nil {
		if !strings.HasSuffix(f.Name, "-max-entries") || !isFlagName(f.Name) || f.Usage == "" {
			return nil, fail("max_entries_flag: name %q must be a flag name ending in -max-entries (lower case, digits, '-'), with a usage", f.Name)
		}
		for _, other := range r.MetricSets {
			if other.Flag == f.Name {
				return nil, fail("max_entries_flag %s is metric set %s's too", f.Name, other.Name)
			}
		}
		ms.Flag, ms.FlagUsage = f.Name, f.Usage
	}
	inGroup := map[string]bool{}
	for _, a := range attrs {
		inGroup[a.ID] = true
	}

	// Key: C struct layout (natural alignment, padded to the largest member).
	if len(spec.Key) == 0 {
		return nil, fail("key has no fields")
	}
	seenField := map[string]bool{}
	off, align := 0, 1
	for _, k := range spec.Key {
		size, ok := cTypeSizes[k.CType]
		if !ok {
			return nil, fail("key field %q: c_type %q is not one of u8, u16, u32, u64", k.Field, k.CType)
		}
		if !isCIdent(k.Field) || seenField[k.Field] {
			return nil, fail("key field %q: not a C identifier or listed twice", k.Field)
		}
		seenField[k.Field] = true
		a := r.AttributeByID[k.Attribute]
		if a == nil || !inGroup[k.Attribute] {
			return nil, fail("key field %q: attribute %q is not one of the group's attributes", k.Field, k.Attribute)
		}
		kf := KeyField{Field: k.Field, CType: k.CType, Attribute: a, Entity: k.Entity, Size: size}
		switch k.Bound {
		case "max_entries":
		case "":
			return nil, fail("key field %q: bound is required (a number or max_entries)", k.Field)
		default:
			b, err := strconv.ParseUint(k.Bound, 0, 32)
			if err != nil || b == 0 {
				return nil, fail("key field %q: bound %q is neither a positive number nor max_entries", k.Field, k.Bound)
			}
			if a.Bound != 0 && uint32(b) > a.Bound {
				return nil, fail("key field %q: bound %d exceeds the bound %d of attribute %q", k.Field, b, a.Bound, a.ID)
			}
			kf.Bound = uint32(b)
		}
		if k.Entity != "" {
			e, ok := entities[k.Entity]
			if !ok {
				return nil, fail("key field %q: no entity named %q", k.Field, k.Entity)
			}
			if !containsAttr(e.Identifying, a) {
				return nil, fail("key field %q: attribute %q is not identifying for entity %q", k.Field, a.ID, e.Name)
			}
		}
		off = alignUp(off, size)
		kf.Offset = off
		off += size
		align = max(align, size)
		ms.Key = append(ms.Key, kf)
	}
	ms.KeySize = alignUp(off, align)
	ms.EntryKeySize = alignUp(ms.KeySize+4, align)
	for _, a := range attrs {
		found := false
		for _, k := range ms.Key {
			found = found || k.Attribute == a
		}
		if !found {
			return nil, fail("attribute %q of the group is not carried by any key field", a.ID)
		}
	}

	// Overflow key: one value per key field, fitting its type.
	if len(ms.OverflowKey) == 0 {
		return nil, fail("overflow_key is required")
	}
	for name := range ms.OverflowKey {
		if !seenField[name] {
			return nil, fail("overflow_key: %q is not a key field", name)
		}
	}
	for _, k := range ms.Key {
		v, ok := ms.OverflowKey[k.Field]
		if !ok {
			return nil, fail("overflow_key: no value for key field %q", k.Field)
		}
		if k.Size < 8 && v>>(8*k.Size) != 0 {
			return nil, fail("overflow_key: %s=%#x does not fit %s", k.Field, v, k.CType)
		}
	}

	// Values: u64 words in declared order.
	if len(spec.Values) == 0 {
		return nil, fail("values has no fields")
	}
	words := 0
	for _, v := range spec.Values {
		if !isCIdent(v.Field) || seenField["value."+v.Field] {
			return nil, fail("value field %q: not a C identifier or listed twice", v.Field)
		}
		seenField["value."+v.Field] = true
		m, ok := metrics[v.Metric]
		if !ok {
			return nil, fail("value field %q: no metric named %q", v.Field, v.Metric)
		}
		if m.MetricSet != ms.Name {
			return nil, fail("value field %q: metric %q does not declare annotations.telagent.metric_set: %s", v.Field, v.Metric, ms.Name)
		}
		vf := ValueField{Field: v.Field, Kind: v.Kind, Metric: v.Metric, Role: v.Role, Scale: 1, Words: 1, Offset: words}
		if v.ScaleToUnit != nil {
			if *v.ScaleToUnit <= 0 || math.IsInf(*v.ScaleToUnit, 0) || math.IsNaN(*v.ScaleToUnit) {
				return nil, fail("value field %q: scale_to_unit must be a positive number", v.Field)
			}
			vf.Scale = *v.ScaleToUnit
		}
		var roles []string
		switch v.Kind {
		case "counter":
			roles = []string{"count", "value"}
		case "sum":
			roles = []string{"sum", "value"}
		case "log2_histogram":
			roles = []string{"buckets"}
			if v.Buckets < 2 || v.MinShift == nil || *v.MinShift < 0 || *v.MinShift+v.Buckets-1 > 63 {
				return nil, fail("value field %q: log2_histogram needs buckets >= 2 and min_shift >= 0 with min_shift+buckets-1 <= 63", v.Field)
			}
			if r.HistBuckets == 0 {
				r.HistBuckets, r.HistMinShift = v.Buckets, *v.MinShift
			} else if r.HistBuckets != v.Buckets || r.HistMinShift != *v.MinShift {
				return nil, fail("value field %q: buckets %d / min_shift %d differ from the registry-wide log2 histogram layout %d / %d (TELAGENT_HIST_BUCKETS / TELAGENT_HIST_MIN_SHIFT are shared)",
					v.Field, v.Buckets, *v.MinShift, r.HistBuckets, r.HistMinShift)
			}
			vf.Buckets, vf.MinShift, vf.Words = v.Buckets, *v.MinShift, v.Buckets
		default:
			return nil, fail("value field %q: kind %q is not one of counter, sum, log2_histogram", v.Field, v.Kind)
		}
		if v.Kind != "log2_histogram" && (v.Buckets != 0 || v.MinShift != nil) {
			return nil, fail("value field %q: buckets and min_shift are for log2_histogram only", v.Field)
		}
		if !contains(roles, v.Role) {
			return nil, fail("value field %q: role %q is not valid for kind %s (want one of %s)", v.Field, v.Role, v.Kind, strings.Join(roles, ", "))
		}
		ids := make([]string, 0, len(v.Attributes))
		for id := range v.Attributes {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			a, ok := r.AttributeByID[id]
			if !ok {
				return nil, fail("value field %q: attribute %q resolves to nothing", v.Field, id)
			}
			if a.Type != "string" && a.Type != "enum" {
				return nil, fail("value field %q: constant attribute %q must be a string or enum, is %s", v.Field, id, a.Type)
			}
			if a.Type == "enum" && !contains(a.EnumValues, v.Attributes[id]) {
				return nil, fail("value field %q: %q is not a value of enum %s (%s)", v.Field, v.Attributes[id], id, strings.Join(a.EnumValues, ", "))
			}
			if !containsAttr(m.Attributes, a) {
				return nil, fail("value field %q: attribute %q is not an attribute of metric %s", v.Field, id, m.Name)
			}
			vf.Attributes = append(vf.Attributes, ConstAttribute{Attribute: a, Value: v.Attributes[id]})
		}
		words += vf.Words
		ms.Values = append(ms.Values, vf)
	}
	ms.ValueWords = words
	return ms, nil
}

// checkMetricInSet checks that the value fields of ms can produce m, and that
// m's data-point attributes and entity match ms's key.
func checkMetricInSet(m *Metric, ms *MetricSet) error {
	// One series per distinct constant-attribute set of the metric's fields;
	// each series needs its own complete set of roles.
	series := map[string]map[string]int{}
	var order []string
	consts := map[*Attribute]int{} // fields fixing each constant attribute
	fields := 0
	for _, v := range ms.Values {
		if v.Metric != m.Name {
			continue
		}
		k := v.constKey()
		if series[k] == nil {
			series[k] = map[string]int{}
			order = append(order, k)
		}
		series[k][v.Role]++
		fields++
		for _, a := range v.Attributes {
			consts[a.Attribute]++
		}
	}
	for _, k := range order {
		roles := series[k]
		what := "this metric"
		if k != "" {
			what = "this metric and " + strings.TrimSuffix(k, ";")
		}
		for role, n := range roles {
			if n > 1 {
				return fmt.Errorf("metric set %s has %d value fields with role %s for %s", ms.Name, n, role, what)
			}
		}
		switch m.Instrument {
		case "histogram":
			if roles["count"] != 1 || roles["sum"] != 1 || roles["buckets"] != 1 || roles["value"] != 0 {
				return fmt.Errorf("histogram in metric set %s needs exactly one value field of each role count, sum and buckets for %s", ms.Name, what)
			}
		default:
			if roles["value"] != 1 || len(roles) != 1 {
				return fmt.Errorf("%s in metric set %s needs exactly one value field with role value for %s", m.Instrument, ms.Name, what)
			}
		}
	}
	for a, n := range consts {
		if n != fields {
			return fmt.Errorf("metric set %s: constant attribute %q is set on %d of the %d value fields of metric %s (all or none)", ms.Name, a.ID, n, fields, m.Name)
		}
	}
	for _, k := range ms.Key {
		if k.Entity != "" {
			if !contains(m.EntityAssociations, k.Entity) {
				return fmt.Errorf("metric set %s keys on entity %q (field %s), missing from entity_associations", ms.Name, k.Entity, k.Field)
			}
			continue
		}
		if !containsAttr(m.Attributes, k.Attribute) {
			return fmt.Errorf("metric set %s key field %s carries attribute %q, missing from the metric's attributes", ms.Name, k.Field, k.Attribute.ID)
		}
	}
	for _, a := range m.Attributes {
		found := false
		for _, k := range ms.Key {
			found = found || (k.Entity == "" && k.Attribute == a)
		}
		found = found || consts[a] > 0
		if !found {
			return fmt.Errorf("attribute %q is not carried by a data-point key field of metric set %s", a.ID, ms.Name)
		}
	}
	return nil
}

func newAttribute(a yamlAttr, source, file, group string) (*Attribute, error) {
	attr := &Attribute{ID: a.ID, Brief: clean(a.Brief), Note: clean(a.Note), Stability: a.Stability,
		Source: source, File: file, GroupID: group}
	if attr.Brief == "" {
		return nil, fmt.Errorf("attribute %q has no brief", a.ID)
	}
	if attr.Stability == "" {
		return nil, fmt.Errorf("attribute %q has no stability", a.ID)
	}
	switch a.Type.Kind {
	case yaml.ScalarNode:
		attr.Type = a.Type.Value
		switch attr.Type {
		case "string", "int", "double", "boolean", "string[]", "int[]", "double[]", "boolean[]", "any":
		default:
			if !strings.HasPrefix(attr.Type, "template[") {
				return nil, fmt.Errorf("attribute %q: unknown type %q", a.ID, attr.Type)
			}
		}
	case yaml.MappingNode:
		var e yamlEnumType
		if err := a.Type.Decode(&e); err != nil || len(e.Members) == 0 {
			return nil, fmt.Errorf("attribute %q: type is neither a primitive nor an enum with members", a.ID)
		}
		attr.Type = "enum"
		for _, m := range e.Members {
			if m.Deprecated.IsZero() {
				attr.EnumValues = append(attr.EnumValues, m.Value.Value)
			}
		}
	default:
		return nil, fmt.Errorf("attribute %q has no type", a.ID)
	}
	if !a.Examples.IsZero() {
		switch a.Examples.Kind {
		case yaml.SequenceNode:
			for _, n := range a.Examples.Content {
				attr.Examples = append(attr.Examples, n.Value)
			}
		case yaml.ScalarNode:
			attr.Examples = []string{a.Examples.Value}
		}
	}
	if !a.Annotations.Telagent.IsZero() {
		var ann yamlAttrAnnotation
		if err := decodeNodeStrict(&a.Annotations.Telagent, &ann); err != nil {
			return nil, fmt.Errorf("attribute %q: annotations.telagent: %w", a.ID, err)
		}
		attr.Bound = ann.Bound
	}
	return attr, nil
}

// ---- helpers -------------------------------------------------------------

// decodeStrict decodes YAML rejecting unknown fields.
func decodeStrict(b []byte, v any) error {
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// decodeNodeStrict decodes n rejecting unknown fields (yaml.Node.Decode
// ignores them), so that typos in telagent annotations fail loudly.
func decodeNodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	return decodeStrict(b, v)
}

// clean collapses runs of white space (folded YAML scalars end in "\n").
func clean(s string) string { return strings.Join(strings.Fields(s), " ") }

func alignUp(n, a int) int { return (n + a - 1) / a * a }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsAttr(list []*Attribute, a *Attribute) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func isCIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// displayPath returns p relative to the root of the Go module that contains
// it (so that errors read "schema/model/x.yaml" wherever the generator runs
// from), or p unchanged outside a module.
func displayPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if rel, err := filepath.Rel(dir, abs); err == nil {
				return filepath.ToSlash(rel)
			}
			return p
		}
		if parent := filepath.Dir(dir); parent == dir {
			return p
		}
	}
}

// groupSrc is a group with its resolved attributes, kept for a later pass.
type groupSrc struct {
	file  string
	group yamlGroup
	attrs []*Attribute
}

// isEntityRefGroup reports whether g is an attribute group whose telagent
// annotation is entity_ref_ids: the identifying keys the agent's OTLP
// entity refs give entities that semconv leaves without any.
func isEntityRefGroup(g yamlGroup) bool {
	n := &g.Annotations.Telagent
	return n.Kind == yaml.MappingNode && len(n.Content) > 0 && n.Content[0].Value == "entity_ref_ids"
}

// resolveEntityRefs sets every entity's RefID and RefDescriptive: its own
// identifying attributes, or those an entity_ref_ids annotation names for
// an entity that has none. An entity left without any has no ref (the
// agent emits none for it).
func resolveEntityRefs(entities []*Entity, byName map[string]*Entity, groups []groupSrc) error {
	chosen := map[string][]*Attribute{}
	for _, src := range groups {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s: group %s: annotations.telagent.entity_ref_ids: %s", src.file, src.group.ID, fmt.Sprintf(format, args...))
		}
		var ann struct {
			EntityRefIDs map[string][]string `yaml:"entity_ref_ids"`
		}
		if err := decodeNodeStrict(&src.group.Annotations.Telagent, &ann); err != nil {
			return fail("%v", err)
		}
		for name, ids := range ann.EntityRefIDs {
			e, ok := byName[name]
			switch {
			case !ok:
				return fail("no entity named %q", name)
			case len(e.Identifying) > 0:
				return fail("entity %q already has identifying attributes (%s); its ref uses them", name, attrIDs(e.Identifying))
			case chosen[name] != nil:
				return fail("entity %q chosen twice", name)
			case len(ids) == 0:
				return fail("entity %q: no attribute", name)
			}
			for _, id := range ids {
				var a *Attribute
				for _, x := range e.Descriptive {
					if x.ID == id {
						a = x
					}
				}
				if a == nil {
					return fail("entity %q: %q is not one of its attributes", name, id)
				}
				if !containsAttr(src.attrs, a) {
					return fail("entity %q: %q is not referenced by the group (add it to attributes)", name, id)
				}
				chosen[name] = append(chosen[name], a)
			}
		}
	}
	for _, e := range entities {
		e.RefID = e.Identifying
		if c := chosen[e.Name]; c != nil {
			e.RefID = c
		}
		e.RefDescriptive = nil
		for _, a := range e.Descriptive {
			if !containsAttr(e.RefID, a) {
				e.RefDescriptive = append(e.RefDescriptive, a)
			}
		}
	}
	return nil
}

func attrIDs(list []*Attribute) string {
	ids := make([]string, len(list))
	for i, a := range list {
		ids[i] = a.ID
	}
	return strings.Join(ids, ", ")
}
