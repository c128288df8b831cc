package deploy

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"gopkg.in/yaml.v3"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/export/otlptest"
	tagent "github.com/telagent/telagent/internal/agent"
	"github.com/telagent/telagent/internal/collectortest"
	"github.com/telagent/telagent/internal/testutil"
)

// collectorManifest is the otelcol-telagent distribution's builder
// manifest, from the repository's root.
const collectorManifest = "deploy/collector/builder.yaml"

// receiverConfig is an otelcol-telagent configuration: the telagent
// receiver with the given settings (YAML lines under it) in a metrics and
// a logs pipeline, exporting OTLP/gRPC to downstream.
func receiverConfig(settings, downstream string) string {
	return fmt.Sprintf(`receivers:
  telagent:
%s
exporters:
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
service:
  telemetry:
    logs:
      level: info
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [telagent]
      exporters: [otlp_grpc]
    logs:
      receivers: [telagent]
      exporters: [otlp_grpc]
`, settings, downstream)
}

// series is what one process's data says, independent of values that
// differ from run to run: its Resource's attribute keys, and each metric's
// name with its data points' attribute keys.
type series struct {
	resourceKeys []string
	entityRefs   []string            // the Resource's entity refs: type(id keys; description keys)
	metrics      map[string][]string // metric name -> sorted attribute key sets, one per distinct set
	getppid      int64               // telagent.syscall.duration count of getppid; -1: none
	exitCode     int64               // telagent.process.exit's process.exit.code; -1: no event
}

func keys(attrs []*commonpb.KeyValue) []string {
	var k []string
	for _, a := range attrs {
		k = append(k, a.Key)
	}
	slices.Sort(k)
	return k
}

// pointAttrs are the attributes of each data point of m.
func pointAttrs(m *metricspb.Metric) [][]*commonpb.KeyValue {
	var out [][]*commonpb.KeyValue
	switch d := m.Data.(type) {
	case *metricspb.Metric_Sum:
		for _, p := range d.Sum.DataPoints {
			out = append(out, p.Attributes)
		}
	case *metricspb.Metric_Gauge:
		for _, p := range d.Gauge.DataPoints {
			out = append(out, p.Attributes)
		}
	case *metricspb.Metric_Histogram:
		for _, p := range d.Histogram.DataPoints {
			out = append(out, p.Attributes)
		}
	case *metricspb.Metric_ExponentialHistogram:
		for _, p := range d.ExponentialHistogram.DataPoints {
			out = append(out, p.Attributes)
		}
	}
	return out
}

// seriesOf gathers process pid's series from everything srv received:
// the largest getppid count (cumulative) and the exit event.
func seriesOf(srv *otlptest.Server, pid int64) series {
	s := series{metrics: map[string][]string{}, getppid: -1, exitCode: -1}
	isPid := func(attrs []*commonpb.KeyValue) bool {
		v := otlptest.Attr(attrs, string(entity.AttrProcessPID))
		return v != nil && v.GetIntValue() == pid
	}
	for _, req := range srv.Metrics() {
		for _, rm := range req.ResourceMetrics {
			if !isPid(rm.Resource.GetAttributes()) {
				continue
			}
			s.resourceKeys = keys(rm.Resource.Attributes)
			s.entityRefs = s.entityRefs[:0]
			for _, ref := range rm.Resource.EntityRefs {
				s.entityRefs = append(s.entityRefs, fmt.Sprintf("%s(%s; %s)", ref.Type, strings.Join(ref.IdKeys, ","), strings.Join(ref.DescriptionKeys, ",")))
			}
			slices.Sort(s.entityRefs)
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					for _, pa := range pointAttrs(m) {
						k := strings.Join(keys(pa), ",")
						if !slices.Contains(s.metrics[m.Name], k) {
							s.metrics[m.Name] = append(s.metrics[m.Name], k)
							slices.Sort(s.metrics[m.Name])
						}
					}
					h, ok := m.Data.(*metricspb.Metric_Histogram)
					if !ok || m.Name != entity.MetricTelagentSyscallDuration.Name {
						continue
					}
					var n int64 = -1
					for _, p := range h.Histogram.DataPoints {
						if otlptest.Attr(p.Attributes, string(entity.AttrTelagentSyscallName)).GetStringValue() == "getppid" {
							n = max(n, 0) + int64(p.Count)
						}
					}
					s.getppid = max(s.getppid, n)
				}
			}
		}
	}
	for _, req := range srv.Logs() {
		for _, rl := range req.ResourceLogs {
			if !isPid(rl.Resource.GetAttributes()) {
				continue
			}
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					if lr.EventName != entity.EventTelagentProcessExit.Name {
						continue
					}
					if v := otlptest.Attr(lr.Attributes, string(entity.AttrProcessExitCode)); v != nil {
						s.exitCode = v.GetIntValue()
					}
				}
			}
		}
	}
	return s
}

