package entity

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
)

// statLine builds a 52-field /proc/<pid>/stat line whose field 22
// (starttime) is start; other numeric fields hold their own field number.
func statLine(pid int, comm string, start string) string {
	f := []string{strconv.Itoa(pid), "(" + comm + ")", "S"}
	for i := 4; i <= 52; i++ {
		if i == 22 {
			f = append(f, start)
		} else {
			f = append(f, strconv.Itoa(i))
		}
	}
	return strings.Join(f, " ") + "\n"
}

func TestParseStartTicksSelf(t *testing.T) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseStartTicks(stat)
	if err != nil {
		t.Fatalf("ParseStartTicks(%q): %v", stat, err)
	}
	// Oracle: strip "pid (comm) " using the comm file, then count fields.
	prefix := fmt.Sprintf("%d (%s) ", os.Getpid(), strings.TrimSuffix(string(comm), "\n"))
	rest, ok := strings.CutPrefix(string(stat), prefix)
	if !ok {
		t.Fatalf("stat %q does not start with %q", stat, prefix)
	}
	want, err := strconv.ParseUint(strings.Fields(rest)[22-3], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("ParseStartTicks = %d, want %d", got, want)
	}
	// A process started after boot, and not in the future.
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	if got == 0 || float64(got) > (secs+1)*clockTicks {
		t.Errorf("starttime %d ticks outside (0, uptime %.2fs]", got, secs)
	}
}

