package tcp

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/internal/testutil"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/probetest"
)

// ---- network namespaces ----

// netPair is two network namespaces joined by a veth pair: a (10.77.0.1)
// and b (10.77.0.2). Both are deleted (with the veth) when the test ends.
type netPair struct {
	a, b         string // namespace names
	ifA          string // a's end of the veth
	addrA, addrB string
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newNetPair(t *testing.T) *netPair {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed: cannot make network namespaces")
	}
	id := fmt.Sprintf("%d%03d", os.Getpid()%100000, time.Now().UnixNano()%1000)
	p := &netPair{a: "tlgtcp-a" + id, b: "tlgtcp-b" + id, ifA: "tta" + id, addrA: "10.77.0.1", addrB: "10.77.0.2"}
	ifB := "ttb" + id
	for _, ns := range []string{p.a, p.b} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v %s", ns, err, out)
			}
		})
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", p.ifA, "netns", p.a, "type", "veth", "peer", "name", ifB, "netns", p.b)
	run(t, "ip", "-n", p.a, "addr", "add", p.addrA+"/24", "dev", p.ifA)
	run(t, "ip", "-n", p.b, "addr", "add", p.addrB+"/24", "dev", ifB)
	run(t, "ip", "-n", p.a, "link", "set", p.ifA, "up")
	run(t, "ip", "-n", p.b, "link", "set", ifB, "up")
	return p
}

// ---- workload helpers (this test binary, see helper_test.go) ----

type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	pid   int
	stdin io.WriteCloser
	out   *bufio.Scanner
	done  bool
}

// startHelper starts the helper in namespace ns and makes it a target
// before it touches a socket.
func startHelper(t *testing.T, h *probetest.Harness, ns, role, mode, addr string, n, size int) *helper {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	cmd.Env = append(os.Environ(), "TELAGENT_TCP_HELPER="+role, "TELAGENT_TCP_MODE="+mode, "TELAGENT_TCP_ADDR="+addr,
		"TELAGENT_TCP_N="+strconv.Itoa(n), "TELAGENT_TCP_BYTES="+strconv.Itoa(size))
	cmd.Stderr = os.Stderr
	w := &helper{t: t, cmd: cmd}
	var err error
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.out = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s helper: %v", role, err)
	}
	t.Cleanup(w.stop)
	line := w.line()
	if _, err := fmt.Sscanf(line, "pid %d", &w.pid); err != nil {
		t.Fatalf("%s helper said %q, want its pid", role, line)
	}
	// ip netns exec execs the command in place: the helper is the child.
	if w.pid != cmd.Process.Pid {
		t.Fatalf("%s helper runs as pid %d, not as the started process %d", role, w.pid, cmd.Process.Pid)
	}
	if err := h.State.Add(uint32(w.pid)); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *helper) line() string {
	w.t.Helper()
	if !w.out.Scan() {
		w.t.Fatalf("helper %d ended early: %v", w.pid, w.out.Err())
	}
	return w.out.Text()
}

// start lets the helper run and waits until it listens or is done; it
// returns what the helper reported with "ready".
func (w *helper) start() []string {
	w.t.Helper()
	if _, err := io.WriteString(w.stdin, "go\n"); err != nil {
		w.t.Fatal(err)
	}
	f := strings.Fields(w.line())
	if len(f) == 0 || f[0] != "ready" {
		w.t.Fatalf("helper %d said %q, want ready", w.pid, f)
	}
	return f[1:]
}

// finish closes the helper's stdin and checks that it exits 0.
func (w *helper) finish() {
	w.t.Helper()
	w.stdin.Close()
	err := w.cmd.Wait()
	w.done = true
	if err != nil {
		w.t.Errorf("helper %d: %v", w.pid, err)
	}
}

func (w *helper) stop() {
	if !w.done {
		w.stdin.Close()
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
	}
}

