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

		w("/* Storage: bpf/include/telagent.h (telagent_store_slot), map_type %s. */\n", s.MapType)
		w("#include \"telagent.h\"\n\n")
		w("/* Default entries of one storage hash (one node, one epoch); the agent\n * sizes them from its memory budget. */\n")
		w("#define %s_MAX_ENTRIES %d\n", up, s.MaxEntries)
		w("/* Key fields with a finite bound: values must stay below it. */\n")
		for _, k := range s.Key {
			if k.Bound != 0 {
				w("#define %s_%s_BOUND %d\n", up, strings.ToUpper(k.Field), k.Bound)
			}
		}
		w("\n")

		w("/* Overflow key: the tuple under which the agent reports what did not fit\n")
		w(" * (the storage's per-CPU overflow value, and tuples past max_entries). */\n")
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

		w("/* One storage entry's key: the tuple and the CPU that writes it. */\n")
		w("struct %s_entry_key {\n\tstruct %s_key tuple;\n\t__u32 cpu;\n", s.Name, s.Name)
		if s.EntryKeySize > s.KeySize+4 {
			w("\t__u32 _pad; /* explicit: every byte of a hash key is written */\n")
		}
		w("};\n\n")
		w("_Static_assert(sizeof(struct %s_entry_key) == %d, \"%s_entry_key layout\");\n\n", s.Name, s.EntryKeySize, s.Name)
		w("/* Names the entry key in BTF: the inner map's key would be a bare\n * forward declaration otherwise, which the loader cannot size. */\n")
		w("const struct %s_entry_key *%s_entry_key_btf __attribute__((unused));\n\n", s.Name, s.Name)
		w("/* Per (node, epoch) one hash of entries, at index 2 * node + epoch. */\n")
		w("struct {\n\t__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);\n\t__uint(max_entries, TELAGENT_STORE_SLOTS);\n\t__type(key, __u32);\n")
		w("\t__array(values, struct {\n\t\t__uint(type, BPF_MAP_TYPE_HASH);\n\t\t__uint(max_entries, %s_MAX_ENTRIES);\n", up)
		w("\t\t__type(key, struct %s_entry_key);\n\t\t__type(value, struct %s_value);\n\t});\n} %s SEC(\".maps\");\n\n", s.Name, s.Name, s.Map)
		w("/* What did not fit, per CPU; cumulative, never drained. */\n")
		w("struct {\n\t__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);\n\t__uint(max_entries, 1);\n\t__type(key, __u32);\n")
		w("\t__type(value, struct %s_value);\n} %s_overflow SEC(\".maps\");\n\n", s.Name, s.Map)
		w("/* Updates folded into the overflow value, per CPU: a self-metric. */\n")
		w("struct {\n\t__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);\n\t__uint(max_entries, 1);\n\t__type(key, __u32);\n")
		w("\t__type(value, __u64);\n} %s_folds SEC(\".maps\");\n\n", s.Map)
		w("static const struct %s_value %s_zero_value;\n\n", s.Name, s.Name)
		w("/*\n * This CPU's entry of key in the current epoch (see telagent_store_slot):\n")
		w(" * task, when set, has its identity noted when the entry is created.\n */\n")
		w("static __always_inline struct %s_value *%s_slot(const struct %s_key *key,\n", s.Name, s.Name, s.Name)
		w("\t\tstruct task_struct *task, bool *created)\n{\n")
		w("\tstruct %s_entry_key ek = {};\n\n\tek.tuple = *key;\n\tek.cpu = bpf_get_smp_processor_id();\n", s.Name)
		w("\treturn telagent_store_slot(&%s, &%s_overflow, &%s_folds, &ek, &%s_zero_value, task, created);\n}\n\n", s.Map, s.Map, s.Map, s.Name)

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
