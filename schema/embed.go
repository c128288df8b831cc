// Package schema embeds the telemetry registry (manifest.yaml and model/,
// OpenTelemetry Weaver format) so that the agent binary can check it
// wherever it runs (`telagent schema check` without a directory).
package schema

import "embed"

// FS holds manifest.yaml and model/*.yaml at its root.
//
//go:embed manifest.yaml model
var FS embed.FS

// Display is the name files of FS are reported under.
const Display = "schema"
