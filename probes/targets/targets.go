// Package targets is the Go side of target selection: the --exe, --comm
// and --cgroup selectors resolved and checked, the processes that already
// match found in /proc, and both handed to the in-kernel matcher
// (probes/shared) that catches later ones at their exec.
package targets

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/probes/shared"
)

// Selectors are the targets chosen by what a process runs (--exe, --comm,
// --cgroup): processes that match when the agent starts are found in
// /proc, later ones at their exec, in the kernel.
type Selectors struct {
	Exes    []Exe
	Comms   []string
	Cgroups []Cgroup
}

// Exe is an --exe selector: the file the path named when it was resolved.
type Exe struct {
	Path string
	ID   shared.ExeID
}

// Cgroup is a --cgroup selector.
type Cgroup struct {
	Path string // the directory in the cgroup2 file system
	ID   uint64 // its inode number: the cgroup v2 id
}

// Empty reports whether no selector is set.
func (s Selectors) Empty() bool { return len(s.Exes)+len(s.Comms)+len(s.Cgroups) == 0 }

func (s Selectors) kernel() shared.Selectors {
	var k shared.Selectors
	for _, e := range s.Exes {
		k.Exes = append(k.Exes, e.ID)
	}
	k.Comms = append(k.Comms, s.Comms...)
	for _, c := range s.Cgroups {
		k.Cgroups = append(k.Cgroups, c.ID)
	}
	return k
}

// ResolveExe turns an --exe path into the file it names now (following
// symlinks): the kernel matches that file at exec by device and inode, so a
// process running it through another name or link still matches.
func ResolveExe(path string) (Exe, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Exe{}, fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Exe{}, fmt.Errorf("%s: not a regular file, so no process can run it", path)
	}
	if st.Mode&0o111 == 0 {
		return Exe{}, fmt.Errorf("%s: not executable, so no process can run it", path)
	}
	if interp, ok := scriptInterpreter(path); ok {
		return Exe{}, scriptError(path, interp)
	}
	return Exe{Path: path, ID: exeID(st)}, nil
}

// scriptInterpreter reports whether the file at path is a #! script, and
// its interpreter ("" when the line names none). A file that cannot be
// read is not judged: the kernel may still run it.
func scriptInterpreter(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	// The kernel reads the #! line from the first 256 bytes (BINPRM_BUF_SIZE).
	buf := make([]byte, 256)
	n, _ := f.Read(buf)
	line, ok := strings.CutPrefix(string(buf[:n]), "#!")
	if !ok {
		return "", false
	}
	line, _, _ = strings.Cut(line, "\n")
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return "", true
	}
	return fields[0], true
}

// scriptError says why --exe of a script can never match and what does.
// The kernel runs a #! script as its interpreter: by sched_process_exec,
// the only hook the match can use, the script's own file is released
// (exec_binprm keeps it only for binfmt_misc programs with the O flag), so
// neither the kernel side nor /proc/<pid>/exe ever names it. A script's
// processes take their name (comm) from the file name they were started
// by, cut to 15 bytes.
func scriptError(path, interp string) error {
	comm := filepath.Base(path)
	if len(comm) > 15 {
		comm = comm[:15]
	}
	if interp == "" {
		return fmt.Errorf("%s: a #! script, which runs as its interpreter, never as this file, so it can never match; select it with --comm %s (its processes' name when started by this file name)", path, comm)
	}
	return fmt.Errorf("%s: a #! script, which runs as its interpreter %s, never as this file, so it can never match; select it with --comm %s (its processes' name when started by this file name) or --exe %s (every process of that interpreter)", path, interp, comm, interp)
}

func exeID(st unix.Stat_t) shared.ExeID {
	return shared.ExeID{Ino: st.Ino, Dev: shared.KernelDev(unix.Major(st.Dev), unix.Minor(st.Dev))}
}

// CheckComm rejects a --comm name that can never match: the kernel keeps
// at most 15 bytes of a command name.
func CheckComm(name string) error {
	if name == "" {
		return errors.New("empty command name")
	}
	if len(name) > 15 {
		return fmt.Errorf("%q is %d bytes; the kernel keeps at most 15 of a command name, so it can never match (use its first 15 bytes, %q)",
			name, len(name), name[:15])
	}
	return nil
}

