// Command schemagen generates the Go descriptors, the C layouts shared with
// BPF and the telemetry reference page from the registry in schema/.
//
//	go run ./internal/schemagen/cmd/schemagen -schema schema -go entity/zz_generated.go -c bpf/include/gen -docs docs/telemetry.md
//
// With -check it writes nothing and exits with status 1 when a generated
// file is missing or stale (for CI).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/telagent/telagent/internal/schemagen"
)

func main() {
	schemaDir := flag.String("schema", "schema", "registry directory (manifest.yaml, model/)")
	goFile := flag.String("go", "entity/zz_generated.go", "Go descriptors output file (empty: skip)")
	cDir := flag.String("c", "bpf/include/gen", "directory for the C headers, one per metric set (empty: skip)")
	docsFile := flag.String("docs", "docs/telemetry.md", "Markdown reference output file (empty: skip)")
	check := flag.Bool("check", false, "write nothing; exit 1 if any output is missing or stale")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "schemagen: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}

	r, err := schemagen.Load(*schemaDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
	outs, err := r.Outputs(schemagen.Options{GoFile: *goFile, CDir: *cDir, DocsFile: *docsFile})
	if err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
	if *check {
		if stale := schemagen.Stale(outs); len(stale) > 0 {
			for _, p := range stale {
				fmt.Fprintf(os.Stderr, "schemagen: %s is stale; run make generate\n", p)
			}
			os.Exit(1)
		}
		return
	}
	if _, err := schemagen.Write(outs); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}
