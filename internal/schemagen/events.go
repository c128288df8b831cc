package schemagen

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Event is a group of type event: a named occurrence the agent exports as
// an OTLP log record whose event name is Name, with Attributes on the
// record and the associated entity's attributes on its Resource.
type Event struct {
	ID, Name, Brief, Note, Stability, File string
	Attributes                             []*Attribute // record attributes, declared order
	Required                               []bool       // per attribute: requirement_level required
	OptIn                                  []bool       // per attribute: requirement_level opt_in (only when asked for)
	EntityAssociations                     []string
}

// buildEvent turns one `type: event` group into an Event. Event names
// follow the conventions: lowercase dotted segments, our own under telagent.
func buildEvent(file string, g yamlGroup, attrs []*Attribute) (*Event, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: group %s: %s", file, g.ID, fmt.Sprintf(format, args...))
	}
	ev := &Event{ID: g.ID, Name: g.Name, Brief: clean(g.Brief), Note: clean(g.Note), Stability: g.Stability,
		File: file, Attributes: attrs, EntityAssociations: g.EntityAssociations}
	if ev.Name == "" {
		return nil, fail("event has no name")
	}
	if !validEventName(ev.Name) {
		return nil, fail("event name %q: want lowercase dotted segments of [a-z0-9_] starting with a letter", ev.Name)
	}
	if ev.Brief == "" {
		return nil, fail("event %q has no brief", ev.Name)
	}
	if ev.Stability == "" {
		return nil, fail("event %q has no stability", ev.Name)
	}
	if g.MetricName != "" || g.Instrument != "" || g.Unit != "" {
		return nil, fail("event %q: metric_name, instrument and unit are for metrics", ev.Name)
	}
	if !g.Annotations.Telagent.IsZero() {
		return nil, fail("event %q: no telagent annotations are defined for events", ev.Name)
	}
	for _, a := range g.Attributes {
		ev.Required = append(ev.Required, a.RequirementLevel.Kind != 0 && a.RequirementLevel.Value == "required")
		ev.OptIn = append(ev.OptIn, isOptIn(&a.RequirementLevel))
	}
	return ev, nil
}

func validEventName(name string) bool {
	for _, seg := range strings.Split(name, ".") {
		if seg == "" || seg[0] < 'a' || seg[0] > 'z' {
			return false
		}
		for _, c := range seg {
			if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// finishEvents checks what needs the whole registry (entities may be
// declared in a later file) and sorts the events by name.
func (r *Registry) finishEvents(entities map[string]*Entity) error {
	seen := map[string]*Event{}
	for _, ev := range r.Events {
		if prev, dup := seen[ev.Name]; dup {
			return fmt.Errorf("%s: group %s: event %q already declared by group %s", ev.File, ev.ID, ev.Name, prev.ID)
		}
		seen[ev.Name] = ev
		for _, en := range ev.EntityAssociations {
			e, ok := entities[en]
			if !ok {
				return fmt.Errorf("%s: group %s: entity_associations: no entity named %q", ev.File, ev.ID, en)
			}
			// An entity's attributes travel on the Resource; repeating
			// them on the record would give two places to look.
			for _, a := range ev.Attributes {
				if containsAttr(e.Identifying, a) {
					return fmt.Errorf("%s: group %s: attribute %q identifies entity %q, which goes on the Resource, not the record",
						ev.File, ev.ID, a.ID, en)
				}
			}
		}
	}
	sort.Slice(r.Events, func(i, j int) bool { return r.Events[i].Name < r.Events[j].Name })
	return nil
}

func eventIdent(n string) string { return "Event" + CamelCase(n) }

// generateGoEvents writes the event descriptors into entity/zz_generated.go.
func (r *Registry) generateGoEvents(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w(`// EventDesc describes an event declared in the schema: exported as an OTLP
// log record whose event name is Name, with Attributes on the record and the
// attributes of Entity (the associated entity) on its Resource.
type EventDesc struct {
	Name       string
	Brief      string
	Attributes []attribute.Key // record attributes in declared order
	Entity     string          // entity_associations[0], "" if none
}

`)
	w("// Events declared in the schema.\nvar (\n")
	for _, ev := range r.Events {
		ent := ""
		if len(ev.EntityAssociations) > 0 {
			ent = ev.EntityAssociations[0]
		}
		comment(b, "\t", fmt.Sprintf("%s (%s): %s", eventIdent(ev.Name), ev.Stability, ev.Brief))
		w("\t%s = EventDesc{\n\t\tName: %q,\n\t\tBrief: %q,\n\t\tAttributes: %s,\n\t\tEntity: %q,\n\t}\n",
			eventIdent(ev.Name), ev.Name, ev.Brief, keyList(ev.Attributes), ent)
	}
	w(")\n\n")
	w("// Events returns every event declared in the schema, sorted by Name.\nfunc Events() []EventDesc {\n\treturn []EventDesc{\n")
	for _, ev := range r.Events {
		w("\t\t%s,\n", eventIdent(ev.Name))
	}
	w("\t}\n}\n\n")
}

// generateDocsEvents writes the events table of docs/telemetry.md.
func (r *Registry) generateDocsEvents(b *bytes.Buffer) {
	if len(r.Events) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("\n## Events\n\n")
	w("Exported as OTLP log records with the event name set, severity INFO, the record attributes below, ")
	w("and the associated entity's attributes on the Resource (so an event joins the metrics of the same entity).\n\n")
	w("| event | record attributes | entity | stability | brief |\n|---|---|---|---|---|\n")
	for _, ev := range r.Events {
		attrs := make([]string, len(ev.Attributes))
		for i, a := range ev.Attributes {
			attrs[i] = code(a.ID)
			if ev.Required[i] {
				attrs[i] += " (required)"
			}
			if ev.OptIn[i] {
				attrs[i] += " (opt-in)"
			}
		}
		list := strings.Join(attrs, ", ")
		if list == "" {
			list = "—"
		}
		ent := "—"
		if len(ev.EntityAssociations) > 0 {
			ent = code(strings.Join(ev.EntityAssociations, ", "))
		}
		w("| %s | %s | %s | %s | %s |\n", code(ev.Name), list, ent, ev.Stability, cell(ev.Brief))
	}
	for _, ev := range r.Events {
		if ev.Note != "" {
			w("\n- %s: %s", code(ev.Name), ev.Note)
		}
	}
	w("\n")
}
