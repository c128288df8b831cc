package export

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telagent/telagent/metrics"
)

// DefaultPrometheusAddr is where the scrape endpoint listens when enabled
// without an address: loopback only, on the port OpenTelemetry reserves for
// Prometheus exporters. Listening beyond the host is an explicit choice.
const DefaultPrometheusAddr = "127.0.0.1:9464"

// Prometheus serves the latest interval for scraping at /metrics through
// the OpenTelemetry Prometheus exporter. The agent hands it every interval
// (Export keeps a copy, always cumulative: Prometheus wants totals); a
// scrape reads that copy through a metric Producer.
//
// Prometheus has one target per agent, not one resource per process, so
// each process's resource attributes that the host's resource does not
// carry (process.pid, process.creation.time, process.executable.name, ...)
// become labels of its series; the host's go to target_info.
type Prometheus struct {
	srv  *http.Server
	lis  net.Listener
	host attribute.Set

	mu   sync.Mutex
	last []metricdata.ResourceMetrics
}

// NewPrometheus listens on addr (DefaultPrometheusAddr when empty) and
// serves /metrics. host is the agent's host resource (target_info).
func NewPrometheus(addr string, host []attribute.KeyValue) (*Prometheus, error) {
	if addr == "" {
		addr = DefaultPrometheusAddr
	}
	p := &Prometheus{host: attribute.NewSet(host...)}
	reg := prometheus.NewRegistry()
	exp, err := promexp.New(promexp.WithRegisterer(reg), promexp.WithProducer(p), promexp.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	// The provider only makes the reader collectable (it has no
	// instruments); its resource is the host's, shown as target_info.
	_ = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(resource.NewSchemaless(host...)))
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("prometheus listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	p.lis = lis
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

// Addr is the address the endpoint listens on.
func (p *Prometheus) Addr() string { return p.lis.Addr().String() }

// Export keeps a copy of the interval for the next scrapes.
func (p *Prometheus) Export(_ context.Context, rms []metricdata.ResourceMetrics) error {
	p.keep(metrics.CloneResourceMetrics(rms))
	return nil
}

// ExportInterval keeps the interval, as metricdata, for the next scrapes:
// one copy, made from the compact form.
func (p *Prometheus) ExportInterval(_ context.Context, iv *metrics.Interval) error {
	p.keep(iv.Metricdata())
	return nil
}

func (p *Prometheus) keep(rms []metricdata.ResourceMetrics) {
	p.mu.Lock()
	p.last = rms
	p.mu.Unlock()
}

// Shutdown stops serving.
func (p *Prometheus) Shutdown(ctx context.Context) error {
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("prometheus endpoint: %w", err)
	}
	return nil
}

// Produce implements metric.Producer: the last interval, with every
// resource's own attributes moved onto its points, one Metrics per name.
func (p *Prometheus) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	p.mu.Lock()
	last := p.last
	p.mu.Unlock()
	var out []metricdata.ScopeMetrics
	byName := map[string]*metricdata.Metrics{}
	var order []string
	for _, rm := range last {
		extra := p.resourceLabels(rm.Resource)
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				acc, ok := byName[m.Name]
				if !ok {
					acc = &metricdata.Metrics{Name: m.Name, Description: m.Description, Unit: m.Unit}
					byName[m.Name] = acc
					order = append(order, m.Name)
				}
				acc.Data = appendPoints(acc.Data, m.Data, extra)
			}
		}
	}
	if len(order) == 0 {
		return nil, nil
	}
	sm := metricdata.ScopeMetrics{}
	if len(last) > 0 && len(last[0].ScopeMetrics) > 0 {
		sm.Scope = last[0].ScopeMetrics[0].Scope
	}
	for _, name := range order {
		sm.Metrics = append(sm.Metrics, *byName[name])
	}
	return append(out, sm), nil
}

// resourceLabels are res's attributes that the host resource lacks.
func (p *Prometheus) resourceLabels(res *resource.Resource) []attribute.KeyValue {
	if res == nil {
		return nil
	}
	var out []attribute.KeyValue
	for _, kv := range res.Attributes() {
		if v, ok := p.host.Value(kv.Key); ok && v == kv.Value {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func withLabels(s attribute.Set, extra []attribute.KeyValue) attribute.Set {
	if len(extra) == 0 {
		return s
	}
	return attribute.NewSet(append(s.ToSlice(), extra...)...)
}

// appendPoints adds src's points, with extra labels, to dst (nil or an
// aggregation of the same type).
func appendPoints(dst, src metricdata.Aggregation, extra []attribute.KeyValue) metricdata.Aggregation {
	switch s := src.(type) {
	case metricdata.Sum[int64]:
		d, _ := dst.(metricdata.Sum[int64])
		d.Temporality, d.IsMonotonic = s.Temporality, s.IsMonotonic
		for _, pt := range s.DataPoints {
			pt.Attributes = withLabels(pt.Attributes, extra)
			d.DataPoints = append(d.DataPoints, pt)
		}
		return d
	case metricdata.Sum[float64]:
		d, _ := dst.(metricdata.Sum[float64])
		d.Temporality, d.IsMonotonic = s.Temporality, s.IsMonotonic
		for _, pt := range s.DataPoints {
			pt.Attributes = withLabels(pt.Attributes, extra)
			d.DataPoints = append(d.DataPoints, pt)
		}
		return d
	case metricdata.Gauge[int64]:
		d, _ := dst.(metricdata.Gauge[int64])
		for _, pt := range s.DataPoints {
			pt.Attributes = withLabels(pt.Attributes, extra)
			d.DataPoints = append(d.DataPoints, pt)
		}
		return d
	case metricdata.Gauge[float64]:
		d, _ := dst.(metricdata.Gauge[float64])
		for _, pt := range s.DataPoints {
			pt.Attributes = withLabels(pt.Attributes, extra)
			d.DataPoints = append(d.DataPoints, pt)
		}
		return d
	case metricdata.Histogram[float64]:
		d, _ := dst.(metricdata.Histogram[float64])
		d.Temporality = s.Temporality
		for _, pt := range s.DataPoints {
			pt.Attributes = withLabels(pt.Attributes, extra)
			d.DataPoints = append(d.DataPoints, pt)
		}
		return d
	}
	if dst == nil {
		return src
	}
	return dst
}
