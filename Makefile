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

.PHONY: all build run test test-deps generate generate-deps check-generated bench bench-deps vet clean

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/telagent

## run: build and start the agent on this host, console exporter, whole host.
run: build
	./$(BIN) run $(ARGS)

## test: the whole suite on the real kernel (as root), installing what it needs.
test: test-deps
	$(GO) vet ./...
	$(GO) run ./internal/schemagen/cmd/schemagen -check
	$(GO) run ./cmd/telagent schema check
	$(GO) test -count=1 -timeout 15m ./...

# Tests compile a freestanding workload with gcc; nothing else is needed
# beyond Go (bpf2go outputs are committed).
test-deps:
	@command -v gcc >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev)

## generate: rebuild schema descriptors, C layouts, docs, syscall tables, BPF objects.
generate: generate-deps
	$(GO) generate ./...

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
bench: build bench-deps
	$(GO) run ./bench/syscallbench -agent ./$(BIN)
	$(GO) run ./bench/schedbench -agent ./$(BIN)
	$(GO) run ./bench/readbench

bench-deps:
	@command -v bpftrace >/dev/null && command -v gcc >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bpftrace gcc libc6-dev)

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