// heldWorkload is rawsys making n getppid calls, held before its first
// instruction until run.
type heldWorkload struct {
	*tagent.Held
	released bool
}

func startHeldWorkload(t *testing.T, n int) *heldWorkload {
	t.Helper()
	held, err := tagent.StartHeld([]string{testutil.Rawsys(t), "getppid", strconv.Itoa(n)}, nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	w := &heldWorkload{Held: held}
	t.Cleanup(func() {
		if !w.released {
			w.Kill()
		}
	})
	return w
}

// run releases the workload and waits for its clean exit.
func (w *heldWorkload) run(t *testing.T) {
	t.Helper()
	w.released = true
	if err := w.Release(); err != nil {
		t.Fatal(err)
	}
	if code, err := w.Wait(); err != nil || code != 0 {
		t.Fatalf("rawsys: exit %d, %v", code, err)
	}
}

// process is a started command with its output in a file.
type process struct {
	cmd  *exec.Cmd
	out  string
	done chan struct{}
	err  error
}

func start(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{cmd: cmd, out: filepath.Join(t.TempDir(), "output"), done: make(chan struct{})}
	f, err := os.Create(p.out)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *process) output() string {
	b, _ := os.ReadFile(p.out)
	return string(b)
}

// waitAttached waits until p holds BPF programs and its output says it is
// ready (ready == "": programs only), and returns the programs' ids.
func (p *process) waitAttached(t *testing.T, ready string) map[uint32]bool {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("%s exited at start (%v):\n%s", p.cmd.Path, p.err, p.output())
		default:
		}
		progs := testutil.HeldProgramIDs(p.cmd.Process.Pid)
		if len(progs) > 0 && strings.Contains(p.output(), ready) {
			return progs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not attached and ready (%q) after 60s:\n%s", p.cmd.Path, ready, p.output())
		}
	}
}

// stop sends SIGTERM, expects a clean exit within 40 s, and checks that
// every program p held is unloaded.
func (p *process) stop(t *testing.T, progs map[uint32]bool) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("%s: still running 40s after SIGTERM:\n%s", p.cmd.Path, p.output())
	}
	if p.err != nil {
		t.Errorf("%s after SIGTERM: %v\n%s", p.cmd.Path, p.err, p.output())
	}
	for _, id := range testutil.StillLoaded(slices.Collect(maps.Keys(progs)), 5*time.Second) {
		t.Errorf("BPF program %d still loaded after %s exited", id, p.cmd.Path)
	}
}

// waitSeries polls srv until pid's series has want getppid calls and its
// exit event, or 20 s pass.
func waitSeries(srv *otlptest.Server, pid int64, want int64) series {
	var s series
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if s = seriesOf(srv, pid); s.getppid >= want && s.exitCode >= 0 {
			break
		}
	}
	return s
}

