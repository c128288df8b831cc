package schemagen

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// checkTestdata is where each rule's failing registry lives:
// testdata/schema/<rule>/ (and testdata/schema/valid/, which passes).
const checkTestdata = "testdata/schema/"

// TestCheckRules runs the checker on one failing registry per rule and
// expects exactly the findings listed, message for message.
func TestCheckRules(t *testing.T) {
	const p = "internal/schemagen/testdata/schema/"
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{"yaml", []string{
			p + `yaml/model/x.yaml: yaml: line 1: did not find expected ',' or ']' [yaml]`,
		}},
		{"duplicate-id", []string{
			p + `duplicate-id/model/x.yaml: group metric.telagent.widget.operations: group id is already used in ` + p + `duplicate-id/model/x.yaml [duplicate-id]`,
		}},
		{"naming", []string{
			p + `naming/model/x.yaml: group metric.telagent.widget.bad_name: metric name "telagent.Widget.operations" does not follow OTel naming (lowercase, dot-separated namespaces of snake_case words, each starting with a letter) [naming]`,
		}},
		{"brief", []string{
			p + `brief/model/x.yaml: group metric.telagent.widget.errors: group has no brief [brief]`,
		}},
		{"stability", []string{
			p + `stability/model/x.yaml: group metric.telagent.widget.errors: metric has no stability (want development, alpha, beta, release_candidate or stable) [stability]`,
		}},
		{"telagent-namespace", []string{
			p + `telagent-namespace/model/x.yaml: group metric.widget.operations: metric "widget.operations" is outside the telagent. namespace and is not a semconv v1.44.0 metric of the pinned excerpt (invent names under telagent., or copy the upstream definition into internal/schemagen/semconv_v1.44.0.yaml) [telagent-namespace]`,
			p + `telagent-namespace/model/x.yaml: group registry.widget: attribute "widget.color" is outside the telagent. namespace: names telagent invents live under telagent. [telagent-namespace]`,
			p + `telagent-namespace/model/x.yaml: group registry.widget: attribute "process.owner" redefines the semconv v1.44.0 attribute: reference it with ref: process.owner [telagent-namespace]`,
		}},
		{"semconv-metric", []string{
			p + `semconv-metric/model/x.yaml: group metric.process.context_switches: metric "process.context_switches" reuses the semconv v1.44.0 metric, which is a counter in "{context_switch}", but is declared a gauge in "{context_switch}" [semconv-metric]`,
		}},
		{"plural-namespace", []string{
			p + `plural-namespace/model/x.yaml: group metric.telagent.widgets.operations: metric name "telagent.widgets.operations": namespace "widgets" is plural (namespaces are singular) [plural-namespace]`,
		}},
		{"no-total", []string{
			p + `no-total/model/x.yaml: group metric.telagent.widget.operations_total: metric name "telagent.widget.operations_total": "operations_total": no _total (a cumulative counter is a total already) [no-total]`,
		}},
		{"unit", []string{
			p + `unit/model/x.yaml: group metric.telagent.widget.io: metric "telagent.widget.io": unit "bytes" is not a UCUM unit (use s, By, 1 or a {annotation}, e.g. By for bytes, s for seconds) [unit]`,
			p + `unit/model/x.yaml: group metric.telagent.widget.wait: metric "telagent.widget.wait": unit "ms": durations are in s (convert at export), not ms [unit]`,
		}},
		{"count-unit", []string{
			p + `count-unit/model/x.yaml: group metric.telagent.widget.errors: counter "telagent.widget.errors" has unit 1: counts take a {annotation} unit (e.g. {error}); ratios are gauges [count-unit]`,
			p + `count-unit/model/x.yaml: group metric.telagent.widget.connections: updowncounter "telagent.widget.connections" is plural: UpDownCounters are not pluralized (name the count …connection.count) [count-unit]`,
			p + `count-unit/model/x.yaml: group metric.telagent.widget.retries: metric "telagent.widget.retries": annotation {retries} is plural (annotations are singular) [count-unit]`,
		}},
		{"duration", []string{
			p + `duration/model/x.yaml: group metric.telagent.widget.duration: metric "telagent.widget.duration" ends in .duration: it must be a histogram in s, not a counter in "s" [duration]`,
			p + `duration/model/x.yaml: group metric.telagent.widget.busy.time: metric "telagent.widget.busy.time" ends in .time: it must be a counter in s (seconds in total), not a gauge in "s" [duration]`,
		}},
		{"ref", []string{
			p + `ref/model/x.yaml: group metric.telagent.widget.errors: ref "process.no_such_attribute" resolves to nothing (not defined in the registry, in the semconv v1.44.0 excerpt, nor built in) [ref]`,
		}},
		{"entity-identity", []string{
			p + `entity-identity/model/x.yaml: group entity.telagent.widget: entity "telagent.widget": attribute "telagent.widget.kind" has no role (want identifying or descriptive) [entity-identity]`,
			p + `entity-identity/model/x.yaml: group entity.telagent.widget: entity "telagent.widget": attribute "process.pid" has role "owner" (want identifying or descriptive) [entity-identity]`,
			p + `entity-identity/model/x.yaml: group entity.telagent.widget: entity "telagent.widget" has no identifying attribute (role: identifying) [entity-identity]`,
		}},
		{"entity-note", []string{
			p + `entity-note/model/x.yaml: group entity.telagent.widget: entity "telagent.widget" has no note stating its stability promise (what its identity survives: agent restarts, reboots, …) [entity-note]`,
		}},
		{"event-name", []string{
			p + `event-name/model/x.yaml: group event.telagent.widget_started: event name "telagent.widget_started" is not telagent.<entity>[.<thing>].<verb> (<entity> one of process; <verb> one lowercase word) [event-name]`,
			p + `event-name/model/x.yaml: group event.telagent.memory.oom_kill: event name "telagent.memory.oom_kill" is not telagent.<entity>[.<thing>].<verb> (<entity> one of process; <verb> one lowercase word) [event-name]`,
		}},
		{"bound", []string{
			p + `bound/model/x.yaml: group metric.telagent.widget.errors: metric "telagent.widget.errors": attribute "telagent.widget.color" has no bound (declare annotations.telagent.bound, make it an enum, or carry it in a metric-set key field) [bound]`,
		}},
		{"bound-metric-set", []string{
			p + `bound-metric-set/model/x.yaml: group metric_set.telagent.widget: metric set "widget": attribute "process.pid" (key field tgid) has no bound (a number, or max_entries) [bound]`,
		}},
		{"structure", []string{
			p + `structure/model/x.yaml: group metric_set.telagent.widget: annotations.telagent.metric_set: overflow_key is required [structure]`,
		}},
		{"valid", nil},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			r, findings := CheckDir(checkTestdata + tc.dir)
			var got []string
			for _, f := range findings {
				got = append(got, f.String())
				// The rule named in the directory is the one that fires.
				if rule, _, _ := strings.Cut(tc.dir, "-metric-set"); f.Rule != rule {
					t.Errorf("finding of rule %s in the registry for rule %s: %s", f.Rule, tc.dir, f)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if (r != nil) != (len(findings) == 0 || tc.dir == "bound") {
				t.Errorf("registry returned = %v with %d findings", r != nil, len(findings))
			}
		})
	}
}

