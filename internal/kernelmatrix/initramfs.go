package kernelmatrix

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// TestBinary is one compiled test package: its import path, its path in
// the guest relative to the repository (probes/memory), the host binary
// and the package's testdata directory, if any.
type TestBinary struct {
	ImportPath string
	Rel        string
	Binary     string
	Testdata   string
}

// Guest is what every kernel's initramfs holds besides its own modules.
type Guest struct {
	Busybox   string       // a static busybox
	Tests     []TestBinary // run in this order
	Prebuilt  string       // directory of workloads for testutil.PrebuiltEnv
	Workloads []string     // their paths in it (testutil.PrebuiltName)
	Tools     []string     // host programs the tests exec (ip, nft), with their libraries
	Timeout   time.Duration
	Run       string // -test.run, "" for all
	Bench     string // -test.bench (and no tests), "" for none
	ScratchMB int    // size of the ext2 /tmp
}

// Result markers the guest writes on its second serial port; the host
// splits the stream on them.
const (
	markKernel = "@@KM KERNEL "
	markBegin  = "@@KM BEGIN "
	markEnd    = "@@KM END "
	markModule = "@@KM MODULE-FAIL "
	markSetup  = "@@KM SETUP-FAIL "
	markDone   = "@@KM DONE"
)

// initScript is the guest's /init. It mounts what the probes and their
// tests use (proc, sys, tracefs, debugfs, bpffs, cgroup2), loads the
// modules, puts /tmp on ext2 over a loop device (page cache on tmpfs cannot
// be dropped, so major faults need a real file system), runs each test
// binary from its package directory as go test would, and powers off.
// Test output goes to ttyS1 so kernel messages on the console (ttyS0)
// never interleave with it.
func initScript(g Guest, modules []string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("#!/bin/sh")
	w("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp %s=/prebuilt", "TELAGENT_PREBUILT_DIR")
	w("out=/dev/ttyS1")
	w("mount -t proc proc /proc")
	w("mount -t sysfs sysfs /sys")
	w("mount -t devtmpfs devtmpfs /dev")
	w("exec >/dev/console 2>&1")
	w("setup() { \"$@\" || echo \"%s$*\" >$out; }", markSetup)
	w("mkdir -p /dev/pts /dev/shm /sys/fs/cgroup /sys/fs/bpf /sys/kernel/debug /sys/kernel/tracing /scratch /tmp")
	w("setup mount -t devpts devpts /dev/pts")
	w("setup mount -t tmpfs tmpfs /dev/shm")
	w("setup mount -t tracefs tracefs /sys/kernel/tracing")
	w("setup mount -t debugfs debugfs /sys/kernel/debug")
	w("setup mount -t bpf bpf /sys/fs/bpf")
	w("setup mount -t cgroup2 cgroup2 /sys/fs/cgroup")
	w("echo %s$(uname -r) >$out", markKernel)
	for _, m := range modules {
		w("insmod /modules/%s.ko || echo %s%s >$out", m, markModule, m)
	}
	w("setup ip link set lo up")
	w("setup mount -t tmpfs -o size=%dm tmpfs /scratch", g.ScratchMB+16)
	w("setup truncate -s %dM /scratch/tmp.img", g.ScratchMB)
	w("loop=$(losetup -f)")
	w("setup losetup $loop /scratch/tmp.img")
	w("setup mke2fs -q $loop")
	w("setup mount $loop /tmp")
	w("chmod 1777 /tmp")
	for _, t := range g.Tests {
		w("cd /pkgs/%s && echo %s%s >$out", t.Rel, markBegin, t.ImportPath)
		quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
		run := ""
		if g.Run != "" {
			run = " -test.run=" + quote(g.Run)
		}
		if g.Bench != "" {
			run = " -test.run='^$' -test.benchtime=20x -test.bench=" + quote(g.Bench)
		}
		w("./%s -test.v=test2json -test.timeout=%s%s >$out 2>&1", path.Base(t.Rel)+".test", g.Timeout, run)
		w("echo %s%s $? >$out", markEnd, t.ImportPath)
	}
	w("cd / && sync")
	w("echo %s >$out", markDone)
	w("poweroff -f")
	return b.String()
}

