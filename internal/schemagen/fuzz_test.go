package schemagen

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzLoad feeds one model file, next to the real manifest and entities,
// to the checker, the loader and every generator: no input may panic or
// hang them. Seeds
// are the real model files and testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	root := filepath.Join("..", "..", "schema")
	manifest, err := os.ReadFile(filepath.Join(root, "manifest.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	entities, err := os.ReadFile(filepath.Join(root, "model", "entities.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	models, err := filepath.Glob(filepath.Join(root, "model", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range models {
		if filepath.Base(m) == "entities.yaml" {
			continue
		}
		b, err := os.ReadFile(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{
			"manifest.yaml":       {Data: manifest},
			"model/entities.yaml": {Data: entities},
			"model/fuzz.yaml":     {Data: data},
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			r, findings := Check(fsys, "schema")
			if r == nil || len(findings) > 0 {
				return
			}
			// An error is fine (the Go generator, for one, needs a
			// histogram somewhere in the registry); a panic is not.
			_, _ = r.Outputs(Options{GoFile: "g.go", CDir: "c", DocsFile: "d.md"})
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Check did not return within 5s on %q", data)
		}
	})
}
