#!/usr/bin/env bash
# Runs the benchmarks and prints one table (docs/benchmarks.md explains method and figures).
#   OGA decode: messages/s, MB/s and allocations per message on a realistic mixed stream
#               (set OGA_STREAM_FILE to decode a reference stream file instead)
#   publish:    cost of the write-or-skip decision for an unchanged domain
#   command:    GuestAgentCommand creation -> the guest receives it, p50/p99, real apiserver
#   drain:      2,000 commands of tenant A for one guest + one command of tenant B on the same node,
#               real apiserver, agentd's default configuration: drain time, B's latency
#               (GA_DRAIN_COMMANDS sets the backlog; BENCH_DRAIN=0 skips it)
#   scale:      agentd (real assembly) on libvirt's test driver with 100 and 1,000 domains +
#               envtest: steady-state CPU s/min, RSS, goroutines, QGA calls/min, API writes/min,
#               startup time. Minutes per size (the first publish of 1,000 objects is rate-
#               limited at 5 QPS). GA_SCALE_WINDOW (default here 120s) sets the measured window;
#               BENCH_SCALE=0 skips it.
#   scale qemu-ga: the same with one real qemu-ga (/usr/sbin/qemu-ga) per domain answering through
#               SocketAPI (answered calls at default periods); adds qga-ok-calls/min and the agents'
#               own qemu-ga-cpu-s/min, -rss/-pss-MiB. BENCH_SCALE_QEMUGA=0 skips it;
#               GA_SCALE_QEMUGA_WINDOW (default 310s: one full polling cycle) sets its window.
#   scale process: the real bin/agentd binary as its own process, default configuration in
#               sockets-only mode, one real qemu-ga per domain on a host socket, envtest: its own
#               CPU and memory from /proc/<pid>, startup (objects exist, publisher idle), API
#               requests per second during startup and per minute after. BENCH_SCALE_PROCESS=0
#               skips it.
#   cluster:    the controller manager (real binary, its own process) on envtest with simulated
#               nodes (agentd's publisher and executor, its client limits) of realistic statuses
#               that change: manager RSS/CPU/startup, command p50/p99, agentd API requests/min.
#               One process per size; BENCH_CLUSTER_SIZES (default "10x100 100x100", nodes x
#               domains) sets the sizes, GA_CLUSTER_WINDOW (default 120s) the measured window;
#               BENCH_CLUSTER=0 skips it. 100x100 takes about ten minutes on two vCPUs.
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
if [ "${BENCH_DRAIN:-1}" != 0 ]; then
  echo "== command backlog (${GA_DRAIN_COMMANDS:-2000} commands of one tenant + one of another)"
  go test -timeout 90m -run '^$' -bench 'BenchmarkCommandDrain' -benchtime 1x -benchmem ./test/integration/ 2>&1 |
    grep -E '^Benchmark' | tee -a "$OUT"
fi
# scale BENCH WINDOW TITLE: one process per size, so that VmHWM is that size's own peak
scale() {
  for n in 100 1000; do
    echo "== agentd $3, $n domains (minutes)"
    GA_SCALE=1 GA_SCALE_WINDOW=$2 go test -timeout 60m -run '^$' -bench "$1$n\$" -benchtime 1x ./test/scale/ 2>&1 |
      grep -E '^Benchmark' | tee -a "$OUT"
  done
}
if [ "${BENCH_SCALE:-1}" != 0 ]; then
  scale BenchmarkAgentdIdle "${GA_SCALE_WINDOW:-120s}" "idle (test:/// driver + envtest)"
  if [ "${BENCH_SCALE_QEMUGA:-1}" != 0 ]; then
    # 310 s: one full polling cycle (300 s periods + a tick)
    scale BenchmarkAgentdQemuGA "${GA_SCALE_QEMUGA_WINDOW:-310s}" "with one real qemu-ga per domain (+ test:/// + envtest)"
  fi
  if [ "${BENCH_SCALE_PROCESS:-1}" != 0 ]; then
    # the real bin/agentd as its own process (its /proc figures only), sockets-only mode
    go build -o bin/agentd ./cmd/agentd
    scale BenchmarkAgentdProcess "${GA_SCALE_QEMUGA_WINDOW:-310s}" "process (bin/agentd, one real qemu-ga per domain on a host socket, envtest)"
  fi
fi
if [ "${BENCH_CLUSTER:-1}" != 0 ]; then
  for size in ${BENCH_CLUSTER_SIZES:-10x100 100x100}; do
    echo "== cluster: ${size%x*} nodes x ${size#*x} domains, real manager binary + envtest (minutes)"
    GA_CLUSTER=1 GA_CLUSTER_NODES=${size%x*} GA_CLUSTER_DOMAINS=${size#*x} GA_CLUSTER_WINDOW=${GA_CLUSTER_WINDOW:-120s} \
      go test -timeout 90m -run '^$' -bench 'BenchmarkCluster' -benchtime 1x ./test/clustersim/ 2>&1 |
      grep -E '^Benchmark' | tee -a "$OUT"
  done
fi
echo
echo "| benchmark | figures |"
echo "|---|---|"
awk '{name=$1; $1=""; $2=""; print "| " name " |" $0 " |"}' "$OUT"