func TestParseStartTicks(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    uint64
		wantErr bool
	}{
		{name: "plain", line: statLine(100, "app", "12345"), want: 12345},
		{name: "spaces and parentheses", line: statLine(123, "a) b (c)", "424242"), want: 424242},
		{name: "literal", line: "123 (a) b (c)) S 1 123 123 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 1 0 777 10485760 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", want: 777},
		{name: "comm of numbers", line: statLine(7, "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22", "9"), want: 9},
		{name: "empty comm", line: statLine(8, "", "31"), want: 31},
		{name: "comm with newline", line: statLine(9, "x\ny", "32"), want: 32},
		{name: "max", line: statLine(1, "a", "18446744073709551615"), want: 1<<64 - 1},
		{name: "ends at starttime", line: strings.Join(strings.Fields(statLine(1, "a", "55"))[:22], " "), want: 55},
		{name: "ends before starttime", line: strings.Join(strings.Fields(statLine(1, "a", "55"))[:21], " "), wantErr: true},
		{name: "cut inside comm", line: "123 (a b", wantErr: true},
		{name: "only pid and comm", line: "123 (a) ", wantErr: true},
		{name: "empty", line: "", wantErr: true},
		{name: "no comm", line: "123 S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24", wantErr: true},
		{name: "starttime not a number", line: statLine(1, "a", "12x"), wantErr: true},
		{name: "starttime negative", line: statLine(1, "a", "-5"), wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseStartTicks([]byte(tt.line))
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("%s: ParseStartTicks(%q) = %d, want an error", tt.name, tt.line, got)
		case !tt.wantErr && err != nil:
			t.Errorf("%s: ParseStartTicks(%q): %v", tt.name, tt.line, err)
		case !tt.wantErr && got != tt.want:
			t.Errorf("%s: ParseStartTicks = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// The fake /proc of testdata/proc: btime 1700000000 (2023-11-14T22:13:20Z),
// pid 100 "my app" started at 12345 ticks, pid 200 "worker" at 250 ticks,
// both with cmdline "/usr/bin/app\x00--flag\x00".
const procFixture = "../testdata/proc"

var fixtureHost = []attribute.KeyValue{
	AttrHostID.String("0123456789abcdef0123456789abcdef"),
	AttrHostName.String("fixture-host"),
	AttrOSType.String("linux"),
}

// fakeProc copies the fixture into a directory the test may change.
func fakeProc(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(procFixture, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(procFixture, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []string{"100", "200"} {
		b, err := os.ReadFile(filepath.Join(dst, pid, "cmdline"))
		if err != nil || !bytes.Equal(b, []byte("/usr/bin/app\x00--flag\x00")) {
			t.Fatalf("fixture %s/cmdline = %q (%v): its NUL separators were lost", pid, b, err)
		}
	}
	// exe is a symlink (git keeps none in the fixture): 100's names a file
	// other than its comm, 200's one deleted since its exec.
	for pid, target := range map[string]string{"100": "/usr/bin/my-app", "200": "/usr/lib/worker.bin (deleted)"} {
		if err := os.Symlink(target, filepath.Join(dst, pid, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// relink points the symlink path at target.
func relink(t *testing.T, path, target string) {
	t.Helper()
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// want is host attributes followed by the given process attributes, in the
// order a Resource lists them (sorted by key: host.*, os.type, process.*).
func want(proc ...attribute.KeyValue) []attribute.KeyValue {
	return append(append([]attribute.KeyValue{}, fixtureHost...), proc...)
}

func checkAttrs(t *testing.T, what string, res *resource.Resource, want []attribute.KeyValue) {
	t.Helper()
	if res == nil {
		t.Fatalf("%s: nil resource", what)
	}
	if got := res.Attributes(); !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func newFixtureResolver(t *testing.T, root string) *ProcessResolver {
	t.Helper()
	r, err := NewProcessResolver(root, fixtureHost)
	if err != nil {
		t.Fatalf("NewProcessResolver(%s): %v", root, err)
	}
	return r
}

var (
	pid100 = []attribute.KeyValue{
		AttrProcessCommand.String("/usr/bin/app"),
		AttrProcessCreationTime.String("2023-11-14T22:15:23.45Z"), // + 123.45 s
		AttrProcessExecutableName.String("my-app"),                // /proc/100/exe, not comm ("my app")
		AttrProcessPID.Int64(100),
	}
	pid200 = []attribute.KeyValue{
		AttrProcessCommand.String("/usr/bin/app"),
		AttrProcessCreationTime.String("2023-11-14T22:13:22.5Z"), // + 2.5 s
		AttrProcessExecutableName.String("worker.bin"),           // without " (deleted)"
		AttrProcessPID.Int64(200),
	}
)

func TestProcessResolverFixture(t *testing.T) {
	root := fakeProc(t)
	r := newFixtureResolver(t, root)

	checkAttrs(t, "Host()", r.Host(), fixtureHost)
	p100 := r.Process(100)
	checkAttrs(t, "pid 100", p100, want(pid100...))
	p200 := r.Process(200)
	checkAttrs(t, "pid 200", p200, want(pid200...))
	for _, key := range append(EntityProcess.Identifying, EntityHost.Identifying...) {
		if _, ok := p100.Set().Value(key); !ok {
			t.Errorf("pid 100 lacks identifying attribute %s", key)
		}
	}

	if got := r.Process(100); got != p100 {
		t.Error("second Process(100) in one generation returned a new resource")
	}
	if r.Gone(100) || r.Gone(200) {
		t.Error("live processes reported gone")
	}

	// Still the same process next generation: the very same resource.
	r.NextGeneration(10)
	if r.Gone(100) {
		t.Error("Gone(100) before it was resolved in this generation")
	}
	if got := r.Process(100); got != p100 {
		t.Error("unchanged pid 100 got a new resource in the next generation")
	}

	// pid 100 exits and the pid is reused by another program. Within the
	// generation the cache answers; the next one sees the new process.
	writeFile(t, filepath.Join(root, "100/stat"), statLine(100, "other", "99999"))
	writeFile(t, filepath.Join(root, "100/comm"), "other\n")
	writeFile(t, filepath.Join(root, "100/cmdline"), "/opt/other\x00-x\x00")
	relink(t, filepath.Join(root, "100/exe"), "/opt/other")
	if got := r.Process(100); got != p100 {
		t.Error("pid 100 revalidated twice in one generation")
	}
	// pid 200 exits.
	if err := os.RemoveAll(filepath.Join(root, "200")); err != nil {
		t.Fatal(err)
	}

	// The first generation after the reuse closes the old process: its
	// identity, marked gone, so its keys' final points go out and are evicted.
	r.NextGeneration(10)
	if got := r.Process(100); got != p100 || !r.Gone(100) {
		t.Errorf("reused pid 100: first generation after reuse got a new resource or not gone (gone=%v)", r.Gone(100))
	}
	gone := r.Process(200)
	if gone != p200 {
		t.Error("exited pid 200 lost the identity it was seen with")
	}
	r.NextGeneration(10)
	reused := r.Process(100)
	if reused == p100 {
		t.Fatal("reused pid 100 kept the old process's resource")
	}
	checkAttrs(t, "reused pid 100", reused, want(
		AttrProcessCommand.String("/opt/other"),
		AttrProcessCreationTime.String("2023-11-14T22:29:59.99Z"), // + 999.99 s
		AttrProcessExecutableName.String("other"),
		AttrProcessPID.Int64(100),
	))
	if got := r.Process(100); got != reused {
		t.Error("second Process of the reused pid returned a new resource")
	}

	gone = r.Process(200)
	if gone != p200 {
		t.Error("exited pid 200 lost the identity it was seen with")
	}
	checkAttrs(t, "exited pid 200", gone, want(pid200...))
	if !r.Gone(200) {
		t.Error("Gone(200) = false for an exited process")
	}

	// It stays gone, with the same identity, while it is still used.
	r.NextGeneration(10)
	if r.Gone(200) {
		t.Error("Gone(200) before it was resolved in this generation")
	}
	if got := r.Process(200); got != p200 || !r.Gone(200) {
		t.Errorf("exited pid 200 a generation later: same resource %v, gone %v", got == p200, r.Gone(200))
	}

	// A pid never seen alive (and no kernel record): no identity, so the
	// host Resource, never process.pid alone; and gone.
	if got := r.Process(300); got != r.Host() || r.Identified(300) {
		t.Errorf("never seen pid 300: %v, identified %v; want the host Resource, false", got.Attributes(), r.Identified(300))
	}
	if !r.Gone(300) {
		t.Error("Gone(300) = false for a pid absent from /proc")
	}
	// A pid that appears after it was first resolved as gone gets its real
	// identity once revalidated.
	if err := os.MkdirAll(filepath.Join(root, "300"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "300/stat"), statLine(300, "late", "150"))
	writeFile(t, filepath.Join(root, "300/comm"), "late\n")
	relink(t, filepath.Join(root, "300/exe"), "/usr/sbin/late")
	r.NextGeneration(10)
	checkAttrs(t, "pid 300 now alive", r.Process(300), want(
		AttrProcessCreationTime.String("2023-11-14T22:13:21.5Z"),
		AttrProcessExecutableName.String("late"),
		AttrProcessPID.Int64(300),
	))
	if r.Gone(300) {
		t.Error("Gone(300) = true for a live process")
	}
}

func TestProcessResolverKernel(t *testing.T) {
	root := fakeProc(t)
	r := newFixtureResolver(t, root)
	var asked []uint32
	r.Kernel = func(pid uint32) (uint64, string, bool) {
		asked = append(asked, pid)
		switch pid {
		case 100: // alive in /proc: /proc must win
			return 1, "wrong", true
		case 400:
			return 12445, "kthread\xff", true
		}
		return 0, "", false
	}
	checkAttrs(t, "pid 100", r.Process(100), want(pid100...))
	checkAttrs(t, "gone pid 400 known to the kernel", r.Process(400), want(
		AttrProcessCreationTime.String("2023-11-14T22:15:24.45Z"), // + 124.45 s
		AttrProcessExecutableName.String("kthread\uFFFD"),
		AttrProcessPID.Int64(400),
	))
	if got := r.Process(401); got != r.Host() {
		t.Errorf("gone pid 401 unknown to the kernel: %v, want the host Resource", got.Attributes())
	}
	if !r.Identified(400) || r.Identified(401) {
		t.Errorf("Identified(400), Identified(401) = %v, %v; want true, false", r.Identified(400), r.Identified(401))
	}
	if !r.Gone(400) || !r.Gone(401) {
		t.Errorf("Gone(400), Gone(401) = %v, %v; want true, true", r.Gone(400), r.Gone(401))
	}
	if len(asked) != 2 || asked[0] != 400 || asked[1] != 401 {
		t.Errorf("Kernel asked about %v, want [400 401]", asked)
	}
}

func TestProcessResolverEviction(t *testing.T) {
	root := fakeProc(t)
	r := newFixtureResolver(t, root)
	p100, p200 := r.Process(100), r.Process(200)
	for _, pid := range []string{"100", "200"} {
		if err := os.RemoveAll(filepath.Join(root, pid)); err != nil {
			t.Fatal(err)
		}
	}
	r.NextGeneration(1) // both unused for 1 generation: kept
	if got := r.Process(100); got != p100 {
		t.Fatal("pid 100 forgotten after 1 unused generation with keepGenerations 1")
	}
	r.NextGeneration(1) // 200 unused for 2 generations: forgotten
	if got := r.Process(100); got != p100 {
		t.Error("pid 100, used every generation, was forgotten")
	}
	got := r.Process(200)
	if got == p200 {
		t.Fatal("pid 200 unused for 2 generations with keepGenerations 1 was not forgotten")
	}
	if got != r.Host() || r.Identified(200) {
		t.Errorf("forgotten gone pid 200: %v, identified %v; want the host Resource, false", got.Attributes(), r.Identified(200))
	}
}

func TestCreationTime(t *testing.T) {
	// A local zone far from UTC, so that a time not converted to UTC shows.
	local := time.Local
	time.Local = time.FixedZone("UTC+05:30", 5*3600+1800)
	t.Cleanup(func() { time.Local = local })
	r := newFixtureResolver(t, fakeProc(t))
	for ticks, want := range map[uint64]string{
		0:            "2023-11-14T22:13:20Z",
		1:            "2023-11-14T22:13:20.01Z",
		250:          "2023-11-14T22:13:22.5Z",
		12345:        "2023-11-14T22:15:23.45Z",
		8640000 + 99: "2023-11-15T22:13:20.99Z",
	} {
		if got := r.CreationTime(ticks); got != want {
			t.Errorf("CreationTime(%d) = %s, want %s", ticks, got, want)
		}
	}
}

func TestNewProcessResolverErrors(t *testing.T) {
	for name, stat := range map[string]*string{
		"no stat":   nil,
		"no btime":  ptr("cpu  1 2 3\nctxt 5\n"),
		"bad btime": ptr("btime soon\n"),
	} {
		root := t.TempDir()
		if stat != nil {
			writeFile(t, filepath.Join(root, "stat"), *stat)
		}
		if r, err := NewProcessResolver(root, fixtureHost); err == nil {
			t.Errorf("%s: no error (boot time %v)", name, r.bootTime)
		} else if !strings.Contains(err.Error(), "boot time") {
			t.Errorf("%s: error %q does not mention the boot time", name, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestProcessResolverSelf resolves the test process itself from the real
// /proc and checks its creation time against the wall clock.
func TestProcessResolverSelf(t *testing.T) {
	r, err := NewProcessResolver("/proc", fixtureHost)
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	res := r.Process(uint32(pid))
	if r.Gone(uint32(pid)) {
		t.Error("the test process is reported gone")
	}
	set := res.Set()
	get := func(k attribute.Key) attribute.Value {
		v, ok := set.Value(k)
		if !ok {
			t.Fatalf("no %s in %v", k, res.Attributes())
		}
		return v
	}
	if got := get(AttrProcessPID).AsInt64(); got != int64(pid) {
		t.Errorf("process.pid = %d, want %d", got, pid)
	}
	if got, want := get(AttrProcessExecutableName).AsString(), filepath.Base(os.Args[0]); got != want {
		t.Errorf("process.executable.name = %q, want the test binary's name %q", got, want)
	}
	if got := get(AttrProcessCommand).AsString(); got != os.Args[0] {
		t.Errorf("process.command = %q, want argv[0] %q", got, os.Args[0])
	}
	created, err := time.Parse(time.RFC3339Nano, get(AttrProcessCreationTime).AsString())
	if err != nil {
		t.Fatal(err)
	}
	// btime is whole seconds, so the creation time may be up to 1 s early.
	now := time.Now()
	if created.After(now.Add(time.Second)) || created.Before(now.Add(-time.Hour)) {
		t.Errorf("process.creation.time %v is not shortly before now %v", created, now)
	}
	if created.Location() != time.UTC {
		t.Errorf("process.creation.time not in UTC: %v", created)
	}
}

// TestProcessResolverRevalidateAllocs: revalidating live processes once
// per interval (the read path does it for every process with a key)
// allocates nothing, and still tells a live process from a gone one.
func TestProcessResolverRevalidateAllocs(t *testing.T) {
	r, err := NewProcessResolver("/proc", fixtureHost)
	if err != nil {
		t.Fatal(err)
	}
	self := uint32(os.Getpid())
	const gone = 1 << 30 // above pid_max: never a live process
	interval := func() {
		r.NextGeneration(30)
		_ = r.Process(self)
		_ = r.Process(gone)
	}
	interval()
	if allocs := testing.AllocsPerRun(20, interval); allocs != 0 {
		t.Errorf("steady-state revalidation: %.1f allocations per interval, want 0", allocs)
	}
	if r.Gone(self) {
		t.Error("the test process is reported gone")
	}
	if _, ok := r.startTicks(gone); ok {
		t.Error("a pid above pid_max has a start time")
	}
}

// TestProcessExecutableNameIsExe: process.executable.name is the base name
// of the executable file, as semconv says, not the command name the kernel
// keeps (comm: 15 bytes, and settable by the process).
func TestProcessExecutableNameIsExe(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("no sleep binary to run: %v", err)
	}
	const name = "telagent-long-executable-name" // longer than comm keeps
	bin := filepath.Join(t.TempDir(), name)
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	comm := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(c)) == name[:15] {
			comm = name[:15]
			break
		}
	}
	if comm == "" {
		t.Fatalf("pid %d never showed comm %q (not exec'd yet?)", pid, name[:15])
	}
	r, err := NewProcessResolver("/proc", fixtureHost)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := r.Process(uint32(pid)).Set().Value(AttrProcessExecutableName)
	if !ok || v.AsString() != name {
		t.Errorf("process.executable.name = %q (present %v), want %q (comm is %q)", v.AsString(), ok, name, comm)
	}
}

// DescribeLive describes the test process as its Resource does (the
// resolver's own description of it is the oracle), only under the start
// time /proc gives it; and the resolver's Discovered hook hears of it
// once, however often it is resolved.
func TestDescribeLiveAndDiscovered(t *testing.T) {
	pid := uint32(os.Getpid())
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	start, err := ParseStartTicks(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := StartTicks("/proc", pid); !ok || got != start {
		t.Fatalf("StartTicks = %d, %v; want %d from /proc/self/stat", got, ok, start)
	}
	r, err := NewProcessResolver("/proc", fixtureHost)
	if err != nil {
		t.Fatal(err)
	}
	var heard []uint32
	r.Discovered = func(p uint32, s uint64, res *resource.Resource) {
		if s != start {
			t.Errorf("Discovered start %d, want %d", s, start)
		}
		heard = append(heard, p)
	}
	for range 3 {
		r.NextGeneration(keepForTest)
		r.Process(pid)
	}
	if len(heard) != 1 || heard[0] != pid {
		t.Errorf("Discovered called for %v, want once for %d", heard, pid)
	}
	desc, ok := DescribeLive("/proc", pid, start)
	if !ok {
		t.Fatal("DescribeLive: the test process is not alive")
	}
	set := r.Process(pid).Set()
	for _, k := range []attribute.Key{AttrProcessExecutableName, AttrProcessCommand} {
		want, _ := set.Value(k)
		i := slices.IndexFunc(desc, func(kv attribute.KeyValue) bool { return kv.Key == k })
		if i < 0 || desc[i].Value != want {
			t.Errorf("DescribeLive %s = %v, want the Resource's %q", k, desc, want.Emit())
		}
	}
	if len(desc) != 2 {
		t.Errorf("DescribeLive = %v, want exactly the executable name and the command", desc)
	}
	if _, ok := DescribeLive("/proc", pid, start+1); ok {
		t.Error("DescribeLive accepted a start time the process does not have (a reused pid)")
	}
}

const keepForTest = 30
