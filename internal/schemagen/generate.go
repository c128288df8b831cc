package schemagen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Options names the outputs; an empty path skips that output.
type Options struct {
	GoFile   string // entity/zz_generated.go
	CDir     string // bpf/include/gen (one <set>.h per metric set)
	DocsFile string // docs/telemetry.md
}

// Outputs generates every requested output, keyed by file path.
func (r *Registry) Outputs(o Options) (map[string][]byte, error) {
	out := map[string][]byte{}
	if o.GoFile != "" {
		b, err := r.GenerateGo()
		if err != nil {
			return nil, err
		}
		out[o.GoFile] = b
	}
	if o.CDir != "" {
		hs, err := r.GenerateC()
		if err != nil {
			return nil, err
		}
		for name, b := range hs {
			out[filepath.Join(o.CDir, name)] = b
		}
	}
	if o.DocsFile != "" {
		b, err := r.GenerateDocs()
		if err != nil {
			return nil, err
		}
		out[o.DocsFile] = b
	}
	return out, nil
}

// Write writes the outputs, leaving files whose content is unchanged alone,
// and returns the paths it wrote, sorted.
func Write(outputs map[string][]byte) ([]string, error) {
	var written []string
	for _, p := range sortedKeys(outputs) {
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, outputs[p]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, err
		}
		if err := os.WriteFile(p, outputs[p], 0o644); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

// Stale returns the paths whose content on disk differs from outputs, sorted.
func Stale(outputs map[string][]byte) []string {
	var stale []string
	for _, p := range sortedKeys(outputs) {
		if old, err := os.ReadFile(p); err != nil || !bytes.Equal(old, outputs[p]) {
			stale = append(stale, p)
		}
	}
	return stale
}

// Generate loads the registry in schemaDir and writes the outputs.
func Generate(schemaDir string, o Options) ([]string, error) {
	r, err := Load(schemaDir)
	if err != nil {
		return nil, err
	}
	outs, err := r.Outputs(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", schemaDir, err)
	}
	return Write(outs)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