// TestEveryRuleHasAFailingRegistry keeps Rules and testdata in step.
func TestEveryRuleHasAFailingRegistry(t *testing.T) {
	for _, rule := range Rules {
		if _, err := os.Stat(checkTestdata + rule.Name + "/model/x.yaml"); err != nil {
			t.Errorf("rule %s has no failing registry: %v", rule.Name, err)
			continue
		}
		_, findings := CheckDir(checkTestdata + rule.Name)
		if !slices.ContainsFunc(findings, func(f Finding) bool { return f.Rule == rule.Name }) {
			t.Errorf("the registry for rule %s does not break it: %v", rule.Name, findings)
		}
	}
}

// TestRealRegistryPasses: schema/ must pass every rule.
func TestRealRegistryPasses(t *testing.T) {
	r, findings := CheckDir(realSchema)
	for _, f := range findings {
		t.Error(f)
	}
	if r == nil && len(findings) == 0 {
		t.Fatal("no registry and no findings")
	}
}

// TestCheckFS: Check on an fs.FS names files after the display
// root, wherever the process runs.
func TestCheckFS(t *testing.T) {
	r, findings := Check(os.DirFS(checkTestdata+"ref"), "schema")
	want := `schema/model/x.yaml: group metric.telagent.widget.errors: ref "process.no_such_attribute" resolves to nothing (not defined in the registry, in the semconv v1.44.0 excerpt, nor built in) [ref]`
	if r != nil || len(findings) != 1 || findings[0].String() != want {
		t.Errorf("findings %v, want [%s]", findings, want)
	}
}

