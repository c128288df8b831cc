package process

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/telagent/telagent/entity"
)

// The decoder's offsets are the BPF structs' (bpf2go generated their Go
// twins from the object's BTF).
func TestLayoutMatchesBPF(t *testing.T) {
	var h processProcessEventHdr
	var e processProcessExecEvent
	var x processProcessExitEvent
	var o processProcessOomEvent
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"hdr size", unsafe.Sizeof(h), hdrSize},
		{"type", unsafe.Offsetof(h.Type), offType},
		{"flags", unsafe.Offsetof(h.Flags), offFlags},
		{"cpu", unsafe.Offsetof(h.Cpu), offCPU},
		{"pid", unsafe.Offsetof(h.Pid), offPid},
		{"time", unsafe.Offsetof(h.TimeNs), offTime},
		{"start", unsafe.Offsetof(h.StartNs), offStart},
		{"ppid", unsafe.Offsetof(h.Ppid), offPpid},
		{"node", unsafe.Offsetof(h.Node), offNode},
		{"comm", unsafe.Offsetof(h.Comm), offComm},
		{"comm size", unsafe.Sizeof(h.Comm), commSize},
		{"exec size", unsafe.Sizeof(e), execSize},
		{"uid", unsafe.Offsetof(e.Uid), offUID},
		{"euid", unsafe.Offsetof(e.Euid), offEUID},
		{"path_len", unsafe.Offsetof(e.PathLen), offPathLen},
		{"args_len", unsafe.Offsetof(e.ArgsLen), offArgsLen},
		{"path", unsafe.Offsetof(e.Path), offPath},
		{"path size", unsafe.Sizeof(e.Path), pathMax},
		{"args", unsafe.Offsetof(e.Args), offArgs},
		{"args size", unsafe.Sizeof(e.Args), argsMax},
		{"fork size", unsafe.Sizeof(processProcessForkEvent{}), forkSize},
		{"exit size", unsafe.Sizeof(x), exitSize},
		{"status", unsafe.Offsetof(x.Status), offStatus},
		{"on_cpu", unsafe.Offsetof(x.OnCpuNs), offOnCPU},
		{"oom size", unsafe.Sizeof(o), oomSize},
		{"cgroup", unsafe.Offsetof(o.CgroupId), offCgroup},
		{"rss", unsafe.Offsetof(o.RssPages), offRSS},
		{"total_vm", unsafe.Offsetof(o.TotalVmPages), offTotalVM},
		{"score_adj", unsafe.Offsetof(o.ScoreAdj), offScore},
		{"oom uid", unsafe.Offsetof(o.Uid), offOOMUID},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: BPF layout %d, decoder %d", c.name, c.got, c.want)
		}
	}
}

// record builds a raw record of type typ as the BPF side writes it.
func record(typ uint8, size int, pid uint32, comm string) []byte {
	b := make([]byte, size)
	b[offType] = typ
	binary.LittleEndian.PutUint16(b[offCPU:], 1)
	binary.LittleEndian.PutUint32(b[offPid:], pid)
	binary.LittleEndian.PutUint64(b[offTime:], 5_000_000_000)
	binary.LittleEndian.PutUint64(b[offStart:], 2_000_000_000)
	binary.LittleEndian.PutUint32(b[offPpid:], 1)
	copy(b[offComm:offComm+commSize], comm)
	return b
}

func execRecord(pid uint32, comps []string, args []string, flags uint8) []byte {
	b := record(TypeExec, execSize, pid, "cat")
	b[offFlags] = flags
	binary.LittleEndian.PutUint32(b[offUID:], 1000)
	binary.LittleEndian.PutUint32(b[offEUID:], 0)
	p := b[offPath:offPath]
	for _, c := range comps {
		p = append(p, c...)
		p = append(p, 0)
	}
	binary.LittleEndian.PutUint16(b[offPathLen:], uint16(len(p)))
	a := b[offArgs:offArgs]
	for _, s := range args {
		a = append(a, s...)
		a = append(a, 0)
	}
	binary.LittleEndian.PutUint16(b[offArgsLen:], uint16(len(a)))
	return b
}

func exitRecord(pid, status uint32) []byte {
	b := record(TypeExit, exitSize, pid, "sh")
	binary.LittleEndian.PutUint32(b[offStatus:], status)
	binary.LittleEndian.PutUint64(b[offOnCPU:], 1_500_000)
	return b
}

