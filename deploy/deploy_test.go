// Package deploy holds the deployment artifacts (systemd unit, Kubernetes
// manifests) and the tests that keep them consistent with the agent: a
// renamed flag, a dropped capability or a broken unit file fails here.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/telagent/telagent/probes"
)

const (
	// fixedBPFAndOffHeap is what besides the storage budget the cgroup
	// is charged and GOMEMLIMIT does not see: the fixed BPF maps (rings,
	// in-flight tables, identities: ~10 MiB) and the off-heap totals and
	// read buffers of 100k live series (~30 MiB).
	fixedBPFAndOffHeap = 40 << 20
	unitPath           = "systemd/telagent.service"
	envExample         = "systemd/telagent.env.example"
	configExample      = "systemd/telagent.yaml.example"
	// configInstalled is where the unit reads the example's installed copy.
	configInstalled = "/etc/telagent/telagent.yaml"
	daemonSetPath   = "kubernetes/telagent-daemonset.yaml"
	// collectorDaemonSetPath runs otelcol-telagent instead of the agent.
	collectorDaemonSetPath = "kubernetes/otelcol-telagent-daemonset.yaml"
	gatewayPath            = "kubernetes/otel-gateway.yaml"
	dockerfile             = "../Dockerfile"
	installedBin           = "/usr/local/bin/telagent"
	// shutdownWorstCase is the agent's worst-case shutdown: final
	// collection, event flush and exporter shutdown, each bounded at 10 s
	// (internal/agent). Stop timeouts must exceed it.
	shutdownWorstCase = 30 * time.Second
)

// agentCaps are the capabilities every deployment grants (Kubernetes names).
var agentCaps = []string{"BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH"}

// ---------------------------------------------------------------- helpers

var agent struct {
	once sync.Once
	path string
	err  error
	help string
}

// agentBinary builds ../cmd/telagent once per test run.
func agentBinary(t *testing.T) string {
	t.Helper()
	agent.once.Do(func() {
		dir, err := os.MkdirTemp("", "telagent-deploy-test")
		if err != nil {
			agent.err = err
			return
		}
		agent.path = filepath.Join(dir, "telagent")
		gobin := "go"
		if root := os.Getenv("GOROOT"); root != "" {
			if p := filepath.Join(root, "bin", "go"); fileExists(p) {
				gobin = p
			}
		}
		cmd := exec.Command(gobin, "build", "-o", agent.path, "../cmd/telagent")
		if out, err := cmd.CombinedOutput(); err != nil {
			agent.err = fmt.Errorf("go build ../cmd/telagent: %v\n%s", err, out)
		}
	})
	if agent.err != nil {
		t.Fatal(agent.err)
	}
	return agent.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if agent.path != "" {
		os.RemoveAll(filepath.Dir(agent.path))
	}
	os.Exit(code)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var flagRE = regexp.MustCompile(`(?m)^\s+(-{1,2}[a-z][a-z0-9-]*)`)

// runFlags returns the flags `telagent run --help` lists, e.g. "--interval".
func runFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := agentBinary(t)
	if agent.help == "" {
		out, err := exec.Command(bin, "run", "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("telagent run --help: %v\n%s", err, out)
		}
		agent.help = string(out)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(agent.help, "\n") {
		// "   --pid value [ --pid value ]  observe ..." and "   --help, -h ..."
		m := flagRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, f := range strings.Split(strings.TrimSpace(line), ",") {
			f = strings.Fields(strings.TrimSpace(f))[0]
			if strings.HasPrefix(f, "-") {
				flags[f] = true
			}
		}
	}
	if !flags["--interval"] || !flags["--exporter"] {
		t.Fatalf("could not parse the flags of `telagent run --help`:\n%s", agent.help)
	}
	return flags
}

// checkArgs fails when args after "run" use a flag the agent does not have.
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) == 0 || args[0] != "run" {
		t.Errorf("%s: arguments %q do not start with \"run\"", where, args)
		return
	}
	flags := runFlags(t)
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		if !flags[name] {
			t.Errorf("%s: flag %s is not accepted by `telagent run` (known: %v)", where, name, sortedKeys(flags))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ---------------------------------------------------------------- systemd

// unitFile is section -> key -> values (a key may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, text string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", unitPath, n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

// one returns the single value of key, failing if it is absent or repeated.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Errorf("[%s] %s: want exactly one value, have %q", section, key, v)
		return ""
	}
	return v[0]
}

