package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/cilium/ebpf/rlimit"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/telagent/telagent/internal/privilege"
)

// capsKeepFlag is the run flag for what survives the drop after attaching.
var capsKeepFlag = &cli.StringFlag{
	Name:  "capabilities-keep",
	Value: "auto",
	Usage: "capabilities kept once the probes are attached, the rest are dropped: auto (what collection needs: " +
		"CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH for /proc, plus CAP_BPF on kernels that check it on every map read), " +
		"all (drop nothing), none, or a list such as sys_ptrace,dac_read_search",
}

// capsKeep is a parsed --capabilities-keep.
type capsKeep struct {
	auto, all bool
	set       privilege.Set
}

func parseCapsKeep(spec string) (capsKeep, error) {
	switch strings.ToLower(strings.TrimSpace(spec)) {
	case "auto":
		return capsKeep{auto: true}, nil
	case "all":
		return capsKeep{all: true}, nil
	}
	s, err := privilege.Parse(spec)
	if err != nil {
		return capsKeep{}, usagef("--capabilities-keep %q: %v (want auto, all, none or names such as sys_ptrace,bpf)", spec, err)
	}
	return capsKeep{set: s}, nil
}

// checkPrivileges fails early, naming every missing capability and how to
// grant it, instead of letting the first bpf() call fail with EPERM.
// CAP_SYS_RESOURCE is required only where BPF maps are charged to
// RLIMIT_MEMLOCK (before Linux 5.11) and the limit is too low.
func checkPrivileges() error {
	cur, err := privilege.Current()
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		exe = "telagent"
	}
	// Without CAP_BPF, the memlock test below cannot tell anything (the
	// library's map-creation probe failed for want of CAP_BPF), so the
	// capabilities come first.
	if missing := privilege.Missing(cur.Effective, false); len(missing) > 0 {
		return usageError{privilege.MissingError(missing, cur.Effective, exe).Error()}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		if !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("raise RLIMIT_MEMLOCK for BPF maps: %w", err)
		}
		missing := privilege.Missing(cur.Effective, true)
		return usageError{privilege.MissingError(missing, cur.Effective, exe).Error() +
			" (or raise the limit: LimitMEMLOCK=infinity, ulimit -l unlimited)"}
	}
	return nil
}

// dropCapabilities returns what the agent runs once attached: it drops
// every capability keep does not name, from every thread.
func dropCapabilities(keep capsKeep, log *slog.Logger) func() error {
	return func() error {
		if keep.all {
			log.Info("capabilities kept", "reason", "--capabilities-keep all")
			return nil
		}
		set := keep.set
		if keep.auto {
			var err error
			if set, err = privilege.AfterAttach(); err != nil {
				log.Warn("could not tell whether map reads need CAP_BPF; keeping it", "err", err)
			}
		}
		kept, err := privilege.Drop(set)
		if errors.Is(err, privilege.ErrCgo) {
			log.Warn("capabilities not dropped", "reason", err.Error())
			return nil
		}
		if err != nil {
			return fmt.Errorf("drop capabilities: %w", err)
		}
		log.Info("capabilities dropped", "kept", kept.String())
		return nil
	}
}
