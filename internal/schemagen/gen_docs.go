package schemagen

import (
	"bytes"
	"fmt"
	"strings"
)

// GenerateDocs returns docs/telemetry.md.
func (r *Registry) GenerateDocs() ([]byte, error) {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	codes := func(attrs []*Attribute) string {
		if len(attrs) == 0 {
			return "—"
		}
		s := make([]string, len(attrs))
		for i, a := range attrs {
			s[i] = code(a.ID)
		}
		return strings.Join(s, ", ")
	}

	w("<!-- %s -->\n\n", strings.TrimPrefix(Header, "// "))
	w("# telagent telemetry\n\n")
	w("Generated from the registry in `schema/` (%s", code(r.Manifest.Name))
	if r.Manifest.SchemaURL != "" {
		w(", %s", r.Manifest.SchemaURL)
	}
	w("; OpenTelemetry semantic conventions %s). Edit the registry, then run `make generate`.\n\n", r.SemconvVersion)

	// Entities.
	w("## Entities\n\n")
	w("| entity | identifying | descriptive | entity ref id_keys | stability | source | brief |\n|---|---|---|---|---|---|---|\n")
	for _, e := range r.Entities {
		w("| %s | %s | %s | %s | %s | %s | %s |\n", code(e.Name), codes(e.Identifying), codes(e.Descriptive), codes(e.RefID), e.Stability, e.Source, cell(e.Brief))
	}
	w("\nEntities of the semantic conventions are imported (`imports: entities:`), never redefined: their roles are semconv's ")
	w("(an attribute without `role: identifying` is descriptive, as Weaver resolves it). What the agent fills in, and ")
	w("how long each identity holds, is written in `schema/model/entities.yaml`. ")
	w("Every Resource carries one OTLP entity ref (`schema_url` %s, `type`, `id_keys`, `description_keys`) per entity whose ref id_keys are all on it; ", r.Manifest.SchemaURL)
	w("`description_keys` are the entity's other attributes the Resource has. ")
	w("For host, os and container, which semconv %s marks no attribute of identifying, the id_keys are the registry's choice ", r.SemconvVersion)
	w("(`telagent.entity_refs` in `schema/model/entities.yaml`). Identity and its stability promise:\n\n")
	for _, e := range r.Entities {
		note := e.Note
		if note == "" {
			note = "(not stated)"
			if e.Source != SourceRegistry {
				note = "(semconv states none; see schema/model/entities.yaml)"
			}
		}
		w("- %s: %s\n", code(e.Name), clean(note))
	}
	w("\n")

	// Attributes.
	w("## Attributes\n\n")
	w("Bound: the number of distinct values the attribute can take where the agent emits it: ")
	w("its declared `annotations.telagent.bound`, the size of its enum, or the bound of the metric-set key field that carries it. ")
	w("Resource attributes (of entities) take one value per entity. Stability is the attribute's own (semconv's for semconv attributes).\n\n")
	w("| attribute | type | bound | stability | source | brief |\n|---|---|---|---|---|---|\n")
	for _, a := range r.Attributes {
		typ := a.Type
		if a.Type == "enum" {
			vals := make([]string, len(a.EnumValues))
			for i, v := range a.EnumValues {
				vals[i] = code(v)
			}
			typ = "enum: " + strings.Join(vals, ", ")
		}
		w("| %s | %s | %s | %s | %s | %s |\n", code(a.ID), typ, r.attrBound(a), a.Stability, a.Source, cell(a.Brief))
	}
	w("\n")

	// Metric sets.
	w("## Metric sets\n\n")
	w("One BPF map per metric set: the key is one bounded attribute tuple, the value holds every metric sharing it. ")
	w("When the map is full the BPF side adds into the overflow key, exported with `otel.metric.overflow=true`. ")
	w("The bound of a set is the number of key tuples it can hold: the product of its key fields' bounds ")
	w("(a field bounded by max_entries counts max_entries), capped by max_entries; the one overflow series comes on top.\n\n")
	w("| metric set | map | max_entries | key (bound) | bound | overflow key |\n|---|---|---|---|---|---|\n")
	for _, s := range r.MetricSets {
		keys := make([]string, len(s.Key))
		ovf := make([]string, len(s.Key))
		for i, k := range s.Key {
			keys[i] = fmt.Sprintf("%s → %s (%s)", code(k.Field+" "+k.CType), code(k.Attribute.ID), boundString(k.Bound, s.MaxEntries))
			ovf[i] = code(fmt.Sprintf("%s=%#x", k.Field, s.OverflowKey[k.Field]))
		}
		w("| %s | %s (%s) | %d | %s | %s | %s |\n", code(s.Name), code(s.Map), s.MapType, s.MaxEntries,
			strings.Join(keys, ", "), setBoundString(s), strings.Join(ovf, ", "))
	}
	w("\n")
	for _, s := range r.MetricSets {
		w("### %s\n\n%s\n\n", code(s.Name), cell(s.Brief))
		w("Key: %d bytes (a storage entry's: %d, with the writing CPU); value: %d u64 words (%d bytes) per entry.\n\n",
			s.KeySize, s.EntryKeySize, s.ValueWords, 8*s.ValueWords)
		w("| value field | kind | words | offset | metric | role | scale to unit |\n|---|---|---|---|---|---|---|\n")
		for _, v := range s.Values {
			kind := v.Kind
			if v.Kind == "log2_histogram" {
				kind = fmt.Sprintf("log2_histogram (%d buckets, min_shift %d)", v.Buckets, v.MinShift)
			}
			metric := code(v.Metric)
			for _, a := range v.Attributes {
				metric += " " + code(a.Attribute.ID+"="+a.Value)
			}
			w("| %s | %s | %d | %d | %s | %s | %s |\n", code(v.Field), kind, v.Words, v.Offset, metric, v.Role, fmtFloat(v.Scale))
		}
		w("\n")
	}

	r.generateDocsBreakdowns(w) // breakdown.go

	// Metrics.
	w("## Metrics\n\n")
	w("Metrics of the semantic conventions are imported (`imports: metrics:`), never redefined; the attributes a metric set adds to ")
	w("semconv's are marked (extra).\n\n")
	w("| metric | instrument | unit | attributes | entity | stability | source | brief |\n|---|---|---|---|---|---|---|---|\n")
	for _, m := range r.Metrics {
		ent := "—"
		if len(m.EntityAssociations) > 0 {
			ent = code(strings.Join(m.EntityAssociations, ", "))
		}
		attrs := codes(m.Attributes)
		for _, a := range m.Extra {
			attrs = strings.Replace(attrs, code(a.ID), code(a.ID)+" (extra)", 1)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", code(m.Name), m.Instrument, code(m.Unit), attrs, ent, m.Stability, m.Source, cell(m.Brief))
	}
	hasNotes := false
	for _, m := range r.Metrics {
		if m.Note != "" {
			if !hasNotes {
				w("\n")
				hasNotes = true
			}
			w("- %s: %s\n", code(m.Name), m.Note)
		}
	}
	if r.HistBuckets != 0 {
		w("\nHistograms are log2 in nanoseconds, exported in seconds with %d explicit bounds from 2^%d ns to 2^%d ns; the last bucket is +Inf.\n",
			r.HistBuckets-1, r.HistMinShift, r.HistMinShift+r.HistBuckets-2)
	}
	r.generateDocsEvents(&b) // events.go
	return b.Bytes(), nil
}

// attrBound describes an attribute's cardinality bound: its own declared
// bound (or its enum's or boolean's size), then the bounds of the metric-set
// key fields that carry it; an entity attribute that is nothing else is a
// resource attribute, one value per entity.
func (r *Registry) attrBound(a *Attribute) string {
	var bs []string
	switch {
	case a.Bound != 0:
		bs = append(bs, fmt.Sprint(a.Bound))
	case a.Type == "enum":
		bs = append(bs, fmt.Sprintf("%d (enum)", len(a.EnumValues)))
	case a.Type == "boolean":
		bs = append(bs, "2 (boolean)")
	}
	for _, s := range r.MetricSets {
		for _, k := range s.Key {
			if k.Attribute == a {
				bs = append(bs, fmt.Sprintf("%s in %s", boundString(k.Bound, s.MaxEntries), code(s.Name)))
			}
		}
	}
	if len(bs) == 0 {
		for _, e := range r.Entities {
			if containsAttr(e.Identifying, a) || containsAttr(e.Descriptive, a) {
				return "resource: one per entity"
			}
		}
		return "—"
	}
	return strings.Join(bs, "; ")
}

// setBoundString is a metric set's bound with how it is computed:
// "min(10240 × 1024, 10240) = 10240".
func setBoundString(s *MetricSet) string {
	fs := make([]string, len(s.Key))
	for i, k := range s.Key {
		b := k.Bound
		if b == 0 {
			b = s.MaxEntries
		}
		fs[i] = fmt.Sprint(b)
	}
	return fmt.Sprintf("min(%s, %d) = %d", strings.Join(fs, " × "), s.MaxEntries, s.Bound())
}

func boundString(b, maxEntries uint32) string {
	if b == 0 {
		return fmt.Sprintf("max_entries = %d", maxEntries)
	}
	return fmt.Sprint(b)
}

func code(s string) string { return "`" + s + "`" }

// cell escapes text for a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(clean(s), "|", `\|`) }