func TestSystemdUnitSettings(t *testing.T) {
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	u := parseUnit(t, string(b))
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Errorf("section [%s] missing", s)
		}
	}

	exec := strings.Fields(u.one(t, "Service", "ExecStart"))
	if len(exec) == 0 || exec[0] != installedBin {
		t.Errorf("ExecStart %q: want %s first", exec, installedBin)
	} else {
		checkArgs(t, "ExecStart", exec[1:])
		// The settings are on the command line or in the --config file,
		// whose installed copy is the example (cmd/telagent's
		// TestConfigExample checks the agent accepts it).
		settings := slices.Clone(exec)
		if i := slices.Index(exec, "--config"); i >= 0 && i+1 < len(exec) {
			if exec[i+1] != configInstalled {
				t.Errorf("ExecStart --config %s, want %s", exec[i+1], configInstalled)
			}
			settings = append(settings, configSettings(t)...)
		}
		if !slices.Contains(settings, "otlp") || !slices.Contains(settings, "--exporter") {
			t.Errorf("ExecStart %q (with %s): want --exporter otlp", exec, configExample)
		}
		if i := slices.Index(settings, "--interval"); i < 0 || i+1 >= len(settings) || settings[i+1] != "10s" {
			t.Errorf("ExecStart %q (with %s): want --interval 10s", exec, configExample)
		}
	}

	want := map[string]string{
		"EnvironmentFile": "-/etc/telagent/telagent.env",
		"NoNewPrivileges": "yes",
		"ProtectSystem":   "strict",
		"ProtectHome":     "read-only",
		"PrivateTmp":      "yes",
		"Restart":         "on-failure",
		"LimitMEMLOCK":    "infinity",
		// systemctl reload: SIGHUP reopens the output file, it does not
		// stop the agent (cmd/telagent TestSIGHUPReopensOutput).
		"ExecReload": "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		if got := u.one(t, "Service", k); got != v {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		got := strings.Fields(strings.Join(u["Service"][k], " "))
		var wantCaps []string
		for _, c := range agentCaps {
			wantCaps = append(wantCaps, "CAP_"+c)
		}
		slices.Sort(got)
		slices.Sort(wantCaps)
		if !slices.Equal(got, wantCaps) {
			t.Errorf("[Service] %s=%v, want exactly %v", k, got, wantCaps)
		}
	}
	if d, err := parseSystemdTime(u.one(t, "Service", "RestartSec")); err != nil || d <= 0 {
		t.Errorf("RestartSec: want a positive duration (%v)", err)
	}
	if d, err := parseSystemdTime(u.one(t, "Service", "TimeoutStopSec")); err != nil || d <= shutdownWorstCase {
		t.Errorf("TimeoutStopSec=%v (%v): must exceed the agent's worst-case shutdown of %v", d, err, shutdownWorstCase)
	}
	if got := u["Install"]["WantedBy"]; !slices.Contains(got, "multi-user.target") {
		t.Errorf("[Install] WantedBy=%q, want multi-user.target", got)
	}
}

// configSettings returns the top-level scalar settings of the config
// example as flags ("--interval", "10s").
func configSettings(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(configExample)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", configExample, err)
	}
	var out []string
	for k, v := range m {
		out = append(out, "--"+k, fmt.Sprint(v))
	}
	return out
}

// parseSystemdTime accepts what the unit uses: "5s", "40s", "1min", "2".
func parseSystemdTime(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	s = strings.ReplaceAll(s, "min", "m")
	return time.ParseDuration(strings.ReplaceAll(s, " ", ""))
}

