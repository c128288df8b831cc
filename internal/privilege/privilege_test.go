package privilege

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNamesMatchTheKernel(t *testing.T) {
	for c, want := range map[int]string{
		unix.CAP_CHOWN: "CAP_CHOWN", unix.CAP_DAC_READ_SEARCH: "CAP_DAC_READ_SEARCH",
		unix.CAP_SYS_PTRACE: "CAP_SYS_PTRACE", unix.CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
		unix.CAP_SYS_RESOURCE: "CAP_SYS_RESOURCE", unix.CAP_PERFMON: "CAP_PERFMON",
		unix.CAP_BPF: "CAP_BPF", unix.CAP_CHECKPOINT_RESTORE: "CAP_CHECKPOINT_RESTORE",
	} {
		if got := Name(c); got != want {
			t.Errorf("Name(%d) = %s, want %s", c, got, want)
		}
	}
	if len(names) != unix.CAP_LAST_CAP+1 {
		t.Errorf("%d names, the kernel headers know %d capabilities", len(names), unix.CAP_LAST_CAP+1)
	}
	if got := Name(63); got != "CAP_63" {
		t.Errorf("Name(63) = %s", got)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Set
	}{
		{"", 0}, {"none", 0},
		{"bpf", Of(unix.CAP_BPF)},
		{"CAP_BPF, perfmon sys_ptrace", Of(unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_SYS_PTRACE)},
		{"Cap_Dac_Read_Search,", Of(unix.CAP_DAC_READ_SEARCH)},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"bfp", "CAP_", "cap_bpf,x"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q): no error", in)
		}
	}
	if s := Of(unix.CAP_BPF, unix.CAP_SYS_PTRACE).String(); s != "CAP_SYS_PTRACE,CAP_BPF" {
		t.Errorf("String() = %s", s)
	}
}

func TestMissing(t *testing.T) {
	all := Of(unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_SYS_PTRACE, unix.CAP_DAC_READ_SEARCH)
	names := func(rs []Requirement) string {
		var s []string
		for _, r := range rs {
			s = append(s, Name(r.Cap))
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		have    Set
		memlock bool
		want    string
	}{
		{all, false, ""},
		{all, true, "CAP_SYS_RESOURCE"},
		{all | Of(unix.CAP_SYS_RESOURCE), true, ""},
		{all &^ Of(unix.CAP_BPF), false, "CAP_BPF"},
		{all &^ Of(unix.CAP_PERFMON), false, "CAP_PERFMON"},
		{all &^ Of(unix.CAP_SYS_PTRACE), false, "CAP_SYS_PTRACE"},
		{all &^ Of(unix.CAP_DAC_READ_SEARCH), false, "CAP_DAC_READ_SEARCH"},
		// CAP_SYS_ADMIN covers BPF and PERFMON (the kernel's fallback), not /proc.
		{Of(unix.CAP_SYS_ADMIN, unix.CAP_SYS_PTRACE, unix.CAP_DAC_READ_SEARCH), false, ""},
		{Of(unix.CAP_SYS_ADMIN), false, "CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH"},
		{0, false, "CAP_BPF,CAP_PERFMON,CAP_SYS_PTRACE,CAP_DAC_READ_SEARCH"},
	} {
		if got := names(Missing(tc.have, tc.memlock)); got != tc.want {
			t.Errorf("Missing(%s, memlock %v) = %q, want %q", tc.have, tc.memlock, got, tc.want)
		}
	}
	msg := MissingError(Missing(all&^Of(unix.CAP_SYS_PTRACE), false), all&^Of(unix.CAP_SYS_PTRACE), "/usr/local/bin/telagent").Error()
	for _, want := range []string{
		"missing capability CAP_SYS_PTRACE (",
		"have CAP_DAC_READ_SEARCH,CAP_PERFMON,CAP_BPF",
		"setcap cap_dac_read_search,cap_sys_ptrace,cap_perfmon,cap_bpf+ep /usr/local/bin/telagent",
		"AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_PERFMON CAP_BPF",
		"capabilities.add: [DAC_READ_SEARCH, SYS_PTRACE, PERFMON, BPF]",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}
}

func TestParseStatus(t *testing.T) {
	st, err := ParseStatus([]byte("Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000000c000080004\nCapEff:\t000000c000080004\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n"))
	want := Of(unix.CAP_DAC_READ_SEARCH, unix.CAP_SYS_PTRACE, unix.CAP_PERFMON, unix.CAP_BPF)
	if err != nil || st.Effective != want || st.Permitted != want || st.Ambient != 0 || st.Bounding != Set(1<<41-1) {
		t.Errorf("ParseStatus = %+v, %v", st, err)
	}
	if _, err := ParseStatus([]byte("CapEff:\txyz\n")); err == nil {
		t.Error("bad mask: no error")
	}
	if _, err := ParseStatus([]byte("Name:\tx\n")); err == nil {
		t.Error("no Cap lines: no error")
	}
}

// TestCurrentMatchesProc checks capget against the kernel's own report.
func TestCurrentMatchesProc(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", unix.Gettid()))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Effective != cur.Effective || st.Permitted != cur.Permitted || st.Inheritable != cur.Inheritable {
		t.Errorf("capget %+v, /proc %+v", cur, st)
	}
}

