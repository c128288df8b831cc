package testdeps

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// executed is one command name found as a literal where the code runs or
// looks up a command.
type executed struct {
	name string
	at   string // file:line
}

// wrapper is a function that runs its argument number arg as a command
// (run(t, "ip", ...), runWithPid(t, pid, "sleep", ...)).
type wrapper struct {
	pkgDir string
	name   string
	arg    int
}

// commandArg is the index of the command name among a call's arguments
// when the call runs or looks up a command, else -1.
func commandArg(call *ast.CallExpr) int {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return -1
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "exec" {
		return -1
	}
	switch sel.Sel.Name {
	case "Command", "LookPath":
		return 0
	case "CommandContext":
		return 1
	}
	return -1
}

type file struct {
	path, pkgDir string
	ast          *ast.File
}

// parseRepo parses every Go file of the repository under root.
func parseRepo(t *testing.T, root string) (*token.FileSet, []file) {
	t.Helper()
	fset := token.NewFileSet()
	var files []file
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files = append(files, file{path: path, pkgDir: filepath.Dir(path), ast: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fset, files
}

// wrappers finds the functions that pass one of their parameters (or the
// first of their variadic ones, args[0]) as the command name.
func wrappers(files []file) []wrapper {
	var ws []wrapper
	for _, f := range files {
		for _, decl := range f.ast.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			params := map[string]int{}
			variadic := ""
			i := 0
			for _, field := range fn.Type.Params.List {
				for _, n := range field.Names {
					params[n.Name] = i
					if _, ok := field.Type.(*ast.Ellipsis); ok {
						variadic = n.Name
					}
					i++
				}
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				a := commandArg(call)
				if a < 0 || a >= len(call.Args) {
					return true
				}
				switch x := call.Args[a].(type) {
				case *ast.Ident:
					if p, ok := params[x.Name]; ok && x.Name != variadic {
						ws = append(ws, wrapper{f.pkgDir, fn.Name.Name, p})
					}
				case *ast.IndexExpr:
					id, ok1 := x.X.(*ast.Ident)
					lit, ok2 := x.Index.(*ast.BasicLit)
					if ok1 && ok2 && id.Name == variadic && lit.Value == "0" {
						ws = append(ws, wrapper{f.pkgDir, fn.Name.Name, params[variadic]})
					}
				}
				return true
			})
		}
	}
	return ws
}

// commands lists every string literal run or looked up as a command,
// directly or through a wrapper of the same package.
func commands(fset *token.FileSet, files []file) map[string][]executed {
	ws := wrappers(files)
	byFile := map[string][]executed{}
	for _, f := range files {
		ast.Inspect(f.ast, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			a := commandArg(call)
			if id, ok := call.Fun.(*ast.Ident); ok {
				for _, w := range ws {
					if w.pkgDir == f.pkgDir && w.name == id.Name {
						a = w.arg
					}
				}
			}
			if a < 0 || a >= len(call.Args) {
				return true
			}
			lit, ok := call.Args[a].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			name, err := strconv.Unquote(lit.Value)
			if err != nil || name == "" {
				return true
			}
			pos := fset.Position(lit.Pos())
			byFile[f.path] = append(byFile[f.path], executed{name, pos.Filename + ":" + strconv.Itoa(pos.Line)})
			return true
		})
	}
	return byFile
}

// makeVars reads the Makefile's simple variable assignments (NAME := …).
func makeVars(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	assign := regexp.MustCompile(`^([A-Z_]+)\s*[:?]?=\s*(.*)$`)
	vars := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := assign.FindStringSubmatch(sc.Text()); m != nil {
			vars[m[1]] = strings.Fields(m[2])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vars
}

// owner is the Debian package that installed the command found at path,
// "" when dpkg knows none (merged /usr: dpkg may have recorded /bin or
// /sbin for a file found in /usr/bin).
func owner(path string) string {
	candidates := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		candidates = append(candidates, real)
	}
	for _, p := range slices.Clone(candidates) {
		if rest, ok := strings.CutPrefix(p, "/usr"); ok {
			candidates = append(candidates, rest)
		} else {
			candidates = append(candidates, "/usr"+p)
		}
	}
	for _, p := range candidates {
		out, err := exec.Command("dpkg-query", "-S", p).Output()
		if err != nil {
			continue
		}
		// "pkg: path" lines, after any "diversion by pkg from: path".
		for line := range strings.Lines(string(out)) {
			if pkg, _, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(pkg, "diversion ") {
				return pkg
			}
		}
	}
	return ""
}