func TestSystemdEnvExample(t *testing.T) {
	b, err := os.ReadFile(envExample)
	if err != nil {
		t.Fatal(err)
	}
	set := false
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(k, "OTEL_") {
			t.Errorf("%s:%d: want OTEL_*=value, have %q", envExample, n+1, line)
		}
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			set = true
		}
	}
	if !set {
		t.Errorf("%s does not set OTEL_EXPORTER_OTLP_ENDPOINT", envExample)
	}
}

// verifyUnit runs systemd-analyze verify on text installed as
// <tmp>/telagent.service and returns the output lines about that file.
func verifyUnit(t *testing.T, analyze, text string) (lines []string, err error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "telagent.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	cmd.Dir = dir
	// Pager and colour off; no man page lookups for Documentation=.
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, path) || strings.Contains(l, "telagent.service") {
			lines = append(lines, l)
		}
	}
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) {
		t.Fatalf("systemd-analyze: %v", runErr)
	}
	if runErr != nil {
		return lines, fmt.Errorf("%v:\n%s", runErr, out.String())
	}
	return lines, nil
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (package systemd): cannot verify the unit")
	}
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(installedBin)) {
		t.Fatalf("%s does not mention %s", unitPath, installedBin)
	}
	// verify checks that ExecStart's executable exists: use the real agent.
	unit := strings.ReplaceAll(string(b), installedBin, agentBinary(t))

	lines, err := verifyUnit(t, analyze, unit)
	if err != nil {
		t.Errorf("systemd-analyze verify failed: %v", err)
	}
	for _, l := range lines {
		t.Errorf("systemd-analyze verify: %s", l)
	}

	// The check itself must be able to fail: a misspelt directive and a
	// bad value are reported against the file.
	bad := strings.Replace(unit, "ProtectSystem=strict", "ProtectSystem=stricter\nProtectSytem=yes", 1)
	if lines, _ := verifyUnit(t, analyze, bad); len(lines) < 2 {
		t.Errorf("systemd-analyze verify did not report a broken unit; output about it: %q", lines)
	}
}

// ---------------------------------------------------------------- Kubernetes

type object struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   metadata       `yaml:"metadata"`
	Spec       yaml.Node      `yaml:"spec"`
	Data       map[string]any `yaml:"data"`
	raw        yaml.Node
}

