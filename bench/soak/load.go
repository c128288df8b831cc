package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// loadCounters is what the load generators did, for the report.
type loadCounters struct {
	procs, procErrs atomic.Int64 // short-lived processes run, failed
	diskBytes       atomic.Int64 // bytes written, fsynced and read back
	tcpConns        atomic.Int64 // loopback connections (Go side)
}

// churn starts rate short-lived rawsys processes a second, in batches every
// 50 ms so that the rate holds even when one exec is slow: most make a few
// syscalls and exit, every 10th also makes 5 loopback TCP connections, every
// 25th exits 3 (a failed process is churn too).
func churn(ctx context.Context, rawsys string, rate int, c *loadCounters) {
	const tick = 50 * time.Millisecond
	perTick := max(1, rate*int(tick)/int(time.Second))
	t := time.NewTicker(tick)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for range perTick {
			n++
			args := []string{"mix", "5"}
			want := 0
			switch {
			case n%10 == 0:
				args = []string{"tcp", "5"}
			case n%25 == 0:
				args, want = []string{"exit", "3"}, 3
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := exec.Command(rawsys, args...).Run()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code, err = ee.ExitCode(), nil
				}
				if err != nil || code != want {
					c.procErrs.Add(1)
					return
				}
				c.procs.Add(1)
			}()
		}
		wg.Wait()
	}
}

// disk writes, fsyncs, reads back and removes a 1 MiB file in dir every
// 200 ms (about 5 MiB/s each way): block I/O, page cache and file churn.
func disk(ctx context.Context, dir string, c *loadCounters) error {
	buf := make([]byte, 1<<20)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("disk load: %w", err)
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		name := filepath.Join(dir, fmt.Sprintf("disk-%d", i%4))
		f, err := os.Create(name)
		if err != nil {
			return fmt.Errorf("disk load: %w", err)
		}
		_, err = f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("disk load: %w", err)
		}
		// Drop it from the page cache so that the read goes to the disk.
		if f, err = os.Open(name); err != nil {
			return fmt.Errorf("disk load: %w", err)
		}
		_ = fadviseDontNeed(f)
		_, err = io.Copy(io.Discard, f)
		f.Close()
		os.Remove(name)
		if err != nil {
			return fmt.Errorf("disk load: %w", err)
		}
		c.diskBytes.Add(2 << 20)
	}
}

// tcp keeps a loopback echo going: a new connection every 100 ms that
// moves 64 KiB each way, so both long-ish transfers and connection churn.
func tcp(ctx context.Context, c *loadCounters) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("tcp load: %w", err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	payload := make([]byte, 64<<10)
	back := make([]byte, len(payload))
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return fmt.Errorf("tcp load: %w", err)
		}
		go func() { _, _ = conn.Write(payload) }()
		_, err = io.ReadFull(conn, back)
		conn.Close()
		if err != nil {
			return fmt.Errorf("tcp load: %w", err)
		}
		c.tcpConns.Add(1)
	}
}
