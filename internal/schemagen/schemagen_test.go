package schemagen

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const realSchema = "../../schema"

func load(t *testing.T) *Registry {
	t.Helper()
	r, err := Load(realSchema)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSyscallsMetricSet(t *testing.T) {
	r := load(t)
	// Other probes add their own sets: look the syscalls set up by name.
	var s *MetricSet
	for _, ms := range r.MetricSets {
		if ms.Name == "syscalls" {
			s = ms
		}
	}
	if s == nil {
		t.Fatalf("no metric set named syscalls")
	}
	if s.Name != "syscalls" || s.Map != "syscall_stats" || s.MapType != "node_hash" || s.MaxEntries != 10240 {
		t.Errorf("set header: %+v", s)
	}
	if s.KeySize != 8 {
		t.Errorf("KeySize = %d, want 8", s.KeySize)
	}
	if s.ValueWords != 32 {
		t.Errorf("ValueWords = %d, want 32", s.ValueWords)
	}
	wantKey := []struct {
		field, ctype, attr, entity string
		bound                      uint32
		offset                     int
	}{
		{"tgid", "u32", "process.pid", "process", 0, 0},
		{"nr", "u32", "telagent.syscall.name", "", 1024, 4},
	}
	if len(s.Key) != len(wantKey) {
		t.Fatalf("key fields: got %d, want %d", len(s.Key), len(wantKey))
	}
	for i, w := range wantKey {
		k := s.Key[i]
		if k.Field != w.field || k.CType != w.ctype || k.Attribute.ID != w.attr || k.Entity != w.entity || k.Bound != w.bound || k.Offset != w.offset {
			t.Errorf("key[%d] = %+v (attribute %s), want %+v", i, k, k.Attribute.ID, w)
		}
	}
	wantVals := []struct {
		field, kind, metric, role string
		scale                     float64
		words, offset             int
	}{
		{"calls", "counter", "telagent.syscall.duration", "count", 1, 1, 0},
		{"errors", "counter", "telagent.syscall.errors", "value", 1, 1, 1},
		{"duration_ns_sum", "sum", "telagent.syscall.duration", "sum", 1e-9, 1, 2},
		{"duration_hist", "log2_histogram", "telagent.syscall.duration", "buckets", 1, 29, 3},
	}
	if len(s.Values) != len(wantVals) {
		t.Fatalf("value fields: got %d, want %d", len(s.Values), len(wantVals))
	}
	for i, w := range wantVals {
		v := s.Values[i]
		if v.Field != w.field || v.Kind != w.kind || v.Metric != w.metric || v.Role != w.role || v.Scale != w.scale || v.Words != w.words || v.Offset != w.offset {
			t.Errorf("value[%d] = %+v, want %+v", i, v, w)
		}
	}
	if s.OverflowKey["tgid"] != 0xffffffff || s.OverflowKey["nr"] != 0xffffffff || len(s.OverflowKey) != 2 {
		t.Errorf("overflow key = %v", s.OverflowKey)
	}
	if got := s.Bound(); got != 10240 {
		t.Errorf("Bound() = %d, want 10240", got)
	}
	if r.HistBuckets != 29 || r.HistMinShift != 10 {
		t.Errorf("hist layout = %d/%d, want 29/10", r.HistBuckets, r.HistMinShift)
	}
}

func TestRegistryContents(t *testing.T) {
	r := load(t)
	var ids []string
	for _, a := range r.Attributes {
		ids = append(ids, a.ID)
	}
	// The registry grows with every probe: these must be among them.
	want := []string{"host.id", "host.name", "os.type", "otel.metric.overflow", "process.command",
		"process.creation.time", "process.executable.name", "process.pid", "telagent.metric_set.name", "telagent.syscall.name"}
	if !slices.IsSorted(ids) {
		t.Errorf("attributes are not sorted by id: %q", ids)
	}
	for _, id := range want {
		if !slices.Contains(ids, id) {
			t.Fatalf("attributes = %q, want them to include %q", ids, id)
		}
	}
	if a := r.AttributeByID["process.pid"]; a.Type != "int" || a.Source != "semconv v1.44.0" || a.Stability != "release_candidate" {
		t.Errorf("process.pid = %+v", a)
	}
	if a := r.AttributeByID["telagent.syscall.name"]; a.Bound != 1024 || a.Source != SourceRegistry {
		t.Errorf("telagent.syscall.name = %+v", a)
	}
	entities := map[string]*Entity{}
	for _, e := range r.Entities {
		entities[e.Name] = e
	}
	if entities["host"] == nil || entities["process"] == nil {
		t.Fatalf("entities = %+v", r.Entities)
	}
	if p := entities["process"]; len(p.Identifying) != 2 || p.Identifying[0].ID != "process.pid" || p.Identifying[1].ID != "process.creation.time" {
		t.Errorf("process identifying = %+v", p.Identifying)
	}
	var names []string
	metrics := map[string]*Metric{}
	for _, m := range r.Metrics {
		names = append(names, m.Name)
		metrics[m.Name] = m
	}
	if !slices.IsSorted(names) {
		t.Errorf("metrics = %q, want them sorted by name", names)
	}
	for _, n := range []string{"telagent.metric_set.overflows", "telagent.syscall.duration", "telagent.syscall.errors"} {
		if metrics[n] == nil {
			t.Fatalf("metrics = %q, want them to include %q", names, n)
		}
	}
	if m := metrics["telagent.syscall.duration"]; m.Instrument != "histogram" || m.Unit != "s" {
		t.Errorf("telagent.syscall.duration = %s %s", m.Instrument, m.Unit)
	}
	if m := metrics["telagent.syscall.errors"]; m.Instrument != "counter" || m.Unit != "{error}" {
		t.Errorf("telagent.syscall.errors = %s %s", m.Instrument, m.Unit)
	}
}

func TestBadRef(t *testing.T) {
	_, err := Load("testdata/schema/badref")
	want := `internal/schemagen/testdata/schema/badref/model/x.yaml: group metric.telagent.bogus: ref "process.no_such_attribute" resolves to nothing`
	if err == nil || err.Error() != want {
		t.Fatalf("Load(badref) error = %v\nwant %s", err, want)
	}
}

func TestValidationErrors(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(realSchema, "model", "syscalls.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown role", "role: sum", "role: total", `role "total" is not valid for kind sum`},
		{"overflow too wide", "nr: 0xffffffff }", "nr: 0x1ffffffff }", "does not fit u32"},
		{"unknown metric", "metric: telagent.syscall.errors\n", "metric: telagent.syscall.oops\n", `no metric named "telagent.syscall.oops"`},
		{"annotation typo", "map_type: node_hash", "map_typ: node_hash", "field map_typ not found"},
		{"bound over attribute bound", "bound: 1024\n          overflow_key", "bound: 2048\n          overflow_key", "exceeds the bound 1024"},
		{"errors of no histogram", "errors_of: telagent.syscall.duration", "errors_of: telagent.syscall.errors", `annotations.telagent.errors_of: "telagent.syscall.errors" is no histogram metric of the registry`},
		{"errors of an unknown metric", "errors_of: telagent.syscall.duration", "errors_of: telagent.syscall.time", `"telagent.syscall.time" is no histogram metric`},
		{"flag not a bound", "name: syscalls-max-entries", "name: syscalls-entries", `max_entries_flag: name "syscalls-entries" must be a flag name ending in -max-entries`},
		{"flag without usage", `usage: "bound of (process, syscall) tuples; more go to the overflow series"`, `usage: ""`, "with a usage"},
		{"errors on a histogram", "metric_set: syscalls\n\n  - id: metric.telagent.syscall.errors", "metric_set: syscalls\n        errors_of: telagent.syscall.duration\n\n  - id: metric.telagent.syscall.errors", "only a counter counts errors, this is a histogram"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mod := bytes.Replace(base, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(mod, base) {
				t.Fatalf("%q not found in syscalls.yaml", tc.old)
			}
			dir := t.TempDir()
			copyFile(t, filepath.Join(realSchema, "manifest.yaml"), filepath.Join(dir, "manifest.yaml"))
			copyFile(t, filepath.Join(realSchema, "model", "entities.yaml"), filepath.Join(dir, "model", "entities.yaml"))
			if err := os.WriteFile(filepath.Join(dir, "model", "syscalls.yaml"), mod, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

var opts = Options{GoFile: "entity/zz_generated.go", CDir: "bpf/include/gen", DocsFile: "docs/telemetry.md"}

func TestDeterministic(t *testing.T) {
	a, err := load(t).Outputs(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := load(t).Outputs(opts)
	if err != nil {
		t.Fatal(err)
	}
	// One header per metric set, the docs and the Go descriptors.
	want := []string{"docs/telemetry.md", "entity/zz_generated.go"}
	for _, s := range load(t).MetricSets {
		want = append(want, "bpf/include/gen/"+s.Name+".h")
	}
	slices.Sort(want)
	if got := sortedKeys(a); !slices.Equal(got, want) {
		t.Fatalf("outputs = %q, want %q", got, want)
	}
	for p := range a {
		if !bytes.Equal(a[p], b[p]) {
			t.Errorf("%s differs between two runs", p)
		}
		header := []byte(Header)
		if p == "docs/telemetry.md" {
			header = []byte("<!-- Code generated by schemagen from schema/; DO NOT EDIT. -->")
		}
		if !bytes.HasPrefix(a[p], header) {
			t.Errorf("%s does not start with the generated-code header", p)
		}
	}

	// Generating into a directory twice writes nothing the second time.
	dir := t.TempDir()
	abs := Options{GoFile: filepath.Join(dir, opts.GoFile), CDir: filepath.Join(dir, opts.CDir), DocsFile: filepath.Join(dir, opts.DocsFile)}
	w1, err := Generate(realSchema, abs)
	if err != nil || len(w1) != len(want) {
		t.Fatalf("first Generate wrote %q, %v", w1, err)
	}
	w2, err := Generate(realSchema, abs)
	if err != nil || len(w2) != 0 {
		t.Fatalf("second Generate wrote %q, %v", w2, err)
	}
}

// TestGeneratedUpToDate fails when the committed outputs are stale.
func TestGeneratedUpToDate(t *testing.T) {
	outs, err := load(t).Outputs(Options{
		GoFile: "../../" + opts.GoFile, CDir: "../../" + opts.CDir, DocsFile: "../../" + opts.DocsFile})
	if err != nil {
		t.Fatal(err)
	}
	if stale := Stale(outs); len(stale) > 0 {
		t.Errorf("stale generated files %q: run go generate ./internal/schemagen/", stale)
	}
}

func TestHistBoundsSeconds(t *testing.T) {
	b := HistBoundsSeconds(29, 10)
	if len(b) != 28 || b[0] != 1.024e-6 || b[27] != 137.438953472 || b[20] != 1.073741824 {
		t.Errorf("bounds = %v", b)
	}
}

func TestCamelCase(t *testing.T) {
	for in, want := range map[string]string{
		"host.id": "HostID", "os.type": "OSType", "process.pid": "ProcessPID",
		"process.creation.time": "ProcessCreationTime", "otel.metric.overflow": "OtelMetricOverflow",
		"telagent.syscall.name": "TelagentSyscallName", "process.context_switches": "ProcessContextSwitches",
	} {
		if got := CamelCase(in); got != want {
			t.Errorf("CamelCase(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCHeaderCompiles checks the generated header with clang's BPF target
// (its _Static_asserts pin the layout), when clang is installed.
func TestCHeaderCompiles(t *testing.T) {
	var clang string
	for _, c := range []string{"clang-19", "clang-16", "clang"} {
		if p, err := exec.LookPath(c); err == nil {
			clang = p
			break
		}
	}
	if clang == "" {
		t.Skip("no clang")
	}
	hs, err := load(t).GenerateC()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range hs {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := "#include \"vmlinux.h\"\n#include \"syscalls.h\"\n#include \"syscalls.h\"\nstruct syscalls_value v;\nstruct syscalls_key k = { SYSCALLS_OVERFLOW_TGID, SYSCALLS_OVERFLOW_NR };\nint n = SYSCALLS_MAX_ENTRIES + TELAGENT_HIST_MIN_SHIFT;\n"
	if err := os.WriteFile(filepath.Join(dir, "t.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(clang, "-target", "bpf", "-fsyntax-only", "-Wall", "-Werror",
		"-I", "../../bpf/include", "-I", dir, filepath.Join(dir, "t.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", clang, err, out)
	}
}

// TestImports: semconv metrics and entities come from the excerpt, carry
// the registry's note and extra attributes, and a ref's bound applies to
// this registry's copy of a semconv attribute only.
func TestImports(t *testing.T) {
	r, err := Load(realSchema)
	if err != nil {
		t.Fatal(err)
	}
	var disk *Metric
	for _, m := range r.Metrics {
		if m.Name == "process.disk.io" {
			disk = m
		}
	}
	if disk == nil || disk.Source != "semconv v1.44.0" || disk.MetricSet != "blockio" || disk.Unit != "By" ||
		len(disk.Extra) != 1 || disk.Extra[0].ID != "system.device" || !strings.Contains(disk.Note, "/sys/block/<dev>/stat") {
		t.Fatalf("process.disk.io = %+v", disk)
	}
	var proc *Entity
	for _, e := range r.Entities {
		if e.Name == "process" {
			proc = e
		}
	}
	if proc == nil || proc.Source != "semconv v1.44.0" || len(proc.Identifying) != 2 ||
		proc.Identifying[0].ID != "process.pid" || proc.Identifying[1].ID != "process.creation.time" {
		t.Fatalf("process entity = %+v", proc)
	}
	if a := r.AttributeByID["otel.component.name"]; a == nil || a.Bound != 1 {
		t.Errorf("otel.component.name = %+v, want bound 1 from the ref in agent.yaml", a)
	}
	sc, err := loadExcerpt()
	if err != nil {
		t.Fatal(err)
	}
	if b := sc.attrs["otel.component.name"].Bound; b != 0 {
		t.Errorf("the shared excerpt's otel.component.name has bound %d after Load", b)
	}
}

// Semconv's Markdown links are relative to its repository (](/docs/...));
// copied into docs/telemetry.md they pointed nowhere. Every one must now be
// an absolute link into the pinned tag, and at least one exists (the
// version-attribute links of host.image.version and os.version).
func TestDocsSemconvLinksAbsolute(t *testing.T) {
	doc, err := load(t).GenerateDocs()
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(doc, []byte("](/")); i >= 0 {
		t.Errorf("relative link in docs/telemetry.md: %q", doc[i:min(len(doc), i+60)])
	}
	want := []byte("](" + SemconvRepoURL + "/blob/v1.44.0/docs/resource/README.md#version-attributes)")
	if !bytes.Contains(doc, want) {
		t.Errorf("docs/telemetry.md lacks %s", want)
	}
}

// Entity refs' id_keys come from the schema: semconv's identifying
// attributes where it has them (process, k8s.pod), the registry's
// entity_ref_ids for host, os and container; description_keys are the rest.
func TestEntityRefKeys(t *testing.T) {
	r := load(t)
	want := map[string]string{
		"host": "host.id", "os": "os.type", "container": "container.id",
		"process": "process.pid, process.creation.time", "k8s.pod": "k8s.pod.uid",
	}
	for _, e := range r.Entities {
		w, ok := want[e.Name]
		if !ok {
			continue
		}
		delete(want, e.Name)
		if got := attrIDs(e.RefID); got != w {
			t.Errorf("entity %s: ref id_keys %q, want %q", e.Name, got, w)
		}
		for _, a := range e.RefDescriptive {
			if containsAttr(e.RefID, a) {
				t.Errorf("entity %s: %s both identifying and descriptive in its ref", e.Name, a.ID)
			}
		}
		if len(e.RefID)+len(e.RefDescriptive) != len(e.Identifying)+len(e.Descriptive) {
			t.Errorf("entity %s: ref keys %d+%d, attributes %d+%d", e.Name, len(e.RefID), len(e.RefDescriptive), len(e.Identifying), len(e.Descriptive))
		}
	}
	if len(want) > 0 {
		t.Errorf("entities missing: %v", want)
	}
}
