package osthread

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// A goroutine that finds itself on the "main" thread moves to another one
// before running fn, and fn's thread is locked (it keeps its tid).
func TestGoLeavesTheMainThread(t *testing.T) {
	var mainTid int
	calls := 0
	onMain := func() bool {
		calls++
		mainTid = unix.Gettid() // pretend the first thread is the main one
		return true
	}
	tids := make(chan [2]int)
	Go(onMain, func() {
		a := unix.Gettid()
		for range 1000 {
			_ = unix.Getpid() // give the scheduler a chance to move us
		}
		tids <- [2]int{a, unix.Gettid()}
	})
	got := <-tids
	if calls != 1 || got[0] == mainTid || got[0] != got[1] {
		t.Errorf("fn ran on threads %v after %d checks; the \"main\" thread was %d", got, calls, mainTid)
	}
}

func TestPin(t *testing.T) {
	done := make(chan struct{})
	Go(OnMain, func() {
		defer close(done)
		allowed, err := Allowed(1024)
		if err != nil {
			t.Error(err)
			return
		}
		var first int
		for first = 0; first < 1024 && !allowed.IsSet(first); first++ {
		}
		aff, err := Pin([]int{first}, allowed, 1024)
		if err != nil || !slices.Equal(aff, []int{first}) {
			t.Errorf("Pin(%d) = %v, %v", first, aff, err)
		}
		none := unix.NewCPUSet(1024)
		if _, err := Pin([]int{first}, none, 1024); !errors.Is(err, ErrNoneAllowed) {
			t.Errorf("Pin with nothing allowed: %v, want ErrNoneAllowed", err)
		}
	})
	<-done
}
