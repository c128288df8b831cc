package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/telagent/telagent/probes/all"
)

// TestDocsProbes: docs/probes.md is what `telagent probes --markdown`
// prints, so a probe or metric added without regenerating it fails here.
func TestDocsProbes(t *testing.T) {
	var b bytes.Buffer
	if err := writeProbesMarkdown(&b, all.New(all.Options{})); err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../../docs/probes.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Error("docs/probes.md is stale: run `go run ./cmd/telagent probes --markdown > docs/probes.md`")
	}
}

// formatVerb matches a fmt verb; messages are compared with each verb
// replaced by "…".
var formatVerb = regexp.MustCompile(`%[-+# 0-9.*]*[a-zA-Z%]`)

// userMessages collects, from the non-test Go files of dirs, the text of
// every message a user can see: usage errors (usagef), errors made with
// fmt.Errorf or errors.New, and warnings and errors logged through slog.
// Verbs become "…"; messages with no words of their own ("%s: %w") are
// left out.
func userMessages(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	msgs := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				msgArg := call.Args[0]
				switch fn := call.Fun.(type) {
				case *ast.Ident:
					if fn.Name != "usagef" && fn.Name != "errorf" {
						return true
					}
				case *ast.SelectorExpr:
					x, _ := fn.X.(*ast.Ident)
					switch {
					case x != nil && x.Name == "fmt" && fn.Sel.Name == "Errorf":
					case x != nil && x.Name == "errors" && fn.Sel.Name == "New":
					case fn.Sel.Name == "Begin" && len(call.Args) > 1:
						// episode.Episode.Begin(log, msg, ...): a warning
						// logged once per episode.
						msgArg = call.Args[1]
					case fn.Sel.Name == "Warn" || fn.Sel.Name == "Error":
						if x != nil && (x.Name == "fmt" || x.Name == "errors" || x.Name == "t") {
							return true
						}
					default:
						return true
					}
				default:
					return true
				}
				s, ok := stringLit(msgArg)
				if !ok {
					return true
				}
				key := strings.TrimSpace(flagVerbs(s, call.Args[1:]))
				letters := 0
				for _, r := range key {
					if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
						letters++
					}
				}
				if letters >= 3 {
					msgs[key] = fset.Position(call.Pos()).String()
				}
				return true
			})
		}
	}
	return msgs
}

// flagVerbs replaces the verbs of format with "…", except those whose
// argument spells an option, sp("interval") in internal/runconfig: they
// become the command-line spelling, --interval, which is what
// docs/troubleshooting.md lists (an operand that is not a literal, as in
// sp(probe+"-max-entries"), is "…").
func flagVerbs(format string, args []ast.Expr) string {
	i := 0
	return formatVerb.ReplaceAllStringFunc(format, func(verb string) string {
		if verb == "%%" {
			return "%"
		}
		defer func() { i++ }()
		if i >= len(args) {
			return "…"
		}
		call, ok := args[i].(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return "…"
		}
		if fn, ok := call.Fun.(*ast.Ident); !ok || fn.Name != "sp" {
			return "…"
		}
		return "--" + spelledName(call.Args[0])
	})
}

// spelledName renders an option name expression: literals as written,
// anything else as "…".
func spelledName(e ast.Expr) string {
	if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.ADD {
		return spelledName(b.X) + spelledName(b.Y)
	}
	if s, ok := stringLit(e); ok {
		return s
	}
	return "…"
}

// stringLit is the value of a string literal or a + of string literals.
func stringLit(e ast.Expr) (string, bool) {
	switch v := e.(type) {
	case *ast.BasicLit:
		if v.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(v.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if v.Op != token.ADD {
			return "", false
		}
		a, ok1 := stringLit(v.X)
		b, ok2 := stringLit(v.Y)
		return a + b, ok1 && ok2
	}
	return "", false
}

// TestDocsTroubleshooting: every message the CLI and the agent can print
// is in docs/troubleshooting.md (as `message`, verbs as …) with its cause
// and fix, and every message listed there still exists.
func TestDocsTroubleshooting(t *testing.T) {
	msgs := userMessages(t, ".", "../../internal/agent", "../../probes/targets", "../../internal/runconfig")
	doc, err := os.ReadFile("../../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	var missing []string
	for m, where := range msgs {
		if !strings.Contains(text, "`"+m+"`") {
			missing = append(missing, m+"\t("+where+")")
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("docs/troubleshooting.md lacks the message `%s`", m)
	}
	// The messages column of the tables: `...` at the start of a row.
	listed := regexp.MustCompile("(?m)^\\| `([^`]+)`")
	for _, m := range listed.FindAllStringSubmatch(text, -1) {
		if _, ok := msgs[m[1]]; !ok {
			t.Errorf("docs/troubleshooting.md lists `%s`, which nothing in cmd/telagent, internal/agent, internal/runconfig or probes/targets prints any more", m[1])
		}
	}
}
