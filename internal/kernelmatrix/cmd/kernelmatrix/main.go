// Command kernelmatrix runs the probe tests on a matrix of kernels in QEMU
// and prints a kernel × package table; it exits non-zero when a test fails
// on any kernel. `make test-kernels` runs it as root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/telagent/telagent/internal/kernelmatrix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kernelmatrix:", err)
		os.Exit(2)
	}
}

func run() error {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		cache = "/var/cache"
	}
	var (
		kernels  = flag.String("kernels", "debian:linux-image-cloud-amd64,debian:linux-image-6.12-cloud-amd64,host", "comma-separated kernels: debian:<linux-image package or meta-package>, host, or a vmlinuz path; @numa255 or @numa255-notpresent after one boots it as a 255-possible-CPU, two-node guest")
		pkgs     = flag.String("pkgs", "./probes/...", "comma-separated go list patterns of the test packages")
		cacheDir = flag.String("cache", filepath.Join(cache, "telagent", "kernels"), "cache for kernel packages, builds and guest logs")
		modules  = flag.String("modules", "loop,veth,nf_tables,nft_numgen,mq_deadline", "comma-separated kernel modules loaded in the guest (with their dependencies; nft_numgen: the tcp tests' drop rules)")
		tools    = flag.String("tools", "ip,nft", "comma-separated host programs copied into the guest with their libraries")
		accel    = flag.String("accel", "auto", "auto (KVM when a KVM guest boots, else TCG), kvm or tcg")
		mem      = flag.Int("m", 1024, "guest memory in MiB")
		cpus     = flag.Int("smp", 2, "guest CPUs")
		boot     = flag.Duration("boot-timeout", 20*time.Minute, "time limit per kernel")
		tt       = flag.Duration("test-timeout", 5*time.Minute, "time limit per test binary")
		runRe    = flag.String("run", "", "-test.run for every test binary (a subset, e.g. for CI)")
		benchRe  = flag.String("bench", "", "-test.bench for every test binary instead of its tests (make bench-kernels)")
		cmdline  = flag.String("cmdline", "", "extra guest kernel command line (loglevel=7 for full kernel reports)")
		md       = flag.Bool("markdown", false, "print the table as Markdown (for docs/development.md) as well")
	)
	flag.Parse()
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: apt-get download and the probes' tests need it")
	}
	switch *accel {
	case "auto", "kvm", "tcg":
	default:
		return fmt.Errorf("-accel %q: want auto, kvm or tcg", *accel)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	runs, err := kernelmatrix.Run(ctx, kernelmatrix.Config{
		Root: root, Kernels: split(*kernels), Packages: split(*pkgs), Cache: *cacheDir,
		Modules: split(*modules), Tools: split(*tools), Accel: *accel, MemoryMB: *mem, CPUs: *cpus,
		BootTimeout: *boot, TestTimeout: *tt, Run: *runRe, Bench: *benchRe, Cmdline: *cmdline, Log: os.Stderr,
	})
	if err != nil {
		return err
	}
	fmt.Println()
	kernelmatrix.WriteText(os.Stdout, runs)
	if *md {
		fmt.Println()
		kernelmatrix.WriteMarkdown(os.Stdout, runs)
	}
	for _, r := range runs {
		if len(r.Bench) > 0 {
			fmt.Printf("\n== benchmarks on %s (%s)\n%s\n", r.Kernel.Name, r.Accel, strings.Join(r.Bench, "\n"))
		}
	}
	fmt.Printf("\nwhole matrix: %.0fs\n", time.Since(start).Seconds())
	if kernelmatrix.Failed(runs) {
		fmt.Fprintln(os.Stderr, "kernelmatrix: tests failed")
		os.Exit(1)
	}
	return nil
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
