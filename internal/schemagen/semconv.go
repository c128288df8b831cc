package schemagen

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// The pinned semantic conventions, both derived from the upstream tag by
// cmd/semconvexcerpt (never edited by hand):
//   - semconv_<v>.yaml: the groups the registry imports and the attribute
//     definitions it and they reference, node for node as upstream has them;
//   - semconv_<v>_names.txt: every group id, attribute, metric, entity and
//     event name of the whole upstream model, for the checks that a local
//     item forks none of them.
var (
	//go:embed semconv_v1.44.0.yaml
	semconvExcerpt []byte
	//go:embed semconv_v1.44.0_names.txt
	semconvNames []byte
)

// excerpt is the loaded semantic conventions data.
type excerpt struct {
	version  string                // "v1.44.0"
	file     string                // display path of the excerpt
	attrs    map[string]*Attribute // attribute definitions of the excerpt
	metrics  map[string]yamlGroup  // by metric_name
	entities map[string]yamlGroup  // by name
	events   map[string]yamlGroup  // by name
	// names[kind] holds every name of that kind upstream: "group",
	// "attribute", "metric", "entity", "event".
	names map[string]map[string]bool
}

// schemaURL is the semantic conventions' schema URL of this version.
func (e *excerpt) schemaURL() string {
	return SemconvSchemaURLPrefix + strings.TrimPrefix(e.version, "v")
}

// SemconvRepoURL is where the semantic conventions' Markdown lives; a
// version's tag follows /blob/.
const SemconvRepoURL = "https://github.com/open-telemetry/semantic-conventions"

// absLinks makes the semantic conventions' repository-relative Markdown
// links (](/docs/...)) absolute links into the pinned version's tag: in our
// docs and comments a path starting at /docs points nowhere.
func (e *excerpt) absLinks(s string) string {
	return strings.ReplaceAll(s, "](/", "]("+SemconvRepoURL+"/blob/"+e.version+"/")
}

var (
	excerptOnce sync.Once
	excerptVal  *excerpt
	excerptErr  error
)

// loadExcerpt parses the embedded semantic conventions data once; the
// result is read-only.
func loadExcerpt() (*excerpt, error) {
	excerptOnce.Do(func() { excerptVal, excerptErr = parseExcerpt(semconvExcerpt, semconvNames) })
	return excerptVal, excerptErr
}

func parseExcerpt(yb, nb []byte) (*excerpt, error) {
	var sc yamlFile
	if err := yaml.Unmarshal(yb, &sc); err != nil {
		return nil, fmt.Errorf("embedded semconv excerpt: %w", err)
	}
	e := &excerpt{version: sc.SemconvVersion, file: "internal/schemagen/semconv_" + sc.SemconvVersion + ".yaml",
		attrs: map[string]*Attribute{}, metrics: map[string]yamlGroup{}, entities: map[string]yamlGroup{},
		events: map[string]yamlGroup{}, names: map[string]map[string]bool{}}
	for _, g := range sc.Groups {
		switch g.Type {
		case "attribute_group":
			for _, a := range g.Attributes {
				attr, err := newAttribute(a, "semconv "+sc.SemconvVersion, e.file, g.ID)
				if err != nil {
					return nil, fmt.Errorf("embedded semconv excerpt: group %s: %w", g.ID, err)
				}
				attr.Brief, attr.Note = e.absLinks(attr.Brief), e.absLinks(attr.Note)
				e.attrs[attr.ID] = attr
			}
		case "metric":
			g.Brief, g.Note = e.absLinks(g.Brief), e.absLinks(g.Note)
			e.metrics[g.MetricName] = g
		case "entity":
			g.Brief, g.Note = e.absLinks(g.Brief), e.absLinks(g.Note)
			e.entities[g.Name] = g
		case "event":
			g.Brief, g.Note = e.absLinks(g.Brief), e.absLinks(g.Note)
			e.events[g.Name] = g
		}
	}
	for _, line := range strings.Split(string(nb), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, name, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("embedded semconv names: line %q is not KIND NAME", line)
		}
		if e.names[kind] == nil {
			e.names[kind] = map[string]bool{}
		}
		e.names[kind][name] = true
	}
	return e, nil
}