// TestOtelcolTelagent runs the builder-built otelcol-telagent (the
// distribution of deploy/collector/builder.yaml) with the telagent receiver
// targeting one held process and an otlp exporter to an in-test OTLP
// receiver: the process's getppid calls arrive exactly, with its exit
// event; the standalone agent on the same workload sends the same metric
// names, attribute keys and count; SIGTERM stops the Collector cleanly
// with every BPF program it loaded unloaded.
func TestOtelcolTelagent(t *testing.T) {
	testutil.RequireRoot(t)
	bin := collectortest.Build(t, collectorManifest)
	const n = 1500

	// The Collector.
	held := startHeldWorkload(t, n)
	pid := int64(held.Pid())
	srv := otlptest.NewServer(t, otlptest.Options{})
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	settings := fmt.Sprintf("    probes: [syscalls, process]\n    pid: [%d]\n    interval: 200ms\n"+
		"    resource_attributes:\n      k8s.node.name: node-1", pid)
	if err := os.WriteFile(cfg, []byte(receiverConfig(settings, srv.Addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	col := start(t, exec.Command(bin, "--config", "file:"+cfg))
	progs := col.waitAttached(t, "Everything is ready")
	held.run(t)
	viaCollector := waitSeries(srv, pid, n)
	col.stop(t, progs)
	if viaCollector.getppid != n {
		t.Errorf("otelcol-telagent: getppid of pid %d: %d calls, want exactly %d", pid, viaCollector.getppid, n)
	}
	if !slices.Contains(viaCollector.resourceKeys, "k8s.node.name") {
		t.Errorf("otelcol-telagent: resource_attributes' k8s.node.name is not on the process's Resource %q", viaCollector.resourceKeys)
	}
	if viaCollector.exitCode != 0 {
		t.Errorf("otelcol-telagent: %s of pid %d: exit code %d (-1: no event), want 0", entity.EventTelagentProcessExit.Name, pid, viaCollector.exitCode)
	}

	// The standalone agent, same workload, straight to an OTLP receiver.
	held = startHeldWorkload(t, n)
	pid = int64(held.Pid())
	srv = otlptest.NewServer(t, otlptest.Options{})
	cmd := exec.Command(agentBinary(t), "run", "--exporter", "otlp", "--probes", "syscalls,process",
		"--pid", strconv.FormatInt(pid, 10), "--interval", "200ms")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+srv.Addr(), "OTEL_RESOURCE_ATTRIBUTES=k8s.node.name=node-1")
	standalone := start(t, cmd)
	progs = standalone.waitAttached(t, "")
	// Attached is not yet collecting the target: wait for a first export.
	for deadline := time.Now().Add(20 * time.Second); len(srv.Metrics()) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("standalone agent: no export in 20s:\n%s", standalone.output())
		}
	}
	held.run(t)
	agentSeries := waitSeries(srv, pid, n)
	standalone.stop(t, progs)
	if agentSeries.getppid != n || agentSeries.exitCode != 0 {
		t.Errorf("standalone agent: getppid %d (want %d), exit code %d (want 0)", agentSeries.getppid, n, agentSeries.exitCode)
	}
	t.Logf("otelcol-telagent: getppid %d, exit code %d, metrics %q, Resource %q, entity refs %q", viaCollector.getppid, viaCollector.exitCode, sortedKeys(viaCollector.metrics), viaCollector.resourceKeys, viaCollector.entityRefs)
	if !slices.Equal(viaCollector.resourceKeys, agentSeries.resourceKeys) {
		t.Errorf("process Resource attributes:\n  otelcol-telagent %q\n  standalone       %q", viaCollector.resourceKeys, agentSeries.resourceKeys)
	}
	if len(viaCollector.entityRefs) == 0 || !slices.Equal(viaCollector.entityRefs, agentSeries.entityRefs) {
		t.Errorf("process Resource entity refs:\n  otelcol-telagent %q\n  standalone       %q", viaCollector.entityRefs, agentSeries.entityRefs)
	}
	union := maps.Clone(viaCollector.metrics)
	maps.Copy(union, agentSeries.metrics)
	for _, name := range sortedKeys(union) {
		if c, a := viaCollector.metrics[name], agentSeries.metrics[name]; !slices.Equal(c, a) {
			t.Errorf("metric %s, data point attribute keys:\n  otelcol-telagent %q\n  standalone       %q", name, c, a)
		}
	}
	if len(viaCollector.metrics) == 0 {
		t.Error("otelcol-telagent sent no metric for the process")
	}
}