func TestUCUM(t *testing.T) {
	for _, u := range []string{"s", "By", "1", "{call}", "{context_switch}", "By/s", "{packet}/s", "KiBy", "MiBy", "Hz", "Cel", "%", "bit/s", "m2"} {
		if msg := ucumProblem(u); msg != "" {
			t.Errorf("ucumProblem(%q) = %q, want none", u, msg)
		}
	}
	for _, u := range []string{"", "bytes", "B", "seconds", "ns", "ms", "us", "min", "h", "{Calls}", "{call", "count", "By/sec"} {
		if ucumProblem(u) == "" {
			t.Errorf("ucumProblem(%q) found nothing wrong", u)
		}
	}
}

func TestPlural(t *testing.T) {
	for w, want := range map[string]bool{
		"process": false, "status": false, "k8s": false, "os": false, "syscall": false, "metric_set": false,
		"widgets": true, "events": true, "metric_sets": true, "calls": true, "address": false,
	} {
		if got := plural(w); got != want {
			t.Errorf("plural(%q) = %v, want %v", w, got, want)
		}
	}
}

func TestEventName(t *testing.T) {
	entities := []string{"host", "process", "telagent.numa_node"}
	for name, want := range map[string]bool{
		"telagent.process.exec":          true,
		"telagent.process.oom.kill":      true,
		"telagent.numa_node.offline":     true,
		"telagent.process.exec.fail":     true,
		"telagent.process":               false,
		"telagent.process.a.b.exec":      false,
		"telagent.memory.oom_kill":       false,
		"telagent.process.oom_kill":      false,
		"process.exec":                   false,
		"telagent.telagent.numa_node.up": false,
	} {
		if got := eventNameOK(name, entities); got != want {
			t.Errorf("eventNameOK(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestSemconvExcerpt: the pinned excerpt is self-contained: the semconv
// metrics it holds reference only attributes it holds, and each has an
// instrument and a unit for the semconv-metric rule to compare.
func TestSemconvExcerpt(t *testing.T) {
	ix, err := loadSemconvIndex()
	if err != nil {
		t.Fatal(err)
	}
	if ix.version != "v1.44.0" {
		t.Errorf("excerpt version %q", ix.version)
	}
	var sc yamlFile
	if err := yaml.Unmarshal(semconvExcerpt, &sc); err != nil {
		t.Fatal(err)
	}
	for _, g := range sc.Groups {
		if g.Type != "metric" {
			continue
		}
		if m := ix.metrics[g.MetricName]; m.instrument == "" || m.unit == "" {
			t.Errorf("semconv metric %s: instrument %q, unit %q", g.MetricName, m.instrument, m.unit)
		}
		for _, a := range g.Attributes {
			if !ix.attrs[a.Ref] {
				t.Errorf("semconv metric %s references %s, which the excerpt does not define", g.MetricName, a.Ref)
			}
		}
	}
	if len(ix.metrics) == 0 || !ix.attrs["process.pid"] {
		t.Errorf("excerpt index: %d metrics, process.pid %v", len(ix.metrics), ix.attrs["process.pid"])
	}
}