// kernelAtLeast reports whether the running kernel is major.minor or later.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(rel, ".", 3)
	ma, _ := strconv.Atoi(parts[0])
	mi := 0
	if len(parts) > 1 {
		mi, _ = strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	}
	return ma > major || ma == major && mi >= minor
}

// TestMapAccessNeedsCapBPF: the oracle is the kernel's history — since 6.5
// bpf(2) checks CAP_BPF at map creation and program load only; before,
// every command when unprivileged_bpf_disabled is set.
func TestMapAccessNeedsCapBPF(t *testing.T) {
	requireRoot(t)
	need, err := MapAccessNeedsCapBPF()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled")
	disabled := strings.TrimSpace(string(b)) != "0"
	want := !kernelAtLeast(t, 6, 5) && disabled
	if need != want {
		t.Errorf("MapAccessNeedsCapBPF = %v, want %v (unprivileged_bpf_disabled=%s)", need, want, strings.TrimSpace(string(b)))
	}
	// The test left this thread's (and every thread's) capabilities as they were.
	threads, err := ThreadCaps("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := Current()
	for tid, st := range threads {
		if st.Effective != cur.Effective {
			t.Errorf("thread %d: effective %s, want %s", tid, st.Effective, cur.Effective)
		}
	}
}

// TestClearInheritable: on a thread holding capabilities in its
// inheritable and ambient sets (as an agent started by systemd or setpriv
// with AmbientCapabilities does), ClearInheritable empties both and leaves
// effective and permitted alone; the oracle is the thread's own
// /proc/self/task/<tid>/status. The goroutine exits locked, so the altered
// thread ends with it.
func TestClearInheritable(t *testing.T) {
	requireRoot(t)
	type result struct {
		before, after ThreadState
		err           error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var r result
		defer func() { done <- r }()
		status := func() (ThreadState, error) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", unix.Gettid()))
			if err != nil {
				return ThreadState{}, err
			}
			return ParseStatus(b)
		}
		cur, err := Current()
		if err != nil {
			r.err = err
			return
		}
		give := Of(unix.CAP_BPF, unix.CAP_SYS_PTRACE) & cur.Permitted
		cur.Inheritable = give
		if r.err = capset(cur); r.err != nil {
			return
		}
		for _, c := range give.Caps() {
			if r.err = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); r.err != nil {
				r.err = fmt.Errorf("raise ambient %s: %w", Name(c), r.err)
				return
			}
		}
		if r.before, r.err = status(); r.err != nil {
			return
		}
		if r.err = ClearInheritable(); r.err != nil {
			return
		}
		r.after, r.err = status()
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := Of(unix.CAP_BPF, unix.CAP_SYS_PTRACE)
	if r.before.Inheritable != want || r.before.Ambient != want {
		t.Fatalf("set-up: inheritable %s, ambient %s; want %s in both", r.before.Inheritable, r.before.Ambient, want)
	}
	if r.after.Inheritable != 0 || r.after.Ambient != 0 {
		t.Errorf("after ClearInheritable: inheritable %s, ambient %s; want none", r.after.Inheritable, r.after.Ambient)
	}
	if r.after.Effective != r.before.Effective || r.after.Permitted != r.before.Permitted {
		t.Errorf("effective %s → %s, permitted %s → %s: want them unchanged",
			r.before.Effective, r.after.Effective, r.before.Permitted, r.after.Permitted)
	}
}