// ResolveCgroup turns a --cgroup path into its cgroup v2 id. The path is a
// directory of the cgroup2 file system, given in full (/sys/fs/cgroup/a/b)
// or as /proc/<pid>/cgroup shows it (/a/b).
//
// A path outside the mount that exists as given (a cgroup v1 directory
// such as /sys/fs/cgroup/cpu/x on a hybrid host) is checked as given, so
// that it is reported as not in the cgroup v2 file system rather than
// joined onto the mount and reported missing; the /proc form wins when
// both exist. An empty path is an error, not the root cgroup: it would
// select the whole host without saying so.
func ResolveCgroup(path, procRoot string) (Cgroup, error) {
	if strings.TrimSpace(path) == "" {
		return Cgroup{}, errors.New("empty path: name a cgroup directory, e.g. /system.slice/nginx.service (/ is every process)")
	}
	mnt, err := Cgroup2Mount(procRoot)
	if err != nil {
		return Cgroup{}, err
	}
	dir := path
	if !strings.HasPrefix(filepath.Clean(path)+"/", mnt+"/") {
		dir = filepath.Join(mnt, path)
		if _, err := os.Stat(dir); err != nil && filepath.IsAbs(path) {
			if _, err := os.Stat(path); err == nil {
				dir = path // checked as given below
			} else if inCgroupV1(path) {
				return Cgroup{}, fmt.Errorf("%s: not in the cgroup v2 file system (mounted at %s)", path, mnt)
			}
		}
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return Cgroup{}, fmt.Errorf("%s: %w", dir, err)
	}
	if sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		return Cgroup{}, fmt.Errorf("%s: not in the cgroup v2 file system (mounted at %s)", dir, mnt)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return Cgroup{}, fmt.Errorf("%s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return Cgroup{}, fmt.Errorf("%s: not a cgroup directory", dir)
	}
	return Cgroup{Path: dir, ID: st.Ino}, nil
}

// inCgroupV1 says whether the closest existing ancestor of path is in a
// cgroup v1 hierarchy (/sys/fs/cgroup/cpu/... on a hybrid host).
func inCgroupV1(path string) bool {
	for p := filepath.Dir(filepath.Clean(path)); p != "/" && p != "."; p = filepath.Dir(p) {
		var sfs unix.Statfs_t
		if err := unix.Statfs(p, &sfs); err == nil {
			return sfs.Type == unix.CGROUP_SUPER_MAGIC
		}
	}
	return false
}

// Cgroup2Mount finds where the cgroup v2 file system is mounted.
func Cgroup2Mount(procRoot string) (string, error) {
	f, err := os.Open(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return "", fmt.Errorf("find the cgroup2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// "36 35 0:30 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) > 0 && fs[0] == "cgroup2" {
			if f := strings.Fields(pre); len(f) >= 5 {
				return unescapeMount(f[4]), nil
			}
		}
	}
	return "", errors.New("no cgroup v2 file system is mounted (--cgroup needs the unified hierarchy)")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Apply installs the kernel matcher, then adds the processes that
// already match (found in /proc after the matcher runs, so that a process
// exec'ing meanwhile is caught by one or the other).
func Apply(tset *shared.State, sel Selectors, procRoot string, log *slog.Logger) error {
	if sel.Empty() {
		return nil
	}
	if err := tset.Match(sel.kernel()); err != nil {
		return err
	}
	pids, err := scanSelected(procRoot, sel)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := tset.Add(pid); err != nil {
			return err
		}
	}
	log.Info("target selectors", "exes", len(sel.Exes), "comms", len(sel.Comms), "cgroups", len(sel.Cgroups),
		"running", len(pids))
	return nil
}

// scanSelected returns the processes in procRoot that sel selects now.
// Processes that vanish during the scan are skipped.
func scanSelected(procRoot string, sel Selectors) ([]uint32, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", procRoot, err)
	}
	var cgMount string
	cgIDs := map[uint64]bool{}
	for _, c := range sel.Cgroups {
		cgIDs[c.ID] = true
	}
	if len(cgIDs) > 0 {
		if cgMount, err = Cgroup2Mount(procRoot); err != nil {
			return nil, err
		}
	}
	inCgroup := map[string]bool{} // hierarchy path → selected (it or an ancestor)
	var out []uint32
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 31)
		if err != nil || pid == 0 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		if procSelected(dir, sel, cgMount, cgIDs, inCgroup) {
			out = append(out, uint32(pid))
		}
	}
	return out, nil
}

func procSelected(dir string, sel Selectors, cgMount string, cgIDs map[uint64]bool, inCgroup map[string]bool) bool {
	if len(sel.Exes) > 0 {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(dir, "exe"), &st) == nil {
			id := exeID(st)
			for _, x := range sel.Exes {
				if x.ID == id {
					return true
				}
			}
		}
	}
	if len(sel.Comms) > 0 {
		if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
			comm := strings.TrimSuffix(string(b), "\n")
			for _, c := range sel.Comms {
				if c == comm {
					return true
				}
			}
		}
	}
	if len(cgIDs) > 0 {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				return cgroupSelected(cgMount, p, cgIDs, inCgroup)
			}
		}
	}
	return false
}

// cgroupSelected reports whether the cgroup at hierarchy path p, or one of
// its ancestors, is selected (the kernel matcher checks the same).
func cgroupSelected(mnt, p string, ids map[uint64]bool, memo map[string]bool) bool {
	if v, ok := memo[p]; ok {
		return v
	}
	var st unix.Stat_t
	sel := false
	if unix.Stat(filepath.Join(mnt, p), &st) == nil && ids[st.Ino] {
		sel = true
	} else if parent := filepath.Dir(p); parent != p {
		sel = cgroupSelected(mnt, parent, ids, memo)
	}
	memo[p] = sel
	return sel
}
