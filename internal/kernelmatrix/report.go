package kernelmatrix

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Failed says whether any package failed or any kernel could not be run
// for another reason than being unavailable here.
func Failed(runs []KernelRun) bool {
	for _, r := range runs {
		if r.Err != "" && r.Kernel.Unavailable == "" {
			return true
		}
		for _, p := range r.Packages {
			if p.Status == Fail {
				return true
			}
		}
	}
	return false
}

// cell is one kernel × package entry: PASS 9 (2 skipped), SKIP, FAIL 1/11.
func cell(p PackageResult) string {
	pass, skip, fail := p.Count(Pass), p.Count(Skip), p.Count(Fail)
	switch p.Status {
	case Pass:
		if skip > 0 {
			return fmt.Sprintf("PASS %d (%d skipped)", pass, skip)
		}
		return fmt.Sprintf("PASS %d", pass)
	case Skip:
		return fmt.Sprintf("SKIP (all %d)", skip)
	}
	if p.Note != "" && fail == 0 {
		return "FAIL (" + p.Note + ")"
	}
	return fmt.Sprintf("FAIL %d of %d", fail, pass+skip+fail)
}

// WriteText prints the table, then per kernel the skipped tests grouped by
// reason and the failed tests with their output.
func WriteText(w io.Writer, runs []KernelRun) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tACCEL\tTIME\tPACKAGE\tRESULT")
	for _, r := range runs {
		name := r.Kernel.Name
		if r.Kernel.Unavailable != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tnot run: %s\n", name, r.Kernel.Unavailable)
			continue
		}
		for i, p := range r.Packages {
			k, a, t := "", "", ""
			if i == 0 {
				k, a, t = name, r.Accel, fmt.Sprintf("%.0fs", r.Seconds)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k, a, t, p.ImportPath, cell(p))
		}
	}
	tw.Flush()
	for _, r := range runs {
		if r.Kernel.Unavailable != "" {
			continue
		}
		fmt.Fprintf(w, "\n== %s (%s, guest uname -r %q)\n", r.Kernel.Name, r.Kernel.Source, r.Release)
		if r.Err != "" {
			fmt.Fprintf(w, "  run: %s\n", r.Err)
		}
		for _, s := range r.Setup {
			fmt.Fprintf(w, "  guest setup: %s\n", s)
		}
		for _, p := range r.Packages {
			reasons := map[string][]string{}
			for _, t := range p.Tests {
				if t.Status == Skip {
					reasons[t.Reason()] = append(reasons[t.Reason()], t.Name)
				}
			}
			for _, why := range sortedReasons(reasons) {
				fmt.Fprintf(w, "  SKIP %s: %s: %s\n", short(p.ImportPath), strings.Join(reasons[why], ", "), why)
			}
			if p.Note != "" {
				fmt.Fprintf(w, "  FAIL %s: %s\n", short(p.ImportPath), p.Note)
			}
			// Failures alike (one load error breaks many tests) are one
			// entry, with the output of the first of them.
			fails := map[string][]TestResult{}
			for _, t := range p.Tests {
				if t.Status == Fail && (len(t.Output) > 0 || !hasSubtests(p.Tests, t.Name)) {
					fails[t.Reason()] = append(fails[t.Reason()], t)
				}
			}
			for _, why := range sortedReasons(names(fails)) {
				ts := fails[why]
				var ns []string
				for _, t := range ts {
					ns = append(ns, t.Name)
				}
				fmt.Fprintf(w, "  FAIL %s: %s\n", short(p.ImportPath), strings.Join(ns, ", "))
				out := ts[0].Output
				if len(out) > 20 {
					out = append([]string{"..."}, out[len(out)-20:]...)
				}
				for _, l := range out {
					fmt.Fprintf(w, "      %s\n", strings.TrimSpace(l))
				}
			}
		}
	}
}

// WriteMarkdown prints the kernel × package table for docs/development.md.
func WriteMarkdown(w io.Writer, runs []KernelRun) {
	var pkgs []string
	seen := map[string]bool{}
	for _, r := range runs {
		for _, p := range r.Packages {
			if !seen[p.ImportPath] {
				seen[p.ImportPath] = true
				pkgs = append(pkgs, p.ImportPath)
			}
		}
	}
	fmt.Fprint(w, "| kernel | time |")
	for _, p := range pkgs {
		fmt.Fprintf(w, " `%s` |", short(p))
	}
	fmt.Fprint(w, "\n| --- | --- |")
	for range pkgs {
		fmt.Fprint(w, " --- |")
	}
	fmt.Fprintln(w)
	for _, r := range runs {
		if r.Kernel.Unavailable != "" {
			fmt.Fprintf(w, "| %s | – | not run: %s |%s\n", r.Kernel.Name, r.Kernel.Unavailable, strings.Repeat(" |", max(len(pkgs)-1, 0)))
			continue
		}
		fmt.Fprintf(w, "| %s (%s) | %.0fs (%s) |", r.Kernel.Name, r.Kernel.Source, r.Seconds, r.Accel)
		byPkg := map[string]PackageResult{}
		for _, p := range r.Packages {
			byPkg[p.ImportPath] = p
		}
		for _, p := range pkgs {
			fmt.Fprintf(w, " %s |", cell(byPkg[p]))
		}
		fmt.Fprintln(w)
	}
}

func sortedReasons(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// short drops the module path: probes/memory.
func short(pkg string) string {
	if i := strings.Index(pkg, "/probes"); i >= 0 {
		return pkg[i+1:]
	}
	return pkg
}

func names(m map[string][]TestResult) map[string][]string {
	out := map[string][]string{}
	for k := range m {
		out[k] = nil
	}
	return out
}

// hasSubtests says whether name has subtests in ts: a parent that fails
// only because a subtest did is not listed itself.
func hasSubtests(ts []TestResult, name string) bool {
	for _, t := range ts {
		if strings.HasPrefix(t.Name, name+"/") {
			return true
		}
	}
	return false
}
