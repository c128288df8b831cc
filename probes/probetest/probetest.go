// Package probetest runs one probe against the real kernel for tests: the
// shared maps, the probe started on them, a process resolver and a metric
// builder, all released when the test ends.
package probetest

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/metrics"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/shared"
)

// Harness is a started probe and what a collection needs.
type Harness struct {
	T        *testing.T
	Probe    probes.Probe
	State    *shared.State
	Builder  *metrics.Builder
	Resolver *entity.ProcessResolver
}

// Start loads the shared maps (filter: only targets the test adds are
// observed) and starts p on them with topo, or the machine's topology when
// topo is nil. It skips t when not root or when the kernel lacks what p
// needs, with p's own reason.
func Start(t *testing.T, p probes.Probe, filter bool, topo *aggregator.Topology) *Harness {
	t.Helper()
	return StartWith(t, p, Options{Filter: filter, Topology: topo})
}

// Options are how StartWith sets up a probe's environment.
type Options struct {
	Filter    bool                 // observe only targets the test adds
	Topology  *aggregator.Topology // nil: the machine's
	Breakdown *entity.BreakdownDesc
	Storage   map[string]uint32 // storage entries per hash, by set (nil: the schema's)
}

// StartWith is Start with every option, a breakdown among them.
func StartWith(t *testing.T, p probes.Probe, o Options) *Harness {
	t.Helper()
	filter, topo, fake := o.Filter, o.Topology, o.Topology != nil
	testutil.RequireRoot(t)
	if err := p.Supported(); err != nil {
		t.Skipf("kernel lacks what the %s probe needs: %v", p.Info().Name, err)
	}
	if topo == nil {
		real, err := aggregator.DiscoverTopology("/sys")
		if err != nil {
			t.Fatal(err)
		}
		topo = &real
	}
	st, err := shared.Load(*topo, filter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	env := probes.Env{Topology: *topo, Shared: st.Replacements(), FilterTargets: filter, NodesFromTopology: fake,
		Storage: o.Storage}
	if o.Breakdown != nil {
		if env.Breakdown, err = probes.NewBreakdown(*o.Breakdown, *topo); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Start(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	res, err := entity.NewProcessResolver("/proc", []attribute.KeyValue{entity.AttrHostID.String("test")})
	if err != nil {
		t.Fatal(err)
	}
	res.Kernel = st.Process
	return &Harness{T: t, Probe: p, State: st, Builder: metrics.NewBuilder("test", time.Now()), Resolver: res}
}

// CollectAll runs one interval, as the agent does (flip the storage
// epoch, then collect), and returns its data.
func (h *Harness) CollectAll() []metricdata.ResourceMetrics {
	h.T.Helper()
	h.Resolver.NextGeneration(10)
	h.Builder.Begin(time.Now())
	if err := h.State.Flip(); err != nil {
		h.T.Fatal(err)
	}
	if err := h.Probe.Collect(context.Background(), &probes.Collection{Metrics: h.Builder, Processes: h.Resolver}); err != nil {
		h.T.Fatal(err)
	}
	return h.Builder.Result()
}
