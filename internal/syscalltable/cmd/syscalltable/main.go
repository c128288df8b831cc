// Command syscalltable writes the system call name tables of probes/syscalls
// (zz_names_amd64.go, zz_names_arm64.go) from the Linux UAPI headers
// installed by Debian's linux-libc-dev:
//
//	go run ./internal/syscalltable/cmd/syscalltable -out probes/syscalls
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/telagent/telagent/internal/syscalltable"
)

func main() {
	out := flag.String("out", ".", "output directory (the probes/syscalls package)")
	pkg := flag.String("pkg", "syscalls", "Go package name of the output files")
	amd64 := flag.String("amd64-header", syscalltable.Arches["amd64"].Header, "x86-64 unistd header (#define __NR_<name> <n>)")
	arm64 := flag.String("arm64-header", syscalltable.Arches["arm64"].Header, "asm-generic unistd header, read with the arm64 switches")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "syscalltable: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	for _, a := range []struct{ goarch, header string }{{"amd64", *amd64}, {"arm64", *arm64}} {
		if err := gen(*out, *pkg, a.goarch, a.header); err != nil {
			fmt.Fprintln(os.Stderr, "syscalltable:", err)
			os.Exit(1)
		}
	}
}

func gen(dir, pkg, goarch, header string) error {
	names, err := syscalltable.ReadFile(header, syscalltable.Arches[goarch])
	if err != nil {
		return err
	}
	src, err := syscalltable.Generate(pkg, goarch, header, names)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "zz_names_"+goarch+".go")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, src) {
		return nil
	}
	return os.WriteFile(path, src, 0o644)
}
