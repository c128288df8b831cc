package kernelmatrix

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Boot is one run of a kernel in QEMU.
type Boot struct {
	Image, Initrd string
	Accel         string // "kvm" or "tcg"
	MemoryMB      int
	CPUs          int
	Timeout       time.Duration
	Console       string // file for the kernel console (ttyS0)
	Results       string // file for the test output (ttyS1)
	Cmdline       string // appended to the kernel command line
	Shape         Shape  // CPU and NUMA layout (zero: CPUs on one node)
}

// KernelError is a guest kernel that reported a soft lockup, an oops or a
// panic on its console: QEMU is stopped a little later (so the report is
// complete) instead of at the timeout.
type KernelError struct{ Line string }

func (e *KernelError) Error() string { return "guest kernel: " + e.Line }

// fatalConsole are console messages after which the guest is not worth
// waiting for.
var fatalConsole = []string{"BUG: soft lockup", "Kernel panic", "BUG: kernel NULL pointer", "Oops:", "rcu_sched self-detected stall", "rcu: INFO: rcu_sched detected stalls"}

// ErrTimeout is returned when the guest did not power off in time.
var ErrTimeout = errors.New("the guest did not power off in time")

// Run boots the guest and waits until it powers off or the timeout
// passes, when QEMU is killed.
func (b Boot) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	// Multi-threaded TCG lets a vCPU run a stale translation of kernel text
	// that the other vCPU just patched (static keys flip when tracepoints
	// are attached): guests died of "Oops: int3" in __schedule. One host
	// thread for all vCPUs keeps cross-modified code coherent.
	accel, cpu := "tcg,thread=single", "max"
	if b.Accel == "kvm" {
		accel, cpu = "kvm", "host"
	}
	smp := []string{"-smp", strconv.Itoa(b.CPUs)}
	mem := b.MemoryMB
	if len(b.Shape.QEMU) > 0 {
		smp = b.Shape.QEMU
	}
	if b.Shape.MemoryMB > 0 {
		mem = b.Shape.MemoryMB
	}
	args := []string{"-accel", accel, "-cpu", cpu, "-m", strconv.Itoa(mem)}
	args = append(args, smp...)
	args = append(args,
		"-kernel", b.Image, "-initrd", b.Initrd,
		// loglevel=5 prints the backtraces of kernel warnings and lockups
		// (default message level) but not informational chatter;
		// panic=-1 with -no-reboot ends QEMU on a guest panic.
		// tsc=reliable: under TCG the kernel finds the vCPUs' TSCs
		// unsynchronized and moves ktime (what BPF timestamps use) to
		// HPET while the scheduler's clock stays on the TSC; the two
		// drift apart by several percent and the sched probe's exact
		// comparisons with schedstat fail for the emulator's sake.
		"-append", strings.TrimSpace("console=ttyS0 panic=-1 loglevel=5 tsc=reliable rdinit=/init "+b.Shape.Cmdline+" "+b.Cmdline),
		"-no-reboot", "-display", "none", "-vga", "none", "-monitor", "none",
		"-nic", "none",
		"-serial", "file:"+b.Console, "-serial", "file:"+b.Results,
	)
	watch, stop := context.WithCancel(ctx)
	defer stop()
	var out strings.Builder
	cmd := exec.CommandContext(watch, "qemu-system-x86_64", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("qemu-system-x86_64: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var kerr *KernelError
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			switch {
			case kerr != nil:
				return kerr
			case ctx.Err() == context.DeadlineExceeded:
				return ErrTimeout
			case err != nil:
				return fmt.Errorf("qemu-system-x86_64: %v: %s", err, strings.TrimSpace(out.String()))
			}
			return nil
		case <-tick.C:
			if kerr != nil {
				continue
			}
			if line := fatalLine(b.Console); line != "" {
				kerr = &KernelError{Line: line}
				// Let the kernel finish printing its report, then stop.
				time.AfterFunc(b.grace(), stop)
			}
		}
	}
}

func (b Boot) grace() time.Duration {
	if b.Accel == "kvm" {
		return 5 * time.Second
	}
	return 30 * time.Second
}

// fatalLine is the first fatal message on the console so far, if any.
func fatalLine(console string) string {
	data, err := os.ReadFile(console)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		for _, f := range fatalConsole {
			if i := strings.Index(l, f); i >= 0 {
				return strings.TrimSpace(l[i:])
			}
		}
	}
	return ""
}

// DetectAccel returns "kvm" when /dev/kvm exists and a guest with a
// trivial init boots under it and powers off within timeout, else "tcg":
// on a VM without working nested virtualization /dev/kvm can exist while
// a KVM guest hangs. why says what was decided and why.
func DetectAccel(ctx context.Context, busybox, image, workDir string, timeout time.Duration) (accel, why string) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return "tcg", "no /dev/kvm"
	}
	im := NewImage()
	if err := addBusybox(im, busybox); err != nil {
		return "tcg", err.Error()
	}
	im.AddDir("dev", 0o755)
	im.AddDir("proc", 0o755)
	im.AddData("init", []byte("#!/bin/sh\nmount -t devtmpfs devtmpfs /dev\necho "+markDone+" >/dev/ttyS1\npoweroff -f\n"), 0o755)
	initrd := filepath.Join(workDir, "kvmcheck.cpio.gz")
	f, err := os.Create(initrd)
	if err != nil {
		return "tcg", err.Error()
	}
	err = im.WriteGzip(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "tcg", err.Error()
	}
	b := Boot{Image: image, Initrd: initrd, Accel: "kvm", MemoryMB: 256, CPUs: 1, Timeout: timeout,
		Console: filepath.Join(workDir, "kvmcheck.console"), Results: filepath.Join(workDir, "kvmcheck.out")}
	start := time.Now()
	err = b.Run(ctx)
	res, _ := os.ReadFile(b.Results)
	switch {
	case err != nil:
		return "tcg", fmt.Sprintf("/dev/kvm exists but a KVM guest failed: %v", err)
	case !strings.Contains(string(res), markDone):
		return "tcg", "/dev/kvm exists but a KVM guest powered off without running its init"
	}
	return "kvm", fmt.Sprintf("a KVM guest booted and powered off in %.1fs", time.Since(start).Seconds())
}
