// Command semconvexcerpt derives the pinned offline semantic-conventions
// data schemagen resolves against (internal/schemagen/semconv_<version>.yaml
// and semconv_<version>_names.txt) from a checkout of
// open-telemetry/semantic-conventions at the tag the registry depends on:
//
//	git -C semantic-conventions archive v1.44.0 model | tar -x -C /tmp/semconv
//	go run ./internal/schemagen/cmd/semconvexcerpt -model /tmp/semconv/model -version v1.44.0 \
//	    -schema schema -out internal/schemagen
//
// The excerpt holds, copied node for node from upstream, every metric,
// entity and event group the registry imports (imports:) and the attribute
// definitions those groups and the registry's ref:s need (each kept under its
// upstream registry group). The names file lists every group id, attribute,
// metric, entity and event name of the whole upstream model, so that
// `telagent schema check` can tell a local redefinition of any semconv item
// offline. Run it again after adding a ref: or an import to schema/.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/telagent/telagent/internal/schemagen/yamlnode"
)

type group struct {
	node *yaml.Node // the group's mapping
	file string
}

func main() {
	model := flag.String("model", "", "semantic-conventions model/ directory at the pinned tag")
	version := flag.String("version", "", "the tag, e.g. v1.44.0")
	schemaDir := flag.String("schema", "schema", "the telagent registry (manifest.yaml, model/)")
	out := flag.String("out", "internal/schemagen", "directory for semconv_<version>.yaml and semconv_<version>_names.txt")
	flag.Parse()
	if *model == "" || *version == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "semconvexcerpt: -model DIR and -version vX.Y.Z are required")
		os.Exit(2)
	}
	if err := run(*model, *version, *schemaDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "semconvexcerpt:", err)
		os.Exit(1)
	}
}

