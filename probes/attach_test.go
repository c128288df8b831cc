package probes_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes"
)

// variantObjects is one variant's programs, as a probe declares them.
type variantObjects struct {
	Prog *ebpf.Program `ebpf:"prog"`
}

// variantSpec is a collection with one raw_tp program, "prog", that
// returns 0.
func variantSpec() *ebpf.CollectionSpec {
	return &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{"prog": {
		Name: "prog", Type: ebpf.RawTracepoint, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	}}}
}

// attachRaw attaches objs' program to sys_enter, remembering its id.
func attachRaw(objs *variantObjects, id *ebpf.ProgramID) func(*[]link.Link) error {
	return func(links *[]link.Link) error {
		info, err := objs.Prog.Info()
		if err != nil {
			return err
		}
		*id, _ = info.ID()
		return probes.AttachRawTracepoints(links, []string{"sys_enter"}, objs.Prog)
	}
}

// LoadAndAttach with a first variant that loads and attaches one link and
// then fails: that link is detached and the variant's program closed and
// unloaded, the second variant is what runs, and the error of a forced or
// failing choice names every variant tried.
func TestLoadAndAttach(t *testing.T) {
	testutil.RequireRoot(t)
	var first, second variantObjects
	var firstID, secondID ebpf.ProgramID
	var links []link.Link
	defer func() { probes.CloseLinks(links); second.Prog.Close() }()
	injected := errors.New("injected attach failure")
	name, err := probes.LoadAndAttach("test", variantSpec(), nil, &links, "",
		probes.Variant{Name: "tp_btf", Objects: &first, Attach: func(l *[]link.Link) error {
			if err := attachRaw(&first, &firstID)(l); err != nil {
				return err
			}
			return injected // after one link attached
		}},
		probes.Variant{Name: "raw_tp", Objects: &second, Attach: attachRaw(&second, &secondID)})
	if err != nil || name != "raw_tp" {
		t.Fatalf("LoadAndAttach: %q, %v; want raw_tp after tp_btf's attach failed", name, err)
	}
	if first.Prog != nil {
		t.Error("the failed variant's objects were not zeroed")
	}
	if firstID == 0 || len(testutil.StillLoaded([]ebpf.ProgramID{firstID}, 3*time.Second)) > 0 {
		t.Errorf("the failed variant's program %d is still loaded (its link or fd outlived it)", firstID)
	}
	if len(links) != 1 || second.Prog == nil {
		t.Fatalf("%d links, program %v: want the second variant's one link", len(links), second.Prog)
	}
	if info, err := links[0].Info(); err != nil || info.Program != secondID {
		t.Errorf("the link left runs program %v (%v), want the second variant's %d", info, err, secondID)
	}

	// Forced: only that variant; unknown: a clear error; all failing:
	// each variant's reason.
	var forced variantObjects
	tried := false
	name, err = probes.LoadAndAttach("test", variantSpec(), nil, &links, "raw_tp",
		probes.Variant{Name: "tp_btf", Objects: &forced, Attach: func(*[]link.Link) error { tried = true; return nil }},
		probes.Variant{Name: "raw_tp", Objects: &forced, Attach: func(*[]link.Link) error { return injected }})
	if tried || name != "" || err == nil || strings.Contains(err.Error(), "tp_btf") || !strings.Contains(err.Error(), "raw_tp: injected attach failure") {
		t.Errorf("forced raw_tp: tp_btf tried %v, %q, %v", tried, name, err)
	}
	if _, err = probes.LoadAndAttach("test", variantSpec(), nil, &links, "fentry", probes.Variant{Name: "tp_btf", Objects: &forced}); err == nil ||
		err.Error() != `load test programs: no "fentry" variant` {
		t.Errorf("unknown variant: %v", err)
	}
	bad := variantSpec()
	bad.Programs["prog"].Instructions = asm.Instructions{asm.Return()} // R0 unset: the verifier refuses it
	_, err = probes.LoadAndAttach("test", bad, nil, &links, "",
		probes.Variant{Name: "tp_btf", Objects: &forced}, probes.Variant{Name: "raw_tp", Objects: &forced})
	if err == nil || !strings.HasPrefix(err.Error(), "load test programs: tp_btf: ") || !strings.Contains(err.Error(), "; raw_tp: ") {
		t.Errorf("both failing: %v", err)
	}
	if len(links) != 1 {
		t.Errorf("%d links after the failed calls, want the first call's one", len(links))
	}
}
