package deploy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/telagent/telagent/entity"
)

// TestGatewayPodAssociation: the gateway adds pod names and namespaces to a
// process's resource by the k8s.pod.uid / container.id the agent reads from
// the process's cgroup (entity.ParseCgroup), never by the connection, which
// would label every process with the agent's own pod.
func TestGatewayPodAssociation(t *testing.T) {
	objs := loadManifests(t, gatewayPath)
	cm := only(t, objs, "ConfigMap")
	var raw string
	for k, v := range cm.Data {
		if filepath.Ext(k) == ".yaml" {
			raw, _ = v.(string)
		}
	}
	checkPodAssociation(t, "gateway", raw)

	// The agents' resource attributes are node-wide only.
	ds := decodeWorkload(t, only(t, loadManifests(t, daemonSetPath), "DaemonSet"))
	for _, e := range ds.Template.Spec.Containers[0].Env {
		if e.Name == "OTEL_RESOURCE_ATTRIBUTES" && (strings.Contains(e.Value, "k8s.pod.") || strings.Contains(e.Value, "k8s.namespace.")) {
			t.Errorf("OTEL_RESOURCE_ATTRIBUTES=%s: the agent pod's own pod attributes would land on every process", e.Value)
		}
	}
}

// checkPodAssociation: the k8sattributes processor of the Collector
// configuration raw finds a process's pod by the attributes the agent
// reads from its cgroup, and extracts what the cgroup path lacks.
func checkPodAssociation(t *testing.T, what, raw string) {
	t.Helper()
	var cfg struct {
		Processors struct {
			K8s struct {
				Extract struct {
					Metadata []string `yaml:"metadata"`
				} `yaml:"extract"`
				PodAssociation []struct {
					Sources []struct {
						From string `yaml:"from"`
						Name string `yaml:"name"`
					} `yaml:"sources"`
				} `yaml:"pod_association"`
			} `yaml:"k8sattributes"`
		} `yaml:"processors"`
	}
	if err := yaml.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("%s config: %v", what, err)
	}
	k8s := cfg.Processors.K8s
	var keys []string
	for _, a := range k8s.PodAssociation {
		for _, s := range a.Sources {
			if s.From != "resource_attribute" {
				t.Errorf("%s: pod_association from %q: only the process's own resource attributes identify its pod", what, s.From)
			}
			keys = append(keys, s.Name)
		}
	}
	if want := []string{string(entity.AttrK8sPodUID), string(entity.AttrContainerID)}; !slices.Equal(keys, want) {
		t.Errorf("%s: pod_association by %v, want %v (what the agent puts on process resources)", what, keys, want)
	}
	for _, m := range []string{"k8s.pod.name", "k8s.namespace.name"} {
		if !slices.Contains(k8s.Extract.Metadata, m) {
			t.Errorf("%s: k8sattributes does not extract %s (the agent cannot: it is not in the cgroup path)", what, m)
		}
	}
}