type metadata struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type workloadSpec struct {
	Replicas *int            `yaml:"replicas"`
	Selector labelSelector   `yaml:"selector"`
	Template podTemplateSpec `yaml:"template"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type podTemplateSpec struct {
	Metadata metadata `yaml:"metadata"`
	Spec     podSpec  `yaml:"spec"`
}

type podSpec struct {
	HostPID                       bool         `yaml:"hostPID"`
	HostNetwork                   bool         `yaml:"hostNetwork"`
	ServiceAccountName            string       `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool        `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int         `yaml:"terminationGracePeriodSeconds"`
	Tolerations                   []toleration `yaml:"tolerations"`
	Containers                    []container  `yaml:"containers"`
	Volumes                       []volume     `yaml:"volumes"`
}

type toleration struct {
	Key      string `yaml:"key"`
	Operator string `yaml:"operator"`
	Effect   string `yaml:"effect"`
}

type container struct {
	Name            string           `yaml:"name"`
	Image           string           `yaml:"image"`
	Command         []string         `yaml:"command"`
	Args            []string         `yaml:"args"`
	Env             []envVar         `yaml:"env"`
	Resources       resources        `yaml:"resources"`
	SecurityContext *securityContext `yaml:"securityContext"`
	VolumeMounts    []volumeMount    `yaml:"volumeMounts"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type resources struct {
	Requests map[string]string `yaml:"requests"`
	Limits   map[string]string `yaml:"limits"`
}

type securityContext struct {
	Privileged               *bool `yaml:"privileged"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	Capabilities             struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type volume struct {
	Name     string `yaml:"name"`
	HostPath *struct {
		Path string `yaml:"path"`
		Type string `yaml:"type"`
	} `yaml:"hostPath"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
}

// apiVersions are the served (GA) API versions of the kinds the manifests
// may use.
var apiVersions = map[string]string{
	"Namespace":          "v1",
	"ServiceAccount":     "v1",
	"ConfigMap":          "v1",
	"Service":            "v1",
	"DaemonSet":          "apps/v1",
	"Deployment":         "apps/v1",
	"ClusterRole":        "rbac.authorization.k8s.io/v1",
	"ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
	"Role":               "rbac.authorization.k8s.io/v1",
	"RoleBinding":        "rbac.authorization.k8s.io/v1",
}

var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// loadManifests parses every document of file and checks what every object
// needs: a known kind with its apiVersion, a name, the telagent namespace.
func loadManifests(t *testing.T, file string) []object {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var objs []object
	for i := 0; ; i++ {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		if len(n.Content) == 0 { // an empty document ("---" at the end)
			continue
		}
		var o object
		if err := n.Decode(&o); err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		o.raw = n
		where := fmt.Sprintf("%s: %s %q", file, o.Kind, o.Metadata.Name)
		want, ok := apiVersions[o.Kind]
		switch {
		case !ok:
			t.Errorf("%s: unexpected kind (document %d)", where, i)
		case o.APIVersion != want:
			t.Errorf("%s: apiVersion %q, want %q", where, o.APIVersion, want)
		}
		if !dns1123.MatchString(o.Metadata.Name) || len(o.Metadata.Name) > 63 {
			t.Errorf("%s: bad or missing metadata.name", where)
		}
		if clusterScoped[o.Kind] {
			if o.Metadata.Namespace != "" {
				t.Errorf("%s: cluster-scoped object with a namespace", where)
			}
		} else if o.Metadata.Namespace != "telagent" {
			t.Errorf("%s: namespace %q, want telagent", where, o.Metadata.Namespace)
		}
		objs = append(objs, o)
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no objects", file)
	}
	return objs
}

func find(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func only(t *testing.T, objs []object, kind string) object {
	t.Helper()
	f := find(objs, kind)
	if len(f) != 1 {
		t.Fatalf("want exactly one %s, have %d", kind, len(f))
	}
	return f[0]
}

func decodeWorkload(t *testing.T, o object) workloadSpec {
	t.Helper()
	var s workloadSpec
	if err := o.Spec.Decode(&s); err != nil {
		t.Fatalf("%s %s: spec: %v", o.Kind, o.Metadata.Name, err)
	}
	if len(s.Selector.MatchLabels) == 0 {
		t.Errorf("%s %s: no selector", o.Kind, o.Metadata.Name)
	}
	for k, v := range s.Selector.MatchLabels {
		if s.Template.Metadata.Labels[k] != v {
			t.Errorf("%s %s: selector %s=%s does not match the pod template's labels", o.Kind, o.Metadata.Name, k, v)
		}
	}
	if len(s.Template.Spec.Containers) == 0 {
		t.Fatalf("%s %s: no containers", o.Kind, o.Metadata.Name)
	}
	return s
}

// containsKey reports whether a mapping anywhere under n has key: value.
func containsKey(n *yaml.Node, key, value string) bool {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key && n.Content[i+1].Value == value {
				return true
			}
		}
	}
	for _, c := range n.Content {
		if containsKey(c, key, value) {
			return true
		}
	}
	return false
}

var quantityRE = regexp.MustCompile(`^([0-9.]+)(m|Ki|Mi|Gi)?$`)