// dropChildEnv makes the test binary, re-run, be the process that drops:
// a drop cannot be undone, so it must not happen in the test process.
const dropChildEnv = "TELAGENT_PRIVILEGE_DROP_CHILD"

type dropReport struct {
	Kept     Set
	Err      string
	Threads  map[int]ThreadState
	EPERM    bool // a capability that was dropped is refused afterwards
	Cleared  bool // CAP_SYS_PTRACE kept: still effective
	Threaded int
}

// requireRoot is testutil.RequireRoot without its imports: those link cgo
// into the test binary, and AllThreadsSyscall refuses to run in such a
// binary (see TestDropWithCgo for that case).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates BPF maps and drops capabilities")
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(dropChildEnv) == "1" {
		dropChild()
		return
	}
	os.Exit(m.Run())
}

// dropChild spreads goroutines over many locked threads, drops to
// CAP_SYS_PTRACE, and reports every thread's sets.
func dropChild() {
	var r dropReport
	var wg sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			runtime.LockOSThread() // a thread of its own, parked until the end
			wg.Done()
			<-release
		}()
	}
	wg.Wait()
	kept, err := Drop(Of(unix.CAP_SYS_PTRACE))
	r.Kept = kept
	if err != nil {
		r.Err = err.Error()
	}
	r.Threads, _ = ThreadCaps("/proc/self")
	r.Threaded = len(r.Threads)
	// An effect check beyond /proc: setting the hostname needs
	// CAP_SYS_ADMIN, which was dropped (EPERM, nothing changes).
	name, _ := os.Hostname()
	r.EPERM = unix.Sethostname([]byte(name)) == unix.EPERM
	close(release)
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func TestDropEveryThread(t *testing.T) {
	requireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dropChildEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	var r dropReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	if r.Err != "" {
		t.Fatalf("Drop: %s", r.Err)
	}
	want := Of(unix.CAP_SYS_PTRACE)
	if r.Kept != want {
		t.Errorf("kept %s, want %s", r.Kept, want)
	}
	if r.Threaded < 9 {
		t.Errorf("child had %d threads; the test needs more than one to mean anything", r.Threaded)
	}
	for tid, st := range r.Threads {
		if st.Effective != want || st.Permitted != want || st.Inheritable != 0 || st.Ambient != 0 || st.Bounding != want {
			t.Errorf("thread %d after Drop: %+v, want effective = permitted = bounding = %s", tid, st, want)
		}
	}
	if !r.EPERM {
		t.Error("sethostname succeeded after CAP_SYS_ADMIN was dropped")
	}
}

// FuzzParse: --capabilities-keep never panics the parser, and a parsed
// set prints back to the same set.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"bpf", "CAP_BPF, perfmon", "none", "", "cap_", ",,", "cap_sys_ptrace cap_dac_read_search"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(set.String())
		if err != nil || again != set {
			t.Fatalf("Parse(%q) = %s, which parses back to %s, %v", s, set, again, err)
		}
	})
}
