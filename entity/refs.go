package entity

import "go.opentelemetry.io/otel/attribute"

// Ref is one OTLP entity ref of a Resource (opentelemetry-proto common/v1
// EntityRef): the entity's type and which of the Resource's attributes
// identify it and which describe it. Its schema URL is SchemaURL.
type Ref struct {
	Type            string
	IDKeys          []attribute.Key
	DescriptionKeys []attribute.Key
}

// Refs returns the entity refs of a Resource with attributes set, in the
// schema's entity order: one per entity whose every ref id key is on it
// (an entity whose identity the agent could not obtain gets no ref), with
// the entity's descriptive keys the Resource has. It allocates only for
// the refs it returns.
func Refs(set *attribute.Set) []Ref {
	var out []Ref
	for _, e := range RefEntities() {
		if !e.HasRef(set) {
			continue
		}
		r := Ref{Type: e.Name, IDKeys: e.RefIDKeys}
		for _, k := range e.RefDescriptionKeys {
			if set.HasValue(k) {
				r.DescriptionKeys = append(r.DescriptionKeys, k)
			}
		}
		out = append(out, r)
	}
	return out
}

// RefEntities returns every entity of the schema, in the order Refs uses,
// without allocating (the encoders walk it per Resource). Read-only.
func RefEntities() []*EntityDesc { return entityTable[:] }

// HasRef reports whether a Resource with attributes set carries e's entity
// ref: it has every one of e's ref id keys (and e has some).
func (e *EntityDesc) HasRef(set *attribute.Set) bool {
	keys := e.RefIDKeys
	for _, k := range keys {
		if !set.HasValue(k) {
			return false
		}
	}
	return len(keys) > 0
}