// TestOtelcolTelagentBadConfig: a receiver setting that `telagent run`
// refuses stops otelcol-telagent before it starts, exit status non-zero,
// with the command's message in the receiver's spelling.
func TestOtelcolTelagentBadConfig(t *testing.T) {
	testutil.RequireRoot(t)
	bin := collectortest.Build(t, collectorManifest)
	for _, c := range []struct{ settings, want string }{
		{"    interval: 50ms", "interval 50ms: must be at least 100ms (every interval reads each metric set and exports), e.g. 10s"},
		{"    probes: [syscalls, nope]", `probes: unknown probe "nope"`},
		{"    pid: [0]", `pid "0": not a process id`},
	} {
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(cfg, []byte(receiverConfig(c.settings, "127.0.0.1:1")), 0o644); err != nil {
			t.Fatal(err)
		}
		p := start(t, exec.Command(bin, "--config", "file:"+cfg))
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%q: otelcol-telagent still running after 30s:\n%s", c.settings, p.output())
		}
		var exit *exec.ExitError
		if !errors.As(p.err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("%q: otelcol-telagent exited with %v, want a non-zero status", c.settings, p.err)
		}
		if out := p.output(); !strings.Contains(out, c.want) {
			t.Errorf("%q: output lacks %q:\n%s", c.settings, c.want, out)
		}
	}
}

