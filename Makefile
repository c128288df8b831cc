# telagent — build, test, generate, benchmark.
# Everything runs as root (BPF needs CAP_BPF + CAP_PERFMON); `make test` and
# `make generate` install what they need from Debian's packages.

GO          ?= go
BIN         ?= bin/telagent
# One pinned Debian clang for BPF objects, so `make generate` is reproducible.
BPF_CLANG_PKG := clang-19=1:19.1.7-3~deb12u1
BPF_LLVM_PKG  := llvm-19=1:19.1.7-3~deb12u1
ARGS        ?= --interval 5s
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
# Each fuzz target runs this long in `make test`: 15 targets, each run also
# links its instrumented test binary (~3 s), so about a minute in all.
# `make fuzz FUZZTIME=1m` for a real search.
FUZZTIME    ?= 2s
# package:target; `go test -fuzz` takes one target of one package per run.
FUZZ_TARGETS := \
	./internal/config:FuzzParse \
	./cmd/telagent:FuzzConfigFile \
	./cmd/telagent:FuzzParsePids \
	./internal/privilege:FuzzParse \
	./probes/targets:FuzzCheckComm \
	./probes/targets:FuzzMountinfo \
	./probes/targets:FuzzUnescapeMount \
	./probes/process:FuzzDecode \
	./entity:FuzzKernelString \
	./entity:FuzzParseCgroup \
	./entity:FuzzParseStartTicks \
	./internal/schemagen:FuzzLoad \
	./export:FuzzOTLPJSONEncode \
	./export:FuzzOTLPProtoEncode \
	./export:FuzzOTLPLogsEncode

.PHONY: all build run test test-receiver collector-telagent fuzz test-deps test-kernels test-kernels-large bench-kernels test-kernels-deps collector generate generate-deps check-generated bench soak bench-deps vet clean

all: build

# Without cgo, as the Dockerfile builds it: only then can the agent drop
# its capabilities from every thread (internal/privilege).
build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/telagent

## run: build and start the agent on this host, console exporter, whole host.
run: build
	./$(BIN) run $(ARGS)

## test: the whole suite on the real kernel (as root), installing what it needs.
test: test-deps
	$(GO) vet ./...
	$(GO) run ./internal/schemagen/cmd/schemagen -check
	$(GO) run ./cmd/telagent schema check
	$(GO) test -count=1 -timeout 15m ./...
	@$(MAKE) --no-print-directory test-receiver
	@$(MAKE) --no-print-directory fuzz

## test-receiver: the Collector receiver, its own module (the root's
## ./... does not reach it), against this tree's agent (its replace).
RECEIVER_DIR := collector/receiver/telagentreceiver
test-receiver:
	cd $(RECEIVER_DIR) && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

## fuzz: every fuzz target for FUZZTIME, from its committed corpus
## (testdata/fuzz/<target> in its package). A finding fails the run and is
## written there: fix it and commit the file as a regression seed. A
## failed target runs once more: the seed replay of the second run fails
## again on a written finding, not on the coordinator's deadline race.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} $${t#*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x $${t%%:*} || { \
		echo "fuzz: once more: a bare 'context deadline exceeded' is Go's coordinator race (go.dev/issue/75804, fixed in Go 1.27); a finding was written to testdata/fuzz and fails again"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x $${t%%:*}; }; \
	done

# Tests compile workloads with gcc/g++ (bpf2go outputs are committed), run
# the test OpenTelemetry Collector, built once with the collector builder
# and cached by its manifest's hash (internal/collectortest/build.sh), drop
# TCP segments with nft in network namespaces (ip), drive telagent top in
# tmux, run the agent as nobody (setpriv), read BPF program run times
# (bpftool, the bench helpers' test), verify the systemd unit
# (systemd-analyze), and build and unpack kernel-matrix images in unit
# tests (xz, cpio), and ask dpkg which package provides each executed
# command (dpkg-query): internal/testdeps checks that every command the
# code executes comes from one of these packages (or from every Debian
# system).
TEST_PKGS := gcc g++ libc6-dev nftables iproute2 tmux util-linux mount bpftool systemd xz-utils cpio dpkg
test-deps: collector
	@dpkg -s $(TEST_PKGS) >/dev/null 2>&1 || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_PKGS))

## collector-telagent: build otelcol-telagent, the Collector with telagent's
## receiver (deploy/collector/builder.yaml), into bin/; cached like the
## test Collector, by the manifest's hash and the tree's sources.
collector-telagent:
	@mkdir -p bin && cp "$$(./internal/collectortest/build.sh deploy/collector/builder.yaml)" bin/otelcol-telagent

## collector: build (once) the OpenTelemetry Collectors the tests run: the
## export tests' (core components only) and otelcol-telagent (go test
## ./deploy/ runs it); each cached by its manifest and, for otelcol-telagent,
## the tree's sources.
collector:
	@./internal/collectortest/build.sh >/dev/null
	@./internal/collectortest/build.sh deploy/collector/builder.yaml >/dev/null

