# telagent container image.
#
#   docker build -t telagent --build-arg VERSION=$(git describe --tags --always) .
#
# The bpf2go objects (*_bpfel.o and their Go bindings) are committed, so the
# build needs Go only: no clang, no kernel headers.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/telagent ./cmd/telagent

# The agent needs root or CAP_BPF + CAP_PERFMON (+ CAP_SYS_PTRACE,
# CAP_DAC_READ_SEARCH to read other users' /proc): the root variant of
# distroless (not :nonroot, whose uid 65532 would need file capabilities).
# It is not run privileged: deploy/kubernetes/telagent-daemonset.yaml drops
# ALL capabilities and adds back only those.
FROM gcr.io/distroless/static-debian12:latest
COPY --from=build /out/telagent /telagent
ENTRYPOINT ["/telagent"]
CMD ["run", "--exporter", "otlp"]
