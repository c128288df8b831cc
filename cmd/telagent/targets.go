package main

import (
	"io"

	"github.com/urfave/cli/v2"

	"github.com/telagent/telagent/export"
)

// newEventExporter is where events go for each --exporter: console lines
// next to the summary, OTLP/JSON log requests in the same file as the
// metric requests, or OTLP/gRPC logs to the same endpoint as the metrics.
func newEventExporter(c *cli.Context, metrics export.Exporter, consoleOut io.Writer) (export.EventExporter, error) {
	switch c.String("exporter") {
	case "console":
		return export.NewConsoleEvents(consoleOut), nil
	case "otlp-json":
		return export.OTLPJSONEvents(metrics)
	case "otlp":
		e, err := export.NewOTLPLogs(c.Context, otlpOptions(c)) // exportflags.go
		// parseExport checked the settings: a failure here is bad input still.
		if err != nil {
			return nil, usagef("otlp log exporter: %v", err)
		}
		return e, nil
	}
	return nil, nil
}
