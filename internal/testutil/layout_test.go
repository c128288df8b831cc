package testutil

import (
	"fmt"
	"reflect"
	"slices"
	"structs"
	"testing"

	"github.com/telagent/telagent/entity"
)

// recorder is a testing.TB that keeps the errors CheckLayout reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

var layoutSet = entity.MetricSetDesc{
	Name: "demo",
	Key: []entity.FieldDesc{
		{Name: "tgid", CType: "u32"},
		{Name: "dev", CType: "u64"},
		{Name: "op_kind", CType: "u8"},
	},
	KeySize: 24,
	Values: []entity.ValueDesc{
		{Field: "calls", Words: 1, Offset: 0},
		{Field: "lat_ns_sum", Words: 1, Offset: 1},
		{Field: "lat_hist", Words: 3, Offset: 2},
	},
	ValueWords: 5,
}

// What bpf2go generates for the matching C structs.
type demoKey struct {
	_      structs.HostLayout
	Tgid   uint32
	_      [4]byte
	Dev    uint64
	OpKind uint8
	_      [7]byte
}

type demoValue struct {
	_        structs.HostLayout
	Calls    uint64
	LatNsSum uint64
	LatHist  [3]uint64
}

func TestCheckLayoutMatches(t *testing.T) {
	r := &recorder{}
	CheckLayout(r, layoutSet, reflect.TypeOf(demoKey{}), reflect.TypeOf(demoValue{}))
	if len(r.errs) != 0 {
		t.Errorf("errors for a matching layout: %q", r.errs)
	}
}

func TestCheckLayoutMismatches(t *testing.T) {
	type swappedKey struct {
		Dev    uint64
		Tgid   uint32
		OpKind uint8
	}
	type narrowKey struct {
		Tgid   uint32
		_      [4]byte
		Dev    uint32
		_      [4]byte
		OpKind uint8
		_      [7]byte
	}
	type shortValue struct {
		Calls    uint64
		LatNsSum uint64
		LatHist  [2]uint64
	}
	type extraValue struct {
		Calls    uint64
		LatNsSum uint64
		LatHist  [3]uint64
		Extra    uint64
	}
	for _, tc := range []struct {
		name       string
		key, value any
		want       []string
	}{
		{"fields in another order", swappedKey{}, demoValue{}, []string{
			"metric set demo key: testutil.swappedKey has fields Dev, Tgid, OpKind, the schema declares Tgid, Dev, OpKind",
		}},
		{"a field of another size", narrowKey{}, demoValue{}, []string{
			"metric set demo key: field Dev is uint32 (4 bytes), the schema declares uint64 (8 bytes)",
		}},
		{"histogram with fewer buckets", demoKey{}, shortValue{}, []string{
			"metric set demo value: field LatHist is [2]uint64 (16 bytes), the schema declares [3]uint64 (24 bytes)",
			"metric set demo value: testutil.shortValue is 32 bytes, the schema declares 40",
		}},
		{"a field the schema does not declare", demoKey{}, extraValue{}, []string{
			"metric set demo value: testutil.extraValue has fields Calls, LatNsSum, LatHist, Extra, the schema declares Calls, LatNsSum, LatHist",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			CheckLayout(r, layoutSet, reflect.TypeOf(tc.key), reflect.TypeOf(tc.value))
			if !slices.Equal(r.errs, tc.want) {
				t.Errorf("errors:\n%q\nwant:\n%q", r.errs, tc.want)
			}
		})
	}
}
