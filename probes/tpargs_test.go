package probes

import (
	"os"
	"strings"
	"testing"
)

// The tracepoint's format file in tracefs is an independent account of
// its arguments: group_dead is a field exactly when the kernel passes it.
func TestTracepointArgsMatchesTracefs(t *testing.T) {
	var format []byte
	var err error
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if format, err = os.ReadFile(dir + "/events/sched/sched_process_exit/format"); err == nil {
			break
		}
	}
	if err != nil {
		t.Skipf("no tracefs format for sched_process_exit (needs root and tracefs): %v", err)
	}
	n, err := TracepointArgs("sched_process_exit")
	if err != nil {
		t.Fatal(err)
	}
	want := 1
	if strings.Contains(string(format), " group_dead;") {
		want = 2
	}
	if n != want {
		t.Errorf("TracepointArgs(sched_process_exit) = %d, tracefs format says %d:\n%s", n, want, format)
	}
	if _, err := TracepointArgs("no_such_tracepoint"); err == nil {
		t.Error("TracepointArgs of a tracepoint the kernel lacks: no error")
	}
}
