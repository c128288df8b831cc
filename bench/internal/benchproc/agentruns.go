package benchproc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"time"
)

// Workload is a bench's measured loop: a program that does Ops operations
// and prints its own wall and CPU time per operation under WallKey and
// CPUKey.
type Workload struct {
	Argv            []string
	Ops             int
	Timeout         time.Duration
	WallKey, CPUKey string
}

// Run runs the workload once, bare.
func (w Workload) Run(ctx context.Context) (Sample, error) {
	return RunWorkload(ctx, "workload", w.Argv, w.Timeout, w.WallKey, w.CPUKey)
}

// Agent runs the telagent binary Bin with one probe around a workload,
// exporting OTLP/JSON into files in Dir. Check fails a run whose output
// shows the probe recorded nothing: an agent that attached nothing would
// look free.
type Agent struct {
	Bin, Probe, Dir string
	Check           func(out string) error
	seq             int
}

// FindAgent resolves the agent binary at path; reason says why the agent
// configurations are skipped ("" when it was found).
func FindAgent(path string) (bin, reason string) {
	bin, err := exec.LookPath(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "agent binary " + path + " not found (build it first)"
	case err != nil:
		return "", err.Error()
	}
	return bin, ""
}

func (a *Agent) argv() ([]string, string) {
	a.seq++
	out := filepath.Join(a.Dir, fmt.Sprintf("out-%d.json", a.seq))
	return []string{a.Bin, "run", "--probes", a.Probe, "--exporter", "otlp-json", "--output", out, "--interval", "1s"}, out
}

// Host runs w once with the agent observing the whole host, started
// before and stopped (SIGINT, exit 0) after it.
func (a *Agent) Host(ctx context.Context, w Workload) (Sample, error) {
	argv, out := a.argv()
	s, err := Under(ctx, "agent", argv, "attached", false, w.Ops, w.Run)
	if err != nil {
		return s, err
	}
	return s, a.Check(out)
}

// Target runs w once as the agent's held command (target filter on); the
// agent passes its stdout through and exits with it.
func (a *Agent) Target(ctx context.Context, w Workload) (Sample, error) {
	argv, out := a.argv()
	argv = append(append(argv, "--"), w.Argv...)
	s, err := RunWorkload(ctx, "agent", argv, w.Timeout, w.WallKey, w.CPUKey)
	if err != nil {
		return s, err
	}
	return s, a.Check(out)
}