// quantity returns a CPU quantity in millicores or a memory one in bytes.
func quantity(t *testing.T, s string) float64 {
	t.Helper()
	m := quantityRE.FindStringSubmatch(s)
	if m == nil {
		t.Errorf("bad resource quantity %q", s)
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	switch m[2] {
	case "m":
		return v
	case "Ki":
		return v * (1 << 10)
	case "Mi":
		return v * (1 << 20)
	case "Gi":
		return v * (1 << 30)
	}
	return v
}

func TestDaemonSet(t *testing.T) {
	objs := loadManifests(t, daemonSetPath)
	only(t, objs, "Namespace")
	c := checkProbePod(t, objs)
	checkArgs(t, "DaemonSet args", c.Args)
	if i := slices.Index(c.Args, "--exporter"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != "otlp" {
		t.Errorf("DaemonSet args %q: want --exporter otlp", c.Args)
	}
	if len(c.Command) != 0 {
		t.Errorf("container: command %q overrides the image's ENTRYPOINT /telagent", c.Command)
	}

	// Environment: node name, resource attributes, endpoint of the gateway.
	env := map[string]envVar{}
	order := map[string]int{}
	for i, e := range c.Env {
		env[e.Name] = e
		order[e.Name] = i
	}
	if e := env["OTEL_RESOURCE_ATTRIBUTES"]; e.Value != "k8s.node.name=$(K8S_NODE_NAME)" {
		t.Errorf("env OTEL_RESOURCE_ATTRIBUTES=%q", e.Value)
	} else if order["K8S_NODE_NAME"] > order["OTEL_RESOURCE_ATTRIBUTES"] {
		t.Errorf("env: K8S_NODE_NAME must come before OTEL_RESOURCE_ATTRIBUTES for $(K8S_NODE_NAME) to expand")
	}
	ep := env["OTEL_EXPORTER_OTLP_ENDPOINT"].Value
	if ep != "http://otel-gateway.telagent.svc:4317" {
		t.Errorf("env OTEL_EXPORTER_OTLP_ENDPOINT=%q", ep)
	}
}

// checkProbePod checks what every DaemonSet that runs the probes needs
// (the agent's, otelcol-telagent's): the one DaemonSet of objs with its
// ServiceAccount, on every node, in the host's PID namespace, with the
// agent's capabilities and no more, the host's /sys, /proc and machine-id
// read-only, memory for the BPF maps beside GOMEMLIMIT, K8S_NODE_NAME from
// the downward API; it returns the one container.
func checkProbePod(t *testing.T, objs []object) container {
	t.Helper()
	sa := only(t, objs, "ServiceAccount")
	ds := only(t, objs, "DaemonSet")
	if containsKey(&ds.raw, "privileged", "true") {
		t.Errorf("DaemonSet: privileged: true; grant capabilities instead")
	}
	s := decodeWorkload(t, ds)
	pod := s.Template.Spec
	if !pod.HostPID {
		t.Errorf("DaemonSet: hostPID must be true (the agent resolves host PIDs in /proc)")
	}
	if pod.ServiceAccountName != sa.Metadata.Name {
		t.Errorf("DaemonSet: serviceAccountName %q, want %q", pod.ServiceAccountName, sa.Metadata.Name)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g < 15 || time.Duration(*g)*time.Second <= shutdownWorstCase {
		t.Errorf("DaemonSet: terminationGracePeriodSeconds must be ≥ 15 and exceed the agent's worst-case shutdown %v", shutdownWorstCase)
	}
	everyNode := false
	for _, tol := range pod.Tolerations {
		if tol.Operator == "Exists" && tol.Key == "" && tol.Effect == "" {
			everyNode = true
		}
	}
	if !everyNode {
		t.Errorf("DaemonSet: want a toleration {operator: Exists} so it runs on every node, have %+v", pod.Tolerations)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("DaemonSet: want one container, have %d", len(pod.Containers))
	}
	c := pod.Containers[0]

	// Security context: capabilities, not privileged.
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("container: no securityContext")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("container: privileged")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("container: readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container: allowPrivilegeEscalation must be false")
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container: capabilities.drop %q, want [ALL]", sc.Capabilities.Drop)
	}
	wantAdd := append(slices.Clone(agentCaps), "SYS_RESOURCE")
	gotAdd := slices.Clone(sc.Capabilities.Add)
	slices.Sort(wantAdd)
	slices.Sort(gotAdd)
	if !slices.Equal(gotAdd, wantAdd) {
		t.Errorf("container: capabilities.add %q, want exactly %q", sc.Capabilities.Add, wantAdd)
	}

	// Host mounts: /sys (BTF) and /proc, read-only.
	hostPaths := map[string]string{} // volume name -> host path
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]volumeMount{} // host path -> mount
	for _, m := range c.VolumeMounts {
		if hp, ok := hostPaths[m.Name]; ok {
			mounted[hp] = m
			if !m.ReadOnly {
				t.Errorf("host path %s is mounted read-write at %s", hp, m.MountPath)
			}
		}
	}
	for _, hp := range []string{"/sys", "/proc", "/etc/machine-id"} {
		if _, ok := mounted[hp]; !ok {
			t.Errorf("host path %s is not mounted (mounts: %+v)", hp, c.VolumeMounts)
		}
	}
	// The agent opens /sys/kernel/btf/vmlinux and /etc/machine-id at these
	// exact paths; /proc comes from hostPID (a bind mount over /proc is
	// refused by the runtime).
	if m := mounted["/sys"]; m.MountPath != "/sys" {
		t.Errorf("host /sys mounted at %q; the agent reads /sys/kernel/btf/vmlinux", m.MountPath)
	}
	if m := mounted["/etc/machine-id"]; m.MountPath != "/etc/machine-id" {
		t.Errorf("host /etc/machine-id mounted at %q; the agent reads /etc/machine-id for host.id", m.MountPath)
	}
	if m := mounted["/proc"]; m.MountPath == "/proc" {
		t.Errorf("host /proc mounted over /proc: runc refuses it; rely on hostPID")
	}

	// Resources.
	r := c.Resources
	for _, k := range []string{"cpu", "memory"} {
		req, lim := r.Requests[k], r.Limits[k]
		if req == "" || lim == "" {
			t.Errorf("resources: %s request %q / limit %q: both required", k, req, lim)
			continue
		}
		if quantity(t, req) > quantity(t, lim) {
			t.Errorf("resources: %s request %s exceeds limit %s", k, req, lim)
		}
	}
	// README "Performance": the soak peaks at ~215 MiB after an outage.
	if lim := r.Limits["memory"]; lim != "" && quantity(t, lim) < 256*(1<<20) {
		t.Errorf("resources: memory limit %s is below the soak's measured ~215 MiB peak plus headroom", lim)
	}
	// GOMEMLIMIT, when set, must leave room below the container's limit
	// for what the Go runtime does not count and the cgroup does: the BPF
	// maps (the metric-set storage's default budget plus the fixed maps)
	// and the off-heap totals and read buffers.
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			soft := quantity(t, strings.TrimSuffix(e.Value, "B")) // 400MiB → 400Mi
			outside := float64(probes.DefaultBPFMemory + fixedBPFAndOffHeap)
			if lim := r.Limits["memory"]; lim == "" || soft+outside >= quantity(t, lim) {
				t.Errorf("GOMEMLIMIT %s + %d MiB of BPF maps and off-heap buffers is not below the memory limit %s", e.Value, int(outside)>>20, lim)
			}
		}
	}

	for _, e := range c.Env {
		if e.Name == "K8S_NODE_NAME" && (e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName") {
			t.Errorf("env K8S_NODE_NAME must come from fieldRef spec.nodeName")
		}
	}
	if !slices.ContainsFunc(c.Env, func(e envVar) bool { return e.Name == "K8S_NODE_NAME" }) {
		t.Errorf("env: no K8S_NODE_NAME (the node's name on every Resource)")
	}
	return c
}

