package schemagen

import (
	"bytes"
	"fmt"
	"strings"
)

// GenerateC returns one C header per metric set, keyed by file name
// ("<set>.h"). The headers use the __u32/__u64 types of vmlinux.h, which the
// including BPF program must include first.
func (r *Registry) GenerateC() (map[string][]byte, error) {
	if r.HistBuckets == 0 && len(r.MetricSets) > 0 {
		return nil, fmt.Errorf("no log2_histogram value field in any metric set: TELAGENT_HIST_BUCKETS is undefined")
	}
	out := map[string][]byte{}
	for _, s := range r.MetricSets {
		var b bytes.Buffer
		w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
		up := strings.ToUpper(s.Name)
		guard := "TELAGENT_GEN_" + up + "_H"

		w("%s\n", Header)
		w("// Metric set %q (schema group %s): layout of BPF map %s.\n", s.Name, s.ID, s.Map)
		w("// Include vmlinux.h before this header.\n")
		w("#ifndef %s\n#define %s\n\n", guard, guard)

		w("/* Log2 histogram layout, shared by every metric set. */\n")
		w("#ifndef TELAGENT_HIST_BUCKETS\n#define TELAGENT_HIST_BUCKETS %d\n#endif\n", r.HistBuckets)
		w("#ifndef TELAGENT_HIST_MIN_SHIFT\n#define TELAGENT_HIST_MIN_SHIFT %d\n#endif\n\n", r.HistMinShift)

		w("/* BPF_MAP_TYPE_%s */\n", strings.ToUpper(s.MapType))
		w("#define %s_MAX_ENTRIES %d\n", up, s.MaxEntries)
		w("/* Key fields with a finite bound: values must stay below it. */\n")
		for _, k := range s.Key {
			if k.Bound != 0 {
				w("#define %s_%s_BOUND %d\n", up, strings.ToUpper(k.Field), k.Bound)
			}
		}
		w("\n")

		w("/* Overflow key: the BPF side adds here when the map is full. */\n")
		for _, k := range s.Key {
			w("#define %s_OVERFLOW_%s %#x\n", up, strings.ToUpper(k.Field), s.OverflowKey[k.Field])
		}
		w("\n")

		w("struct %s_key {\n", s.Name)
		for _, k := range s.Key {
			bound := "max_entries"
			if k.Bound != 0 {
				bound = fmt.Sprint(k.Bound)
			}
			w("\t__%s %s; /* %s, bound %s */\n", k.CType, k.Field, k.Attribute.ID, bound)
		}
		w("};\n\n")

		w("struct %s_value {\n", s.Name)
		for _, v := range s.Values {
			if v.Kind == "log2_histogram" {
				w("\t__u64 %s[TELAGENT_HIST_BUCKETS]; /* %s %s%s */\n", v.Field, v.Metric, v.Role, constComment(v))
			} else {
				w("\t__u64 %s; /* %s %s%s */\n", v.Field, v.Metric, v.Role, constComment(v))
			}
		}
		w("};\n\n")

		w("_Static_assert(sizeof(struct %s_key) == %d, \"%s_key layout\");\n", s.Name, s.KeySize, s.Name)
		w("_Static_assert(sizeof(struct %s_value) == %d, \"%s_value layout\");\n\n", s.Name, 8*s.ValueWords, s.Name)

		w("#endif /* %s */\n", guard)
		out[s.Name+".h"] = b.Bytes()
	}
	return out, nil
}

// constComment renders a value field's constant attributes for a C comment.
func constComment(v ValueField) string {
	var b strings.Builder
	for _, a := range v.Attributes {
		b.WriteString(", " + a.Attribute.ID + "=" + a.Value)
	}
	return b.String()
}
