package syscalls

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/telagent/telagent/aggregator"
	"github.com/telagent/telagent/entity"
	"github.com/telagent/telagent/probes"
	"github.com/telagent/telagent/probes/probetest"
)

// getppidByPart runs one interval and returns this process's exported
// getppid call counts per value of the breakdown attribute; a point
// without it fails the test.
func getppidByPart(t *testing.T, h *probetest.Harness, part attribute.Key) map[int64]uint64 {
	t.Helper()
	got := map[int64]uint64{}
	self := int64(os.Getpid())
	for _, rm := range h.CollectAll() {
		pid, ok := rm.Resource.Set().Value(entity.AttrProcessPID)
		for _, m := range rm.ScopeMetrics[0].Metrics {
			hist, isHist := m.Data.(metricdata.Histogram[float64])
			if !isHist {
				continue
			}
			for _, dp := range hist.DataPoints {
				p, has := dp.Attributes.Value(part)
				if !has {
					t.Fatalf("%s point without %s: %v", m.Name, part, dp.Attributes.ToSlice())
				}
				if name, _ := dp.Attributes.Value(entity.AttrTelagentSyscallName); ok && pid.AsInt64() == self && name.AsString() == "getppid" {
					got[p.AsInt64()] += dp.Count
				}
			}
		}
	}
	return got
}

// TestNUMABreakdownExport: with CPU 0 and CPU 1 on different (fake) nodes
// and every getppid call made on CPU 1, the exported points carry
// telagent.numa.node and node 1's point holds every call, node 0 has none.
func TestNUMABreakdownExport(t *testing.T) {
	topo := splitTopology(t)
	p := New(Config{})
	h := probetest.StartWith(t, p, probetest.Options{Filter: true, Topology: &topo, Breakdown: &entity.BreakdownNUMANode})
	if err := h.State.Add(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	const n = 30000
	getppidOnCPU(t, 1, n)
	got := getppidByPart(t, h, entity.AttrTelagentNUMANode)
	if len(got) != 1 || got[1] != n {
		t.Errorf("getppid calls by node %v, want exactly map[1:%d]", got, n)
	}
}

// TestCPUBreakdownExport: on the machine's own topology, a getppid loop
// pinned to CPU 1 is exported as one point with cpu.logical_number=1.
func TestCPUBreakdownExport(t *testing.T) {
	splitTopology(t) // skips unless CPUs 0 and 1 may be used
	p := New(Config{})
	h := probetest.StartWith(t, p, probetest.Options{Filter: true, Breakdown: &entity.BreakdownCPU})
	if err := h.State.Add(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	const n = 30000
	getppidOnCPU(t, 1, n)
	got := getppidByPart(t, h, entity.AttrCPULogicalNumber)
	if len(got) != 1 || got[1] != n {
		t.Errorf("getppid calls by CPU %v, want exactly map[1:%d]", got, n)
	}
}

// TestCPUBreakdownBound: a host with more possible CPUs than the schema's
// bound for the CPU breakdown is refused with the flag's name.
func TestCPUBreakdownBound(t *testing.T) {
	big := aggregator.SingleNode(int(entity.BreakdownCPU.Bound) + 1)
	_, err := probes.NewBreakdown(entity.BreakdownCPU, big)
	if err == nil {
		t.Fatalf("%d CPUs accepted for --cpu-breakdown, bound %d", big.PossibleCPUs, entity.BreakdownCPU.Bound)
	}
	if want := "--cpu-breakdown"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	if _, err := probes.NewBreakdown(entity.BreakdownCPU, aggregator.SingleNode(int(entity.BreakdownCPU.Bound))); err != nil {
		t.Errorf("exactly the bound refused: %v", err)
	}
}

// TestKernelNUMANodeAttribution is TestNUMABreakdownExport on a host with
// real NUMA nodes (the kernel matrix's numa255 guest): no fake topology,
// so the programs ask the kernel (bpf_get_numa_node_id) where they run.
// Every getppid call made on the first online CPU of the second node is
// exported under that node only, exactly, and every node's storage was
// allocated on it.
func TestKernelNUMANodeAttribution(t *testing.T) {
	topo, err := aggregator.DiscoverTopology("/sys")
	if err != nil {
		t.Fatal(err)
	}
	online, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Fatal(err)
	}
	up, err := aggregator.ParseCPUList(string(online))
	if err != nil {
		t.Fatal(err)
	}
	cpu, node := -1, -1
	for _, n := range topo.Nodes[min(1, len(topo.Nodes)-1):] {
		for _, c := range n.CPUs {
			if cpu < 0 && len(topo.Nodes) > 1 && slices.Contains(up, c) {
				cpu, node = c, n.ID
			}
		}
	}
	if cpu < 0 {
		t.Skipf("this host has %d NUMA node(s) with online CPUs; needs two (make test-kernels runs a two-node guest)", len(topo.Nodes))
	}
	p := New(Config{})
	h := probetest.StartWith(t, p, probetest.Options{Filter: true, Breakdown: &entity.BreakdownNUMANode})
	if err := h.State.Add(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if !p.stats.Store().NUMA() {
		t.Errorf("the storage hashes were not allocated on their nodes (BPF_F_NUMA_NODE refused)")
	}
	h.CollectAll() // what the test process did before
	const n = 30000
	getppidOnCPU(t, cpu, n)
	got := getppidByPart(t, h, entity.AttrTelagentNUMANode)
	if len(got) != 1 || got[int64(node)] != n {
		t.Errorf("getppid calls on CPU %d (node %d) by node %v, want exactly map[%d:%d]", cpu, node, got, node, n)
	}
}
