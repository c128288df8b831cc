package process

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Record layout of bpf/process.bpf.c, little-endian (bpfel). Offsets are
// restated here, not taken from the bpf2go structs, so that decoding reads
// bytes by bounds-checked index and never trusts a record's shape;
// TestLayoutMatchesBPF checks them against the generated structs.
const (
	hdrSize = 48

	offType    = 0
	offFlags   = 1
	offCPU     = 2
	offPid     = 4
	offTime    = 8
	offStart   = 16
	offPpid    = 24
	offNode    = 28
	offComm    = 32
	commSize   = 16
	execSize   = 832
	offUID     = 48
	offEUID    = 52
	offPathLen = 56
	offArgsLen = 58
	offPath    = 64
	pathMax    = 256
	offArgs    = 320
	argsMax    = 512
	forkSize   = 48
	exitSize   = 64
	offStatus  = 48
	offOnCPU   = 56
	oomSize    = 80
	offCgroup  = 48
	offRSS     = 56
	offTotalVM = 64
	offScore   = 72
	offOOMUID  = 76
)

// Record types (enum process_event_type).
const (
	TypeExec = 1
	TypeFork = 2
	TypeExit = 3
	TypeOOM  = 4
)

// Flags (enum process_event_flags).
const (
	flagPathTruncated = 1
	flagArgsTruncated = 2
)

// Record is one decoded ring-buffer record. Every string is valid UTF-8
// and bounded by the record's fixed size.
type Record struct {
	Type      uint8
	CPU       uint16
	Node      uint32
	Pid       uint32
	Ppid      uint32
	TimeNs    uint64 // boot-time clock
	StartNs   uint64 // the process's start_boottime
	Comm      string
	Truncated bool

	// exec
	UID, EUID uint32
	Path      string
	Args      []string

	// exit
	Status  uint32
	OnCPUNs uint64

	// oom
	CgroupID     uint64
	RSSPages     uint64
	TotalVMPages uint64
	ScoreAdj     int32
	OOMUID       uint32
}

// Errors of Decode: every malformed record is one of these, never a panic.
var (
	ErrShort      = errors.New("record shorter than its header")
	ErrUnknown    = errors.New("unknown record type")
	ErrSize       = errors.New("record size does not match its type")
	ErrLength     = errors.New("string length past its field")
	ErrInvalidPid = errors.New("record without a process id")
)

var le = binary.LittleEndian

// Decode parses one record of bpf/process.bpf.c. It checks the size against
// the type and every length against its field, and makes every string
// valid UTF-8 (invalid bytes become U+FFFD), so whatever it returns can be
// exported as is. It does not retain raw.
func Decode(raw []byte) (Record, error) {
	var r Record
	if len(raw) < hdrSize {
		return r, fmt.Errorf("%w: %d bytes", ErrShort, len(raw))
	}
	r.Type = raw[offType]
	want := 0
	switch r.Type {
	case TypeExec:
		want = execSize
	case TypeFork:
		want = forkSize
	case TypeExit:
		want = exitSize
	case TypeOOM:
		want = oomSize
	default:
		return r, fmt.Errorf("%w %d", ErrUnknown, r.Type)
	}
	if len(raw) != want {
		return r, fmt.Errorf("%w: type %d, %d bytes, want %d", ErrSize, r.Type, len(raw), want)
	}
	flags := raw[offFlags]
	r.CPU = le.Uint16(raw[offCPU:])
	r.Pid = le.Uint32(raw[offPid:])
	r.TimeNs = le.Uint64(raw[offTime:])
	r.StartNs = le.Uint64(raw[offStart:])
	r.Ppid = le.Uint32(raw[offPpid:])
	r.Node = le.Uint32(raw[offNode:])
	r.Comm = cString(raw[offComm : offComm+commSize])
	if r.Pid == 0 {
		// The idle tasks never exec, fork a process or exit: a zero pid
		// is a corrupt record, and exporting it would invent a process.
		return r, ErrInvalidPid
	}

	switch r.Type {
	case TypeExec:
		r.UID = le.Uint32(raw[offUID:])
		r.EUID = le.Uint32(raw[offEUID:])
		pathLen := int(le.Uint16(raw[offPathLen:]))
		argsLen := int(le.Uint16(raw[offArgsLen:]))
		if pathLen > pathMax || argsLen > argsMax {
			return r, fmt.Errorf("%w: path %d/%d, args %d/%d", ErrLength, pathLen, pathMax, argsLen, argsMax)
		}
		r.Truncated = flags&(flagPathTruncated|flagArgsTruncated) != 0
		r.Path = joinPath(raw[offPath:offPath+pathLen], flags&flagPathTruncated != 0)
		r.Args = splitArgs(raw[offArgs : offArgs+argsLen])
	case TypeExit:
		r.Status = le.Uint32(raw[offStatus:])
		r.OnCPUNs = le.Uint64(raw[offOnCPU:])
	case TypeOOM:
		r.CgroupID = le.Uint64(raw[offCgroup:])
		r.RSSPages = le.Uint64(raw[offRSS:])
		r.TotalVMPages = le.Uint64(raw[offTotalVM:])
		r.ScoreAdj = int32(le.Uint32(raw[offScore:]))
		r.OOMUID = le.Uint32(raw[offOOMUID:])
	}
	return r, nil
}

// cString is b up to its first NUL, as valid UTF-8.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return validUTF8(b)
}

func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// joinPath turns the BPF side's components, leaf first and NUL-terminated,
// into a path from the root. A truncated walk did not reach the root: the
// result then starts with "…/" so that it is never mistaken for a full
// path. A component may not contain '/' (dentry names cannot), and "" or
// "/" (the root's own name) components are skipped.
func joinPath(b []byte, truncated bool) string {
	var comps []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		var c []byte
		if i < 0 {
			c, b = b, nil // cut at the bound: a partial name
			truncated = true
		} else {
			c, b = b[:i], b[i+1:]
		}
		if len(c) == 0 || (len(c) == 1 && c[0] == '/') {
			continue
		}
		comps = append(comps, strings.ReplaceAll(validUTF8(c), "/", "\uFFFD"))
	}
	if len(comps) == 0 {
		if truncated {
			return "…"
		}
		return "/"
	}
	var s strings.Builder
	if truncated {
		s.WriteString("…")
	}
	for i := len(comps) - 1; i >= 0; i-- {
		s.WriteByte('/')
		s.WriteString(comps[i])
	}
	return s.String()
}

// splitArgs splits NUL-separated argv strings; a last string cut at the
// bound (no NUL) is kept as it is.
func splitArgs(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = validUTF8(p)
	}
	return out
}

// ExitStatus splits a wait(2) status the way WIFEXITED/WIFSIGNALED do.
func ExitStatus(status uint32) (code int, signal int, core bool, signaled bool) {
	sig := int(status & 0x7f)
	if sig == 0 {
		return int(status>>8) & 0xff, 0, false, false
	}
	return 0, sig, status&0x80 != 0, true
}
