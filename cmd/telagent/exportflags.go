package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
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
		&cli.StringFlag{Name: "temporality", Usage: "cumulative | delta | lowmemory (default: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE or cumulative); delta and lowmemory only with otlp and otlp-json"},
		&cli.IntFlag{Name: "export-queue-size", Value: 8, Usage: "intervals kept while the backend is down or slow; the oldest is dropped (and counted) past it"},
		&cli.BoolFlag{Name: "prometheus", Usage: "also serve the metrics for scraping on " + export.DefaultPrometheusAddr + "/metrics"},
		&cli.StringFlag{Name: "prometheus-listen", Usage: "also serve the metrics for scraping on `ADDR`/metrics (HOST:PORT; a bare PORT is on 127.0.0.1)"},
	}
}

// exportSettings are the parsed export flags and variables.
type exportSettings struct {
	queueSize   int
	temporality metricdata.Temporality
	// lowMemory: OTel's lowmemory preference, delta histograms and
	// cumulative sums (temporality is delta then).
	lowMemory  bool
	resource   []attribute.KeyValue
	prometheus string // "" : off
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
	case "delta", "lowmemory":
		// lowmemory (OTel SDK spec): delta for counters and histograms,
		// cumulative for asynchronous counters and up-down counters. The
		// agent's sums are totals observed in the kernel (asynchronous
		// counters), so only its histograms become deltas.
		s.temporality = metricdata.DeltaTemporality
		s.lowMemory = t == "lowmemory"
		if e := c.String("exporter"); e != "otlp" && e != "otlp-json" {
			return s, usagef("%s %s: only for --exporter otlp or otlp-json (the console shows totals)", what, t)
		}
	default:
		return s, usagef("%s %q: want cumulative, delta or lowmemory", what, t)
	}
	switch addr := strings.TrimSpace(c.String("prometheus-listen")); {
	case addr != "":
		if !strings.Contains(addr, ":") {
			addr = "127.0.0.1:" + addr
		}
		if err := checkListenAddr(addr); err != nil {
			return s, usagef("--prometheus-listen %q: %v", c.String("prometheus-listen"), err)
		}
		s.prometheus = addr
	case c.Bool("prometheus"):
		s.prometheus = export.DefaultPrometheusAddr
	}
	if e := c.String("exporter"); c.IsSet("output") && (e == "console" || e == "otlp") {
		return s, usagef("--output %s: only for --exporter otlp-json (the %s exporter writes no file)", c.String("output"), c.String("exporter"))
	}
	if c.String("exporter") == "otlp" {
		// Everything the exporters would reject, before anything is
		// attached (no connection is made, no name looked up).
		if err := export.CheckOTLP(otlpOptions(c)); err != nil {
			return s, usagef("%v", err)
		}
	}
	var err error
	if s.resource, err = export.ResourceFromEnv(c.Context); err != nil {
		return s, usagef("%v", err)
	}
	return s, nil
}

// checkListenAddr checks a HOST:PORT to listen on without resolving it: a
// port that is no number would otherwise end in a resolver error.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want HOST:PORT or PORT")
	}
	if n, err := strconv.ParseUint(port, 10, 32); err != nil || n == 0 || n > 65535 {
		return fmt.Errorf("port %q: want a number from 1 to 65535 (HOST:PORT or PORT, e.g. 9464)", port)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("host %q: want an IP address or a host name", host)
	}
	return nil
}

// validHostname: letters, digits, '-' and '.', labels of 1..63 bytes.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// otlpOptions are the OTLP exporters' options from the flags.
func otlpOptions(c *cli.Context) export.OTLPOptions {
	return export.OTLPOptions{Endpoint: c.String("endpoint"), EndpointName: "--endpoint", Protocol: c.String("protocol"), UserAgent: "telagent/" + buildVersion()}
}
