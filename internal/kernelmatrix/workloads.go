package kernelmatrix

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/telagent/telagent/internal/testutil"
)

// Workload is one workload a test builds with testutil.BuildC,
// testutil.Rawsys or testutil.BuildGo: the source under testdata/workload
// and its gcc flags (go build flags for a .go program).
type Workload struct {
	Source string
	Flags  []string
}

// FindWorkloads scans the Go files under root for calls of testutil.BuildC,
// testutil.Rawsys and testutil.BuildGo, so that the workloads the tests
// build at run time can be built ahead of time for a guest without gcc or
// a Go toolchain. A call whose source
// or flags are not string literals cannot be known here: it is returned in
// unknown, by position, and that test fails in the guest with a message
// naming the missing build.
func FindWorkloads(root string) (found []Workload, unknown []string, err error) {
	seen := map[string]bool{}
	add := func(w Workload) {
		k := w.Source + "\x00" + strings.Join(w.Flags, "\x00")
		if !seen[k] {
			seen[k] = true
			found = append(found, w)
		}
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Contains(src, []byte("BuildC(")) && !bytes.Contains(src, []byte("Rawsys(")) && !bytes.Contains(src, []byte("BuildGo(")) {
			return nil
		}
		f, err := parser.ParseFile(fset, p, src, 0)
		if err != nil {
			return nil // a half-written file: the test build reports it
		}
		inTestutil := f.Name.Name == "testutil"
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch name := calleeName(call.Fun, inTestutil); name {
			case "Rawsys":
				add(Workload{Source: "rawsys.c", Flags: testutil.RawsysFlags()})
			case "BuildC", "BuildGo":
				var lits []string
				for _, a := range call.Args[1:] {
					bl, ok := a.(*ast.BasicLit)
					if !ok || bl.Kind != token.STRING || call.Ellipsis.IsValid() {
						lits = nil
						break
					}
					s, _ := strconv.Unquote(bl.Value)
					lits = append(lits, s)
				}
				if len(lits) == 0 {
					if len(call.Args) > 1 && !inTestutil {
						unknown = append(unknown, fset.Position(call.Pos()).String())
					}
					return true
				}
				w := Workload{Source: lits[0], Flags: lits[1:]}
				if len(w.Flags) == 0 && name == "BuildC" {
					w.Flags = []string{"-O2"}
				}
				add(w)
			}
			return true
		})
		return nil
	})
	sort.Slice(found, func(i, j int) bool {
		return testutil.PrebuiltName(found[i].Source, found[i].Flags...) < testutil.PrebuiltName(found[j].Source, found[j].Flags...)
	})
	return found, unknown, err
}

// calleeName is the function's name for testutil.X(...), and "" for
// anything else (testutil's own calls pass variables through).
func calleeName(fun ast.Expr, inTestutil bool) string {
	switch f := fun.(type) {
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok && x.Name == "testutil" {
			return f.Sel.Name
		}
	case *ast.Ident:
		if inTestutil {
			return "" // testutil's own calls pass variables through
		}
	}
	return ""
}

// BuildWorkloads compiles each workload from root/testdata/workload (with
// gcc, or the command testutil.BuildGo runs for a .go program) into dir
// under its testutil.PrebuiltName and returns those names.
func BuildWorkloads(root, dir string, ws []Workload) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, w := range ws {
		bin := filepath.Join(dir, testutil.PrebuiltName(w.Source, w.Flags...))
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			return nil, err
		}
		src := filepath.Join(root, "testdata", "workload", w.Source)
		var cmd *exec.Cmd
		if filepath.Ext(w.Source) == ".go" {
			cmd = testutil.GoBuildCommand(src, bin, w.Flags...)
			cmd.Dir = root
		} else {
			cmd = exec.Command("gcc", append(append([]string{}, w.Flags...), "-o", bin, src)...)
		}
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(msg))
		}
		out = append(out, testutil.PrebuiltName(w.Source, w.Flags...))
	}
	return out, nil
}
