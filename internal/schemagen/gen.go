package schemagen

//go:generate go run ./cmd/schemagen -schema ../../schema -go ../../entity/zz_generated.go -c ../../bpf/include/gen -docs ../../docs/telemetry.md
