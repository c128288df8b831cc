package kernelmatrix

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Kernel is one kernel of the matrix: a bootable image and the directory of
// its modules (lib/modules/<release>), which may be empty.
type Kernel struct {
	Name    string // what the table calls it: the release
	Source  string // where it came from: a Debian package, "host", a path
	Image   string
	Modules string
	// Unavailable says why this kernel cannot be booted here (the table
	// lists it with this reason instead of results).
	Unavailable string
	// Shape is the guest's CPU and NUMA layout (the zero Shape: the
	// matrix's CPU count, one node).
	Shape Shape
}

// Shape is an emulated host layout: a large host is emulated, not assumed.
type Shape struct {
	Name     string
	QEMU     []string // -smp and -numa arguments, replacing -smp N
	Cmdline  string   // kernel parameters it needs
	MemoryMB int      // guest memory (0: the matrix's)
}

// Shapes are the layouts a -kernels entry can ask for with @NAME.
//
// numa255 is 255 possible CPUs with 2 online, on two NUMA nodes with 2 GiB
// each, CPU 0 on node 0 and CPU 1 on node 1 (ARCHITECTURE.md's recipe):
// the per-CPU cost of a layout shows at 255 possible CPUs, and node-local
// storage and rings show on two real nodes. -smp 255 with maxcpus=2 makes
// all 255 present (so offline CPUs have sysfs devices and node links);
// Linux 6.1 needs -smp 2,maxcpus=255 instead (CPUs not present). One CPU
// per socket: CPUs 0 and 1 sharing a last-level cache across two nodes
// is a topology the kernel warns about. Under TCG a guest of this size
// spends most of a minute in boot-time loops (freeing init memory), which
// the soft-lockup watchdog reports: off here (oopses and panics still end
// the run).
var Shapes = map[string]Shape{
	"numa255": {
		Name: "numa255",
		QEMU: []string{"-smp", "255,sockets=255,cores=1,threads=1",
			"-object", "memory-backend-ram,id=m0,size=2048M", "-numa", "node,nodeid=0,cpus=0,cpus=2-127,memdev=m0",
			"-object", "memory-backend-ram,id=m1,size=2048M", "-numa", "node,nodeid=1,cpus=1,cpus=128-254,memdev=m1"},
		Cmdline:  "maxcpus=2 nosoftlockup",
		MemoryMB: 4096,
	},
	"numa255-notpresent": {
		Name: "numa255-notpresent",
		QEMU: []string{"-smp", "2,maxcpus=255,sockets=255,cores=1,threads=1",
			"-object", "memory-backend-ram,id=m0,size=2048M", "-numa", "node,nodeid=0,cpus=0,cpus=2-127,memdev=m0",
			"-object", "memory-backend-ram,id=m1,size=2048M", "-numa", "node,nodeid=1,cpus=1,cpus=128-254,memdev=m1"},
		Cmdline:  "nosoftlockup",
		MemoryMB: 4096,
	},
}

// Resolve turns one -kernels entry into a Kernel:
//
//	debian:<package>   a Debian linux-image package, or a meta-package that
//	                   depends on one (linux-image-cloud-amd64), downloaded
//	                   with apt-get download and unpacked under cache
//	host               the running kernel's /boot/vmlinuz-$(uname -r)
//	<path to vmlinuz>  a kernel image, with modules from a lib/modules
//	                   directory next to it, if any
func Resolve(spec, cache string) (Kernel, error) {
	if base, shape, ok := strings.Cut(spec, "@"); ok {
		sh, known := Shapes[shape]
		if !known {
			return Kernel{}, fmt.Errorf("kernel %q: no guest shape %q (known: numa255, numa255-notpresent)", spec, shape)
		}
		k, err := Resolve(base, cache)
		k.Shape = sh
		if k.Name != "" {
			k.Name += "@" + shape
		}
		return k, err
	}
	switch {
	case strings.HasPrefix(spec, "debian:"):
		return debianKernel(strings.TrimPrefix(spec, "debian:"), cache)
	case spec == "host":
		return hostKernel(), nil
	}
	if _, err := os.Stat(spec); err != nil {
		return Kernel{}, fmt.Errorf("kernel %q: want debian:<package>, host or a vmlinuz path: %w", spec, err)
	}
	return Kernel{Name: filepath.Base(spec), Source: spec, Image: spec}, nil
}

func hostKernel() Kernel {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Kernel{Name: "host", Source: "host", Unavailable: fmt.Sprintf("uname: %v", err)}
	}
	rel := unix.ByteSliceToString(u.Release[:])
	k := Kernel{Name: rel, Source: "host"}
	img := "/boot/vmlinuz-" + rel
	f, err := os.Open(img)
	if err != nil {
		k.Unavailable = fmt.Sprintf("the host kernel's image is not readable: %v", err)
		return k
	}
	f.Close()
	k.Image = img
	if st, err := os.Stat("/lib/modules/" + rel); err == nil && st.IsDir() {
		k.Modules = "/lib/modules/" + rel
	}
	return k
}

