package export

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
)

// LogsToProto converts SDK log records into one ExportLogsServiceRequest:
// one ResourceLogs per distinct Resource (in order of first appearance) and
// one ScopeLogs per scope in it, as otlploggrpc sends them.
func LogsToProto(records []sdklog.Record) *collogspb.ExportLogsServiceRequest {
	type scopeKey struct {
		res   *resource.Resource
		scope instrumentation.Scope
	}
	req := &collogspb.ExportLogsServiceRequest{}
	byRes := map[*resource.Resource]*logspb.ResourceLogs{}
	byScope := map[scopeKey]*logspb.ScopeLogs{}
	for i := range records {
		r := &records[i]
		res := r.Resource()
		rl, ok := byRes[res]
		if !ok {
			rl = &logspb.ResourceLogs{}
			if res != nil {
				rl.Resource = &resourcepb.Resource{Attributes: setToProto(res.Set()), EntityRefs: entityRefsToProto(res.Set())}
				rl.SchemaUrl = res.SchemaURL()
			}
			byRes[res] = rl
			req.ResourceLogs = append(req.ResourceLogs, rl)
		}
		sk := scopeKey{res, r.InstrumentationScope()}
		sl, ok := byScope[sk]
		if !ok {
			sl = &logspb.ScopeLogs{Scope: scopeToProto(sk.scope), SchemaUrl: sk.scope.SchemaURL}
			byScope[sk] = sl
			rl.ScopeLogs = append(rl.ScopeLogs, sl)
		}
		sl.LogRecords = append(sl.LogRecords, logRecordToProto(r))
	}
	return req
}

func logRecordToProto(r *sdklog.Record) *logspb.LogRecord {
	lr := &logspb.LogRecord{
		TimeUnixNano:           unixNano(r.Timestamp()),
		ObservedTimeUnixNano:   unixNano(r.ObservedTimestamp()),
		SeverityNumber:         logspb.SeverityNumber(r.Severity()),
		SeverityText:           r.SeverityText(),
		EventName:              r.EventName(),
		DroppedAttributesCount: uint32(max(r.DroppedAttributes(), 0)),
	}
	if b := r.Body(); b.Type() != attribute.EMPTY {
		lr.Body = valueToProto(b)
	}
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		lr.Attributes = append(lr.Attributes, keyValueToProto(kv))
		return true
	})
	return lr
}
