package telagentreceiver

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/internal/agent"
	"github.com/telagent/telagent/internal/runconfig"
)

// telagentReceiver is one agent. Start runs agent.Run in a goroutine and
// returns once every probe is attached (or with the agent's start error);
// Shutdown cancels it and waits for its final export and for every
// program, link and map to be released.
type telagentReceiver struct {
	set    receiver.Settings
	cfg    *Config
	forget func() // drops the receiver from its factory

	mu      sync.Mutex
	metrics consumer.Metrics
	logs    consumer.Logs
	started bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when agent.Run has returned
	runErr  error         // agent.Run's error, once done
}

func newReceiver(set receiver.Settings, cfg *Config, forget func()) *telagentReceiver {
	return &telagentReceiver{set: set, cfg: cfg, forget: forget}
}

func (r *telagentReceiver) setMetrics(next consumer.Metrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics = next
}

func (r *telagentReceiver) setLogs(next consumer.Logs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = next
}

// Start attaches the probes; the receiver is shared by its pipelines, so
// only the first Start does.
func (r *telagentReceiver) Start(ctx context.Context, _ component.Host) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return nil
	}
	st, err := runconfig.Resolve(runconfig.Key, r.cfg.options())
	if err != nil {
		return err
	}
	r.started = true
	var exp export.Exporter = discard{}
	if r.metrics != nil {
		exp = &metricsExporter{next: r.metrics}
	}
	var events export.EventExporter
	if r.logs != nil {
		events = &logsExporter{next: r.logs}
	}
	runCtx, cancel := context.WithCancel(context.Background()) // Start's ctx ends when Start returns
	attached := make(chan struct{})
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		_, r.runErr = agent.Run(runCtx, agent.Config{
			Probes: st.Probes, Pids: st.Pids, Selectors: st.Selectors,
			Interval: st.Interval, Breakdown: st.Breakdown, Storage: st.Storage.Entries,
			EntityEvents: st.EntityEvents, EntityStateInterval: st.EntityStateInterval,
			ResourceAttributes: r.cfg.resourceAttributes(),
			Exporter:           exp, Events: events, Version: version(),
			Log:      newSlogLogger(r.set.Logger),
			Attached: func() error { close(attached); return nil },
		})
		if r.runErr != nil {
			r.set.Logger.Error("telagent agent stopped", zapError(r.runErr))
		}
	}()
	select {
	case <-attached:
		return nil
	case <-r.done:
		cancel()
		return fmt.Errorf("telagent receiver: %w", r.runErr)
	case <-ctx.Done():
		cancel()
		<-r.done
		return ctx.Err()
	}
}

// Shutdown stops the agent: its final collection goes down the pipeline,
// then every probe detaches. It waits for that, at most until ctx ends.
func (r *telagentReceiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	started, cancel, done := r.started, r.cancel, r.done
	r.mu.Unlock()
	r.forget()
	if !started {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("telagent receiver: the agent did not stop before the shutdown deadline"), ctx.Err())
	}
}

// version is this build's telagent module version (the scope version of
// every metric and event), as the standalone agent reports its own.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/telagent/telagent" && d.Version != "" {
				return d.Version
			}
		}
	}
	return "(devel)"
}
