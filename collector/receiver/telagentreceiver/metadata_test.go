package telagentreceiver

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/telagent/telagent/collector/receiver/telagentreceiver/internal/metadata"
)

// The hand-written internal/metadata says what metadata.yaml does.
func TestMetadataMatchesYAML(t *testing.T) {
	data, err := os.ReadFile("metadata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Type   string `yaml:"type"`
		Status struct {
			Class     string              `yaml:"class"`
			Stability map[string][]string `yaml:"stability"`
		} `yaml:"status"`
	}
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != metadata.Type.String() || m.Status.Class != "receiver" {
		t.Errorf("metadata.yaml: type %q class %q, metadata.go: type %q", m.Type, m.Status.Class, metadata.Type)
	}
	if got := m.Status.Stability[strings.ToLower(metadata.MetricsStability.String())]; !slices.Contains(got, "metrics") {
		t.Errorf("metadata.yaml stability %v: metrics not %s", m.Status.Stability, metadata.MetricsStability)
	}
	if got := m.Status.Stability[strings.ToLower(metadata.LogsStability.String())]; !slices.Contains(got, "logs") {
		t.Errorf("metadata.yaml stability %v: logs not %s", m.Status.Stability, metadata.LogsStability)
	}
	f := NewFactory()
	if f.Type() != metadata.Type || f.MetricsStability() != metadata.MetricsStability || f.LogsStability() != metadata.LogsStability {
		t.Errorf("factory: %v %v %v", f.Type(), f.MetricsStability(), f.LogsStability())
	}
}