// snmp is the Tcp line of /proc/<pid>/net/snmp: the kernel's counters of
// the network namespace pid is in.
func snmp(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/snmp", pid))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		m := map[string]int64{}
		for i, v := range f[1:] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("net/snmp Tcp %s: %v", names[i], err)
			}
			m[names[i]] = n
		}
		return m
	}
	t.Fatalf("/proc/%d/net/snmp has no Tcp counters", pid)
	return nil
}

func delta(after, before map[string]int64, name string) int64 { return after[name] - before[name] }

// settled waits until no socket in pid's namespace is between open and
// closed (only LISTEN and TIME_WAIT entries in /proc/<pid>/net/tcp):
// every CLOSE transition of the workload has happened.
func settled(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		settledPort(t, pid, 0)
	}
}

// settledPort is settled for the sockets whose local or remote port is
// port (0: all of them), for namespaces shared with other programs.
func settledPort(t *testing.T, pid, port int) {
	t.Helper()
	hexPort := fmt.Sprintf(":%04X", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
		if err != nil {
			t.Fatal(err)
		}
		busy := ""
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || f[3] == "0A" || f[3] == "06" {
				continue
			}
			if port == 0 || strings.HasSuffix(f[1], hexPort) || strings.HasSuffix(f[2], hexPort) {
				busy = line
			}
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sockets of pid %d's namespace not closed after 10 s: %s", pid, busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- collection ----

// conn are one (process, direction) key's points.
type conn struct {
	retransmits, opens, failures, closes, resetsSent, resetsRecv int64
	rtt, duration                                                metricdata.HistogramDataPoint[float64]
}

type key struct {
	pid       int64 // 0: the host (unattributed) series
	direction string
}

type result struct {
	keys     map[key]*conn
	overflow *conn
}

func (r result) of(pid int, direction string) conn {
	if c := r.keys[key{int64(pid), direction}]; c != nil {
		return *c
	}
	return conn{}
}

// pids returns the directions a pid has data for.
func (r result) directions(pid int) []string {
	var d []string
	for k := range r.keys {
		if k.pid == int64(pid) {
			d = append(d, k.direction)
		}
	}
	return d
}

func collect(t *testing.T, h *probetest.Harness) result {
	t.Helper()
	r := result{keys: map[key]*conn{}}
	for _, rm := range h.CollectAll() {
		pid, _ := rm.Resource.Set().Value(entity.AttrProcessPID)
		for _, m := range rm.ScopeMetrics[0].Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					c := r.conn(t, pid.AsInt64(), dp.Attributes)
					switch m.Name {
					case entity.MetricTelagentTCPRetransmits.Name:
						c.retransmits = dp.Value
					case entity.MetricTelagentTCPConnectionOpens.Name:
						c.opens = dp.Value
					case entity.MetricTelagentTCPConnectionFailures.Name:
						c.failures = dp.Value
					case entity.MetricTelagentTCPConnectionCloses.Name:
						c.closes = dp.Value
					case entity.MetricTelagentTCPResets.Name:
						dir, _ := dp.Attributes.Value(entity.AttrNetworkIODirection)
						switch dir.AsString() {
						case "transmit":
							c.resetsSent = dp.Value
						case "receive":
							c.resetsRecv = dp.Value
						default:
							t.Errorf("reset point without a valid %s: %v", entity.AttrNetworkIODirection, dp.Attributes.ToSlice())
						}
					default:
						t.Errorf("undeclared counter %s", m.Name)
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					c := r.conn(t, pid.AsInt64(), dp.Attributes)
					switch m.Name {
					case entity.MetricTelagentTCPRTT.Name:
						c.rtt = dp
					case entity.MetricTelagentTCPConnectionDuration.Name:
						c.duration = dp
					default:
						t.Errorf("undeclared histogram %s", m.Name)
					}
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return r
}

// conn returns the entry of a point: its process (0 on the host) and
// direction, or the overflow series.
func (r *result) conn(t *testing.T, pid int64, attrs attribute.Set) *conn {
	if over, _ := attrs.Value(entity.AttrOtelMetricOverflow); over.AsBool() {
		if pid != 0 {
			t.Errorf("overflow series on process %d", pid)
		}
		if r.overflow == nil {
			r.overflow = &conn{}
		}
		return r.overflow
	}
	dir, _ := attrs.Value(entity.AttrTelagentTCPConnectionDirection)
	k := key{pid, dir.AsString()}
	if k.direction != "" && k.direction != "outbound" && k.direction != "inbound" {
		t.Errorf("invalid %s %q", entity.AttrTelagentTCPConnectionDirection, k.direction)
	}
	if r.keys[k] == nil {
		r.keys[k] = &conn{}
	}
	return r.keys[k]
}

// ---- tests ----

func start(t *testing.T, cfg Config, filter bool) (*probetest.Harness, *Probe) {
	t.Helper()
	p := New(cfg)
	return probetest.Start(t, p, filter, nil), p
}

// Retransmits of a sender whose segments a netfilter rule in the
// receiver's namespace drops: the exported count is the sender
// namespace's TcpRetransSegs delta (the namespace holds only the sender).
func TestRetransmitsMatchNamespaceCounter(t *testing.T) {
	h, _ := start(t, Config{}, true)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) not installed: cannot drop segments (apt-get install nftables)")
	}
	np := newNetPair(t)
	// Every 20th data-carrying segment to the server (not SYNs, not ACKs).
	rules := `table inet telagent_tcp_test {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 5001 meta length > 200 numgen inc mod 20 == 0 counter drop
	}
}
`
	cmd := exec.Command("ip", "netns", "exec", np.b, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	server := startHelper(t, h, np.b, "server", "sink", np.addrB+":5001", 1, 0)
	server.start()
	const size = 2 << 20
	client := startHelper(t, h, np.a, "client", "sink", np.addrB+":5001", 1, size)
	before := snmp(t, client.pid)
	client.start()
	settled(t, client.pid, server.pid)
	after := snmp(t, client.pid)
	r := collect(t, h)
	client.finish()
	server.finish()

	want := delta(after, before, "RetransSegs")
	got := r.of(client.pid, "outbound")
	t.Logf("%d bytes with every 20th data segment dropped: agent retransmits %d, namespace TcpRetransSegs delta %d; server side %d",
		size, got.retransmits, want, r.of(server.pid, "inbound").retransmits)
	if want == 0 {
		t.Fatal("the kernel retransmitted nothing: the drop rule did not work")
	}
	if got.retransmits != want {
		t.Errorf("agent retransmits %d for the sender, TcpRetransSegs delta %d: want them equal", got.retransmits, want)
	}
	if got.opens != 1 || got.closes != 1 || got.duration.Count != 1 {
		t.Errorf("sender opens %d closes %d lifetimes %d, want 1 each", got.opens, got.closes, got.duration.Count)
	}
	if s := r.of(server.pid, "inbound"); s.opens != 1 || s.closes != 1 {
		t.Errorf("receiver opens %d closes %d, want 1 each", s.opens, s.closes)
	}
}

// A lost SYN-ACK: the server's kernel retransmits it (and the client may
// retransmit its SYN). Each side's count equals its namespace's
// TcpRetransSegs delta; the SYN-ACK counts on the listener's process.
func TestHandshakeRetransmits(t *testing.T) {
	h, _ := start(t, Config{}, true)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft (nftables) not installed: cannot drop segments (apt-get install nftables)")
	}
	np := newNetPair(t)
	// The first SYN-ACK from the server, in the client's namespace.
	rules := `table inet telagent_tcp_test {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp sport 5006 tcp flags & (syn | ack) == (syn | ack) numgen inc mod 1000000 == 0 counter drop
	}
}
`
	cmd := exec.Command("ip", "netns", "exec", np.a, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	server := startHelper(t, h, np.b, "server", "echo", np.addrB+":5006", 1, 0)
	client := startHelper(t, h, np.a, "client", "echo", np.addrB+":5006", 1, 0)
	sBefore, cBefore := snmp(t, server.pid), snmp(t, client.pid)
	server.start()
	client.start()
	settled(t, client.pid, server.pid)
	sAfter, cAfter := snmp(t, server.pid), snmp(t, client.pid)
	r := collect(t, h)
	client.finish()
	server.finish()

	c, s := r.of(client.pid, "outbound"), r.of(server.pid, "inbound")
	cWant, sWant := delta(cAfter, cBefore, "RetransSegs"), delta(sAfter, sBefore, "RetransSegs")
	t.Logf("client retransmits %d (namespace %d), server %d (namespace %d)", c.retransmits, cWant, s.retransmits, sWant)
	if sWant < 1 {
		t.Fatal("the server's kernel retransmitted nothing: the SYN-ACK was not dropped")
	}
	if c.retransmits != cWant || s.retransmits != sWant {
		t.Errorf("retransmits client %d server %d, namespaces' TcpRetransSegs deltas %d and %d: want them equal",
			c.retransmits, s.retransmits, cWant, sWant)
	}
	if c.opens != 1 || s.opens != 1 {
		t.Errorf("opens client %d server %d, want 1 each", c.opens, s.opens)
	}
}

// 50 connections opened and closed: opens, closes and lifetimes are
// exactly 50 on each side and match the namespaces' ActiveOpens and
// PassiveOpens; the RTT histogram has samples from every connection, in a
// plausible range, and agrees with the kernel's own smoothed RTT of the
// client's sockets (TCP_INFO). This kernel has no netem (and no fq for an
// EDT delay), so the RTT is the veth's own, not a delay set by the test.
func TestConnectionsAndRTT(t *testing.T) {
	h, _ := start(t, Config{}, true)
	np := newNetPair(t)
	const n = 50
	server := startHelper(t, h, np.b, "server", "echo", np.addrB+":5002", n, 0)
	client := startHelper(t, h, np.a, "client", "echo", np.addrB+":5002", n, 0)
	sBefore, cBefore := snmp(t, server.pid), snmp(t, client.pid)
	server.start()
	rtts := client.start()
	settled(t, client.pid, server.pid)
	sAfter, cAfter := snmp(t, server.pid), snmp(t, client.pid)
	r := collect(t, h)
	client.finish()
	server.finish()
	if len(rtts) != 2 {
		t.Fatalf("client reported %q, want its min and max smoothed RTT", rtts)
	}
	minRTT, err1 := strconv.ParseFloat(rtts[0], 64)
	maxRTT, err2 := strconv.ParseFloat(rtts[1], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("client RTTs %q: %v %v", rtts, err1, err2)
	}
	minRTT, maxRTT = minRTT*1e-6, maxRTT*1e-6 // µs → s

	c, s := r.of(client.pid, "outbound"), r.of(server.pid, "inbound")
	mean := func(dp metricdata.HistogramDataPoint[float64]) float64 { return dp.Sum / float64(max(dp.Count, 1)) }
	t.Logf("client: opens %d closes %d failures %d lifetimes %d (mean %.1f µs) RTT samples %d (mean %.1f µs, TCP_INFO %.1f–%.1f µs); ActiveOpens delta %d",
		c.opens, c.closes, c.failures, c.duration.Count, 1e6*mean(c.duration), c.rtt.Count, 1e6*mean(c.rtt), 1e6*minRTT, 1e6*maxRTT, delta(cAfter, cBefore, "ActiveOpens"))
	t.Logf("server: opens %d closes %d failures %d lifetimes %d (mean %.1f µs) RTT samples %d (mean %.1f µs); PassiveOpens delta %d",
		s.opens, s.closes, s.failures, s.duration.Count, 1e6*mean(s.duration), s.rtt.Count, 1e6*mean(s.rtt), delta(sAfter, sBefore, "PassiveOpens"))
	if d := r.directions(client.pid); len(d) != 1 {
		t.Errorf("client has data for directions %q, want outbound only", d)
	}
	if d := r.directions(server.pid); len(d) != 1 {
		t.Errorf("server has data for directions %q, want inbound only (its listener opens nothing)", d)
	}
	// The target filter: nothing of other processes, nothing unattributed.
	if len(r.keys) != 2 || r.overflow != nil {
		t.Errorf("%d keys (want the 2 targets') and overflow %v", len(r.keys), r.overflow)
	}
	if got := delta(cAfter, cBefore, "ActiveOpens"); got != n || c.opens != n {
		t.Errorf("client opens %d, ActiveOpens delta %d, want %d", c.opens, got, n)
	}
	if got := delta(sAfter, sBefore, "PassiveOpens"); got != n || s.opens != n {
		t.Errorf("server opens %d, PassiveOpens delta %d, want %d", s.opens, got, n)
	}
	for _, side := range []struct {
		name string
		c    conn
	}{{"client", c}, {"server", s}} {
		if side.c.closes != n || side.c.duration.Count != n || side.c.failures != 0 {
			t.Errorf("%s: closes %d lifetimes %d failures %d, want %d, %d, 0", side.name, side.c.closes, side.c.duration.Count, side.c.failures, n, n)
		}
		// A connection spans at least a round trip (> 1.024 µs, bucket 0)
		// and, here, well under 16 s.
		checkRange(t, side.name+" lifetime", side.c.duration, 1.024e-6, 16)
		// Every connection received at least one segment while established.
		if side.c.rtt.Count < n {
			t.Errorf("%s: %d RTT samples, want at least one per connection (%d)", side.name, side.c.rtt.Count, n)
		}
		// veth: sub-millisecond unless the machine is very busy (the
		// kernel's RTT is at least 1 µs, which is in bucket 0).
		checkRange(t, side.name+" RTT", side.c.rtt, 0, 0.016777216)
	}
	if m := mean(c.rtt); m < minRTT/4 || m > 4*maxRTT {
		t.Errorf("client mean smoothed RTT %.1f µs, the kernel's (TCP_INFO) %.1f–%.1f µs: want within a factor 4", 1e6*m, 1e6*minRTT, 1e6*maxRTT)
	}
}

// checkRange checks that every sample of dp is in buckets within [lo, hi]
// seconds (bucket bounds), and that the sum fits the buckets.
func checkRange(t *testing.T, what string, dp metricdata.HistogramDataPoint[float64], lo, hi float64) {
	t.Helper()
	var total uint64
	var minSum, maxSum float64
	for i, n := range dp.BucketCounts {
		total += n
		if n == 0 {
			continue
		}
		var lower, upper float64
		if i > 0 {
			lower = dp.Bounds[i-1]
		}
		upper = math.Inf(1)
		if i < len(dp.Bounds) {
			upper = dp.Bounds[i]
		}
		if lower < lo || upper > hi {
			t.Errorf("%s: %d samples in bucket [%g, %g) s, want all within [%g, %g] s", what, n, lower, upper, lo, hi)
		}
		minSum += float64(n) * lower
		maxSum += float64(n) * upper
	}
	if total != dp.Count {
		t.Errorf("%s: buckets hold %d samples, count %d", what, total, dp.Count)
	}
	if dp.Sum < minSum || dp.Sum > maxSum {
		t.Errorf("%s: sum %g s outside what the buckets allow [%g, %g]", what, dp.Sum, minSum, maxSum)
	}
}

// Resets: a server that aborts an accepted connection (SO_LINGER 0) sends
// one reset its client receives; a connect to a closed port gets one reset
// from the server's kernel (no socket: unattributed) and fails. The
// server namespace's TcpOutRsts counts both resets it sent.
func TestResets(t *testing.T) {
	h, _ := start(t, Config{}, true)
	np := newNetPair(t)
	server := startHelper(t, h, np.b, "server", "abort", np.addrB+":5003", 1, 0)
	before := snmp(t, server.pid)
	server.start()
	aborted := startHelper(t, h, np.a, "client", "reset", np.addrB+":5003", 1, 0)
	aborted.start()
	refused := startHelper(t, h, np.a, "client", "refused", np.addrB+":5004", 1, 0)
	refused.start()
	settled(t, aborted.pid, server.pid)
	after := snmp(t, server.pid)
	r := collect(t, h)
	aborted.finish()
	refused.finish()
	server.finish()

	s, a, f := r.of(server.pid, "inbound"), r.of(aborted.pid, "outbound"), r.of(refused.pid, "outbound")
	t.Logf("server: resets sent %d, received %d; aborted client: received %d, closes %d; refused client: received %d, failures %d, opens %d; server netns OutRsts delta %d",
		s.resetsSent, s.resetsRecv, a.resetsRecv, a.closes, f.resetsRecv, f.failures, f.opens, delta(after, before, "OutRsts"))
	if s.resetsSent != 1 || s.resetsRecv != 0 {
		t.Errorf("server resets sent %d received %d, want 1 and 0", s.resetsSent, s.resetsRecv)
	}
	if a.resetsRecv != 1 || a.resetsSent != 0 || a.opens != 1 || a.closes != 1 || a.duration.Count != 1 {
		t.Errorf("aborted client: %+v, want 1 reset received, 1 open, 1 close with its lifetime", a)
	}
	if f.resetsRecv != 1 || f.failures != 1 || f.opens != 0 || f.closes != 0 {
		t.Errorf("refused client: resets received %d failures %d opens %d closes %d, want 1, 1, 0, 0", f.resetsRecv, f.failures, f.opens, f.closes)
	}
	// One reset attributed to the server, one for no socket (the closed port).
	if got := delta(after, before, "OutRsts"); got != s.resetsSent+1 {
		t.Errorf("server namespace OutRsts delta %d, want the server's %d + 1 for the closed port", got, s.resetsSent)
	}
	if r.overflow != nil {
		t.Errorf("overflow series %+v with a filter of 4 processes", *r.overflow)
	}
}

// Whole-host mode on loopback: the test process itself connects, so its
// own pid gets the data, and a reset for a closed port lands on the host's
// unattributed series.
func TestWholeHostLoopback(t *testing.T) {
	h, _ := start(t, Config{}, false)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = io.Copy(io.Discard, c)
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	ln.Close()
	closed := ln.Addr().String()
	if c, err := net.Dial("tcp4", closed); err == nil {
		c.Close()
		t.Fatalf("connect to the closed port %s succeeded", closed)
	}
	settledPort(t, os.Getpid(), ln.Addr().(*net.TCPAddr).Port)
	r := collect(t, h)
	out, in := r.of(os.Getpid(), "outbound"), r.of(os.Getpid(), "inbound")
	host := r.of(0, "")
	t.Logf("test process: outbound opens %d closes %d failures %d resets received %d; inbound opens %d closes %d; host unattributed resets sent %d",
		out.opens, out.closes, out.failures, out.resetsRecv, in.opens, in.closes, host.resetsSent)
	// Other tests and programs may use TCP at the same time: only this
	// process's numbers are exact.
	if out.opens != 1 || out.closes != 1 || out.failures != 1 || out.resetsRecv != 1 {
		t.Errorf("outbound: opens %d closes %d failures %d resets received %d, want 1 each", out.opens, out.closes, out.failures, out.resetsRecv)
	}
	if in.opens != 1 || in.closes != 1 {
		t.Errorf("inbound: opens %d closes %d, want 1 each", in.opens, in.closes)
	}
	// Before 6.10, whose tcp_send_reset gained its reason argument in the
	// same series, the kernel fired it only for resets of full sockets: not
	// for the closed port's (no socket).
	if n, err := probes.TracepointArgs("tcp_send_reset"); err != nil {
		t.Fatal(err)
	} else if n < 3 {
		t.Logf("tcp:tcp_send_reset has %d arguments (before 6.10): resets without a socket are not traced, none expected", n)
	} else if host.resetsSent < 1 {
		t.Errorf("host unattributed resets sent %d, want at least the closed port's", host.resetsSent)
	}
}

// A full map folds further keys into the overflow series: counts stay
// exact, the fold counter says how many updates lost their attribution.
func TestOverflowSeries(t *testing.T) {
	h, p := start(t, Config{MaxEntries: 1}, true)
	np := newNetPair(t)
	const n = 5
	server := startHelper(t, h, np.b, "server", "echo", np.addrB+":5005", n, 0)
	client := startHelper(t, h, np.a, "client", "echo", np.addrB+":5005", n, 0)
	server.start()
	client.start()
	settled(t, client.pid, server.pid)
	r := collect(t, h)
	client.finish()
	server.finish()
	ms := p.Stats().MetricSets[0]
	folds := ms.OverflowFolds + ms.EntryFolds // folded by the programs or by the agent
	var named, over int64
	for _, c := range r.keys {
		named += c.opens
	}
	if r.overflow != nil {
		over = r.overflow.opens
	}
	t.Logf("%d keys named, opens named %d + overflow %d; %d folds", len(r.keys), named, over, folds)
	if len(r.keys) != 1 {
		t.Errorf("%d named keys, want max_entries 1", len(r.keys))
	}
	if named+over != 2*n {
		t.Errorf("opens named %d + overflow %d, want %d (both ends)", named, over, 2*n)
	}
	if over == 0 || folds == 0 {
		t.Errorf("overflow opens %d, folds %d: want both > 0", over, folds)
	}
}

// Sockets opened before the probe attached have no owner until a process
// sends on them: then they count for it, with no direction and no
// lifetime (their open was not seen).
func TestClaimsSocketsOpenedBefore(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	h, p := start(t, Config{}, true)
	if !p.Claims() {
		t.Skip("kernel without tcp:tcp_sendmsg_locked: sockets older than the probe are not claimed")
	}
	if err := h.State.Add(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{client, server} {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	b := make([]byte, 1)
	for _, c := range []net.Conn{client, server} {
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
	}
	client.Close()
	if _, err := io.Copy(io.Discard, server); err != nil {
		t.Fatal(err)
	}
	server.Close()
	settledPort(t, os.Getpid(), ln.Addr().(*net.TCPAddr).Port)
	r := collect(t, h)
	got := r.of(os.Getpid(), "")
	t.Logf("unknown direction: opens %d closes %d lifetimes %d RTT samples %d; directions seen %q", got.opens, got.closes, got.duration.Count, got.rtt.Count, r.directions(os.Getpid()))
	if got.closes != 2 || got.opens != 0 || got.duration.Count != 0 {
		t.Errorf("closes %d opens %d lifetimes %d, want 2, 0, 0", got.closes, got.opens, got.duration.Count)
	}
	if got.rtt.Count < 2 {
		t.Errorf("%d RTT samples, want at least one per socket after the claim", got.rtt.Count)
	}
	if d := r.directions(os.Getpid()); len(d) != 1 {
		t.Errorf("data for directions %q, want only the unknown one", d)
	}
}

// Close releases every program the probe loaded.
func TestCloseReleasesPrograms(t *testing.T) {
	h, p := start(t, Config{}, false)
	var ids []ebpf.ProgramID
	for _, prog := range []*ebpf.Program{p.objs.SetState, p.objs.Retransmit, p.objs.RetransSyn, p.objs.Probe, p.objs.SendReset, p.objs.RecvReset, p.claimProg} {
		if prog == nil {
			continue
		}
		info, err := prog.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		ids = append(ids, id)
	}
	if !p.Claims() {
		t.Log("kernel without tcp:tcp_sendmsg_locked: no claim program")
	} else if len(ids) != 7 {
		t.Errorf("%d programs loaded, want 7", len(ids))
	}
	_ = h.CollectAll()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range testutil.StillLoaded(ids, 2*time.Second) {
		t.Errorf("program %d still loaded 2 s after Close", id)
	}
	if p.Stats().MetricSets != nil {
		t.Error("stats after Close still report a metric set")
	}
}
