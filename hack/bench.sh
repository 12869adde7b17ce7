#!/usr/bin/env bash
# Runs the benchmarks and prints one table (docs/benchmarks.md explains method and figures).
#   OGA decode: messages/s, MB/s and allocations per message on a realistic mixed stream
#               (set OGA_STREAM_FILE to decode shared/bench's reference stream instead)
#   publish:    cost of the write-or-skip decision for an unchanged domain
#   command:    GuestAgentCommand creation -> the guest receives it, p50/p99, real apiserver
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(bash hack/envtest-assets.sh)}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
run() { go test -run '^$' -bench "$1" -benchtime "$2" -benchmem "$3" 2>&1 | grep -E '^Benchmark' | tee -a "$OUT"; }
echo "== OGA decode"; run 'BenchmarkDecodeStream' 5x ./agentd/oga/
echo "== publish decision"; run 'BenchmarkUnchanged' 2s ./agentd/publish/
echo "== command latency (200 commands)"; run 'BenchmarkCommandLatency' 200x ./test/integration/
echo
echo "| benchmark | figures |"
echo "|---|---|"
awk '{name=$1; $1=""; $2=""; print "| " name " |" $0 " |"}' "$OUT"