func run(model, version, schemaDir, out string) error {
	groups, err := loadGroups(model)
	if err != nil {
		return err
	}
	// Upstream index.
	attrGroup := map[string]*group{}    // attribute id -> defining group
	attrNode := map[string]*yaml.Node{} // attribute id -> definition
	byKind := map[string]map[string]*group{"metric": {}, "entity": {}, "event": {}}
	names := map[string]bool{}
	for _, g := range groups {
		id, typ := yamlnode.Scalar(g.node, "id"), yamlnode.Scalar(g.node, "type")
		names["group "+id] = true
		switch typ {
		case "metric":
			n := yamlnode.Scalar(g.node, "metric_name")
			byKind["metric"][n] = g
			names["metric "+n] = true
		case "entity", "event":
			n := yamlnode.Scalar(g.node, "name")
			byKind[typ][n] = g
			names[typ+" "+n] = true
		}
		for _, a := range yamlnode.Seq(g.node, "attributes") {
			if aid := yamlnode.Scalar(a, "id"); aid != "" {
				if _, dup := attrNode[aid]; dup {
					return fmt.Errorf("attribute %s defined twice upstream", aid)
				}
				attrGroup[aid], attrNode[aid] = g, a
				names["attribute "+aid] = true
			}
		}
	}

	// What the registry needs.
	refs, imports, err := registryNeeds(schemaDir)
	if err != nil {
		return err
	}
	var picked []*group
	for _, kind := range []string{"entity", "metric", "event"} {
		for _, n := range imports[kind] {
			g, ok := byKind[kind][n]
			if !ok {
				return fmt.Errorf("the registry imports %s %q, which semconv %s does not define", kind, n, version)
			}
			picked = append(picked, g)
			for _, a := range yamlnode.Seq(g.node, "attributes") {
				if r := yamlnode.Scalar(a, "ref"); r != "" {
					refs[r] = true
				}
			}
		}
	}
	wantAttrs := map[*group][]string{}
	var attrGroups []*group
	for r := range refs {
		g, ok := attrGroup[r]
		if !ok {
			continue // defined by the registry itself (schemagen resolves and reports the rest)
		}
		if wantAttrs[g] == nil {
			attrGroups = append(attrGroups, g)
		}
		wantAttrs[g] = append(wantAttrs[g], r)
	}
	sort.Slice(attrGroups, func(i, j int) bool {
		return yamlnode.Scalar(attrGroups[i].node, "id") < yamlnode.Scalar(attrGroups[j].node, "id")
	})

	var body []*yaml.Node
	for _, g := range attrGroups {
		keep := map[string]bool{}
		for _, a := range wantAttrs[g] {
			keep[a] = true
		}
		c := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for i := 0; i+1 < len(g.node.Content); i += 2 {
			k, v := g.node.Content[i], g.node.Content[i+1]
			if k.Value == "attributes" {
				l := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
				for _, a := range v.Content {
					if keep[yamlnode.Scalar(a, "id")] {
						l.Content = append(l.Content, a)
					}
				}
				v = l
			}
			c.Content = append(c.Content, k, v)
		}
		body = append(body, c)
	}
	for _, g := range picked {
		body = append(body, g.node)
	}

	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "semconv_version"},
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: version},
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "groups"},
		{Kind: yaml.SequenceNode, Tag: "!!seq", Content: body},
	}}
	var b bytes.Buffer
	fmt.Fprintf(&b, `# Pinned offline excerpt of the OpenTelemetry semantic conventions %[1]s
# (https://github.com/open-telemetry/semantic-conventions, tag %[1]s, model/).
# GENERATED by internal/schemagen/cmd/semconvexcerpt from that tag; DO NOT EDIT.
# It holds, node for node as upstream has them, every metric, entity and
# event group schema/ imports and the attribute definitions those groups
# and schema/'s ref:s need (each under its upstream registry group, other
# attributes of the group left out). schemagen resolves the registry against
# it offline and deterministically; to import or reference another semconv
# item, add it to schema/ and run the command again (see its doc comment).
`, version)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "semconv_"+version+".yaml"), b.Bytes(), 0o644); err != nil {
		return err
	}

	lines := make([]string, 0, len(names))
	for n := range names {
		lines = append(lines, n)
	}
	sort.Strings(lines)
	var nb bytes.Buffer
	fmt.Fprintf(&nb, "# Every group id, attribute, metric, entity and event name of the OpenTelemetry\n"+
		"# semantic conventions %[1]s (tag %[1]s, model/, deprecated ones included), one\n"+
		"# \"KIND NAME\" a line. GENERATED by internal/schemagen/cmd/semconvexcerpt; DO NOT EDIT.\n", version)
	nb.WriteString(strings.Join(lines, "\n") + "\n")
	return os.WriteFile(filepath.Join(out, "semconv_"+version+"_names.txt"), nb.Bytes(), 0o644)
}

// loadGroups reads every group of every YAML file under dir.
func loadGroups(dir string) ([]*group, error) {
	var gs []*group
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) || d.Name() == "manifest.yaml" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if len(doc.Content) == 0 {
			return nil
		}
		for _, g := range yamlnode.Seq(doc.Content[0], "groups") {
			gs = append(gs, &group{node: g, file: p})
		}
		return nil
	})
	sort.SliceStable(gs, func(i, j int) bool { return gs[i].file < gs[j].file })
	return gs, err
}

// registryNeeds returns the ref:s and the imports (by kind) of the registry's model files.
func registryNeeds(schemaDir string) (map[string]bool, map[string][]string, error) {
	refs := map[string]bool{}
	imports := map[string][]string{}
	files, err := filepath.Glob(filepath.Join(schemaDir, "model", "*.yaml"))
	if err != nil {
		return nil, nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		for _, g := range yamlnode.Seq(root, "groups") {
			for _, a := range yamlnode.Seq(g, "attributes") {
				if r := yamlnode.Scalar(a, "ref"); r != "" {
					refs[r] = true
				}
			}
		}
		if im := yamlnode.Get(root, "imports"); im != nil {
			for kind, key := range map[string]string{"metric": "metrics", "entity": "entities", "event": "events"} {
				for _, n := range yamlnode.Seq(im, key) {
					imports[kind] = append(imports[kind], n.Value)
				}
			}
		}
	}
	for k := range imports {
		sort.Strings(imports[k])
	}
	return refs, imports, nil
}
