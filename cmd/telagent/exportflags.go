package main

import (
	"net"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/export"
)

// exportFlags are the run flags of the export path (queue, OTLP protocol,
// temporality); everything else about OTLP (TLS, headers, compression,
// timeout) comes from the standard OTEL_EXPORTER_OTLP_* variables.
func exportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "protocol", Usage: "OTLP protocol for --exporter otlp: grpc | http/protobuf | http/json (default: OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL or grpc)"},
		&cli.StringFlag{Name: "temporality", Usage: "cumulative | delta (default: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE or cumulative); delta only with otlp and otlp-json"},
		&cli.IntFlag{Name: "export-queue-size", Value: 8, Usage: "intervals kept while the backend is down or slow; the oldest is dropped (and counted) past it"},
		&cli.BoolFlag{Name: "prometheus", Usage: "also serve the metrics for scraping on " + export.DefaultPrometheusAddr + "/metrics"},
		&cli.StringFlag{Name: "prometheus-listen", Usage: "also serve the metrics for scraping on `ADDR`/metrics (HOST:PORT; a bare PORT is on 127.0.0.1)"},
	}
}

// exportSettings are the parsed export flags and variables.
type exportSettings struct {
	queueSize   int
	temporality metricdata.Temporality
	resource    []attribute.KeyValue
	prometheus  string // "" : off
}

func parseExport(c *cli.Context) (exportSettings, error) {
	var s exportSettings
	s.queueSize = c.Int("export-queue-size")
	if s.queueSize < 1 || s.queueSize > 1024 {
		return s, usagef("--export-queue-size %d: must be between 1 and 1024", s.queueSize)
	}
	if p := c.String("protocol"); c.IsSet("protocol") {
		switch p {
		case export.ProtocolGRPC, export.ProtocolHTTPProtobuf, export.ProtocolHTTPJSON:
		default:
			return s, usagef("--protocol %q: want grpc, http/protobuf or http/json", p)
		}
	}
	t, what := c.String("temporality"), "--temporality"
	if !c.IsSet("temporality") {
		t, what = strings.ToLower(os.Getenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")), "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
	}
	switch t {
	case "", "cumulative":
		s.temporality = metricdata.CumulativeTemporality
	case "delta":
		s.temporality = metricdata.DeltaTemporality
		if e := c.String("exporter"); e != "otlp" && e != "otlp-json" {
			return s, usagef("%s delta: only for --exporter otlp or otlp-json (the console shows totals)", what)
		}
	default:
		return s, usagef("%s %q: want cumulative or delta", what, t)
	}
	switch addr := strings.TrimSpace(c.String("prometheus-listen")); {
	case addr != "":
		if !strings.Contains(addr, ":") {
			addr = "127.0.0.1:" + addr
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return s, usagef("--prometheus-listen %q: want HOST:PORT or PORT", c.String("prometheus-listen"))
		}
		s.prometheus = addr
	case c.Bool("prometheus"):
		s.prometheus = export.DefaultPrometheusAddr
	}
	var err error
	if s.resource, err = export.ResourceFromEnv(c.Context); err != nil {
		return s, usagef("%v", err)
	}
	return s, nil
}

// otlpOptions are the OTLP exporters' options from the flags.
func otlpOptions(c *cli.Context) export.OTLPOptions {
	return export.OTLPOptions{Endpoint: c.String("endpoint"), Protocol: c.String("protocol"), UserAgent: "telagent/" + buildVersion()}
}
