package aggregator

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// fixtures is the root of the fake sysfs trees shared by the tests.
const fixtures = "../testdata/sysfs"

func seq(lo, hi int) []int {
	var s []int
	for c := lo; c <= hi; c++ {
		s = append(s, c)
	}
	return s
}

// checkInvariants asserts what every Topology must satisfy whatever the
// host: nodes sorted by id with unique ids, no empty node, and every possible
// CPU in exactly one node (else a per-CPU slot is summed twice or never).
func checkInvariants(t *testing.T, topo Topology) {
	t.Helper()
	if topo.PossibleCPUs <= 0 {
		t.Fatalf("PossibleCPUs = %d", topo.PossibleCPUs)
	}
	seen := make([]int, topo.PossibleCPUs)
	for i, n := range topo.Nodes {
		if i > 0 && topo.Nodes[i-1].ID >= n.ID {
			t.Errorf("nodes not sorted by unique id: %d then %d", topo.Nodes[i-1].ID, n.ID)
		}
		if len(n.CPUs) == 0 {
			t.Errorf("node %d has no CPU", n.ID)
		}
		if !slices.IsSorted(n.CPUs) {
			t.Errorf("node %d CPUs not sorted: %v", n.ID, n.CPUs)
		}
		for _, c := range n.CPUs {
			if c < 0 || c >= topo.PossibleCPUs {
				t.Errorf("node %d lists CPU %d outside [0,%d)", n.ID, c, topo.PossibleCPUs)
				continue
			}
			seen[c]++
		}
	}
	for c, k := range seen {
		if k != 1 {
			t.Errorf("CPU %d is in %d nodes, want exactly 1", c, k)
		}
	}
}

