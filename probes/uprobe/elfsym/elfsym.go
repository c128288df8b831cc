// Package elfsym finds functions in ELF executables and shared libraries for
// uprobes: the file offset of a symbol (from .symtab, or .dynsym when the
// file is stripped), close matches when it is absent, C++ names matched by
// their demangled form, Go binaries detected from their build info, and the
// file offsets of every RET instruction of a Go function (x86-64), where
// return probes must go because a uretprobe breaks Go's stack growth.
package elfsym

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ianlancetaylor/demangle"
	"golang.org/x/arch/x86/x86asm"
)

// File is one opened ELF file with its function symbols.
type File struct {
	Path string
	// Machine is the ELF machine (elf.EM_X86_64, elf.EM_AARCH64, ...).
	Machine elf.Machine
	// GoVersion is the toolchain that built a Go binary ("go1.26.8"); empty
	// for anything else.
	GoVersion string
	// Stripped: no .symtab, only .dynsym (exported symbols) was searched.
	Stripped bool

	f     *elf.File
	funcs []elf.Symbol // STT_FUNC and STT_GNU_IFUNC symbols with an address
}

// Function is a resolved function: where its entry (and, for Go, its
// returns) are in the file.
type Function struct {
	// Name is what the function is reported as (code.function.name): the
	// symbol, or its demangled form without parameters for C++.
	Name string
	// Symbol is the ELF symbol name.
	Symbol string
	// Entries are file offsets of the function's first instruction: more
	// than one when several local symbols share the name (static functions
	// of different compilation units). For Go, the first instruction after
	// the stack-bound check of the prologue (see goEntry).
	Entries []uint64
	// Returns are the file offsets of the RET instructions (Go only).
	Returns []uint64
}

// Open reads path's symbol tables. Go build info is read too, so a Go
// binary is known as one.
func Open(path string) (*File, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable ELF file: %w", path, err)
	}
	out := &File{Path: path, Machine: f.Machine, f: f}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		f.Close()
		return nil, fmt.Errorf("%s: ELF type %s is neither an executable nor a shared library", path, f.Type)
	}
	syms, err := f.Symbols()
	if errors.Is(err, elf.ErrNoSymbols) {
		out.Stripped = true
	} else if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: read .symtab: %w", path, err)
	}
	dyn, err := f.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		f.Close()
		return nil, fmt.Errorf("%s: read .dynsym: %w", path, err)
	}
	for _, s := range append(syms, dyn...) {
		t := elf.ST_TYPE(s.Info)
		if (t == elf.STT_FUNC || t == elf.STT_GNU_IFUNC) && s.Value != 0 && s.Section != elf.SHN_UNDEF {
			out.funcs = append(out.funcs, s)
		}
	}
	if bi, err := buildinfo.ReadFile(path); err == nil {
		out.GoVersion = bi.GoVersion
	}
	return out, nil
}

// Close releases the file.
func (f *File) Close() error { return f.f.Close() }

// IsGo reports whether the file is a Go binary.
func (f *File) IsGo() bool { return f.GoVersion != "" }