func TestGateway(t *testing.T) {
	objs := loadManifests(t, gatewayPath)
	dep := only(t, objs, "Deployment")
	svc := only(t, objs, "Service")
	cm := only(t, objs, "ConfigMap")

	// The DaemonSet's endpoint names this Service.
	if svc.Metadata.Name != "otel-gateway" || svc.Metadata.Namespace != "telagent" {
		t.Errorf("Service %s/%s: the agents send to otel-gateway.telagent.svc", svc.Metadata.Namespace, svc.Metadata.Name)
	}
	var svcSpec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	if err := svc.Spec.Decode(&svcSpec); err != nil {
		t.Fatal(err)
	}
	s := decodeWorkload(t, dep)
	for k, v := range svcSpec.Selector {
		if s.Template.Metadata.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the gateway pods", k, v)
		}
	}
	if len(svcSpec.Selector) == 0 {
		t.Error("Service has no selector")
	}
	c := s.Template.Spec.Containers[0]
	portNames := map[string]int{}
	for _, p := range c.Ports {
		portNames[p.Name] = p.ContainerPort
	}
	has4317 := false
	for _, p := range svcSpec.Ports {
		if p.Port == 4317 {
			has4317 = true
			if portNames[p.TargetPort] != 4317 && p.TargetPort != "4317" {
				t.Errorf("Service port 4317 targets %q, which is not container port 4317", p.TargetPort)
			}
		}
	}
	if !has4317 {
		t.Error("Service does not expose 4317")
	}
	if !regexp.MustCompile(`^otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+$`).MatchString(c.Image) {
		t.Errorf("gateway image %q: want otel/opentelemetry-collector-contrib pinned to a version tag", c.Image)
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("gateway: no memory limit (memory_limiter's limit_percentage is relative to it)")
	}

	checkCollectorConfig(t, mountedConfig(t, "gateway", s, c, cm))
}

