package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// sample is one look at the agent process.
type sample struct {
	at     float64 // seconds since the agent attached
	rssKiB int64
	// peakKiB is VmHWM: the largest RSS since the previous sample, as
	// readSample resets it each time (clear_refs 5), so that a spike
	// between two samples is seen whatever the sampling phase.
	peakKiB int64
	threads int64
	fds     int64
	cpuTick int64 // utime+stime, clock ticks
}

// readSample reads /proc/PID/status (VmRSS, Threads), counts /proc/PID/fd
// and reads utime+stime from /proc/PID/stat.
func readSample(pid int) (sample, error) {
	var s sample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("agent status: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.rssKiB, err = strconv.ParseInt(f[0], 10, 64)
		case "VmHWM":
			s.peakKiB, err = strconv.ParseInt(f[0], 10, 64)
		case "Threads":
			s.threads, err = strconv.ParseInt(f[0], 10, 64)
		}
		if err != nil {
			return s, fmt.Errorf("agent status %s: %w", k, err)
		}
	}
	if s.rssKiB == 0 || s.threads == 0 {
		return s, fmt.Errorf("agent status: no VmRSS or Threads")
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, fmt.Errorf("agent fds: %w", err)
	}
	s.fds = int64(len(ents))
	if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
		return s, fmt.Errorf("agent stat: %w", err)
	}
	// Fields after the command name, which may hold spaces: state is
	// field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("agent stat: short")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("agent stat: bad utime/stime")
	}
	s.cpuTick = ut + st
	// Resets VmHWM to the current RSS, nothing else (proc(5)).
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return s, fmt.Errorf("agent clear_refs: %w", err)
	}
	return s, nil
}

// slope is the least-squares slope of ys over xs (0 for fewer than 2 points).
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// verdict is one series' flatness check.
type verdict struct {
	series string
	pass   bool
	detail string
}

// limits are the flatness criteria.
type limits struct {
	rssRatio    float64 // peak RSS after warm-up ≤ warm-up peak × rssRatio + rssSlackKiB
	rssSlackKiB float64
	// countGrowth bounds the growth that the fitted line of FDs or threads
	// predicts over the checked window: a one-off step (a gRPC connection
	// redialled, one more runtime thread) fits as a fraction of itself, a
	// leak of one per flap or per minute as several.
	countGrowth float64
}

// check judges the samples taken after warmup against the warm-up ones.
// RSS is judged on the peaks (VmHWM per sample window): the warm-up peak is
// the largest during warm-up, which covers outages and their recovery as
// the rest of the run does.
func check(samples []sample, warmup float64, l limits) []verdict {
	var warm, after []sample
	for _, s := range samples {
		if s.at < warmup {
			warm = append(warm, s)
		} else {
			after = append(after, s)
		}
	}
	if len(warm) == 0 || len(after) < 3 {
		return []verdict{{series: "samples", detail: fmt.Sprintf("too few: %d in warm-up, %d after (need ≥1 and ≥3)", len(warm), len(after))}}
	}
	var warmRSS, maxRSS int64
	for _, s := range warm {
		warmRSS = max(warmRSS, s.peakKiB)
	}
	xs := make([]float64, len(after))
	rss := make([]float64, len(after))
	fds := make([]float64, len(after))
	thr := make([]float64, len(after))
	for i, s := range after {
		maxRSS = max(maxRSS, s.peakKiB)
		xs[i] = s.at
		rss[i] = float64(s.rssKiB)
		fds[i] = float64(s.fds)
		thr[i] = float64(s.threads)
	}
	window := xs[len(xs)-1] - xs[0]
	bound := float64(warmRSS)*l.rssRatio + l.rssSlackKiB
	out := []verdict{{
		series: "rss",
		pass:   float64(maxRSS) <= bound,
		detail: fmt.Sprintf("peak %.1f MiB after warm-up vs warm-up peak %.1f MiB (bound %.1f MiB); sampled RSS fitted slope %+.2f MiB/h",
			mib(maxRSS), mib(warmRSS), bound/1024, slope(xs, rss)*3600/1024),
	}}
	for _, c := range []struct {
		name string
		ys   []float64
	}{{"fds", fds}, {"threads", thr}} {
		s := slope(xs, c.ys)
		growth := s * window
		out = append(out, verdict{
			series: c.name,
			pass:   growth <= l.countGrowth,
			detail: fmt.Sprintf("%.0f → %.0f (min %.0f, max %.0f); fitted slope %+.2f/h, %+.2f over the %.0f s window (bound %.0f)",
				c.ys[0], c.ys[len(c.ys)-1], minf(c.ys), maxf(c.ys), s*3600, growth, window, l.countGrowth),
		})
	}
	return out
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func minf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func fadviseDontNeed(f *os.File) error {
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