// Lookup resolves symbol. An exact symbol name wins; otherwise, or when
// cxx is set, C++ symbols whose demangled name without parameters equals
// it (one function, or one name's overloads, which are rejected as
// ambiguous). When nothing matches, the error lists close matches.
func (f *File) Lookup(symbol string, cxx bool) (Function, error) {
	var exact []elf.Symbol
	if !cxx {
		for _, s := range f.funcs {
			if s.Name == symbol {
				exact = append(exact, s)
			}
		}
	}
	name := symbol
	if len(exact) == 0 {
		mangled := map[string]bool{}
		for _, s := range f.funcs {
			if d, ok := demangled(s.Name); ok && d == symbol {
				exact = append(exact, s)
				mangled[s.Name] = true
			}
		}
		if len(mangled) > 1 {
			names := slices.Sorted(func(yield func(string) bool) {
				for n := range mangled {
					if !yield(n) {
						return
					}
				}
			})
			return Function{}, fmt.Errorf("%s: %q names %d functions (overloads?): give one mangled name: %s",
				f.Path, symbol, len(names), strings.Join(firstN(names, 5), ", "))
		}
	}
	if len(exact) == 0 {
		return Function{}, f.notFound(symbol)
	}
	for _, s := range exact {
		if elf.ST_TYPE(s.Info) == elf.STT_GNU_IFUNC {
			return Function{}, fmt.Errorf("%s: %s is an IFUNC (its code only picks an implementation at load time); probe the implementation it selects instead (e.g. a __%s_* variant)", f.Path, s.Name, strings.TrimPrefix(s.Name, "__"))
		}
	}
	fn := Function{Name: name, Symbol: exact[0].Name}
	seen := map[uint64]bool{}
	for _, s := range exact {
		off, err := f.fileOffset(s.Value)
		if err != nil {
			return Function{}, fmt.Errorf("%s: %s: %w", f.Path, s.Name, err)
		}
		if seen[off] {
			continue // the same function in .symtab and .dynsym
		}
		seen[off] = true
		if !f.IsGo() {
			fn.Entries = append(fn.Entries, off)
			continue
		}
		entry, rets, err := f.goSites(s)
		if err != nil {
			return Function{}, err
		}
		fn.Entries = append(fn.Entries, entry)
		fn.Returns = append(fn.Returns, rets...)
	}
	return fn, nil
}

// demangled is a C++ symbol's name without parameters ("ns::C::f").
func demangled(sym string) (string, bool) {
	if !strings.HasPrefix(sym, "_Z") {
		return "", false
	}
	d, err := demangle.ToString(sym, demangle.NoParams, demangle.NoTemplateParams)
	if err != nil {
		return "", false
	}
	return d, true
}

// fileOffset converts a virtual address to its offset in the file through
// the executable PT_LOAD segment that holds it (PIE and libraries included:
// uprobes are placed by file offset).
func (f *File) fileOffset(vaddr uint64) (uint64, error) {
	for _, p := range f.f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && p.Vaddr <= vaddr && vaddr < p.Vaddr+p.Filesz {
			return vaddr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("address %#x is in no executable segment", vaddr)
}

// goSites disassembles a Go function and returns the file offsets of its
// entry probe and of every RET. Decoding is linear from the start (Go puts
// no data in text); any byte sequence that does not decode is an error,
// since a probe placed inside an instruction would corrupt the program.
//
// The entry probe goes after the prologue's stack-bound check (CMP against
// g.stackguard0 at 16(R14), then a conditional jump to the
// morestack call): when the stack must grow, or the goroutine is asked to
// yield, morestack jumps back to the function's first instruction, so a
// probe there would fire twice for one call. Past the check it fires once,
// with SP unchanged (the check only compares, or computes into R12).
// Functions without the check (NOSPLIT) get the probe at their start.
func (f *File) goSites(s elf.Symbol) (uint64, []uint64, error) {
	if f.Machine != elf.EM_X86_64 {
		return 0, nil, fmt.Errorf("%s: Go functions on %s are not supported (returns are found by x86-64 disassembly)", f.Path, f.Machine)
	}
	if s.Size == 0 {
		return 0, nil, fmt.Errorf("%s: %s has no size in the symbol table: cannot find its returns", f.Path, s.Name)
	}
	code, err := f.code(s.Value, s.Size)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %s: %w", f.Path, s.Name, err)
	}
	const prologueInsts = 8 // the check is in the first few instructions
	var (
		rets     []uint64
		entry    = s.Value
		sawCheck bool
	)
	for pc, n := 0, 0; pc < len(code); n++ {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			// Trailing INT3 padding is fine; anything else is not.
			if allByte(code[pc:], 0xcc) {
				break
			}
			return 0, nil, fmt.Errorf("%s: %s: cannot decode the instruction at +%#x: %w", f.Path, s.Name, pc, err)
		}
		next := pc + inst.Len
		if n < prologueInsts {
			if inst.Op == x86asm.CMP && readsStackguard(inst) {
				sawCheck = true
			} else if sawCheck && isJcc(inst.Op) {
				entry = s.Value + uint64(next)
				sawCheck = false
			}
		}
		if inst.Op == x86asm.RET {
			off, err := f.fileOffset(s.Value + uint64(pc))
			if err != nil {
				return 0, nil, err
			}
			rets = append(rets, off)
		}
		pc = next
	}
	if len(rets) == 0 {
		return 0, nil, fmt.Errorf("%s: %s has no RET instruction (it never returns, or ends in a jump): cannot time it", f.Path, s.Name)
	}
	off, err := f.fileOffset(entry)
	if err != nil {
		return 0, nil, err
	}
	return off, rets, nil
}

