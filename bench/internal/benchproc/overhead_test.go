package benchproc

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// TestBPFRunTime runs a program of this process a known number of times
// with kernel BPF stats on: the run count BPFRunTime reports must grow by
// exactly that number.
func TestBPFRunTime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads a BPF program and sets kernel.bpf_stats_enabled")
	}
	restore, err := EnableBPFStats()
	if err != nil {
		t.Fatalf("enable BPF stats: %v", err)
	}
	defer restore()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer prog.Close()
	ns0, runs0, err := BPFRunTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 64), Repeat: n}); err != nil {
		t.Fatalf("test run: %v", err)
	}
	ns1, runs1, err := BPFRunTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if runs1-runs0 != n {
		t.Errorf("runs grew by %d, want %d", runs1-runs0, n)
	}
	if ns1 <= ns0 {
		t.Errorf("run time did not grow: %d -> %d", ns0, ns1)
	}
}

func TestBPFRunTimeNoPrograms(t *testing.T) {
	// pid 2 is kthreadd (or absent in a pid namespace): no BPF descriptors.
	if _, _, err := BPFRunTime(2); err == nil {
		t.Error("no error for a process without BPF programs")
	}
}

// TestInterleaveReport drives Interleave and Report with fixed samples and
// checks the medians, overheads, ratios and rotation in the JSON output.
func TestInterleaveReport(t *testing.T) {
	var order []string
	fixed := func(name string, vals ...Sample) func(context.Context) (Sample, error) {
		i := 0
		return func(context.Context) (Sample, error) {
			order = append(order, name)
			v := vals[i%len(vals)]
			i++
			return v, nil
		}
	}
	s := func(wall, cpu, bpf float64) Sample { return Sample{Wall: wall, CPU: cpu, BPF: bpf, Runs: 2} }
	configs := []*Config{
		{Name: "bare", Measure: fixed("bare", s(100, 50, 0), s(110, 60, 0), s(90, 40, 0))},
		{Name: "agent", Measure: fixed("agent", s(130, 70, 20), s(120, 65, 30), s(125, 66, 25))},
		{Name: "ref", Measure: fixed("ref", s(160, 90, 50))},
		{Name: "broken", Measure: func(context.Context) (Sample, error) {
			order = append(order, "broken")
			return Sample{}, errors.New("boom")
		}},
		{Name: "skipped", Skip: "not here"},
	}
	if err := Interleave(context.Background(), configs, 3); err != nil {
		t.Fatal(err)
	}
	// Rotation: round 2 starts with the second active configuration; the
	// failed one runs once only.
	want := []string{"bare", "agent", "ref", "broken", "agent", "ref", "bare", "ref", "bare", "agent"}
	if len(order) != len(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
	out := filepath.Join(t.TempDir(), "r.json")
	if code := Report(configs, "bare", [][2]string{{"agent", "ref"}}, "op", map[string]any{"x": 1}, out); code != 0 {
		t.Fatalf("Report returned %d", code)
	}
	var doc struct {
		X       int      `json:"x"`
		Configs []Result `json:"configurations"`
		Ratios  []Ratio  `json:"ratios"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	byName := map[string]Result{}
	for _, r := range doc.Configs {
		byName[r.Name] = r
	}
	if r := byName["agent"]; r.Median != 125 || r.OverheadNs != 25 || r.CPUOverNs != 16 || r.BPFNs != 25 || r.BPFRuns != 2 {
		t.Errorf("agent: %+v", r)
	}
	if byName["broken"].Status != "failed" || byName["skipped"].Status != "skipped" || doc.X != 1 {
		t.Errorf("statuses or meta wrong: %+v", doc)
	}
	// wall (125-100)/(160-100), CPU (66-50)/(90-50), BPF 25/50
	wantRatios := []float64{25.0 / 60, 16.0 / 40, 0.5}
	if len(doc.Ratios) != len(wantRatios) {
		t.Fatalf("ratios %+v", doc.Ratios)
	}
	for i, w := range wantRatios {
		if doc.Ratios[i].Value == nil || *doc.Ratios[i].Value-w > 1e-9 || w-*doc.Ratios[i].Value > 1e-9 {
			t.Errorf("ratio %s = %v, want %v", doc.Ratios[i].Formula, doc.Ratios[i].Value, w)
		}
	}
}