// debianKernel downloads and unpacks pkg (following a meta-package to the
// linux-image package it depends on) into cache/<package>, once.
func debianKernel(pkg, cache string) (Kernel, error) {
	real, err := concretePackage(pkg)
	if err != nil {
		return Kernel{}, err
	}
	dir := filepath.Join(cache, real)
	k := Kernel{Source: "Debian " + real}
	if err := unpackOnce(real, dir, cache); err != nil {
		return Kernel{}, err
	}
	imgs, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(imgs) != 1 {
		return Kernel{}, fmt.Errorf("%s: want one boot/vmlinuz-* in %s, found %d", real, dir, len(imgs))
	}
	k.Image = imgs[0]
	k.Name = strings.TrimPrefix(filepath.Base(imgs[0]), "vmlinuz-")
	k.Modules = filepath.Join(dir, "lib", "modules", k.Name)
	return k, nil
}

// concretePackage follows meta-packages (linux-image-cloud-amd64 depends on
// linux-image-6.1.0-N-cloud-amd64) to the package holding a kernel: the
// newest version Debian's index has now.
func concretePackage(pkg string) (string, error) {
	for range 3 {
		if !strings.HasPrefix(pkg, "linux-image-") {
			return "", fmt.Errorf("%s is not a linux-image package", pkg)
		}
		out, err := exec.Command("apt-cache", "depends", "--no-recommends", "--no-suggests", pkg).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("apt-cache depends %s (run apt-get update?): %v: %s", pkg, err, bytes.TrimSpace(out))
		}
		next := ""
		for _, line := range strings.Split(string(out), "\n") {
			if dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(dep, "linux-image-") {
				next = dep
				break
			}
		}
		if next == "" {
			return pkg, nil // no linux-image dependency: pkg holds the kernel
		}
		pkg = next
	}
	return "", fmt.Errorf("%s: meta-packages nest deeper than expected", pkg)
}

// unpackOnce downloads pkg's .deb into cache and unpacks it into dir with
// dpkg-deb -x: the kernel is never installed on the host. A finished
// unpack is marked by a file, so an interrupted one is redone.
func unpackOnce(pkg, dir, cache string) error {
	done := filepath.Join(dir, ".unpacked")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	found, _ := filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
	if len(found) == 0 {
		cmd := exec.Command("apt-get", "download", "-o", "APT::Sandbox::User=root", pkg)
		cmd.Dir = debs
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get download %s: %v: %s", pkg, err, bytes.TrimSpace(out))
		}
		found, _ = filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
		if len(found) == 0 {
			return fmt.Errorf("apt-get download %s left no .deb in %s", pkg, debs)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if out, err := exec.Command("dpkg-deb", "-x", found[len(found)-1], dir).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %v: %s", found[len(found)-1], err, bytes.TrimSpace(out))
	}
	return os.WriteFile(done, nil, 0o644)
}

// Module is one loadable module file of a kernel.
type Module struct {
	Name string // as the kernel names it: dashes become underscores
	Path string // .ko, .ko.xz, .ko.zst or .ko.gz
}

// ModuleOrder returns the modules names need and their dependencies, each
// after what it depends on. The Debian packages ship no modules.dep (depmod
// runs at install time), so the dependencies come from each module's
// .modinfo "depends=" entry. Names the kernel does not have as modules are
// returned in missing: they are built in or absent, which the guest's
// tests find out for themselves.
func ModuleOrder(modDir string, names []string) (order []Module, missing []string, err error) {
	index := map[string]string{}
	if modDir != "" {
		err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if n, ok := moduleName(d.Name()); ok && !d.IsDir() {
				index[n] = p
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("modules of %s: %w", modDir, err)
		}
	}
	seen := map[string]bool{}
	var visit func(name string, depth int) error
	visit = func(name string, depth int) error {
		name = strings.ReplaceAll(name, "-", "_")
		if seen[name] {
			return nil
		}
		seen[name] = true
		p, ok := index[name]
		if !ok {
			if depth == 0 {
				missing = append(missing, name)
				return nil
			}
			return fmt.Errorf("module %s is needed by another but not in %s", name, modDir)
		}
		deps, err := moduleDepends(p)
		if err != nil {
			return fmt.Errorf("module %s: %w", p, err)
		}
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d, depth+1); err != nil {
				return err
			}
		}
		order = append(order, Module{Name: name, Path: p})
		return nil
	}
	for _, n := range names {
		if err := visit(n, 0); err != nil {
			return nil, nil, err
		}
	}
	return order, missing, nil
}

func moduleName(file string) (string, bool) {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if n, ok := strings.CutSuffix(file, ext); ok {
			return strings.ReplaceAll(n, "-", "_"), true
		}
	}
	return "", false
}

// ModuleBytes returns a module's ELF object, decompressed: busybox insmod
// loads only plain .ko files.
func ModuleBytes(p string) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(p, ".xz"):
		tool = "xz"
	case strings.HasSuffix(p, ".zst"):
		tool = "zstd"
	case strings.HasSuffix(p, ".gz"):
		tool = "gzip"
	default:
		return os.ReadFile(p)
	}
	out, err := exec.Command(tool, "-dc", p).Output()
	if err != nil {
		return nil, fmt.Errorf("%s -dc %s: %w", tool, p, err)
	}
	return out, nil
}

// moduleDepends reads the "depends=" entry of a module's .modinfo section.
func moduleDepends(p string) ([]string, error) {
	b, err := ModuleBytes(p)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}
