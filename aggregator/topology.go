package aggregator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Node is one NUMA node and the possible CPUs that belong to it.
type Node struct {
	ID   int
	CPUs []int
}

// Topology is how the possible CPUs of this host group into NUMA nodes.
// Per-CPU map values are laid out by possible-CPU index, so every CPU the
// kernel could ever bring online belongs to exactly one node here.
type Topology struct {
	PossibleCPUs int
	Nodes        []Node
}

// SingleNode is the topology of a host without NUMA: every CPU on node 0.
func SingleNode(possibleCPUs int) Topology {
	cpus := make([]int, possibleCPUs)
	for i := range cpus {
		cpus[i] = i
	}
	return Topology{PossibleCPUs: possibleCPUs, Nodes: []Node{{ID: 0, CPUs: cpus}}}
}

// DiscoverTopology reads the CPU and NUMA layout below sysRoot (normally
// "/sys"; tests pass a fake tree). A kernel without NUMA support has no node
// directory and yields one node. A node's cpulist shows its online CPUs
// only: a possible CPU that is offline but present is placed by its own
// cpuN/nodeM link; one the kernel has no device for (not present, or a
// hole) goes to node 0, so that no per-CPU slot is ever left out of a sum.
func DiscoverTopology(sysRoot string) (Topology, error) {
	possible, err := readCPUList(filepath.Join(sysRoot, "devices/system/cpu/possible"))
	if err != nil {
		return Topology{}, fmt.Errorf("read possible CPUs: %w", err)
	}
	if len(possible) == 0 {
		return Topology{}, errors.New("read possible CPUs: empty list")
	}
	n := possible[len(possible)-1] + 1

	nodeDirs, _ := filepath.Glob(filepath.Join(sysRoot, "devices/system/node/node[0-9]*"))
	if len(nodeDirs) == 0 {
		return SingleNode(n), nil
	}
	owner := make([]int, n)
	for i := range owner {
		owner[i] = -1
	}
	var topo Topology
	topo.PossibleCPUs = n
	for _, dir := range nodeDirs {
		id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "node"))
		if err != nil {
			continue
		}
		cpus, err := readCPUList(filepath.Join(dir, "cpulist"))
		if err != nil {
			return Topology{}, fmt.Errorf("read node %d CPUs: %w", id, err)
		}
		var mine []int
		for _, c := range cpus {
			if c < n && owner[c] < 0 {
				owner[c] = id
				mine = append(mine, c)
			}
		}
		if len(mine) > 0 { // memory-only nodes hold no CPU: nothing to reduce there
			topo.Nodes = append(topo.Nodes, Node{ID: id, CPUs: mine})
		}
	}
	// Offline CPUs: the node link of their own device directory.
	byID := map[int]int{}
	for i, nd := range topo.Nodes {
		byID[nd.ID] = i
	}
	for c, o := range owner {
		if o >= 0 {
			continue
		}
		id, ok := cpuNodeLink(sysRoot, c)
		if !ok {
			continue
		}
		i, ok := byID[id]
		if !ok {
			i = len(topo.Nodes)
			byID[id] = i
			topo.Nodes = append(topo.Nodes, Node{ID: id})
		}
		topo.Nodes[i].CPUs = append(topo.Nodes[i].CPUs, c)
		owner[c] = id
	}
	for i := range topo.Nodes {
		sort.Ints(topo.Nodes[i].CPUs)
	}
	sort.Slice(topo.Nodes, func(i, j int) bool { return topo.Nodes[i].ID < topo.Nodes[j].ID })
	var orphans []int
	for c, o := range owner {
		if o < 0 {
			orphans = append(orphans, c)
		}
	}
	if len(orphans) > 0 {
		if len(topo.Nodes) == 0 || topo.Nodes[0].ID != 0 {
			topo.Nodes = append([]Node{{ID: 0}}, topo.Nodes...)
		}
		topo.Nodes[0].CPUs = append(topo.Nodes[0].CPUs, orphans...)
		sort.Ints(topo.Nodes[0].CPUs)
	}
	return topo, nil
}

// cpuNodeLink is the node of CPU c from its sysfs device's nodeN link,
// which present CPUs have whether online or not.
func cpuNodeLink(sysRoot string, c int) (int, bool) {
	links, _ := filepath.Glob(filepath.Join(sysRoot, fmt.Sprintf("devices/system/cpu/cpu%d/node[0-9]*", c)))
	for _, l := range links {
		if id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(l), "node")); err == nil {
			return id, true
		}
	}
	return 0, false
}

// readCPUList parses the kernel's cpulist format ("0-3,8,10-11").
func readCPUList(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCPUList(string(b))
}

// ParseCPUList parses the kernel's cpulist format ("0-3,8,10-11").
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad cpulist %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad cpulist %q", s)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}
