package kernelmatrix

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Image is the content of an initramfs: paths inside the guest (no leading
// slash) to what they hold. Parent directories are added when it is written.
type Image struct {
	entries map[string]imageEntry
}

type imageEntry struct {
	mode    uint32 // permission bits
	kind    uint32 // cpio file type bits
	src     string // host file for regular files, unless data is set
	data    []byte
	symlink string
}

const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
)

// NewImage returns an empty image.
func NewImage() *Image { return &Image{entries: map[string]imageEntry{}} }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

// AddFile copies the host file src to dst with mode perm.
func (im *Image) AddFile(dst, src string, perm uint32) {
	im.entries[clean(dst)] = imageEntry{mode: perm, kind: cpioFile, src: src}
}

// AddData writes data to dst with mode perm.
func (im *Image) AddData(dst string, data []byte, perm uint32) {
	im.entries[clean(dst)] = imageEntry{mode: perm, kind: cpioFile, data: data}
}

// AddDir adds an empty directory.
func (im *Image) AddDir(dst string, perm uint32) {
	im.entries[clean(dst)] = imageEntry{mode: perm, kind: cpioDir}
}

// AddSymlink adds dst pointing at target.
func (im *Image) AddSymlink(dst, target string) {
	im.entries[clean(dst)] = imageEntry{mode: 0o777, kind: cpioSymlink, symlink: target}
}

// Has says whether dst is in the image.
func (im *Image) Has(dst string) bool {
	_, ok := im.entries[clean(dst)]
	return ok
}

// WriteGzip writes the image as a gzip-compressed cpio archive in the
// kernel's "newc" format: directories before what they hold, all owned by
// root, sorted so the archive depends only on the content.
func (im *Image) WriteGzip(w io.Writer) error {
	all := map[string]imageEntry{}
	for p, e := range im.entries {
		all[p] = e
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				if _, ok := im.entries[d]; !ok {
					all[d] = imageEntry{mode: 0o755, kind: cpioDir}
				}
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		if p != "" {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	cw := &cpioWriter{w: gz}
	for i, name := range names {
		e := all[name]
		if err := cw.add(uint32(i+1), name, e); err != nil {
			return fmt.Errorf("initramfs %s: %w", name, err)
		}
	}
	if err := cw.entry(0, "TRAILER!!!", 0, 0, nil); err != nil {
		return err
	}
	return gz.Close()
}

type cpioWriter struct {
	w   io.Writer
	off int64
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.off % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

// add writes one image entry, reading a host file's body from disk.
func (c *cpioWriter) add(ino uint32, name string, e imageEntry) error {
	switch {
	case e.kind == cpioSymlink:
		return c.entry(ino, name, e.kind|e.mode, int64(len(e.symlink)), strings.NewReader(e.symlink))
	case e.kind == cpioFile && e.data != nil:
		return c.entry(ino, name, e.kind|e.mode, int64(len(e.data)), bytes.NewReader(e.data))
	case e.kind == cpioFile:
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		return c.entry(ino, name, e.kind|e.mode, st.Size(), f)
	}
	return c.entry(ino, name, e.kind|e.mode, 0, nil)
}

// entry writes one newc header, the name and the body, each padded to 4 bytes.
func (c *cpioWriter) entry(ino uint32, name string, mode uint32, size int64, body io.Reader) error {
	if size > 0xffffffff {
		return fmt.Errorf("%d bytes is too large for cpio", size)
	}
	nlink := 1
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if err := c.write([]byte(hdr + name + "\x00")); err != nil {
		return err
	}
	if err := c.pad(); err != nil {
		return err
	}
	if body != nil {
		n, err := io.Copy(c.w, body)
		c.off += n
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("copied %d bytes, expected %d (file changed while packing)", n, size)
		}
	}
	return c.pad()
}
