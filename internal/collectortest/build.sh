#!/usr/bin/env bash
# Builds the test Collector described by otelcol-builder.yaml with the
# collector builder from the Go module proxy, once: the binary is cached
# under $TELAGENT_CACHE (default /var/cache/telagent) in a directory named
# after the manifest's hash, which is where the tests look for it
# (collectortest.BinaryPath). Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
manifest="$here/otelcol-builder.yaml"
# The builder of the manifest's own Collector version (the otlp receiver's).
builder_version="$(sed -n 's#.*collector/receiver/otlpreceiver \(v[0-9.]*\).*#\1#p' "$manifest")"
[ -n "$builder_version" ] || { echo "build.sh: no otlpreceiver version in $manifest" >&2; exit 1; }
hash="$(sha256sum "$manifest" | cut -c1-16)"
dir="${TELAGENT_CACHE:-/var/cache/telagent}/otelcol/$hash"
bin="$dir/otelcol-telagent"
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$dir"
work="$(mktemp -d "$dir/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "building the test OpenTelemetry Collector ($builder_version) into $dir; this takes a few minutes once" >&2
# GOFLAGS from the caller (e.g. -buildvcs=false) apply; the builder runs
# `go mod tidy` and `go build` in $work.
GOBIN="$work/bin" go install "go.opentelemetry.io/collector/cmd/builder@$builder_version"
"$work/bin/builder" --config "$manifest" --output-path "$work/dist" >"$work/builder.log" 2>&1 || {
	cat "$work/builder.log" >&2
	exit 1
}
mv "$work/dist/otelcol-telagent" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "built $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
