// Workload of the uprobe probe's Go test: calls main.work exactly N times,
// each in a fresh goroutine (whose small initial stack makes work's
// prologue grow it: morestack copies the stack and re-enters work), with
// deeper stack growth inside work while its frame is live, and a 10 ms
// sleep (the goroutine parks and may resume on another thread) in every
// EVERY-th call. Starts after a line on stdin; prints
// "ok <sum> <sleeps> <total ns around the calls> <slow>" (slow: the calls
// that took 2^23 ns, 8.39 ms, or more by this clock) and exits 0 when
// every call returned the value it should.
//
//	gofunc N EVERY
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"time"
)

// work's 64 KiB frame is larger than a new goroutine's stack, so every
// call grows the stack in its prologue.
//
//go:noinline
func work(i int, sleep bool) int {
	var buf [8192]uint64
	for j := range buf {
		buf[j] = uint64(i + j)
	}
	if sleep {
		time.Sleep(10 * time.Millisecond)
	}
	return int(buf[i%len(buf)]) - i%len(buf) + grow(64) - 64*65/2
}

// grow recurses with 1 KiB frames: 64 KiB more stack, copied again.
//
//go:noinline
func grow(n int) int {
	var pad [128]uint64
	pad[n%128] = uint64(n)
	if n == 0 {
		return int(pad[0])
	}
	return grow(n-1) + int(pad[n%128])
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gofunc N EVERY")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[1])
	every, _ := strconv.Atoi(os.Args[2])
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		os.Exit(3)
	}
	sum, sleeps, slow := 0, 0, 0
	var inside time.Duration // time around the calls, the test's upper bound
	done := make(chan int)
	for i := 0; i < n; i++ {
		s := every > 0 && i%every == 0
		if s {
			sleeps++
		}
		go func() {
			t0 := time.Now()
			r := work(i, s)
			d := time.Since(t0)
			inside += d
			if d >= 1<<23 {
				slow++
			}
			done <- r
		}()
		got := <-done
		if got != i {
			fmt.Printf("work(%d) = %d\n", i, got)
			os.Exit(1)
		}
		sum += got
	}
	fmt.Printf("ok %d %d %d %d\n", sum, sleeps, inside.Nanoseconds(), slow)
}
