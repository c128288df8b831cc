package uprobe

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes/uprobe/elfsym"
)

// MaxFunctions is how many functions can be attached: the declared bound of
// the metric set's function key field.
var MaxFunctions = fnBound()

func fnBound() int {
	for _, k := range set.Key {
		if k.Attribute == entity.AttrCodeFunctionName {
			return int(k.Bound)
		}
	}
	return 0
}

// Function is one resolved --uprobe: where to attach and how it is named.
type Function struct {
	Spec string // as the user gave it
	Path string // the file probed
	Name string // code.function.name
	// Go: attach at Entries and Returns with uprobes, never a uretprobe.
	Go      bool
	Entries []uint64 // file offsets
	Returns []uint64 // file offsets of RET instructions (Go)
}

// Spec is a parsed, not yet resolved, BINARY:SYMBOL.
type Spec struct {
	Binary string // a path, a library name or pid:PID
	Symbol string
	Cxx    bool // match only by demangled C++ name (cxx: prefix)
}

// ParseSpec splits BINARY:SYMBOL. BINARY is a path (it contains a '/'), a
// library name ("libc", "libssl.so.3"), or pid:PID for that process's
// executable. SYMBOL may start with "cxx:" to match C++ functions by
// demangled name (ns::Class::method), which also happens when no symbol
// has the exact name. A path cannot contain ':'.
func ParseSpec(s string) (Spec, error) {
	bad := func(why string) (Spec, error) {
		return Spec{}, fmt.Errorf("%q: %s (want BINARY:SYMBOL, BINARY a path, a library name or pid:PID)", s, why)
	}
	var sp Spec
	rest := s
	if r, ok := strings.CutPrefix(s, "pid:"); ok {
		pid, sym, ok := strings.Cut(r, ":")
		if n, err := strconv.ParseUint(pid, 10, 31); err != nil || n == 0 {
			return bad("pid:" + pid + " is not a process id")
		}
		if !ok {
			return bad("no symbol")
		}
		sp.Binary, rest = "pid:"+pid, sym
	} else {
		bin, sym, ok := strings.Cut(s, ":")
		if !ok {
			return bad("no ':' between binary and symbol")
		}
		sp.Binary, rest = bin, sym
	}
	if sym, ok := strings.CutPrefix(rest, "cxx:"); ok {
		sp.Cxx, rest = true, sym
	}
	sp.Symbol = rest
	switch {
	case sp.Binary == "":
		return bad("empty binary")
	case sp.Symbol == "":
		return bad("empty symbol")
	}
	return sp, nil
}

// Resolve parses and resolves every spec: the binary's file, the symbol's
// offsets, Go returns. pids are the target processes, whose mappings are
// searched first for a library given by name. Errors are one line each,
// starting with the quoted spec; duplicates (same file and function) are
// merged.
func Resolve(specs []string, pids []uint32) ([]Function, error) {
	return resolve(specs, pids, "/proc")
}

func resolve(specs []string, pids []uint32, procRoot string) ([]Function, error) {
	var out []Function
	names := map[string]string{} // name → path, to refuse two functions with one name
	for _, s := range specs {
		sp, err := ParseSpec(s)
		if err != nil {
			return nil, err
		}
		fn, err := resolveOne(sp, pids, procRoot)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		fn.Spec = s
		if path, ok := names[fn.Name]; ok {
			if same(path, fn.Path) {
				continue
			}
			return nil, fmt.Errorf("%q: a function named %s is already probed in %s: its series could not be told apart", s, fn.Name, path)
		}
		names[fn.Name] = fn.Path
		out = append(out, fn)
	}
	if len(out) > MaxFunctions {
		return nil, fmt.Errorf("%d functions, at most %d can be probed", len(out), MaxFunctions)
	}
	return out, nil
}

func same(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func resolveOne(sp Spec, pids []uint32, procRoot string) (Function, error) {
	path, err := binaryPath(sp.Binary, pids, procRoot)
	if err != nil {
		return Function{}, err
	}
	f, err := elfsym.Open(path)
	if err != nil {
		return Function{}, err
	}
	defer f.Close()
	if want := hostMachine(); f.Machine != want {
		return Function{}, fmt.Errorf("%s: %s binary, this host is %s", path, f.Machine, want)
	}
	if f.IsGo() {
		if f.Machine != elf.EM_X86_64 {
			return Function{}, fmt.Errorf("%s: Go binaries are supported on x86-64 only (returns are found by x86-64 disassembly)", path)
		}
		if !elfsym.GoVersionAtLeast(f.GoVersion, 1, 17) {
			return Function{}, fmt.Errorf("%s: built by %s: Go binaries need Go 1.17 or later (the goroutine is found in register R14)", path, f.GoVersion)
		}
		if f.Stripped {
			return Function{}, fmt.Errorf("%s: stripped Go binary (no .symtab): Go functions are not in .dynsym; build without -ldflags=-s", path)
		}
	}
	fn, err := f.Lookup(sp.Symbol, sp.Cxx)
	if err != nil {
		return Function{}, err
	}
	return Function{Path: path, Name: fn.Name, Go: f.IsGo(), Entries: fn.Entries, Returns: fn.Returns}, nil
}

// binaryPath turns BINARY into a file to open and attach to.
func binaryPath(bin string, pids []uint32, procRoot string) (string, error) {
	if pid, ok := strings.CutPrefix(bin, "pid:"); ok {
		// The magic link reaches the executable even from another mount
		// namespace or after it was replaced on disk.
		p := filepath.Join(procRoot, pid, "exe")
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("pid %s: no such process", pid)
			}
			return "", fmt.Errorf("pid %s: executable: %w", pid, err)
		}
		return p, nil
	}
	if strings.Contains(bin, "/") {
		st, err := os.Stat(bin)
		if err != nil {
			return "", fmt.Errorf("%s: %w", bin, errors.Unwrap(err))
		}
		if !st.Mode().IsRegular() {
			return "", fmt.Errorf("%s: not a regular file", bin)
		}
		return filepath.Abs(bin)
	}
	return elfsym.FindLibrary(bin, pids, procRoot)
}

func hostMachine() elf.Machine {
	switch runtime.GOARCH {
	case "amd64":
		return elf.EM_X86_64
	case "arm64":
		return elf.EM_AARCH64
	}
	return elf.EM_NONE
}
