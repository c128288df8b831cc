package export

import (
	"slices"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file encodes a batch of event records as one OTLP
// ExportLogsServiceRequest by hand, as protobuf (the otlp exporter, over
// gRPC or http/protobuf) or as OTLP/JSON (http/json and the otlp-json
// file), appending to a caller-owned buffer. It replaces LogsToProto +
// proto.Marshal or protojson: LogsToProto builds every record again as
// proto messages (a dozen allocations per record, more per attribute), and
// a backlog of 32k events sent after an outage made that most of the
// agent's garbage. Here nothing is allocated per record for the agent's
// records (string, int and bool attributes; slice- and map-valued ones
// allocate, as attribute.Value's As*Slice accessors copy), and grouping
// reuses the encoder's slices and map from one batch to the next.
//
// The output is, by construction, what LogsToProto builds for the same
// records (the oracles of otlplogs_encode_test.go and FuzzOTLPLogsEncode):
// protobuf byte for byte what proto.Marshal writes for it, JSON what
// protojson.Unmarshal reads back into a message proto.Equal to it. The
// grouping is LogsToProto's: one ResourceLogs per distinct *Resource (by
// pointer) in order of first appearance, one ScopeLogs per distinct
// instrumentation.Scope (by value) within it, records in batch order.
// Presence mirrors LogsToProto: a nil Resource has no resource field (unlike
// metrics, whose ToProto always sets one), a scope is always written, a
// body only when it is not EMPTY, and every other field is left out at its
// default. LogsToProto sets no trace context or flags (the agent's events
// have none), so neither does this encoder. Strings that are not valid
// UTF-8 get U+FFFD for each invalid byte, as in the metric encoders
// (otlpproto_encode.go, otlpjson_encode.go), whose primitives this reuses.

// Field numbers of the logs messages (opentelemetry-proto v1.x). The
// request, ResourceLogs and ScopeLogs share their numbers with the metrics
// ones (resource 1, scope 1, schema_url 3), so appendScope serves both.
const (
	pbRequestResourceLogs = 1

	pbResourceLogsResource  = 1
	pbResourceLogsScopeLogs = 2
	pbResourceLogsSchemaURL = 3

	pbScopeLogsLogRecords = 2
	pbScopeLogsSchemaURL  = 3

	pbLogTime                   = 1
	pbLogSeverityNumber         = 2
	pbLogSeverityText           = 3
	pbLogBody                   = 5
	pbLogAttributes             = 6
	pbLogDroppedAttributesCount = 7
	pbLogObservedTime           = 11
	pbLogEventName              = 12
)

// A LogRecord is at the nesting depth of a metric's data point; its length
// guess is kept at that level (the logs encoder has its own guesses).
const pbLevelLogRecord = pbLevelPoint

// otlpLogsEncoder holds what encoding a batch reuses: the length-width
// guesses and the grouping's scratch. The zero value is ready. It holds no
// reference to a batch once an append returns.
type otlpLogsEncoder struct {
	pb otlpProtoEncoder

	// byRes maps a Resource to its index in res; cleared after each batch
	// (clear keeps its table, so a steady batch size allocates nothing).
	byRes  map[*resource.Resource]int32
	res    []logResGroup
	scopes []logScopeGroup
	// next[i] is the index of the record after record i in its
	// (resource, scope) group, -1 for the last.
	next []int32
}

// logResGroup is one ResourceLogs: its scope groups are a list through
// logScopeGroup.next, in order of first appearance.
type logResGroup struct {
	res                   *resource.Resource
	firstScope, lastScope int32
}

// logScopeGroup is one ScopeLogs: its records are a list through
// otlpLogsEncoder.next.
type logScopeGroup struct {
	scope       instrumentation.Scope
	first, last int32 // records
	next        int32 // the resource's next scope group, -1 for none
}

// group sorts records into resource and scope groups (LogsToProto's
// order) without moving them.
func (e *otlpLogsEncoder) group(records []sdklog.Record) {
	if e.byRes == nil {
		e.byRes = make(map[*resource.Resource]int32)
	}
	e.next = slices.Grow(e.next[:0], len(records))[:len(records)]
	var lastRes *resource.Resource
	ri, si := int32(-1), int32(-1) // the previous record's groups
	for i := range records {
		r := &records[i]
		res, scope := r.Resource(), r.InstrumentationScope()
		// Consecutive records of one resource and scope (a process's
		// exec and exit, a zero batch) skip the lookups.
		if ri < 0 || res != lastRes {
			var ok bool
			if ri, ok = e.byRes[res]; !ok {
				ri = int32(len(e.res))
				e.res = append(e.res, logResGroup{res: res, firstScope: -1, lastScope: -1})
				e.byRes[res] = ri
			}
			lastRes, si = res, -1
		}
		if si < 0 || e.scopes[si].scope != scope {
			si = e.scopeGroup(ri, scope)
		}
		sg := &e.scopes[si]
		if sg.last < 0 {
			sg.first = int32(i)
		} else {
			e.next[sg.last] = int32(i)
		}
		sg.last = int32(i)
		e.next[i] = -1
	}
}

// scopeGroup returns the index of resource ri's group of scope, adding it
// if new. A resource has a scope or two: a linear search.
func (e *otlpLogsEncoder) scopeGroup(ri int32, scope instrumentation.Scope) int32 {
	rg := &e.res[ri]
	for s := rg.firstScope; s >= 0; s = e.scopes[s].next {
		if e.scopes[s].scope == scope {
			return s
		}
	}
	si := int32(len(e.scopes))
	e.scopes = append(e.scopes, logScopeGroup{scope: scope, first: -1, last: -1, next: -1})
	if rg.lastScope < 0 {
		rg.firstScope = si
	} else {
		e.scopes[rg.lastScope].next = si
	}
	rg.lastScope = si
	return si
}

// forget drops the batch's groups, keeping the memory: nothing of a batch
// (resources, scope strings) stays reachable from the encoder.
func (e *otlpLogsEncoder) forget() {
	clear(e.byRes)
	clear(e.res)
	clear(e.scopes)
	e.res, e.scopes = e.res[:0], e.scopes[:0]
}

// appendProto appends records as one ExportLogsServiceRequest in protobuf.
func (e *otlpLogsEncoder) appendProto(b []byte, records []sdklog.Record) []byte {
	e.group(records)
	for _, rg := range e.res {
		var rl pbMsg
		b, rl = e.pb.open(b, pbRequestResourceLogs, pbLevelResourceMetrics)
		if rg.res != nil { // LogsToProto sets no Resource for a nil one
			var r pbMsg
			b, r = e.pb.open(b, pbResourceLogsResource, pbLevelResource)
			b = e.pb.appendAttrs(b, pbResourceAttributes, rg.res.Set())
			b = e.pb.appendEntityRefs(b, rg.res.Set())
			b = e.pb.close(b, r)
		}
		for s := rg.firstScope; s >= 0; s = e.scopes[s].next {
			sg := &e.scopes[s]
			var sl pbMsg
			b, sl = e.pb.open(b, pbResourceLogsScopeLogs, pbLevelScopeMetrics)
			b = e.pb.appendScope(b, &sg.scope)
			for i := sg.first; i >= 0; i = e.next[i] {
				b = e.appendProtoRecord(b, &records[i])
			}
			b = appendPBString(b, pbScopeLogsSchemaURL, sg.scope.SchemaURL)
			b = e.pb.close(b, sl)
		}
		if rg.res != nil {
			b = appendPBString(b, pbResourceLogsSchemaURL, rg.res.SchemaURL())
		}
		b = e.pb.close(b, rl)
	}
	e.forget()
	return b
}

// appendProtoRecord appends r as one log_records field, mirroring
// logRecordToProto, in field-number order as proto.Marshal writes them.
func (e *otlpLogsEncoder) appendProtoRecord(b []byte, r *sdklog.Record) []byte {
	b, m := e.pb.open(b, pbScopeLogsLogRecords, pbLevelLogRecord)
	b = appendPBFixed64(b, pbLogTime, unixNano(r.Timestamp()))
	// An enum (int32, as LogsToProto converts it): a negative one is a
	// sign-extended 10-byte varint, as protobuf-go writes it.
	if sev := int32(r.Severity()); sev != 0 {
		b = appendPBTag(b, pbLogSeverityNumber, protowire.VarintType)
		b = appendPBVarint(b, uint64(sev))
	}
	b = appendPBString(b, pbLogSeverityText, r.SeverityText())
	if body := r.Body(); body.Type() != attribute.EMPTY {
		b = e.pb.appendAnyValue(b, pbLogBody, body)
	}
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		b = e.pb.appendKeyValue(b, pbLogAttributes, kv)
		return true
	})
	if d := droppedAttrs(r); d != 0 {
		b = appendPBTag(b, pbLogDroppedAttributesCount, protowire.VarintType)
		b = appendPBVarint(b, uint64(d))
	}
	b = appendPBFixed64(b, pbLogObservedTime, unixNano(r.ObservedTimestamp()))
	b = appendPBString(b, pbLogEventName, r.EventName())
	return e.pb.close(b, m)
}

