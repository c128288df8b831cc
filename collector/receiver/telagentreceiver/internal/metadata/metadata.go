// Package metadata is the receiver's type, scope and stability, as
// metadata.yaml declares them.
//
// Written by hand rather than by mdatagen: mdatagen also generates a
// lifecycle test that starts the receiver from its default configuration
// as any user, and this receiver loads BPF programs at Start (root,
// CAP_BPF + CAP_PERFMON), so that test cannot pass in an ordinary build;
// it also generates telemetry builders for metrics this receiver does
// not declare in metadata.yaml (its metrics are the schema's, schema/).
// metadata_test.go checks that this file and metadata.yaml agree.
package metadata

import "go.opentelemetry.io/collector/component"

var (
	// Type is the receiver's type in a Collector configuration.
	Type = component.MustNewType("telagent")
	// ScopeName is the receiver's instrumentation scope.
	ScopeName = "github.com/telagent/telagent/collector/receiver/telagentreceiver"
)

const (
	MetricsStability = component.StabilityLevelAlpha
	LogsStability    = component.StabilityLevelAlpha
)