func TestDecode(t *testing.T) {
	r, err := Decode(execRecord(42, []string{"cat", "bin", "usr"}, []string{"cat", "-n", "f\xffile"}, 0))
	if err != nil {
		t.Fatal(err)
	}
	if r.Path != "/usr/bin/cat" || r.Comm != "cat" || r.Pid != 42 || r.UID != 1000 || r.Truncated {
		t.Errorf("exec record %+v", r)
	}
	if want := []string{"cat", "-n", "f\uFFFDile"}; !reflect.DeepEqual(r.Args, want) {
		t.Errorf("args %q, want %q", r.Args, want)
	}

	r, err = Decode(execRecord(42, []string{"cat", "bi"}, []string{"a"}, flagPathTruncated))
	if err != nil || r.Path != "…/bi/cat" || !r.Truncated {
		t.Errorf("truncated path %q (truncated %v, err %v), want …/bi/cat", r.Path, r.Truncated, err)
	}

	ev := recordEvent(mustDecode(t, exitRecord(7, 3<<8)), 0, false)
	if ev.Desc.Name != entity.EventTelagentProcessExit.Name || !ev.Exited || ev.StartTicks != 200 {
		t.Errorf("exit event %+v", ev)
	}
	if v, _ := attrOf(ev, entity.AttrProcessExitCode); v.AsInt64() != 3 {
		t.Errorf("exit code %v", v.Emit())
	}
	if v, _ := attrOf(ev, entity.AttrTelagentProcessLifetime); v.AsFloat64() != 3 {
		t.Errorf("lifetime %v, want 3 s", v.AsFloat64())
	}
	ev = recordEvent(mustDecode(t, exitRecord(7, 9|0x80)), 0, false)
	if v, _ := attrOf(ev, entity.AttrTelagentProcessExitSignal); v.AsInt64() != 9 {
		t.Errorf("signal %v", v.Emit())
	}
	if v, _ := attrOf(ev, entity.AttrTelagentProcessExitCoreDumped); !v.AsBool() {
		t.Error("core dump flag lost")
	}

	for name, raw := range map[string][]byte{
		"empty":         nil,
		"short header":  make([]byte, hdrSize-1),
		"unknown type":  record(9, hdrSize, 1, ""),
		"exit too long": append(exitRecord(1, 0), 0),
		"fork as exit":  record(TypeExit, forkSize, 1, ""),
		"zero pid":      record(TypeFork, forkSize, 0, ""),
		"path past field": func() []byte {
			b := execRecord(1, nil, nil, 0)
			binary.LittleEndian.PutUint16(b[offPathLen:], pathMax+1)
			return b
		}(),
		"args past field": func() []byte {
			b := execRecord(1, nil, nil, 0)
			binary.LittleEndian.PutUint16(b[offArgsLen:], argsMax+1)
			return b
		}(),
	} {
		if _, err := Decode(raw); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := Decode(record(9, hdrSize, 1, "")); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown type: %v", err)
	}
}

func mustDecode(t *testing.T, b []byte) Record {
	t.Helper()
	r, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// FuzzDecode: no input makes the decoder panic, and whatever it accepts is
// exportable: valid UTF-8 everywhere, bounded, and an event the schema
// declares. Seeds are in testdata/fuzz/FuzzDecode (real record shapes and
// malformed ones); run with go test -fuzz FuzzDecode ./probes/process.
func FuzzDecode(f *testing.F) {
	f.Add(execRecord(42, []string{"cat", "bin", "usr"}, []string{"cat", "-n"}, 0))
	f.Add(exitRecord(7, 3<<8))
	f.Add(record(TypeFork, forkSize, 9, "bash"))
	f.Add(record(TypeOOM, oomSize, 9, "stress"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Decode(raw)
		if err != nil {
			return
		}
		strs := append([]string{r.Comm, r.Path}, r.Args...)
		for _, s := range strs {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 %q", s)
			}
		}
		if len(r.Path) > 4*pathMax || len(r.Args) > argsMax || len(r.Comm) > 3*commSize {
			t.Fatalf("unbounded record %+v", r)
		}
		if r.Path != "" && !strings.HasPrefix(r.Path, "/") && !strings.HasPrefix(r.Path, "…") {
			t.Fatalf("path %q neither absolute nor marked truncated", r.Path)
		}
		ev := recordEvent(r, 0, true)
		if ev.Desc.Name == "" || len(ev.Attributes) != len(ev.Desc.Attributes) && r.Type != TypeExit {
			t.Fatalf("event %+v does not match its schema", ev)
		}
		for _, a := range ev.Attributes {
			if !a.Valid() {
				t.Fatalf("invalid attribute %v", a)
			}
		}
	})
}
