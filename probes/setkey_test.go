package probes

import (
	"strings"
	"testing"

	"github.com/telagent/telagent/entity"
)

func TestBPF2GoName(t *testing.T) {
	for in, want := range map[string]string{
		"tgid": "Tgid", "nr": "Nr", "duration_ns_sum": "DurationNsSum", "duration_hist": "DurationHist",
		"cgroup_id": "CgroupId", "runq_ns_sum": "RunqNsSum", "oncpu_ns": "OncpuNs",
	} {
		if got := BPF2GoName(in); got != want {
			t.Errorf("BPF2GoName(%q) = %q, want %q", in, got, want)
		}
	}
}

// A key type gets the schema's overflow tuple field by field, and a type
// that cannot hold it is refused with the field's name.
func TestOverflowKey(t *testing.T) {
	type key struct {
		Tgid uint32
		Nr   uint32
	}
	set := entity.MetricSetDesc{Name: "s", Key: []entity.FieldDesc{{Name: "tgid"}, {Name: "nr"}},
		OverflowKey: map[string]uint64{"tgid": 0xffffffff, "nr": 1023}}
	k, err := overflowKey[key](set)
	if err != nil || k != (key{Tgid: 0xffffffff, Nr: 1023}) {
		t.Errorf("overflowKey = %+v, %v", k, err)
	}
	type short struct {
		Tgid uint32
		Nr   uint8
	}
	if _, err := overflowKey[short](set); err == nil || !strings.Contains(err.Error(), "nr=0x3ff does not fit") {
		t.Errorf("a u8 field for 1023: %v", err)
	}
	type missing struct{ Tgid uint32 }
	if _, err := overflowKey[missing](set); err == nil || !strings.Contains(err.Error(), "no unsigned field Nr for key field nr") {
		t.Errorf("no field for nr: %v", err)
	}
}
