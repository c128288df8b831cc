// Package entity holds the attribute keys, metric, entity and metric-set
// descriptors generated from schema/ (zz_generated.go, by schemagen), and the
// resolvers that turn BPF key tuples into entities (host, process, …).
package entity
