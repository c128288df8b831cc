package livecheck

import (
	"strings"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/telagent/telagent/internal/schemagen"
)

// Events are checked against the real registry: names, record attributes
// and their types, required attributes.
func TestCheckEvents(t *testing.T) {
	r, err := schemagen.Load("../../schema")
	if err != nil {
		t.Fatal(err)
	}
	res := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("host.id", "abc"), str("host.name", "box"),
		integer("process.pid", 42), str("process.creation.time", "2026-01-01T00:00:00Z")},
		EntityRefs: []*commonpb.EntityRef{
			{SchemaUrl: r.Manifest.SchemaURL, Type: "host", IdKeys: []string{"host.id"}, DescriptionKeys: []string{"host.name"}},
			{SchemaUrl: r.Manifest.SchemaURL, Type: "process", IdKeys: []string{"process.pid", "process.creation.time"}},
		}}
	req := func(records ...*logspb.LogRecord) []*collogspb.ExportLogsServiceRequest {
		return []*collogspb.ExportLogsServiceRequest{{ResourceLogs: []*logspb.ResourceLogs{{
			Resource: res, SchemaUrl: r.Manifest.SchemaURL, ScopeLogs: []*logspb.ScopeLogs{{SchemaUrl: r.Manifest.SchemaURL, LogRecords: records}}}}}}
	}
	fork := &logspb.LogRecord{EventName: "telagent.process.fork", Attributes: []*commonpb.KeyValue{integer("process.parent_pid", 1)}}

	rep := &Report{}
	CheckEvents(r, req(fork), rep)
	if len(rep.Violations) != 0 || rep.Events["telagent.process.fork"] != 1 {
		t.Fatalf("a correct fork event: violations %q, events %v", rep.Violations, rep.Events)
	}

	rep = &Report{}
	CheckEvents(r, req(
		&logspb.LogRecord{EventName: "telagent.process.vanished"},
		&logspb.LogRecord{EventName: "telagent.process.fork", Attributes: []*commonpb.KeyValue{str("process.parent_pid", "1"), str("user.name", "x")}},
		&logspb.LogRecord{EventName: "telagent.process.fork"},
	), rep)
	want := []string{
		`event "telagent.process.vanished" is not declared in the registry (1 time)`,
		`event telagent.process.fork attribute "process.parent_pid" is a string, the registry declares int (1 time)`,
		`event telagent.process.fork: attribute "user.name" is not declared for the event (1 time)`,
		`event telagent.process.fork: required attribute "process.parent_pid" is missing (1 time)`,
	}
	if got := strings.Join(rep.Violations, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func kvlist(k string, kvs ...*commonpb.KeyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{
		KvlistValue: &commonpb.KeyValueList{Values: kvs}}}}
}

// Entity events on the host's Resource: a process's and the host's
// entity.state and a process's entity.delete as the agent writes them pass;
// an undeclared entity type, an entity.id that is not the entity's
// identity (a missing key, an int value), a description holding another
// entity's identity or an undeclared attribute, and a negative interval
// are each reported.
func TestCheckEntityEvents(t *testing.T) {
	r, err := schemagen.Load("../../schema")
	if err != nil {
		t.Fatal(err)
	}
	res := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("host.id", "abc"), str("host.name", "box")},
		EntityRefs: []*commonpb.EntityRef{
			{SchemaUrl: r.Manifest.SchemaURL, Type: "host", IdKeys: []string{"host.id"}, DescriptionKeys: []string{"host.name"}},
		}}
	req := func(records ...*logspb.LogRecord) []*collogspb.ExportLogsServiceRequest {
		return []*collogspb.ExportLogsServiceRequest{{ResourceLogs: []*logspb.ResourceLogs{{
			Resource: res, SchemaUrl: r.Manifest.SchemaURL, ScopeLogs: []*logspb.ScopeLogs{{SchemaUrl: r.Manifest.SchemaURL, LogRecords: records}}}}}}
	}
	procID := kvlist("entity.id", str("process.pid", "42"), str("process.creation.time", "2026-01-01T00:00:00Z"))
	good := []*logspb.LogRecord{
		{EventName: "entity.state", Attributes: []*commonpb.KeyValue{str("entity.type", "process"), procID,
			kvlist("entity.description", str("process.executable.name", "sleep"), str("process.command", "sleep")), integer("entity.report.interval", 300)}},
		{EventName: "entity.state", Attributes: []*commonpb.KeyValue{str("entity.type", "host"), kvlist("entity.id", str("host.id", "abc")),
			kvlist("entity.description", str("host.name", "box")), integer("entity.report.interval", 300)}},
		{EventName: "entity.delete", Attributes: []*commonpb.KeyValue{str("entity.type", "process"), procID, str("entity.delete.reason", "terminated")}},
	}
	rep := &Report{}
	CheckEvents(r, req(good...), rep)
	if len(rep.Violations) != 0 || rep.Events["entity.state"] != 2 || rep.Events["entity.delete"] != 1 {
		t.Fatalf("correct entity events: violations %q, events %v", rep.Violations, rep.Events)
	}

	rep = &Report{}
	CheckEvents(r, req(
		&logspb.LogRecord{EventName: "entity.state", Attributes: []*commonpb.KeyValue{str("entity.type", "service"), procID, integer("entity.report.interval", 1)}},
		&logspb.LogRecord{EventName: "entity.state", Attributes: []*commonpb.KeyValue{str("entity.type", "process"),
			kvlist("entity.id", integer("process.pid", 42)),
			kvlist("entity.description", str("container.id", "c1"), str("widget.colour", "red")), integer("entity.report.interval", -1)}},
		&logspb.LogRecord{EventName: "entity.delete", Attributes: []*commonpb.KeyValue{str("entity.type", "process"), str("entity.id", "42")}},
	), rep)
	want := []string{
		`event entity.delete: entity.id of process is not a map (1 time)`,
		`event entity.state: entity.description of process has "container.id", which identifies an entity (a relationship, not a description) (1 time)`,
		`event entity.state: entity.description of process has "widget.colour", not an attribute of any entity the registry declares (1 time)`,
		`event entity.state: entity.id of process has [process.pid], want its identifying attributes [process.creation.time process.pid] (1 time)`,
		`event entity.state: entity.id process.pid of process is not a non-empty string (the specification: keys and values are strings) (1 time)`,
		`event entity.state: entity.report.interval -1 is negative (1 time)`,
		`event entity.state: entity.type "service" is not a registry entity with an identity (1 time)`,
	}
	if got := strings.Join(rep.Violations, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
