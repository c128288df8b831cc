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
			`telagent: --temporality "deltas": want cumulative or delta`},
		{"delta console", nil, []string{"run", "--temporality", "delta"},
			`telagent: --temporality delta: only for --exporter otlp or otlp-json (the console shows totals)`},
		{"temporality env", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes"}, []string{"run", "--exporter", "otlp"},
			`telagent: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE "sometimes": want cumulative or delta`},
		{"queue size", nil, []string{"run", "--export-queue-size", "0"},
			`telagent: --export-queue-size 0: must be between 1 and 1024`},
		{"prometheus address", nil, []string{"run", "--prometheus-listen", "a:b:c"},
			`telagent: --prometheus-listen "a:b:c": want HOST:PORT or PORT`},
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