// droppedAttrs is the record's dropped_attributes_count as LogsToProto
// converts it.
func droppedAttrs(r *sdklog.Record) uint32 { return uint32(max(r.DroppedAttributes(), 0)) }

const (
	otlpJSONLogsRequestHead = `{"resourceLogs":[`
	otlpJSONLogsRequestTail = `]}`
)

// appendJSON appends records as one ExportLogsServiceRequest object in
// OTLP/JSON (no trailing newline). With emit not nil, the text is handed to
// emit, and b restarts empty, whenever it has reached chunk bytes at the end
// of a record, so a writer's buffer stays a chunk long whatever the batch;
// an error of emit ends the encoding and is returned. The caller emits the
// rest.
func (e *otlpLogsEncoder) appendJSON(b []byte, records []sdklog.Record, chunk int, emit func([]byte) error) ([]byte, error) {
	e.group(records)
	defer e.forget()
	b = append(b, otlpJSONLogsRequestHead...)
	for ri, rg := range e.res {
		if ri > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if rg.res != nil { // LogsToProto sets no Resource for a nil one
			b = append(b, `"resource":`...)
			obj := len(b)
			b = append(b, '{')
			b = appendJSONAttrs(b, obj, rg.res.Set())
			b = appendJSONEntityRefs(b, obj, rg.res.Set())
			b = append(b, "},"...)
		}
		b = append(b, `"scopeLogs":[`...)
		for s := rg.firstScope; s >= 0; s = e.scopes[s].next {
			sg := &e.scopes[s]
			if s != rg.firstScope {
				b = append(b, ',')
			}
			b = append(b, `{"scope":`...)
			b = appendJSONScope(b, &sg.scope)
			b = append(b, `,"logRecords":[`...)
			for i := sg.first; i >= 0; i = e.next[i] {
				if i != sg.first {
					b = append(b, ',')
				}
				b = appendJSONLogRecord(b, &records[i])
				if emit != nil && len(b) >= chunk {
					if err := emit(b); err != nil {
						return b[:0], err
					}
					b = b[:0]
				}
			}
			b = append(b, ']')
			if u := sg.scope.SchemaURL; u != "" {
				b = append(b, `,"schemaUrl":`...)
				b = appendJSONString(b, u)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
		if rg.res != nil {
			if u := rg.res.SchemaURL(); u != "" {
				b = append(b, `,"schemaUrl":`...)
				b = appendJSONString(b, u)
			}
		}
		b = append(b, '}')
	}
	return append(b, otlpJSONLogsRequestTail...), nil
}

// appendJSONLogRecord appends r as one LogRecord object, mirroring
// logRecordToProto: 64-bit times as decimal strings, the severity number
// (an enum) and dropped count as JSON numbers.
func appendJSONLogRecord(b []byte, r *sdklog.Record) []byte {
	obj := len(b)
	b = append(b, '{')
	if t := unixNano(r.Timestamp()); t != 0 {
		b = jsonKey(b, obj, "timeUnixNano")
		b = appendJSONUint(b, t)
	}
	if t := unixNano(r.ObservedTimestamp()); t != 0 {
		b = jsonKey(b, obj, "observedTimeUnixNano")
		b = appendJSONUint(b, t)
	}
	if sev := int32(r.Severity()); sev != 0 {
		b = jsonKey(b, obj, "severityNumber")
		b = strconv.AppendInt(b, int64(sev), 10)
	}
	if s := r.SeverityText(); s != "" {
		b = jsonKey(b, obj, "severityText")
		b = appendJSONString(b, s)
	}
	if s := r.EventName(); s != "" {
		b = jsonKey(b, obj, "eventName")
		b = appendJSONString(b, s)
	}
	if body := r.Body(); body.Type() != attribute.EMPTY {
		b = jsonKey(b, obj, "body")
		b = appendJSONAnyValue(b, body)
	}
	first := true
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		if first {
			b = jsonKey(b, obj, "attributes")
			b = append(b, '[')
			first = false
		} else {
			b = append(b, ',')
		}
		b = appendJSONKeyValue(b, kv)
		return true
	})
	if !first {
		b = append(b, ']')
	}
	if d := droppedAttrs(r); d != 0 {
		b = jsonKey(b, obj, "droppedAttributesCount")
		b = strconv.AppendUint(b, uint64(d), 10)
	}
	return append(b, '}')
}