// TestOtelcolTelagentDaemonSet: the otelcol-telagent DaemonSet runs the
// probes in the agent's pod (checkProbePod); the configuration it mounts
// is one otelcol-telagent itself accepts (`validate`), with the telagent
// receiver in a metrics and a logs pipeline through k8sattributes (pods
// matched as the gateway does, only this node's pods watched) to the
// gateway; its ServiceAccount may read what k8sattributes watches.
func TestOtelcolTelagentDaemonSet(t *testing.T) {
	objs := loadManifests(t, collectorDaemonSetPath)
	c := checkProbePod(t, objs)
	ds := decodeWorkload(t, only(t, objs, "DaemonSet"))
	if a := ds.Template.Spec.AutomountServiceAccountToken; a != nil && !*a {
		t.Error("DaemonSet: automountServiceAccountToken false: k8sattributes needs the API server")
	}
	raw := mountedConfig(t, "otelcol-telagent", ds, c, only(t, objs, "ConfigMap"))
	checkPodAssociation(t, "otelcol-telagent", raw)

	var cfg struct {
		Processors struct {
			K8s struct {
				Filter struct {
					NodeFromEnvVar string `yaml:"node_from_env_var"`
				} `yaml:"filter"`
			} `yaml:"k8sattributes"`
		} `yaml:"processors"`
		Exporters map[string]struct {
			Endpoint string `yaml:"endpoint"`
		} `yaml:"exporters"`
		Service struct {
			Pipelines map[string]struct {
				Receivers, Processors, Exporters []string
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	if err := yaml.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	if v := cfg.Processors.K8s.Filter.NodeFromEnvVar; v != "K8S_NODE_NAME" {
		t.Errorf("k8sattributes filter.node_from_env_var %q: want K8S_NODE_NAME (watch only this node's pods)", v)
	}
	for _, signal := range []string{"metrics", "logs"} {
		p, ok := cfg.Service.Pipelines[signal]
		if !ok {
			t.Errorf("no %s pipeline (the receiver sends metrics and, as logs, events)", signal)
			continue
		}
		if !slices.Equal(p.Receivers, []string{"telagent"}) {
			t.Errorf("%s pipeline receivers %q, want [telagent]", signal, p.Receivers)
		}
		if !slices.Equal(p.Processors, []string{"k8sattributes", "batch"}) {
			t.Errorf("%s pipeline processors %q, want [k8sattributes batch]", signal, p.Processors)
		}
		for _, e := range p.Exporters {
			if ep := cfg.Exporters[e].Endpoint; ep != "otel-gateway.telagent.svc:4317" {
				t.Errorf("%s pipeline exporter %s sends to %q, not the gateway otel-gateway.telagent.svc:4317", signal, e, ep)
			}
		}
	}

	// RBAC: get, list, watch on what k8sattributes watches, bound to the
	// DaemonSet's ServiceAccount.
	type rule struct {
		APIGroups []string `yaml:"apiGroups"`
		Resources []string `yaml:"resources"`
		Verbs     []string `yaml:"verbs"`
	}
	var role struct{ Rules []rule }
	cr := only(t, objs, "ClusterRole")
	if err := cr.raw.Decode(&role); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ group, resource string }{{"", "pods"}, {"", "namespaces"}, {"apps", "replicasets"}} {
		if !slices.ContainsFunc(role.Rules, func(r rule) bool {
			return slices.Contains(r.APIGroups, want.group) && slices.Contains(r.Resources, want.resource) &&
				slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch") && slices.Contains(r.Verbs, "get")
		}) {
			t.Errorf("ClusterRole %s: no get, list, watch on %q %s", cr.Metadata.Name, want.group, want.resource)
		}
	}
	var binding struct {
		RoleRef  struct{ Kind, Name string } `yaml:"roleRef"`
		Subjects []struct{ Kind, Name, Namespace string }
	}
	crb := only(t, objs, "ClusterRoleBinding")
	if err := crb.raw.Decode(&binding); err != nil {
		t.Fatal(err)
	}
	sa := only(t, objs, "ServiceAccount")
	if binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != cr.Metadata.Name ||
		!slices.ContainsFunc(binding.Subjects, func(s struct{ Kind, Name, Namespace string }) bool {
			return s.Kind == "ServiceAccount" && s.Name == sa.Metadata.Name && s.Namespace == sa.Metadata.Namespace
		}) || ds.Template.Spec.ServiceAccountName != sa.Metadata.Name {
		t.Errorf("ClusterRoleBinding %+v does not give ClusterRole %s to the DaemonSet's ServiceAccount %s", binding, cr.Metadata.Name, sa.Metadata.Name)
	}

	// The distribution accepts the configuration: every component is in
	// it, every key is one its component knows, the receiver's checks pass.
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(collectortest.Build(t, collectorManifest), "validate", "--config", "file:"+path)
	cmd.Env = append(os.Environ(), "K8S_NODE_NAME=node-1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("otelcol-telagent validate on the DaemonSet's configuration: %v\n%s", err, out)
	}
}

// TestOtelcolTelagentDockerfile: deploy/collector/Dockerfile builds the
// distribution with build.sh from builder.yaml, statically, into the
// agent's base image, and runs it with the configuration the DaemonSet
// mounts.
func TestOtelcolTelagentDockerfile(t *testing.T) {
	d := parseDockerfile(t, "collector/Dockerfile")
	build := slices.IndexFunc(d.runs, func(r string) bool { return strings.Contains(r, "build.sh") })
	if build < 0 || d.stageOfRun[build] != 0 {
		t.Fatalf("collector/Dockerfile: no RUN of build.sh in the builder stage: %q", d.runs)
	}
	for _, want := range []string{"CGO_ENABLED=0", "./internal/collectortest/build.sh " + collectorManifest} {
		if !strings.Contains(d.runs[build], want) {
			t.Errorf("collector/Dockerfile: %q lacks %s", d.runs[build], want)
		}
	}
	if d.entrypoint != `["/otelcol-telagent"]` || !strings.Contains(d.text, "COPY --from=build /out-otelcol-telagent /otelcol-telagent") {
		t.Errorf("collector/Dockerfile: ENTRYPOINT %s, want the built binary at [\"/otelcol-telagent\"]", d.entrypoint)
	}
	var args []string
	if err := yaml.Unmarshal([]byte(d.cmd), &args); err != nil {
		t.Fatalf("collector/Dockerfile: CMD %s is not an exec-form list (%v)", d.cmd, err)
	}
	ds := decodeWorkload(t, only(t, loadManifests(t, collectorDaemonSetPath), "DaemonSet"))
	if c := ds.Template.Spec.Containers[0]; !slices.Equal(args, c.Args) {
		t.Errorf("collector/Dockerfile: CMD %q, the DaemonSet's args %q: one configuration path", args, c.Args)
	}
}
