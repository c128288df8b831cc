package process

import (
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
)

// toEvent turns a decoded record into the event the schema declares for
// it; the attributes are exactly the schema's, in its order.
func (p *Probe) toEvent(r Record) probes.Event {
	return recordEvent(r, p.bootToWall, p.cfg.CommandArgs)
}

// recordEvent builds the event of r; withArgs adds process.command_args to
// an exec event (opt-in, --process-command-args).
func recordEvent(r Record, bootToWall int64, withArgs bool) probes.Event {
	ev := probes.Event{
		Time:       time.Unix(0, bootToWall+int64(r.TimeNs)),
		Pid:        r.Pid,
		StartTicks: r.StartNs / nsPerTick,
		Comm:       r.Comm,
		Node:       int(r.Node),
		CPU:        int(r.CPU),
	}
	switch r.Type {
	case TypeExec:
		ev.Desc = entity.EventTelagentProcessExec
		ev.Attributes = []attribute.KeyValue{
			entity.AttrProcessParentPID.Int64(int64(r.Ppid)),
			entity.AttrProcessExecutablePath.String(r.Path),
		}
		if withArgs {
			ev.Attributes = append(ev.Attributes, entity.AttrProcessCommandArgs.StringSlice(r.Args))
		}
		ev.Attributes = append(ev.Attributes,
			entity.AttrProcessUserID.Int64(int64(r.EUID)),
			entity.AttrProcessRealUserID.Int64(int64(r.UID)),
			entity.AttrTelagentProcessExecTruncated.Bool(r.Truncated),
		)
	case TypeFork:
		ev.Desc = entity.EventTelagentProcessFork
		ev.Attributes = []attribute.KeyValue{entity.AttrProcessParentPID.Int64(int64(r.Ppid))}
	case TypeExit:
		ev.Desc = entity.EventTelagentProcessExit
		ev.Exited = true
		code, sig, core, signaled := ExitStatus(r.Status)
		if signaled {
			ev.Attributes = append(ev.Attributes,
				entity.AttrTelagentProcessExitSignal.Int(sig),
				entity.AttrTelagentProcessExitCoreDumped.Bool(core))
		} else {
			ev.Attributes = append(ev.Attributes, entity.AttrProcessExitCode.Int(code))
		}
		var life float64
		if r.TimeNs > r.StartNs {
			life = float64(r.TimeNs-r.StartNs) / 1e9
		}
		ev.Attributes = append(ev.Attributes,
			entity.AttrTelagentProcessLifetime.Float64(life),
			entity.AttrTelagentProcessOnCPUTime.Float64(float64(r.OnCPUNs)/1e9))
	case TypeOOM:
		ev.Desc = entity.EventTelagentProcessOOMKill
		ev.Attributes = []attribute.KeyValue{
			entity.AttrTelagentCgroupID.Int64(int64(r.CgroupID)),
			entity.AttrTelagentProcessOOMRssPages.Int64(int64(r.RSSPages)),
			entity.AttrTelagentProcessOOMTotalVmPages.Int64(int64(r.TotalVMPages)),
			entity.AttrTelagentProcessOOMScoreAdj.Int(int(r.ScoreAdj)),
			entity.AttrProcessRealUserID.Int64(int64(r.OOMUID)),
		}
	}
	return ev
}
