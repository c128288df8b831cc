package schemagen

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Breakdown is an opt-in data-point attribute the agent can add to every
// metric of a per-CPU metric set, splitting each key's value by the part
// of the machine it was counted on instead of merging it (--numa-breakdown,
// --cpu-breakdown). It multiplies a set's series by its bound, so it is
// declared here, with that bound, like any other attribute.
type Breakdown struct {
	ID, Brief, File string
	Attribute       *Attribute
	Flag            string // the `telagent run` flag that turns it on
	Over            string // what one value is: BreakdownOverNUMANode or BreakdownOverCPU
	Bound           uint32 // most distinct values (the attribute's own bound when it has one)
}

// What a breakdown splits a key's value over.
const (
	BreakdownOverNUMANode = "numa_node"
	BreakdownOverCPU      = "cpu"
)

type yamlBreakdown struct {
	Flag  string `yaml:"flag"`
	Over  string `yaml:"over"`
	Bound uint32 `yaml:"bound"`
}

// isBreakdownGroup reports whether an attribute_group's telagent
// annotation declares a breakdown (rather than a metric set).
func isBreakdownGroup(g yamlGroup) bool {
	n := &g.Annotations.Telagent
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "breakdown" {
			return true
		}
	}
	return false
}

// buildBreakdown turns an attribute_group annotated with
// telagent.breakdown into a Breakdown: exactly one attribute, of type int,
// a flag name and what it splits over.
func buildBreakdown(file string, g yamlGroup, attrs []*Attribute) (*Breakdown, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: group %s: annotations.telagent.breakdown: %s", file, g.ID, fmt.Sprintf(format, args...))
	}
	var ann struct {
		Breakdown yamlBreakdown `yaml:"breakdown"`
	}
	if err := decodeNodeStrict(&g.Annotations.Telagent, &ann); err != nil {
		return nil, fmt.Errorf("%s: group %s: annotations.telagent: %w", file, g.ID, err)
	}
	if len(attrs) != 1 {
		return nil, fail("a breakdown group lists exactly one attribute, not %d", len(attrs))
	}
	b := &Breakdown{ID: g.ID, Brief: clean(g.Brief), File: file, Attribute: attrs[0],
		Flag: ann.Breakdown.Flag, Over: ann.Breakdown.Over, Bound: ann.Breakdown.Bound}
	if b.Attribute.Type != "int" {
		return nil, fail("attribute %s is %s; a breakdown attribute is an int", b.Attribute.ID, b.Attribute.Type)
	}
	if b.Flag == "" || strings.ToLower(b.Flag) != b.Flag || strings.ContainsAny(b.Flag, " _=") {
		return nil, fail("flag %q: want a lowercase, dash-separated flag name", b.Flag)
	}
	switch b.Over {
	case BreakdownOverNUMANode, BreakdownOverCPU:
	default:
		return nil, fail("over %q is not one of %s, %s", b.Over, BreakdownOverNUMANode, BreakdownOverCPU)
	}
	if b.Bound == 0 {
		b.Bound = b.Attribute.Bound
	}
	if b.Bound == 0 {
		return nil, fail("bound is required (the attribute %s declares none)", b.Attribute.ID)
	}
	if b.Brief == "" {
		return nil, fail("brief is required")
	}
	return b, nil
}

// PerCPU reports whether the set's storage keeps what each CPU counted
// apart (node_hash entries carry their CPU), which is what a breakdown
// splits.
func (s *MetricSet) PerCPU() bool { return s.MapType == MapTypeNodeHash }

func breakdownIdent(b *Breakdown) string {
	return "Breakdown" + CamelCase(strings.ReplaceAll(b.Over, "_", "."))
}

func (r *Registry) generateGoBreakdowns(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w(`// BreakdownDesc is an opt-in data-point attribute that splits every
// per-CPU metric set's values by where they were counted.
type BreakdownDesc struct {
	Flag      string        // the telagent run flag that turns it on
	Attribute attribute.Key // added to every metric of a per-CPU metric set
	Over      string        // %q or %q
	Bound     uint32        // most distinct values of Attribute
	Brief     string
}

`, BreakdownOverNUMANode, BreakdownOverCPU)
	w("// Breakdowns declared in the schema.\nvar (\n")
	for _, bd := range r.Breakdowns {
		comment(b, "\t", fmt.Sprintf("%s (--%s): %s", breakdownIdent(bd), bd.Flag, bd.Brief))
		w("\t%s = BreakdownDesc{Flag: %q, Attribute: %s, Over: %q, Bound: %d, Brief: %q}\n",
			breakdownIdent(bd), bd.Flag, attrIdent(bd.Attribute.ID), bd.Over, bd.Bound, bd.Brief)
	}
	w(")\n\n// Breakdowns returns every breakdown declared in the schema, sorted by Flag.\nfunc Breakdowns() []BreakdownDesc {\n\treturn []BreakdownDesc{\n")
	for _, bd := range r.Breakdowns {
		w("\t\t%s,\n", breakdownIdent(bd))
	}
	w("\t}\n}\n\n")
}

func (r *Registry) generateDocsBreakdowns(w func(string, ...any)) {
	if len(r.Breakdowns) == 0 {
		return
	}
	w("## Breakdowns\n\n")
	w("Opt-in attributes that split the value of every key of a per-CPU metric set by where it was counted, ")
	w("instead of the sum over all CPUs; each multiplies the series of those sets by its bound. ")
	w("They apply to the metric sets ")
	var sets []string
	for _, s := range r.MetricSets {
		if s.PerCPU() {
			sets = append(sets, code(s.Name))
		}
	}
	w("%s.\n\n", strings.Join(sets, ", "))
	w("| flag | attribute | one value per | bound | brief |\n|---|---|---|---|---|\n")
	for _, b := range r.Breakdowns {
		w("| %s | %s | %s | %d | %s |\n", code("--"+b.Flag), code(b.Attribute.ID), strings.ReplaceAll(b.Over, "_", " "), b.Bound, cell(b.Brief))
	}
	w("\n")
}
