// Package config reads a YAML settings file whose keys are the long names
// of a command's flags. It knows nothing about any particular flag: the
// caller passes the flags it has, and applies the settings through the
// flags' own parsers, so a file is exactly as powerful as the command line
// and every value goes through the same checks.
//
//	interval: 5s          # --interval 5s
//	pid: [123, 456]       # --pid 123 --pid 456
//	fork-events: true     # --fork-events
//	syscalls:             # a group: keys are joined with "-"
//	  max-entries: 20480  # --syscalls-max-entries 20480
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// MaxSize bounds the file: a settings file is a few hundred bytes, and
// the bound keeps a wrong path (a log file, a device) from being read whole.
const MaxSize = 1 << 20

// MaxValues bounds one list setting: far more than any target list, and it
// keeps a file from turning into a million flag values.
const MaxValues = 4096

// maxDepth bounds group nesting (syscalls: {max: {entries: …}} is depth 3).
const maxDepth = 8

// Kind is how a flag takes its value.
type Kind int

const (
	// Scalar flags take one value (a string, number or duration).
	Scalar Kind = iota
	// Bool flags take true or false.
	Bool
	// List flags may be repeated; the file gives a sequence or one value.
	List
)

// Flag is one flag a file may set, by its long name.
type Flag struct {
	Name string
	Kind Kind
}

// Setting is one key of the file resolved to its flag.
type Setting struct {
	Flag   string   // the flag's name
	Path   string   // the key as written, groups joined with "." (syscalls.max-entries)
	Values []string // one for Scalar and Bool; zero or more for List
	Line   int
}

// Error is a problem at a line of the file.
type Error struct {
	File string
	Line int    // 0 when the problem is the file as a whole
	Path string // the key, when there is one
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(printablePath(e.Path) + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// printablePath is a key path as written when that is one line of plain
// text, else quoted: a quoted YAML key may hold a newline or invalid
// UTF-8, and the error must stay one readable line.
func printablePath(p string) string {
	for _, r := range p {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(strings.ToValidUTF8(p, "\uFFFD"))
		}
	}
	return p
}

// TooLarge is the error for a file of size bytes, more than MaxSize. The
// caller that knows the file's size says it: data read through a limit
// (MaxSize+1) would always show the limit.
func TooLarge(file string, size int64) error {
	return &Error{File: file, Msg: fmt.Sprintf("%d bytes; a settings file is at most %d", size, MaxSize)}
}

// Parse reads data, the contents of file, against flags. Unknown keys,
// values of the wrong shape, keys set twice, anchors and aliases, and
// more than one document are errors naming the key and its line. An empty
// file has no settings. Settings are in file order.
func Parse(file string, data []byte, flags []Flag) (settings []Setting, err error) {
	if len(data) > MaxSize {
		return nil, TooLarge(file, int64(len(data)))
	}
	p := &parser{file: file, flags: map[string]Kind{}, seen: map[string]int{}}
	for _, f := range flags {
		p.flags[f.Name] = f.Kind
		p.names = append(p.names, f.Name)
	}
	sort.Strings(p.names)

	root, err := p.decode(data)
	if err != nil || root == nil {
		return nil, err
	}
	if err := p.mapping(root, "", "", 0); err != nil {
		return nil, err
	}
	return p.out, nil
}

type parser struct {
	file  string
	flags map[string]Kind
	names []string       // sorted, for suggestions
	seen  map[string]int // flag → line it was set at
	out   []Setting
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decode returns the document's top node, nil for an empty file.
func (p *parser) decode(data []byte) (root *yaml.Node, err error) {
	// The YAML library is not ours: whatever it does on hostile input, the
	// caller gets an error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &Error{File: p.file, Msg: fmt.Sprintf("not valid YAML (%v)", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: p.file, Line: extra.Line, Msg: "a second YAML document; settings are one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, p.yamlError(err)
	}
	root = &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil // "~" or "null": nothing set
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: p.file, Line: root.Line, Msg: "want a mapping of flag names to values (interval: 10s)"}
	}
	return root, nil
}

