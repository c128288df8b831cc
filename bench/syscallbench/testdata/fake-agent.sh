#!/bin/sh
# Stand-in for `telagent run` that follows the contract syscallbench relies
# on, without attaching anything (its ratios are therefore ~0):
#   telagent run --probes syscalls --exporter otlp-json --output FILE --interval 1s [-- CMD ARGS...]
# - prints a line containing "attached" on stderr once probes are attached;
# - whole-host mode (no --): runs until SIGINT, writes FILE, exits 0;
# - target mode (-- CMD...): runs CMD with stdout passed through, writes
#   FILE, exits with CMD's exit code.
# Usage: go run ./bench/syscallbench -agent bench/syscallbench/testdata/fake-agent.sh
[ "$1" = run ] || { echo "fake-agent: only 'run' is supported" >&2; exit 2; }
shift
out=
while [ $# -gt 0 ]; do
	case "$1" in
	--output) out=$2; shift 2 ;;
	--probes|--exporter|--interval) shift 2 ;;
	--) shift; break ;;
	*) echo "fake-agent: unknown flag $1" >&2; exit 2 ;;
	esac
done
[ -n "$out" ] || { echo "fake-agent: --output is required" >&2; exit 2; }
sleep 0.2 # "loading"
echo "fake-agent: probes attached: syscalls" >&2
if [ $# -gt 0 ]; then
	"$@"
	rc=$?
	echo '{"resourceMetrics":[]}' >"$out"
	exit $rc
fi
trap 'echo "{\"resourceMetrics\":[]}" >"$out"; exit 0' INT
while :; do sleep 0.05; done
