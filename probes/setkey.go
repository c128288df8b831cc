package probes

import (
	"fmt"
	"reflect"
	"strings"
	"unicode"

	"github.com/telagent/telagent/entity"
)

// overflowKey is desc's overflow tuple as K, the set's bpf2go key type:
// each field desc.Key names, under bpf2go's Go name for it, holds the
// schema's overflow_key value, so no probe spells its key fields by hand.
func overflowKey[K any](desc entity.MetricSetDesc) (K, error) {
	var k K
	v := reflect.ValueOf(&k).Elem()
	if v.Kind() != reflect.Struct {
		return k, fmt.Errorf("metric set %s: key type %T is not a struct", desc.Name, k)
	}
	for _, f := range desc.Key {
		fv := v.FieldByName(BPF2GoName(f.Name))
		switch {
		case !fv.IsValid() || !fv.CanSet() || fv.Kind() < reflect.Uint8 || fv.Kind() > reflect.Uint64:
			return k, fmt.Errorf("metric set %s: key type %T has no unsigned field %s for key field %s", desc.Name, k, BPF2GoName(f.Name), f.Name)
		case fv.OverflowUint(desc.OverflowKey[f.Name]):
			return k, fmt.Errorf("metric set %s: overflow %s=%#x does not fit %T.%s", desc.Name, f.Name, desc.OverflowKey[f.Name], k, BPF2GoName(f.Name))
		}
		fv.SetUint(desc.OverflowKey[f.Name])
	}
	return k, nil
}

// BPF2GoName is the Go field name bpf2go gives a C field: the identifier
// conversion of github.com/cilium/ebpf/internal.Identifier ("duration_ns_sum"
// → "DurationNsSum", "tgid" → "Tgid").
func BPF2GoName(str string) string {
	prev := rune(-1)
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.IsLetter(r):
			if prev == -1 {
				r = unicode.ToUpper(r)
			}
		case r == '_':
			if prev == -1 || unicode.IsDigit(prev) || (unicode.IsLetter(prev) && unicode.IsLower(prev)) {
				r = -1
			}
		case unicode.IsDigit(r):
		default:
			return -1
		}
		prev = r
		return r
	}, str)
}