// yamlError turns "yaml: line 3: did not find expected key" into file:3.
func (p *parser) yamlError(err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: p.file, Line: line, Msg: m[2]}
	}
	return &Error{File: p.file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// mapping walks a mapping whose keys are prefix-joined onto flag names.
func (p *parser) mapping(n *yaml.Node, namePrefix, pathPrefix string, depth int) error {
	if depth >= maxDepth {
		return &Error{File: p.file, Line: n.Line, Path: strings.TrimSuffix(pathPrefix, "."), Msg: "nested too deeply"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if err := p.checkNode(k, pathPrefix); err != nil {
			return err
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" || k.Value == "" {
			return &Error{File: p.file, Line: k.Line, Path: strings.TrimSuffix(pathPrefix, "."),
				Msg: fmt.Sprintf("key %s is not a flag name", describeNode(k))}
		}
		name, path := namePrefix+k.Value, pathPrefix+k.Value
		if err := p.checkNode(v, path); err != nil {
			return err
		}
		kind, known := p.flags[name]
		if !known {
			if v.Kind == yaml.MappingNode && p.isGroup(name+"-") {
				if err := p.mapping(v, name+"-", path+".", depth+1); err != nil {
					return err
				}
				continue
			}
			return &Error{File: p.file, Line: k.Line, Path: path, Msg: p.unknown(name, v.Kind == yaml.MappingNode)}
		}
		if first, dup := p.seen[name]; dup {
			return &Error{File: p.file, Line: k.Line, Path: path, Msg: fmt.Sprintf("set twice (first at line %d)", first)}
		}
		p.seen[name] = k.Line
		values, err := p.values(kind, v, path)
		if err != nil {
			return err
		}
		p.out = append(p.out, Setting{Flag: name, Path: path, Values: values, Line: k.Line})
	}
	return nil
}

// checkNode rejects anchors, aliases and custom tags: a settings file has
// no use for them, and aliases can expand a small file into a huge one.
func (p *parser) checkNode(n *yaml.Node, path string) error {
	switch {
	case n.Kind == yaml.AliasNode || n.Anchor != "":
		return &Error{File: p.file, Line: n.Line, Path: path, Msg: "anchors and aliases are not supported"}
	case n.Tag != "" && n.Tag != "!" && !knownTags[n.ShortTag()]:
		return &Error{File: p.file, Line: n.Line, Path: path, Msg: fmt.Sprintf("unsupported tag %s", n.Tag)}
	}
	return nil
}

// knownTags are the YAML types a setting can have (!!binary, !!set and
// custom tags cannot be passed through as a flag's text).
var knownTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!map": true, "!!seq": true, "!!timestamp": true,
}

func (p *parser) isGroup(prefix string) bool {
	i := sort.SearchStrings(p.names, prefix)
	return i < len(p.names) && strings.HasPrefix(p.names[i], prefix)
}

func (p *parser) values(kind Kind, v *yaml.Node, path string) ([]string, error) {
	bad := func(n *yaml.Node, want string) error {
		return &Error{File: p.file, Line: n.Line, Path: path, Msg: fmt.Sprintf("want %s, have %s", want, describeNode(n))}
	}
	switch kind {
	case Bool:
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
			return nil, bad(v, "true or false")
		}
		b, err := strconv.ParseBool(strings.ToLower(v.Value))
		if err != nil {
			return nil, bad(v, "true or false")
		}
		return []string{strconv.FormatBool(b)}, nil
	case List:
		if v.Kind == yaml.ScalarNode {
			if v.ShortTag() == "!!null" {
				return nil, bad(v, "a value or a list of values")
			}
			return []string{v.Value}, nil
		}
		if v.Kind != yaml.SequenceNode {
			return nil, bad(v, "a value or a list of values")
		}
		if len(v.Content) > MaxValues {
			return nil, &Error{File: p.file, Line: v.Line, Path: path, Msg: fmt.Sprintf("%d values; at most %d", len(v.Content), MaxValues)}
		}
		out := make([]string, 0, len(v.Content))
		for _, e := range v.Content {
			if err := p.checkNode(e, path); err != nil {
				return nil, err
			}
			if e.Kind != yaml.ScalarNode || e.ShortTag() == "!!null" {
				return nil, bad(e, "a value in the list")
			}
			out = append(out, e.Value)
		}
		return out, nil
	default:
		if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
			return nil, bad(v, "a value")
		}
		return []string{v.Value}, nil
	}
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.ShortTag() == "!!null" {
		return "no value"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return strconv.Quote(strings.ToValidUTF8(v, "\uFFFD"))
}

// unknown says a key is no flag, suggesting the closest flag name (or
// group name, for a mapping) when one is close enough to be a typo.
func (p *parser) unknown(name string, group bool) string {
	shown := name
	if len(shown) > 64 {
		shown = shown[:64] + "…"
	}
	msg := fmt.Sprintf("unknown key %q", strings.ToValidUTF8(shown, "\uFFFD"))
	candidates := p.names
	if group {
		candidates = p.groups()
	}
	best, bestD := "", 0
	if len(name) <= 128 { // no quadratic work on a hostile key
		for _, f := range candidates {
			if d := distance(name, f); best == "" || d < bestD {
				best, bestD = f, d
			}
		}
	}
	if best != "" && bestD <= max(2, len(name)/4) {
		return msg + fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg + " (keys are the long flag names of the command, e.g. interval)"
}

// groups are the names that can hold a mapping: every prefix of a flag
// name that ends before a '-' ("syscalls" of syscalls-max-entries).
func (p *parser) groups() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range p.names {
		for i := 1; i < len(n); i++ {
			if n[i] == '-' && !seen[n[:i]] {
				seen[n[:i]] = true
				out = append(out, n[:i])
			}
		}
	}
	return out
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
