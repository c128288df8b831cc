#!/usr/bin/env bash
# Builds an OpenTelemetry Collector from a builder manifest with the
# collector builder from the Go module proxy, once: the binary is cached
# under $TELAGENT_CACHE (default /var/cache/telagent) in a directory named
# after the manifest's hash, and prints the binary's path.
#
#   build.sh               the test Collector (otelcol-builder.yaml beside
#                          this script), where the tests look for it
#                          (collectortest.BinaryPath)
#   build.sh MANIFEST      another manifest, e.g. deploy/collector/builder.yaml
#
# A manifest may name this repository's own modules by the placeholder
# @REPO@ (their local path, for the builder's path: and replaces:): it is
# replaced by the repository's absolute path, and the cache key then also
# covers the repository's sources, so a change to the agent or the
# receiver builds a new binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
manifest="$(realpath "${1:-$here/otelcol-builder.yaml}")"
repo="$(cd "$here/../.." && pwd)"
# The builder of the manifest's own Collector version (the otlp receiver's).
builder_version="$(sed -n 's#.*collector/receiver/otlpreceiver \(v[0-9.]*\).*#\1#p' "$manifest")"
[ -n "$builder_version" ] || { echo "build.sh: no otlpreceiver version in $manifest" >&2; exit 1; }
name="$(sed -n 's#^  name: *\([A-Za-z0-9._-]*\).*#\1#p' "$manifest" | head -1)"
[ -n "$name" ] || { echo "build.sh: no dist name in $manifest" >&2; exit 1; }
key="$(sha256sum "$manifest" | cut -c1-64)"
if grep -q '@REPO@' "$manifest"; then
	# Every source file of the tree (tracked, or new and not ignored), by
	# content; documentation and tests do not change the binary. Without
	# git (a container build's context has no .git), every file.
	if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		list() { git -C "$repo" ls-files -z -c -o --exclude-standard -- ':!*.md' ':!docs/**' ':!*_test.go'; }
	else
		list() { (cd "$repo" && find . -type f ! -name '*.md' ! -name '*_test.go' ! -path './docs/*' -print0); }
	fi
	src="$(list | (cd "$repo" && xargs -0 sha256sum 2>/dev/null) | sha256sum | cut -c1-64)"
	key="$(printf '%s %s' "$key" "$src" | sha256sum | cut -c1-64)"
fi
hash="${key:0:16}"
dir="${TELAGENT_CACHE:-/var/cache/telagent}/otelcol/$hash"
bin="$dir/$name"
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$dir"
work="$(mktemp -d "$dir/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "building the OpenTelemetry Collector $name ($builder_version) from $manifest into $dir; this takes a few minutes once" >&2
sed "s#@REPO@#$repo#g" "$manifest" >"$work/manifest.yaml"
# GOFLAGS from the caller (e.g. -buildvcs=false) apply; the builder runs
# `go mod tidy` and `go build` in $work.
GOBIN="$work/bin" go install "go.opentelemetry.io/collector/cmd/builder@$builder_version"
"$work/bin/builder" --config "$work/manifest.yaml" --output-path "$work/dist" >"$work/builder.log" 2>&1 || {
	cat "$work/builder.log" >&2
	exit 1
}
mv "$work/dist/$name" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "built $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
