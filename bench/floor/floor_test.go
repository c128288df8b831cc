package floor

import (
	"os"
	"testing"

	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// TestAttachVariant loads and attaches every variant, makes a few syscalls
// and checks that the programs ran.
func TestAttachVariant(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []Variant{Empty, Clock, ClockStorage} {
		t.Run(v.String(), func(t *testing.T) {
			f, err := AttachVariant(v)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Variant() != v {
				t.Errorf("Variant() = %s, want %s", f.Variant(), v)
			}
			for range 100 {
				unix.Getppid()
			}
			ran, err := f.Ran()
			if err != nil {
				t.Fatal(err)
			}
			if !ran {
				t.Error("programs left no trace in their map")
			}
			if err := f.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	if _, err := AttachVariant(Variant(42)); err == nil {
		t.Error("AttachVariant(42) succeeded")
	}
}
