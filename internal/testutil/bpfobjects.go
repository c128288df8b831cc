package testutil

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

// HeldProgramIDs is the set of BPF program ids that some live process
// holds, through a program fd or a link fd (both show "prog_id:" in their
// fdinfo). pid 0 means every process.
func HeldProgramIDs(pid int) map[uint32]bool {
	pattern := "/proc/[0-9]*/fd"
	if pid != 0 {
		pattern = "/proc/" + strconv.Itoa(pid) + "/fd"
	}
	ids := make(map[uint32]bool)
	dirs, _ := filepath.Glob(pattern)
	for _, dir := range dirs {
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // exited, or a kernel thread
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil || !strings.HasPrefix(target, "anon_inode:bpf") {
				continue
			}
			info, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "fdinfo", fd.Name()))
			if err != nil {
				continue
			}
			for line := range strings.SplitSeq(string(info), "\n") {
				if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
					if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
						ids[uint32(n)] = true
					}
				}
			}
		}
	}
	return ids
}

// BPFFds are the fds of process pid that are BPF objects (program, map,
// link, BTF: anon_inode:bpf-*), by fd number, with their kind.
func BPFFds(pid int) map[string]string {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	out := map[string]string{}
	fds, _ := os.ReadDir(dir)
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && strings.HasPrefix(target, "anon_inode:bpf") {
			out[fd.Name()] = target
		}
	}
	return out
}

// StillLoaded waits up to within for the kernel to free each program of
// ids (it does so after an RCU grace period, from deferred work, once the
// last fd and link are gone) and returns those still loaded then.
// ID is an ebpf.ProgramID or a HeldProgramIDs key.
func StillLoaded[ID ~uint32](ids []ID, within time.Duration) []ID {
	deadline := time.Now().Add(within)
	var loaded []ID
	for _, id := range ids {
		for {
			p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err == nil {
				p.Close()
			}
			if time.Now().After(deadline) {
				loaded = append(loaded, id)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return loaded
}
