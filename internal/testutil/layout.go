package testutil

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// CheckLayout checks that the Go types bpf2go generated from a probe's BPF
// object for a metric set's key and value (e.g. syscallsSyscallsKey and
// syscallsSyscallsValue, from `-type syscalls_key -type syscalls_value`)
// have exactly the layout the schema declares for set: the same fields in
// the same order, named as bpf2go names the C fields (CamelCase of the
// snake_case name), of the declared sizes and types, at the C offsets
// (natural alignment), and the same total sizes. bpf2go's types come from
// the compiled object's BTF, so a header that drifted from the schema, or a
// BPF program that declares its own structs, fails here. In a probe package:
//
//	func TestLayout(t *testing.T) {
//		testutil.CheckLayout(t, entity.MetricSetX, reflect.TypeOf(xXKey{}), reflect.TypeOf(xXValue{}))
//	}
func CheckLayout(t testing.TB, set entity.MetricSetDesc, key, value reflect.Type) {
	t.Helper()
	var want []layoutField
	off, align := 0, 1
	for _, f := range set.Key {
		size := cTypeSizes[f.CType]
		if size == 0 {
			t.Errorf("metric set %s: key field %s: unknown c_type %q", set.Name, f.Name, f.CType)
			return
		}
		off = (off + size - 1) / size * size
		want = append(want, layoutField{probes.BPF2GoName(f.Name), off, uintptr(size), uintType(size)})
		off += size
		align = max(align, size)
	}
	keySize := (off + align - 1) / align * align
	if keySize != set.KeySize {
		t.Errorf("metric set %s: the schema's KeySize %d disagrees with its key fields (%d bytes): regenerate entity/zz_generated.go", set.Name, set.KeySize, keySize)
	}
	compareLayout(t, set.Name+" key", key, want, uintptr(set.KeySize))

	want = want[:0]
	for _, v := range set.Values {
		typ := reflect.TypeFor[uint64]()
		if v.Words != 1 {
			typ = reflect.ArrayOf(v.Words, typ)
		}
		want = append(want, layoutField{probes.BPF2GoName(v.Field), 8 * v.Offset, uintptr(8 * v.Words), typ})
	}
	compareLayout(t, set.Name+" value", value, want, uintptr(8*set.ValueWords))
}

var cTypeSizes = map[string]int{"u8": 1, "u16": 2, "u32": 4, "u64": 8}

func uintType(size int) reflect.Type {
	switch size {
	case 1:
		return reflect.TypeFor[uint8]()
	case 2:
		return reflect.TypeFor[uint16]()
	case 4:
		return reflect.TypeFor[uint32]()
	}
	return reflect.TypeFor[uint64]()
}

type layoutField struct {
	name   string
	offset int
	size   uintptr
	typ    reflect.Type
}

// compareLayout compares the named fields of got (padding and
// structs.HostLayout fields, named _, are skipped) with want.
func compareLayout(t testing.TB, what string, got reflect.Type, want []layoutField, size uintptr) {
	t.Helper()
	if got.Kind() != reflect.Struct {
		t.Errorf("metric set %s: %s is not a struct", what, got)
		return
	}
	var fields []reflect.StructField
	for i := range got.NumField() {
		if f := got.Field(i); f.Name != "_" {
			fields = append(fields, f)
		}
	}
	names := func() string {
		var gs, ws []string
		for _, f := range fields {
			gs = append(gs, f.Name)
		}
		for _, f := range want {
			ws = append(ws, f.name)
		}
		return fmt.Sprintf("%s has fields %s, the schema declares %s", got, strings.Join(gs, ", "), strings.Join(ws, ", "))
	}
	if len(fields) != len(want) {
		t.Errorf("metric set %s: %s", what, names())
		return
	}
	for i, w := range want {
		f := fields[i]
		switch {
		case f.Name != w.name:
			t.Errorf("metric set %s: %s", what, names())
			return
		case f.Type != w.typ:
			t.Errorf("metric set %s: field %s is %s (%d bytes), the schema declares %s (%d bytes)", what, f.Name, f.Type, f.Type.Size(), w.typ, w.size)
		case int(f.Offset) != w.offset:
			t.Errorf("metric set %s: field %s is at offset %d, the schema declares %d", what, f.Name, f.Offset, w.offset)
		}
	}
	if got.Size() != size {
		t.Errorf("metric set %s: %s is %d bytes, the schema declares %d", what, got, got.Size(), size)
	}
}
