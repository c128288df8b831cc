package aggregator

import "math/bits"

// Kernel memory of the map types the storage uses, as the kernel accounts
// it (map_mem_usage, the memlock line of the map's fdinfo, Linux 6.4+):
// what a budget is checked against before any map exists. The fixed sizes
// are struct bpf_htab and struct bpf_array on Linux 6.18 (x86-64); other
// kernels differ by some bytes per map, not per entry (TestMemoryFormulas
// compares every formula with the running kernel's accounting).
const (
	htabFixed    = 832 // sizeof(struct bpf_htab)
	arrayFixed   = 312 // sizeof(struct bpf_array)
	htabElemHead = 48  // struct htab_elem before the key
	bucketBytes  = 16  // struct bucket
	htabLocks    = 8   // HASHTAB_MAP_LOCK_COUNT: ints per possible CPU
)

func align8(n int) int { return (n + 7) &^ 7 }

// HashMemory is a preallocated BPF_MAP_TYPE_HASH of entries keySize-byte
// keys and valueSize-byte values on a host of possibleCPUs: every element
// (plus one spare per possible CPU, for updates that replace a key), the
// buckets (a power of two), the per-CPU lock counters and spare pointers.
func HashMemory(entries, keySize, valueSize, possibleCPUs int) uint64 {
	elem := htabElemHead + align8(keySize) + align8(valueSize)
	buckets := 1 << bits.Len(uint(max(entries, 1)-1))
	return uint64(htabFixed + bucketBytes*buckets + 4*htabLocks*possibleCPUs +
		elem*(entries+possibleCPUs) + 8*possibleCPUs)
}

// PerCPUArrayMemory is a BPF_MAP_TYPE_PERCPU_ARRAY: each entry's value
// once per possible CPU, and a pointer per entry.
func PerCPUArrayMemory(entries, valueSize, possibleCPUs int) uint64 {
	return uint64(arrayFixed + entries*8 + entries*align8(valueSize)*possibleCPUs)
}

// ArrayOfMapsMemory is a BPF_MAP_TYPE_ARRAY_OF_MAPS of slots (a pointer
// each; the inner maps are accounted on their own).
func ArrayOfMapsMemory(slots int) uint64 { return uint64(arrayFixed + 8*slots) }

// StorageMemory is the whole storage of one metric set (Store): per node
// two hashes of entries each, the outer map, the per-CPU overflow value
// and the per-CPU fold counter.
func StorageMemory(entries, entryKeySize, valueSize, nodes, slots, possibleCPUs int) uint64 {
	return 2*uint64(nodes)*HashMemory(entries, entryKeySize, valueSize, possibleCPUs) +
		ArrayOfMapsMemory(slots) + PerCPUArrayMemory(1, valueSize, possibleCPUs) + PerCPUArrayMemory(1, 8, possibleCPUs)
}

// StorageSlots is the outer map size of a topology: 2 × (highest node id + 1).
func StorageSlots(topo Topology) int {
	maxID := 0
	for _, n := range topo.Nodes {
		maxID = max(maxID, n.ID)
	}
	return 2 * (maxID + 1)
}
