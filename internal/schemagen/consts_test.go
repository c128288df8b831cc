package schemagen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// constsRegistry is a metric set whose one counter takes two value fields,
// told apart by a constant enum attribute (the shape of
// process.context_switches by process.context_switch.type).
const constsRegistry = `groups:
  - id: metric.process.context_switches
    type: metric
    metric_name: process.context_switches
    instrument: counter
    unit: "{context_switch}"
    stability: development
    brief: Context switches.
    entity_associations: [process]
    attributes:
      - ref: process.context_switch.type
    annotations:
      telagent:
        metric_set: sched
  - id: metric_set.telagent.sched
    type: attribute_group
    brief: Scheduler metric set.
    attributes:
      - ref: process.pid
    annotations:
      telagent:
        metric_set:
          name: sched
          map: sched_stats
          map_type: node_hash
          max_entries: 64
          key:
            - field: tgid
              c_type: u32
              attribute: process.pid
              entity: process
              bound: max_entries
          overflow_key: { tgid: 0xffffffff }
          values:
            - field: voluntary
              kind: counter
              metric: process.context_switches
              role: value
              attributes: { process.context_switch.type: voluntary }
            - field: involuntary
              kind: counter
              metric: process.context_switches
              role: value
              attributes: { process.context_switch.type: involuntary }
  - id: entity.process
    type: entity
    name: process
    stability: development
    brief: A process.
    attributes:
      - ref: process.pid
        role: identifying
`

func writeConstsRegistry(t *testing.T, model string) string {
	t.Helper()
	dir := t.TempDir()
	manifest, err := os.ReadFile(filepath.Join("testdata", "schema", "badref", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "model"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model", "sched.yaml"), []byte(model), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestConstantAttributes(t *testing.T) {
	r, err := Load(writeConstsRegistry(t, constsRegistry))
	if err != nil {
		t.Fatal(err)
	}
	vs := r.MetricSets[0].Values
	if len(vs) != 2 || len(vs[0].Attributes) != 1 || vs[0].Attributes[0].Value != "voluntary" ||
		vs[1].Attributes[0].Value != "involuntary" || vs[1].Attributes[0].Attribute.ID != "process.context_switch.type" {
		t.Fatalf("values = %+v", vs)
	}
}

func TestConstantAttributeErrors(t *testing.T) {
	for _, tc := range []struct{ name, old, new, want string }{
		{"not an enum value", "type: involuntary }", "type: sometimes }", `"sometimes" is not a value of enum process.context_switch.type`},
		{"set on some fields only", "              attributes: { process.context_switch.type: involuntary }\n", "", `constant attribute "process.context_switch.type" is set on 1 of the 2 value fields of metric process.context_switches (all or none)`},
		{"same constants twice", "type: involuntary }", "type: voluntary }", "2 value fields with role value for this metric and process.context_switch.type=voluntary"},
		{"unknown attribute", "attributes: { process.context_switch.type: voluntary }", "attributes: { process.nope: x }", `attribute "process.nope" resolves to nothing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model := strings.Replace(constsRegistry, tc.old, tc.new, 1)
			if model == constsRegistry {
				t.Fatalf("%q not found", tc.old)
			}
			_, err := Load(writeConstsRegistry(t, model))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