func TestDiscoverTopologyFixtures(t *testing.T) {
	tests := []struct {
		name string
		want Topology
	}{
		{"one-node", Topology{PossibleCPUs: 4, Nodes: []Node{{ID: 0, CPUs: seq(0, 3)}}}},
		{"two-node", Topology{PossibleCPUs: 4, Nodes: []Node{
			{ID: 0, CPUs: []int{0, 1}},
			{ID: 1, CPUs: []int{2, 3}},
		}}},
		// CPUs 4-7 are listed by no node: they join node 0. Node 2 is
		// memory-only: absent.
		{"four-node-holes", Topology{PossibleCPUs: 16, Nodes: []Node{
			{ID: 0, CPUs: seq(0, 7)},
			{ID: 1, CPUs: seq(8, 11)},
			{ID: 3, CPUs: seq(12, 15)},
		}}},
		{"odd", Topology{PossibleCPUs: 8, Nodes: []Node{
			{ID: 0, CPUs: []int{0, 2, 4, 6}},
			{ID: 2, CPUs: []int{1, 3, 5, 7}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(fixtures, tt.name)
			if _, err := os.Stat(filepath.Join(root, "devices/system/cpu/possible")); err != nil {
				t.Fatalf("fixture missing: %v", err)
			}
			got, err := DiscoverTopology(root)
			if err != nil {
				t.Fatalf("DiscoverTopology(%s): %v", root, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DiscoverTopology(%s)\n got  %+v\n want %+v", tt.name, got, tt.want)
			}
			checkInvariants(t, got)
		})
	}
}

// sysTree writes a fake sysfs tree: files maps a path below the root to its
// content.
func sysTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDiscoverTopologyOrphansWithoutNode0(t *testing.T) {
	// Node 0 is memory-only and CPU 2 is listed by nobody: the orphan still
	// lands on node 0, created for it, ahead of node 1.
	root := sysTree(t, map[string]string{
		"devices/system/cpu/possible":           "0-3\n",
		"devices/system/node/node0/cpulist":     "\n",
		"devices/system/node/node1/cpulist":     "0-1,3\n",
		"devices/system/node/node1/distance":    "10\n",
		"devices/system/node/node1x/cpulist":    "2\n", // not a node directory
		"devices/system/node/has_normal_memory": "0\n",
	})
	got, err := DiscoverTopology(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Topology{PossibleCPUs: 4, Nodes: []Node{{ID: 0, CPUs: []int{2}}, {ID: 1, CPUs: []int{0, 1, 3}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	checkInvariants(t, got)
}

// TestDiscoverTopologyOfflineCPUs: node cpulists show online CPUs only
// (a 255-possible-CPU host with 2 online, two nodes); offline CPUs that
// the kernel has a device for are placed by their cpuN/nodeM link, not
// all on node 0; CPUs without a device (not present) go to node 0.
func TestDiscoverTopologyOfflineCPUs(t *testing.T) {
	files := map[string]string{
		"devices/system/cpu/possible":       "0-254\n",
		"devices/system/node/node0/cpulist": "0\n",
		"devices/system/node/node1/cpulist": "1\n",
	}
	// As QEMU's -numa node,cpus=0,cpus=2-127 / cpus=1,cpus=128-254 lays
	// them out; CPUs 250-254 are not present (no device).
	for c := 2; c < 250; c++ {
		node := 0
		if c >= 128 {
			node = 1
		}
		files[fmt.Sprintf("devices/system/cpu/cpu%d/node%d/cpulist", c, node)] = ""
	}
	got, err := DiscoverTopology(sysTree(t, files))
	if err != nil {
		t.Fatal(err)
	}
	want := Topology{PossibleCPUs: 255, Nodes: []Node{
		{ID: 0, CPUs: append(append([]int{0}, seq(2, 127)...), seq(250, 254)...)},
		{ID: 1, CPUs: append([]int{1}, seq(128, 249)...)},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	checkInvariants(t, got)
}

// TestDiscoverTopologyNumericOrder: with ten nodes or more, directory
// order (node1, node10, node11, node2, …) is not id order.
func TestDiscoverTopologyNumericOrder(t *testing.T) {
	files := map[string]string{"devices/system/cpu/possible": "0-23\n"}
	var want Topology
	want.PossibleCPUs = 24
	for id := range 12 {
		files[fmt.Sprintf("devices/system/node/node%d/cpulist", id)] = fmt.Sprintf("%d,%d\n", id, id+12)
		want.Nodes = append(want.Nodes, Node{ID: id, CPUs: []int{id, id + 12}})
	}
	got, err := DiscoverTopology(sysTree(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	checkInvariants(t, got)
}

func TestDiscoverTopologyIgnoresImpossibleCPUs(t *testing.T) {
	// A node listing a CPU beyond the possible range must not widen the
	// per-CPU layout nor index out of it.
	root := sysTree(t, map[string]string{
		"devices/system/cpu/possible":       "0-1\n",
		"devices/system/node/node0/cpulist": "0-1,4\n",
	})
	got, err := DiscoverTopology(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Topology{PossibleCPUs: 2, Nodes: []Node{{ID: 0, CPUs: []int{0, 1}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDiscoverTopologyErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"missing possible", map[string]string{
			"devices/system/node/node0/cpulist": "0-3\n",
		}, "possible"},
		{"empty possible", map[string]string{
			"devices/system/cpu/possible": "\n",
		}, "empty"},
		{"malformed possible", map[string]string{
			"devices/system/cpu/possible": "3-1\n",
		}, "bad cpulist"},
		{"node cpulist reversed range", map[string]string{
			"devices/system/cpu/possible":       "0-3\n",
			"devices/system/node/node0/cpulist": "3-1\n",
		}, "node 0"},
		{"node cpulist not a number", map[string]string{
			"devices/system/cpu/possible":       "0-3\n",
			"devices/system/node/node0/cpulist": "0-1\n",
			"devices/system/node/node1/cpulist": "a\n",
		}, "node 1"},
		{"node cpulist open range", map[string]string{
			"devices/system/cpu/possible":       "0-3\n",
			"devices/system/node/node1/cpulist": "1-\n",
		}, "node 1"},
		{"node without cpulist", map[string]string{
			"devices/system/cpu/possible":       "0-3\n",
			"devices/system/node/node0/meminfo": "x\n",
		}, "node 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo, err := DiscoverTopology(sysTree(t, tt.files))
			if err == nil {
				t.Fatalf("no error, got %+v", topo)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

// TestDiscoverTopologyHost checks the real /sys against the kernel's own
// possible-CPU count, which sizes every per-CPU map value.
func TestDiscoverTopologyHost(t *testing.T) {
	topo, err := DiscoverTopology("/sys")
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, topo)
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	if topo.PossibleCPUs != n {
		t.Errorf("PossibleCPUs = %d, kernel says %d", topo.PossibleCPUs, n)
	}
	// Every CPU the kernel has a device for, online or not, is on the node
	// its device links to (the kernel matrix's numa255 guest has 253
	// offline CPUs over two nodes; node cpulists show only CPUs 0 and 1).
	nodeOf := map[int]int{}
	for _, nd := range topo.Nodes {
		for _, c := range nd.CPUs {
			nodeOf[c] = nd.ID
		}
	}
	placed := 0
	for c := range n {
		links, _ := filepath.Glob(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/node[0-9]*", c))
		if len(links) != 1 {
			continue
		}
		want, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(links[0]), "node"))
		if err != nil {
			t.Fatal(err)
		}
		if nodeOf[c] != want {
			t.Errorf("CPU %d: on node %d, its device links to node %d", c, nodeOf[c], want)
		}
		placed++
	}
	t.Logf("%d possible CPUs on %d nodes; %d placed by their device's node link", n, len(topo.Nodes), placed)
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "0-3,8,10-11\n", want: []int{0, 1, 2, 3, 8, 10, 11}},
		{in: "", want: nil},
		{in: "\n", want: nil},
		{in: "0", want: []int{0}},
		{in: "7\n", want: []int{7}},
		{in: "0-0", want: []int{0}},
		{in: "0,2,4,6", want: []int{0, 2, 4, 6}},
		{in: "1,3,5,7\n", want: []int{1, 3, 5, 7}},
		{in: "0-1,2-3", want: []int{0, 1, 2, 3}},
		{in: "3-1", wantErr: true},
		{in: "a", wantErr: true},
		{in: "1-", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "1-a", wantErr: true},
		{in: "0--3", wantErr: true},
		{in: "0,,1", wantErr: true},
		{in: "0-3,", wantErr: true},
		{in: "0 1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseCPUList(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseCPUList(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCPUList(%q): %v", tt.in, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("ParseCPUList(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSingleNode(t *testing.T) {
	got := SingleNode(3)
	want := Topology{PossibleCPUs: 3, Nodes: []Node{{ID: 0, CPUs: []int{0, 1, 2}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SingleNode(3) = %+v, want %+v", got, want)
	}
}
