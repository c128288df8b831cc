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