// mountedConfig is the Collector configuration the workload's container c
// reads (--config=PATH): the ConfigMap cm's key, mounted from its volume.
func mountedConfig(t *testing.T, what string, s workloadSpec, c container, cm object) string {
	t.Helper()
	var configArg string
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			configArg = v
		}
	}
	mountDir := ""
	for _, v := range s.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name {
					mountDir = m.MountPath
				}
			}
		}
	}
	if mountDir == "" || filepath.Dir(configArg) != mountDir {
		t.Fatalf("%s: --config=%q is not in the ConfigMap's mount %q", what, configArg, mountDir)
	}
	raw, ok := cm.Data[filepath.Base(configArg)].(string)
	if !ok {
		t.Fatalf("%s: ConfigMap has no key %q", what, filepath.Base(configArg))
	}
	return raw
}

func checkCollectorConfig(t *testing.T, raw string) {
	t.Helper()
	var cfg struct {
		Extensions map[string]any `yaml:"extensions"`
		Receivers  map[string]any `yaml:"receivers"`
		Processors map[string]any `yaml:"processors"`
		Exporters  map[string]any `yaml:"exporters"`
		Connectors map[string]any `yaml:"connectors"`
		Service    struct {
			Extensions []string `yaml:"extensions"`
			Pipelines  map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	dec := yaml.NewDecoder(strings.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("collector config does not parse: %v", err)
	}
	defined := func(kind string, m map[string]any, name string) {
		if _, ok := m[name]; !ok {
			t.Errorf("collector config: %s %q is used but not defined", kind, name)
		}
	}
	for _, e := range cfg.Service.Extensions {
		defined("extension", cfg.Extensions, e)
	}
	if len(cfg.Service.Pipelines) == 0 {
		t.Fatal("collector config: no pipelines")
	}
	usedExporters := map[string]bool{}
	for name, p := range cfg.Service.Pipelines {
		if len(p.Receivers) == 0 || len(p.Exporters) == 0 {
			t.Errorf("pipeline %s: needs receivers and exporters", name)
		}
		for _, r := range p.Receivers {
			if _, ok := cfg.Connectors[r]; !ok {
				defined("receiver", cfg.Receivers, r)
			}
		}
		for _, pr := range p.Processors {
			defined("processor", cfg.Processors, pr)
		}
		for _, e := range p.Exporters {
			if _, ok := cfg.Connectors[e]; !ok {
				defined("exporter", cfg.Exporters, e)
			}
			usedExporters[e] = true
		}
		if len(p.Processors) == 0 || p.Processors[0] != "memory_limiter" {
			t.Errorf("pipeline %s: memory_limiter must be the first processor, have %q", name, p.Processors)
		}
		if !slices.Contains(p.Processors, "batch") {
			t.Errorf("pipeline %s: no batch processor", name)
		}
	}
	if _, ok := cfg.Service.Pipelines["metrics"]; !ok {
		t.Error("collector config: no metrics pipeline")
	}
	for _, e := range []string{"otlp", "debug"} {
		defined("exporter", cfg.Exporters, e)
		if !usedExporters[e] {
			t.Errorf("collector config: exporter %s is defined but in no pipeline", e)
		}
	}
	otlp, _ := cfg.Receivers["otlp"].(map[string]any)
	protocols, _ := otlp["protocols"].(map[string]any)
	grpc, _ := protocols["grpc"].(map[string]any)
	if ep, _ := grpc["endpoint"].(string); !strings.HasSuffix(ep, ":4317") || strings.HasPrefix(ep, "localhost") {
		t.Errorf("otlp receiver grpc endpoint %q: want 0.0.0.0:4317 (the default listens on localhost only)", ep)
	}
}

// ---------------------------------------------------------------- Dockerfile

// dockerfileInstr is a Dockerfile's instructions that the tests check:
// the stages' FROM, each RUN with the stage it runs in, ENTRYPOINT and CMD.
type dockerfileInstr struct {
	text            string // continuation lines joined
	froms, runs     []string
	stageOfRun      map[int]int
	entrypoint, cmd string
}

// parseDockerfile reads path and checks what both images share: a Go
// builder stage and the (root) distroless static image.
func parseDockerfile(t *testing.T, path string) dockerfileInstr {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, drop comments.
	d := dockerfileInstr{text: regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), " "), stageOfRun: map[int]int{}}
	for _, line := range strings.Split(d.text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			d.froms = append(d.froms, rest)
		case "RUN":
			d.stageOfRun[len(d.runs)] = len(d.froms) - 1
			d.runs = append(d.runs, rest)
		case "ENTRYPOINT":
			d.entrypoint = strings.TrimSpace(rest)
		case "CMD":
			d.cmd = strings.TrimSpace(rest)
		}
	}
	if len(d.froms) != 2 {
		t.Fatalf("%s: want two FROM stages, have %d: %q", path, len(d.froms), d.froms)
	}
	if f := strings.Fields(d.froms[0]); f[0] != "golang:1.26-bookworm" {
		t.Errorf("%s: builder %q, want golang:1.26-bookworm", path, d.froms[0])
	}
	final := d.froms[1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static-debian12") || strings.Contains(final, "nonroot") {
		t.Errorf("%s: final stage %q, want the (root) gcr.io/distroless/static-debian12", path, final)
	}
	return d
}