## generate: rebuild schema descriptors, C layouts, docs, syscall tables, BPF objects.
generate: generate-deps
	$(GO) generate ./...
	@# docs/probes.md is written by the agent itself: again, now that
	@# everything it is built from (schema, BPF objects) is regenerated.
	$(GO) generate ./cmd/telagent

# The pinned version first; if Debian has moved on, the current clang-19 with
# a warning (check-generated then tells whether the objects still match).
generate-deps:
	@dpkg -s clang-19 llvm-19 linux-libc-dev >/dev/null 2>&1 || { \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BPF_CLANG_PKG) $(BPF_LLVM_PKG) linux-libc-dev || { \
			echo "warning: $(BPF_CLANG_PKG) is no longer available; using the current clang-19" >&2; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-19 llvm-19 linux-libc-dev; }; }

## check-generated: fail when committed generated files are stale.
check-generated: generate
	@git diff --exit-code --stat || (echo "generated files are stale: run 'make generate' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain --untracked-files=all)" || (git status --porcelain; echo "generate left untracked files" >&2; exit 1)

## bench: overhead ratios measured side by side in one run (not a test).
# The agent before node_hash (the per-CPU hash layout), built from git for
# syscallbench's side-by-side run: the storage's hot-path cost is claimed
# against it.
BASELINE_REV ?= b415d80
bin/telagent-percpu:
	@rm -rf bin/.baseline && mkdir -p bin/.baseline
	git archive $(BASELINE_REV) | tar -x -C bin/.baseline
	cd bin/.baseline && CGO_ENABLED=0 $(GO) build -trimpath -o ../telagent-percpu ./cmd/telagent
	@rm -rf bin/.baseline

bench: build bench-deps bin/telagent-percpu
	$(GO) run ./bench/syscallbench -agent ./$(BIN) -baseline ./bin/telagent-percpu
	$(GO) run ./bench/schedbench -agent ./$(BIN)
	$(GO) run ./bench/uprobebench -agent ./$(BIN)
	$(GO) run ./bench/blockbench -agent ./$(BIN)
	$(GO) run ./bench/tcpbench -agent ./$(BIN)
	$(GO) run ./bench/readbench
	$(GO) test -run '^$$' -bench BenchmarkStorage -benchtime 20x ./aggregator
	@$(MAKE) --no-print-directory bench-kernels

## bench-kernels: the metric-set storage's read cost and kernel memory,
## today's layout beside the per-CPU one, in Debian 6.12 guests with 2 and
## with 255 possible CPUs (two NUMA nodes): large hosts are emulated, so
## compare ratios (TCG), not times.
bench-kernels: test-kernels-deps
	$(GO) run ./internal/kernelmatrix/cmd/kernelmatrix -pkgs ./aggregator -bench BenchmarkStorage \
		-kernels debian:linux-image-6.12-cloud-amd64,debian:linux-image-6.12-cloud-amd64@numa255

## soak: the agent for 10 minutes, whole host, every probe, under process
## churn, disk and loopback TCP traffic, exporting over OTLP to a Collector
## killed for 20 s every minute; fails when its RSS, FDs or threads grow
## after a 2-minute warm-up. Not part of bench (it alone takes ~11 minutes);
## SOAK_ARGS passes flags, e.g. SOAK_ARGS='-duration 30m'.
SOAK_ARGS ?=
soak: build bench-deps collector
	$(GO) run ./bench/soak -agent ./$(BIN) $(SOAK_ARGS)

BENCH_PKGS := bpftrace gcc libc6-dev
bench-deps:
	@dpkg -s $(BENCH_PKGS) >/dev/null 2>&1 || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_PKGS))

## test-kernels: the probe tests on a matrix of kernels booted in QEMU
## (Debian's 6.1 and 6.12 cloud kernels, unpacked into a cache and never
## installed, plus the host's own when /boot has it); prints kernel x
## package results, fails when a test fails. KERNELS_ARGS passes flags,
## e.g. KERNELS_ARGS='-run TestGetppidExactCount -kernels debian:linux-image-cloud-amd64'.
KERNELS_ARGS ?=
test-kernels: test-deps test-kernels-deps
	$(GO) run ./internal/kernelmatrix/cmd/kernelmatrix $(KERNELS_ARGS)

## test-kernels-large: the probe tests in the emulated large host, Debian
## 6.12 with 255 possible CPUs (2 online) on two NUMA nodes (slow under
## TCG: not part of CI's matrix yet).
test-kernels-large: test-deps test-kernels-deps
	$(GO) run ./internal/kernelmatrix/cmd/kernelmatrix -kernels debian:linux-image-6.12-cloud-amd64@numa255 -pkgs ./probes/... $(KERNELS_ARGS)

# QEMU, a static busybox for the guest, xz for Debian's compressed modules,
# cpio for the initramfs; the kernel packages come from apt-get download,
# which needs fresh lists.
TEST_KERNELS_PKGS := qemu-system-x86 busybox-static xz-utils cpio
test-kernels-deps:
	@dpkg -s $(TEST_KERNELS_PKGS) >/dev/null 2>&1 && apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1 || { \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_KERNELS_PKGS); }

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
