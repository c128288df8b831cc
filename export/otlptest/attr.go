package otlptest

import commonpb "go.opentelemetry.io/proto/otlp/common/v1"

// Attr is the value of key in kvs (a Resource's, a data point's or a log
// record's attributes), nil when absent; its Get*Value methods read a nil
// value as the zero value.
func Attr(kvs []*commonpb.KeyValue, key string) *commonpb.AnyValue {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return nil
}
