package schemagen

import (
	"slices"
	"strings"
	"testing"
)

// The real registry declares the specification's entity events and the
// process probe's events, and the
// generator turns them into descriptors and a docs table.
func TestEventsGenerated(t *testing.T) {
	r := load(t)
	var names []string
	for _, ev := range r.Events {
		names = append(names, ev.Name)
	}
	want := []string{"entity.delete", "entity.state", "telagent.process.exec", "telagent.process.exit", "telagent.process.fork", "telagent.process.oom.kill"}
	if !slices.Equal(names, want) {
		t.Fatalf("events %q, want %q (sorted by name)", names, want)
	}
	exit := r.Events[3]
	if len(exit.EntityAssociations) != 1 || exit.EntityAssociations[0] != "process" || exit.Attributes[0].ID != "process.exit.code" {
		t.Errorf("exit event %+v", exit)
	}
	goSrc, err := r.GenerateGo()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"type EventDesc struct", "EventTelagentProcessExit = EventDesc{", "func Events() []EventDesc",
		`Name:       "telagent.process.exec"`, "AttrProcessCommandArgs"} {
		if !strings.Contains(string(goSrc), s) {
			t.Errorf("generated Go lacks %q", s)
		}
	}
	docs, err := r.GenerateDocs()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(docs), "## Events") || !strings.Contains(string(docs), "| `telagent.process.exit` | `process.exit.code`") {
		t.Errorf("docs lack the events table")
	}
}

const eventEntity = `
  - id: entity.process
    type: entity
    name: process
    stability: development
    brief: A process.
    attributes:
      - ref: process.pid
        role: identifying
`

func TestEventErrors(t *testing.T) {
	for _, tc := range []struct{ name, model, want string }{
		{"no name", `groups:
  - id: event.x
    type: event
    stability: development
    brief: X.
` + eventEntity, "event has no name"},
		{"bad name", `groups:
  - id: event.x
    type: event
    name: Telagent.X
    stability: development
    brief: X.
` + eventEntity, "want lowercase dotted segments"},
		{"unknown entity", `groups:
  - id: event.x
    type: event
    name: telagent.process.start
    stability: development
    brief: X.
    entity_associations: [container]
` + eventEntity, `no entity named "container"`},
		{"identity on the record", `groups:
  - id: event.x
    type: event
    name: telagent.process.start
    stability: development
    brief: X.
    entity_associations: [process]
    attributes:
      - ref: process.pid
` + eventEntity, "goes on the Resource"},
		{"twice", `groups:
  - id: event.x
    type: event
    name: telagent.process.start
    stability: development
    brief: X.
  - id: event.y
    type: event
    name: telagent.process.start
    stability: development
    brief: Y.
` + eventEntity, "already declared by group event.x"},
		{"no brief", `groups:
  - id: event.x
    type: event
    name: telagent.process.start
    stability: development
` + eventEntity, "has no brief"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConstsRegistry(t, tc.model))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
