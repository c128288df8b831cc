package elfsym

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// LibDirs are the directories searched for a library given by name when no
// target process maps it, in order (multiarch first, as Debian's ld.so.conf).
var LibDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib",
}

// LibMatches reports whether a file's base name is the library name: the
// name itself, or name.so*, name-*.so*, libname.so* ("libc" and "c" both
// match libc.so.6).
func LibMatches(base, name string) bool {
	if base == name {
		return true
	}
	for _, n := range []string{name, "lib" + name} {
		if strings.HasPrefix(base, n+".so") || strings.HasPrefix(base, n+"-") && strings.Contains(base, ".so") {
			return true
		}
	}
	return false
}

// FindLibrary resolves a library name to a file: first among the files
// mapped by the given processes (/proc/<pid>/maps, through
// /proc/<pid>/root so a container's own library is the one probed), then
// in LibDirs. procRoot is "/proc" except in tests.
func FindLibrary(name string, pids []uint32, procRoot string) (string, error) {
	for _, pid := range pids {
		p, err := mappedLibrary(name, pid, procRoot)
		if err != nil {
			return "", err
		}
		if p != "" {
			return p, nil
		}
	}
	for _, dir := range LibDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		var found []string
		for _, e := range ents {
			if LibMatches(e.Name(), name) && isELF(filepath.Join(dir, e.Name())) {
				found = append(found, e.Name())
			}
		}
		if len(found) > 0 {
			// The shortest name is the plainest (libc.so.6 over libc.so.6.debug).
			slices.SortFunc(found, func(a, b string) int {
				if len(a) != len(b) {
					return len(a) - len(b)
				}
				return strings.Compare(a, b)
			})
			return filepath.Join(dir, found[0]), nil
		}
	}
	where := "in " + strings.Join(LibDirs, ", ")
	if len(pids) > 0 {
		where = "mapped by the target processes or " + where
	}
	return "", fmt.Errorf("library %q: no such file %s (give a path instead)", name, where)
}

func mappedLibrary(name string, pid uint32, procRoot string) (string, error) {
	dir := filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10))
	f, err := os.Open(filepath.Join(dir, "maps"))
	if err != nil {
		return "", fmt.Errorf("library %q: read maps of pid %d: %w", name, pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode pathname
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasPrefix(fields[5], "/") {
			continue
		}
		path := fields[5]
		if LibMatches(filepath.Base(path), name) {
			return filepath.Join(dir, "root", path), nil
		}
	}
	return "", sc.Err()
}

// isELF reports whether path is a regular ELF file (libc.so is a linker
// script, for one).
func isELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	magic := make([]byte, 4)
	_, err = io.ReadFull(f, magic)
	return err == nil && string(magic) == "\x7fELF"
}
