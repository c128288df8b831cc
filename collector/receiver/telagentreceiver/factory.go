// Package telagentreceiver runs telagent's agent inside an OpenTelemetry
// Collector: the probes attach at Start and detach at Shutdown, metrics
// go down the metrics pipelines as pmetric and events (process exec,
// exit, fork, OOM kill, entity events) down the logs pipelines as plog,
// with the same names, attributes, Resources and entity refs as the
// standalone agent's OTLP export (they are that export's messages).
package telagentreceiver

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/telagent/telagent/collector/receiver/telagentreceiver/internal/metadata"
)

// NewFactory is the receiver's factory, type "telagent". A receiver named
// in a metrics and a logs pipeline is one agent: one set of probes feeds
// both.
func NewFactory() receiver.Factory {
	f := &factory{receivers: map[*Config]*telagentReceiver{}}
	return receiver.NewFactory(metadata.Type,
		func() component.Config { return createDefaultConfig() },
		receiver.WithMetrics(f.createMetrics, metadata.MetricsStability),
		receiver.WithLogs(f.createLogs, metadata.LogsStability))
}

// factory keeps the receiver of each configuration until its Shutdown,
// so that the metrics and logs pipelines of one receiver share it.
type factory struct {
	mu        sync.Mutex
	receivers map[*Config]*telagentReceiver
}

func (f *factory) get(set receiver.Settings, cfg component.Config) *telagentReceiver {
	c := cfg.(*Config)
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.receivers[c]
	if !ok {
		r = newReceiver(set, c, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			delete(f.receivers, c)
		})
		f.receivers[c] = r
	}
	return r
}

func (f *factory) createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	r := f.get(set, cfg)
	r.setMetrics(next)
	return r, nil
}

func (f *factory) createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	r := f.get(set, cfg)
	r.setLogs(next)
	return r, nil
}
