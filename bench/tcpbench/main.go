// Command tcpbench measures the per-round-trip overhead of telagent's tcp
// probe: one loopback TCP connection passing one byte back and forth,
// bare, under the agent (whole host, and with the loop as its target) and
// under bpftrace doing the same job. The configurations run interleaved
// in one invocation; compare the numbers of one run only.
//
//	go run ./bench/tcpbench -agent ./bin/telagent [-roundtrips 50000] [-rounds 9] [-cpu 0] [-json FILE]
//
// It must run as root. See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/telagent/telagent/bench/internal/benchproc"
)

const (
	cfgBare        = "bare"
	cfgAgentHost   = "agent-host"
	cfgAgentTarget = "agent-target"
	cfgBpftrace    = "bpftrace"
)

// bpftraceProg does the probe's job per process on the same tracepoints:
// a smoothed-RTT histogram at every segment received (tcp_probe's srtt is
// already in µs), retransmits and resets counted, and TCP state changes
// counted by new state (opens, failures and closes are state changes).
const bpftraceProg = `
tracepoint:tcp:tcp_probe { @srtt_us[pid] = hist(args->srtt); }
tracepoint:tcp:tcp_retransmit_skb { @retrans[pid] = count(); }
tracepoint:tcp:tcp_retransmit_synack { @retrans[pid] = count(); }
tracepoint:tcp:tcp_send_reset { @rst_tx[pid] = count(); }
tracepoint:tcp:tcp_receive_reset { @rst_rx[pid] = count(); }
tracepoint:sock:inet_sock_set_state /args->protocol == 6/ { @states[pid, args->newstate] = count(); }
BEGIN { printf("ready\n"); }
`

type bench struct {
	work  benchproc.Workload
	agent benchproc.Agent
}

func main() {
	agent := flag.String("agent", "./bin/telagent", "telagent binary; the agent configurations are skipped when it is missing")
	roundtrips := flag.Int("roundtrips", 50000, "1-byte round trips per measurement")
	rounds := flag.Int("rounds", 9, "rounds; each round measures every configuration once")
	cpu := flag.Int("cpu", 0, "pin both workload threads to this CPU (-1: do not pin)")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	flag.Parse()
	if flag.NArg() != 0 || *roundtrips < 1 || *rounds < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, *agent, *roundtrips, *rounds, *cpu, *jsonOut)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, agentPath string, roundtrips, rounds, cpu int, jsonOut string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "tcpbench:", err); return 1 }
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "tcpbench: warning: not running as root; every traced configuration will fail")
	}
	tmp, err := os.MkdirTemp("", "tcpbench-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "workload", "tcp_pingpong.c")
	loop, err := benchproc.BuildC(ctx, tmp, src, "-pthread")
	if err != nil {
		return fail(err)
	}
	argv := []string{loop, strconv.Itoa(roundtrips)}
	if cpu >= 0 { // pin both threads to this CPU
		argv = append(argv, strconv.Itoa(cpu))
	}
	b := &bench{work: benchproc.Workload{Argv: argv, Ops: roundtrips,
		Timeout: 30*time.Second + time.Duration(roundtrips)*200*time.Microsecond,
		WallKey: "ns_per_roundtrip", CPUKey: "cpu_ns_per_roundtrip"}}
	var agentReason string
	b.agent.Bin, agentReason = benchproc.FindAgent(agentPath)
	b.agent.Probe, b.agent.Dir, b.agent.Check = "tcp", tmp, checkRecorded
	btReason, _ := benchproc.BpftraceUnavailable("")
	configs := []*benchproc.Config{
		{Name: cfgBare, Measure: b.work.Run},
		{Name: cfgAgentHost, Measure: func(ctx context.Context) (benchproc.Sample, error) { return b.agent.Host(ctx, b.work) }, Skip: agentReason},
		{Name: cfgAgentTarget, Measure: func(ctx context.Context) (benchproc.Sample, error) { return b.agent.Target(ctx, b.work) }, Skip: agentReason},
		{Name: cfgBpftrace, Measure: b.bpftrace, Skip: btReason},
	}
	pin := "not pinned"
	if cpu >= 0 {
		pin = fmt.Sprintf("both threads on CPU %d", cpu)
	}
	fmt.Printf("tcpbench: loopback TCP 1-byte ping-pong, %s, %d round trips x %d rounds, configurations interleaved (order rotates each round)\n", pin, roundtrips, rounds)
	fmt.Printf("kernel %s, %d CPUs, agent %s, started %s\n", benchproc.KernelRelease(), runtime.NumCPU(), agentPath, time.Now().Format(time.RFC3339))
	if _, err := b.work.Run(ctx); err != nil { // warm-up, not recorded
		return fail(fmt.Errorf("workload does not run: %w", err))
	}
	if restore, err := benchproc.EnableBPFStats(); err != nil {
		fmt.Println("note: BPF run-time stats unavailable:", err)
	} else {
		defer restore()
	}
	if err := benchproc.Interleave(ctx, configs, rounds); err != nil {
		return 130
	}
	pairs := [][2]string{{cfgAgentHost, cfgBpftrace}, {cfgAgentTarget, cfgBpftrace}}
	meta := map[string]any{"workload": "loopback TCP 1-byte ping-pong", "roundtrips": roundtrips, "rounds": rounds, "cpu": cpu}
	return benchproc.Report(configs, cfgBare, pairs, "roundtrip", meta, jsonOut)
}

// checkRecorded fails a run whose export has no RTT of the workload's
// connection: an agent that attached nothing would look free.
func checkRecorded(out string) error {
	data, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	if !strings.Contains(string(data), "telagent.tcp.rtt") || !strings.Contains(string(data), "telagent.tcp.connection.opens") {
		return fmt.Errorf("%s has no telagent.tcp.rtt and connection opens: the probe recorded nothing", out)
	}
	return nil
}

func (b *bench) bpftrace(ctx context.Context) (benchproc.Sample, error) {
	return benchproc.Under(ctx, "bpftrace", []string{"bpftrace", "-e", bpftraceProg}, "ready", true, b.work.Ops, b.work.Run)
}
