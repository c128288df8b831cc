package main

import (
	"math"
	"os"
	"testing"
)

func TestSlope(t *testing.T) {
	xs := []float64{0, 10, 20, 30}
	if s := slope(xs, []float64{5, 7, 9, 11}); math.Abs(s-0.2) > 1e-12 {
		t.Errorf("slope of y=5+0.2x: %v", s)
	}
	if s := slope(xs, []float64{3, 3, 3, 3}); s != 0 {
		t.Errorf("slope of a constant: %v", s)
	}
	if s := slope([]float64{1}, []float64{1}); s != 0 {
		t.Errorf("slope of one point: %v", s)
	}
}

func TestCheck(t *testing.T) {
	l := limits{rssRatio: 1.2, rssSlackKiB: 1024, countGrowth: 4}
	mk := func(rss func(i int) int64, fds func(i int) int64) []sample {
		var s []sample
		for i := range 60 { // 10 min, every 10 s
			s = append(s, sample{at: float64(i * 10), rssKiB: rss(i), peakKiB: rss(i), threads: 15, fds: fds(i)})
		}
		return s
	}
	flatFDs := func(i int) int64 { return 100 + int64(i%2) }
	byName := func(vs []verdict) map[string]bool {
		m := map[string]bool{}
		for _, v := range vs {
			m[v.series] = v.pass
		}
		return m
	}
	// Flat, with GC swings below the warm-up peak: all pass.
	got := byName(check(mk(func(i int) int64 { return 100000 + int64(i%3)*10000 }, flatFDs), 120, l))
	if !got["rss"] || !got["fds"] || !got["threads"] {
		t.Errorf("flat run: %v", got)
	}
	// RSS growing 1 MiB per sample ends far past 1.2 × the warm-up peak.
	got = byName(check(mk(func(i int) int64 { return 100000 + int64(i)*1024 }, flatFDs), 120, l))
	if got["rss"] {
		t.Errorf("growing RSS passed")
	}
	// One FD leaked per minute: 8 over the checked window.
	got = byName(check(mk(func(int) int64 { return 100000 }, func(i int) int64 { return 100 + int64(i/6) }), 120, l))
	if got["fds"] || !got["rss"] {
		t.Errorf("leaking FDs: %v", got)
	}
	// One step of +2 FDs in the middle is not a leak.
	got = byName(check(mk(func(int) int64 { return 100000 }, func(i int) int64 {
		if i > 40 {
			return 102
		}
		return 100
	}), 120, l))
	if !got["fds"] {
		t.Errorf("one step failed")
	}
	// Too few samples after warm-up is a failure, not a pass.
	if vs := check(mk(func(int) int64 { return 1 }, flatFDs)[:13], 120, l); len(vs) != 1 || vs[0].pass {
		t.Errorf("too few samples: %v", vs)
	}
}

func TestReadSampleSelf(t *testing.T) {
	before, err := readSample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Oracle: five more open files are five more FDs, and the thread
	// count is the number of /proc/self/task entries.
	for range 5 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	after, err := readSample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.fds-before.fds != 5 {
		t.Errorf("fds %d → %d after opening 5 files", before.fds, after.fds)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	if after.threads != int64(len(tasks)) || after.rssKiB <= 0 {
		t.Errorf("sample %+v, %d tasks", after, len(tasks))
	}
}