// required reports whether pkg is part of every Debian system (priority
// required: what debootstrap's minbase installs).
func required(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Priority}", pkg).Output()
	return err == nil && strings.TrimSpace(string(out)) == "required"
}

// TestEveryExecutedCommandIsInstalled finds the commands the code runs (a
// literal in exec.Command, exec.CommandContext, exec.LookPath or a
// function that passes its parameter to them), and checks, with dpkg as
// the oracle, that the package providing each is installed by the make
// target that runs that code.
func TestEveryExecutedCommandIsInstalled(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("not a Debian system: dpkg-query is missing, and make's install steps use apt-get")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	vars := makeVars(t, filepath.Join(root, "Makefile"))
	test := vars["TEST_PKGS"]
	if len(test) == 0 {
		t.Fatal("the Makefile sets no TEST_PKGS (the packages make test-deps installs)")
	}
	// Which target runs a file's code: the kernel matrix (make
	// test-kernels), a benchmark program (make bench), or the tests.
	// A command of another target that is not installed here cannot be
	// traced to a package: that target has not run on this machine.
	allowed := func(path string) (target string, pkgs []string, ran bool) {
		rel, _ := filepath.Rel(root, path)
		other := func(v string) []string {
			if len(vars[v]) == 0 {
				t.Fatalf("the Makefile sets no %s", v)
			}
			ran = exec.Command("dpkg", append([]string{"-s"}, vars[v]...)...).Run() == nil
			return append(slices.Clone(test), vars[v]...)
		}
		switch {
		case strings.HasPrefix(rel, "internal/kernelmatrix/") && !strings.HasSuffix(rel, "_test.go"):
			return "test-kernels-deps (TEST_KERNELS_PKGS)", other("TEST_KERNELS_PKGS"), ran
		case strings.HasPrefix(rel, "bench/") && !strings.HasSuffix(rel, "_test.go"):
			return "bench-deps (BENCH_PKGS)", other("BENCH_PKGS"), ran
		}
		return "test-deps (TEST_PKGS)", test, true
	}
	fset, files := parseRepo(t, root)
	found := commands(fset, files)
	if len(found) == 0 {
		t.Fatal("found no executed command at all: the scan is broken")
	}
	paths := make([]string, 0, len(found))
	for p := range found {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	type origin struct{ path, pkg string }
	origins := map[string]origin{} // by command name: dpkg is slow
	seen := 0
	for _, p := range paths {
		target, pkgs, ran := allowed(p)
		for _, c := range found[p] {
			seen++
			if c.name == "go" {
				continue // the toolchain the machine is given
			}
			if strings.ContainsAny(c.name, "/") {
				t.Errorf("%s: runs %q by path: name the command and let PATH find it", c.at, c.name)
				continue
			}
			o, ok := origins[c.name]
			if !ok {
				if path, err := exec.LookPath(c.name); err == nil {
					o = origin{path, owner(path)}
				}
				origins[c.name] = o
			}
			path, pkg := o.path, o.pkg
			switch {
			case path == "" && !ran:
				t.Logf("%s: runs %q, not installed here: make %s has not run on this machine, so its package cannot be checked", c.at, c.name, target)
			case path == "":
				t.Errorf("%s: runs %q, which is not installed here: add its Debian package to make %s", c.at, c.name, target)
			case pkg == "":
				t.Errorf("%s: runs %q (%s), which no Debian package installed: make %s must install it", c.at, c.name, path, target)
			case !slices.Contains(pkgs, pkg) && !required(pkg):
				t.Errorf("%s: runs %q from package %s, which make %s does not install: add %s there", c.at, c.name, pkg, target, pkg)
			}
		}
	}
	t.Logf("%d command uses in %d files checked", seen, len(paths))
}