func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t, dockerfile)
	runs, stageOfRun, entrypoint, cmd, text := d.runs, d.stageOfRun, d.entrypoint, d.cmd, d.text
	b := []byte(text)
	build := -1
	for i, r := range runs {
		if strings.Contains(r, "go build") {
			build = i
		}
	}
	if build < 0 {
		t.Fatal("Dockerfile: no RUN ... go build")
	}
	r := runs[build]
	if stageOfRun[build] != 0 {
		t.Errorf("Dockerfile: go build runs in stage %d, not the builder", stageOfRun[build])
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/telagent", `-s -w`} {
		if !strings.Contains(r, want) {
			t.Errorf("Dockerfile: build command %q lacks %s", r, want)
		}
	}
	if !fileExists("../cmd/telagent/main.go") {
		t.Error("Dockerfile builds ./cmd/telagent, which does not exist")
	}
	if entrypoint != `["/telagent"]` {
		t.Errorf("Dockerfile: ENTRYPOINT %s, want [\"/telagent\"]", entrypoint)
	}
	if !bytes.Contains(b, []byte("COPY --from=")) || !strings.Contains(text, " /telagent") {
		t.Error("Dockerfile: the final stage does not copy the binary to /telagent")
	}
	var args []string
	if err := yaml.Unmarshal([]byte(cmd), &args); err != nil || len(args) == 0 {
		t.Fatalf("Dockerfile: CMD %s is not an exec-form list (%v)", cmd, err)
	}
	checkArgs(t, "Dockerfile CMD", args)
}
