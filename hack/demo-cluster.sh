#!/usr/bin/env bash
# The demo inside a real single-node Kubernetes cluster (hack/cluster.sh): the images built here,
# `helm install` of the chart, agentd as a DaemonSet pod reaching this machine's libvirtd, two TCG
# guests with real agents. Runs until Ctrl-C, then uninstalls, stops the cluster and restores the host.
# env: DEMO_EXIT_AFTER=SECONDS  stop by itself after that long
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export QGA_ENV=${QGA_ENV:-/tmp/guestagent-demo-cluster/guest}
export LIBVIRT_DEFAULT_URI=qemu:///system
G1=demo-both G2=demo-qga NS=guestagent-system
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
  trap - EXIT INT TERM
  say "Cleaning up"
  bash hack/guest.sh down $G1 >/dev/null 2>&1 || true
  bash hack/guest.sh down $G2 >/dev/null 2>&1 || true
  bash hack/cluster.sh down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Images (no Docker: hack/images.sh)"
bash hack/images.sh all
say "Single-node cluster (kubelet, containerd, kube-proxy, scheduler, controller-manager)"
bash hack/cluster.sh up
for img in manager agentd; do bash hack/cluster.sh import "bin/images/$img.tar"; done
eval "$(bash hack/cluster.sh env)"
K="$CLUSTER_BIN/kubectl"
$K get nodes -o wide

say "libvirtd and two guests (TCG, real qemu-ga; guest 1 also runs the oVirt guest agent)"
OGA_GUEST_BIN=$ROOT/bin/oga-guest bash hack/libvirt-env.sh
WITH_OGA=1 bash hack/guest.sh up $G1 & g1=$!
bash hack/guest.sh up $G2 & g2=$!
wait $g1
wait $g2

say "helm install"
echo "+ helm install ga charts/guestagent-operator -n $NS --create-namespace --set image.tag=dev --set image.pullPolicy=Never"
bin/helm install ga charts/guestagent-operator -n $NS --create-namespace --set image.tag=dev --set image.pullPolicy=Never
$K -n $NS rollout status deployment/ga-guestagent-operator-controller --timeout=3m
$K -n $NS rollout status daemonset/ga-guestagent-operator-agentd --timeout=3m
$K -n $NS get pods -o wide
for _ in $(seq 120); do [ "$($K -n $NS get gas --no-headers 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 1; done
say "kubectl get gas"
$K -n $NS get gas -o wide
cat <<MSG

Try (in another shell):
  eval "\$(bash hack/cluster.sh env)"; alias kubectl=\$CLUSTER_BIN/kubectl
  kubectl -n $NS get gas -o wide
  kubectl -n $NS logs ds/ga-guestagent-operator-agentd
  kubectl -n $NS apply -f config/samples/guestagent_v1alpha1_guestagentcommand_ping.yaml   # edit spec.target first
Ctrl-C stops the demo and the cluster.
MSG
if [ -n "${DEMO_EXIT_AFTER:-}" ]; then sleep "$DEMO_EXIT_AFTER"; else while :; do sleep 3600; done; fi