// BuildInitramfs writes the gzip-compressed initramfs for one kernel to
// dst: busybox, the test binaries with their testdata, the prebuilt
// workloads, the tools with their libraries, and the kernel's modules.
func BuildInitramfs(dst string, g Guest, k Kernel, moduleNames []string) (missing []string, err error) {
	im := NewImage()
	if err := addBusybox(im, g.Busybox); err != nil {
		return nil, err
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "root", "scratch", "run"} {
		im.AddDir(d, 0o755)
	}
	im.AddData("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
	im.AddData("etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	for _, t := range g.Tests {
		im.AddFile(path.Join("pkgs", t.Rel, path.Base(t.Rel)+".test"), t.Binary, 0o755)
		if t.Testdata != "" {
			if err := addTree(im, path.Join("pkgs", t.Rel, "testdata"), t.Testdata); err != nil {
				return nil, err
			}
		}
	}
	var elves []string
	for _, p := range g.Workloads {
		src := filepath.Join(g.Prebuilt, p)
		im.AddFile(path.Join("prebuilt", filepath.ToSlash(p)), src, 0o755)
		elves = append(elves, src)
	}
	for _, p := range g.Tools {
		im.AddFile(path.Join("usr/local/sbin", filepath.Base(p)), p, 0o755)
		elves = append(elves, p)
	}
	if err := addLibraries(im, elves); err != nil {
		return nil, err
	}
	order, missing, err := ModuleOrder(k.Modules, moduleNames)
	if err != nil {
		return nil, err
	}
	var loaded []string
	for _, m := range order {
		b, err := ModuleBytes(m.Path)
		if err != nil {
			return nil, err
		}
		im.AddData(path.Join("modules", m.Name+".ko"), b, 0o644)
		loaded = append(loaded, m.Name)
	}
	im.AddData("init", []byte(initScript(g, loaded)), 0o755)
	f, err := os.Create(dst)
	if err != nil {
		return nil, err
	}
	if err := im.WriteGzip(f); err != nil {
		f.Close()
		return nil, err
	}
	return missing, f.Close()
}

// addBusybox installs busybox and a link for each of its applets at the
// path busybox gives it, unless something else already lives there.
func addBusybox(im *Image, bb string) error {
	out, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full (is busybox-static installed?): %w", bb, err)
	}
	im.AddFile("bin/busybox", bb, 0o755)
	for _, applet := range strings.Fields(string(out)) {
		if !im.Has(applet) {
			im.AddSymlink(applet, "/bin/busybox")
		}
	}
	return nil
}

// addTree copies the host directory src to dst, regular files and
// directories only.
func addTree(im *Image, dst, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		switch {
		case d.IsDir():
			im.AddDir(path.Join(dst, filepath.ToSlash(rel)), 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			im.AddFile(path.Join(dst, filepath.ToSlash(rel)), p, uint32(info.Mode().Perm()))
		}
		return nil
	})
}

// addLibraries adds the shared libraries and the dynamic loader that ldd
// lists for each dynamically linked program, at the same paths.
func addLibraries(im *Image, progs []string) error {
	for _, p := range progs {
		out, err := exec.Command("ldd", p).CombinedOutput()
		if err != nil {
			if bytes.Contains(out, []byte("not a dynamic executable")) {
				continue
			}
			return fmt.Errorf("ldd %s: %v: %s", p, err, bytes.TrimSpace(out))
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			lib := ""
			switch {
			case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
				lib = f[2]
			case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
				lib = f[0] // the dynamic loader
			}
			if lib != "" && !im.Has(lib) {
				im.AddFile(lib, lib, 0o755)
			}
		}
	}
	return nil
}
