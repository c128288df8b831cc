package main

import (
	"testing"
)

// Bad export flags and variables are one-line usage errors naming the
// flag or variable.
func TestCLIExportErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"protocol", nil, []string{"run", "--exporter", "otlp", "--protocol", "http"},
			`telagent: --protocol "http": want grpc, http/protobuf or http/json`},
		{"temporality", nil, []string{"run", "--exporter", "otlp", "--temporality", "deltas"},
			`telagent: --temporality "deltas": want cumulative, delta or lowmemory`},
		{"delta console", nil, []string{"run", "--temporality", "delta"},
			`telagent: --temporality delta: only for --exporter otlp or otlp-json (the console shows totals)`},
		{"temporality env", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes"}, []string{"run", "--exporter", "otlp"},
			`telagent: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE "sometimes": want cumulative, delta or lowmemory`},
		{"lowmemory console", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "lowmemory"}, []string{"run"},
			`telagent: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE lowmemory: only for --exporter otlp or otlp-json (the console shows totals)`},
		{"queue size", nil, []string{"run", "--export-queue-size", "0"},
			`telagent: --export-queue-size 0: must be between 1 and 1024`},
		{"prometheus address", nil, []string{"run", "--prometheus-listen", "a:b:c"},
			`telagent: --prometheus-listen "a:b:c": want HOST:PORT or PORT`},
		{"prometheus port not a number", nil, []string{"run", "--prometheus-listen", "garbage"},
			`telagent: --prometheus-listen "garbage": port "garbage": want a number from 1 to 65535 (HOST:PORT or PORT, e.g. 9464)`},
		{"prometheus host", nil, []string{"run", "--prometheus-listen", "bad_host:9464"},
			`telagent: --prometheus-listen "bad_host:9464": host "bad_host": want an IP address or a host name`},
		// OTLP settings are checked before anything is attached, as usage
		// errors, whether they come from a flag or the environment.
		{"endpoint port out of range", nil, []string{"run", "--exporter", "otlp", "--endpoint", "127.0.0.1:99999"},
			`telagent: --endpoint "127.0.0.1:99999": port "99999": want a number from 1 to 65535`},
		{"endpoint scheme", nil, []string{"run", "--exporter", "otlp", "--endpoint", "ftp://collector:4317"},
			`telagent: --endpoint "ftp://collector:4317": want HOST:PORT or an http://, https:// or unix:// URL`},
		{"endpoint without host", nil, []string{"run", "--exporter", "otlp", "--endpoint", ":4317"},
			`telagent: --endpoint ":4317": no host (want HOST:PORT, e.g. localhost:4317)`},
		{"http endpoint port", nil, []string{"run", "--exporter", "otlp", "--protocol", "http/protobuf", "--endpoint", "http://collector:0"},
			`telagent: --endpoint "http://collector:0": port "0": want a number from 1 to 65535`},
		{"endpoint env", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http//collector"}, []string{"run", "--exporter", "otlp"},
			`telagent: OTEL_EXPORTER_OTLP_ENDPOINT "http//collector": want HOST:PORT or an http:// or https:// URL`},
		{"logs endpoint env", map[string]string{"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://collector:70000"}, []string{"run", "--exporter", "otlp"},
			`telagent: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT "http://collector:70000": port "70000": want a number from 1 to 65535`},
		{"header key", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "bad key=v"}, []string{"run", "--exporter", "otlp"},
			`telagent: OTEL_EXPORTER_OTLP_METRICS_HEADERS/OTEL_EXPORTER_OTLP_HEADERS: header "bad key=v": key "bad key" may hold only letters, digits, '-', '_' and '.'`},
		{"header value", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "authorization=a%0Ab"}, []string{"run", "--exporter", "otlp"},
			`telagent: OTEL_EXPORTER_OTLP_METRICS_HEADERS/OTEL_EXPORTER_OTLP_HEADERS: header "authorization": the value may hold only printable ASCII (byte 0xa)`},
		{"timeout env", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, []string{"run", "--exporter", "otlp"},
			`telagent: OTEL_EXPORTER_OTLP_METRICS_TIMEOUT/OTEL_EXPORTER_OTLP_TIMEOUT "10s": want positive milliseconds`},
		{"output without otlp-json", nil, []string{"run", "--output", "out.json"},
			`telagent: --output out.json: only for --exporter otlp-json (the console exporter writes no file)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v) // the agent binary inherits the test's environment
			}
			if line := checkUsageError(t, runAgent(t, startOpts{}, tc.args...)); line != tc.want {
				t.Errorf("stderr:\n got %q\nwant %q", line, tc.want)
			}
		})
	}
}