// readsStackguard: an operand is 16(R14), g.stackguard0 (Go >= 1.17).
func readsStackguard(inst x86asm.Inst) bool {
	for _, a := range inst.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.R14 && m.Disp == 16 && m.Index == 0 {
			return true
		}
	}
	return false
}

func isJcc(op x86asm.Op) bool {
	switch op {
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE,
		x86asm.JL, x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JS:
		return true
	}
	return false
}

// code reads size bytes at vaddr from the section that holds them.
func (f *File) code(vaddr, size uint64) ([]byte, error) {
	for _, sec := range f.f.Sections {
		if sec.Type == elf.SHT_PROGBITS && sec.Flags&elf.SHF_EXECINSTR != 0 && sec.Addr <= vaddr && vaddr+size <= sec.Addr+sec.Size {
			b := make([]byte, size)
			if _, err := sec.ReadAt(b, int64(vaddr-sec.Addr)); err != nil {
				return nil, fmt.Errorf("read code: %w", err)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("code at %#x+%d is in no executable section", vaddr, size)
}

func allByte(b []byte, v byte) bool {
	for _, c := range b {
		if c != v {
			return false
		}
	}
	return true
}

// notFound is the error for an absent symbol, with up to 5 close matches:
// names containing it (or contained in it), then names within a small edit
// distance, demangled C++ names included.
func (f *File) notFound(symbol string) error {
	where := ".symtab and .dynsym"
	if f.Stripped {
		where = ".dynsym (the file is stripped: only exported functions are visible)"
	}
	msg := fmt.Sprintf("%s: no function %q in %s", f.Path, symbol, where)
	if m := f.closeMatches(symbol, 5); len(m) > 0 {
		msg += "; close matches: " + strings.Join(m, ", ")
	}
	return errors.New(msg)
}

func (f *File) closeMatches(symbol string, n int) []string {
	type cand struct {
		name string
		dist int
	}
	low := strings.ToLower(symbol)
	maxDist := max(2, len(symbol)/3)
	best := map[string]int{}
	for _, s := range f.funcs {
		names := []string{s.Name}
		if d, ok := demangled(s.Name); ok {
			names = append(names, d)
		}
		for _, name := range names {
			ln := strings.ToLower(name)
			d := -1
			switch {
			case strings.Contains(ln, low) || (len(ln) >= 3 && strings.Contains(low, ln)):
				d = abs(len(ln) - len(low)) // containment: closer lengths first
				if d > maxDist {
					d = maxDist + 1 + d
				}
			case abs(len(ln)-len(low)) <= maxDist:
				if e := editDistance(low, ln, maxDist); e <= maxDist {
					d = e
				}
			}
			if d >= 0 {
				if old, ok := best[name]; !ok || d < old {
					best[name] = d
				}
			}
		}
	}
	cands := make([]cand, 0, len(best))
	for name, d := range best {
		cands = append(cands, cand{name, d})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].dist != cands[j].dist {
			return cands[i].dist < cands[j].dist
		}
		return cands[i].name < cands[j].name
	})
	out := make([]string, 0, n)
	for _, c := range firstN(cands, n) {
		out = append(out, c.name)
	}
	return out
}

// editDistance is the Levenshtein distance of a and b, or limit+1 as soon
// as it must exceed limit.
func editDistance(a, b string, limit int) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin > limit {
			return limit + 1
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func firstN[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// GoVersionAtLeast reports whether a "goX.Y[.Z]" version is at least
// major.minor (development versions, "devel ...", count as recent).
func GoVersionAtLeast(v string, major, minor int) bool {
	rest, ok := strings.CutPrefix(v, "go")
	if !ok {
		return strings.HasPrefix(v, "devel")
	}
	parts := strings.SplitN(rest, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(leadingDigits(parts[1])) // "26rc1" is 26
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
