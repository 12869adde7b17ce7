#!/usr/bin/env bash
# The demo: a real control plane (kube-apiserver + etcd), a real libvirtd with two TCG guests
# running real agents (guest 1: qemu-ga + the project's oVirt guest agent; guest 2: qemu-ga
# only), and both binaries running against them. Prints the kubectl commands to try, applies a
# sample command, and runs until Ctrl-C; then tears everything down.
#
# Needs root on Debian 12 (`make demo` installs packages and builds binaries first).
# env: DEMO_DIR (default /tmp/guestagent-demo), DEMO_NODE (default: this host's name, lower-cased)
#      DEMO_EXIT_AFTER=SECONDS  stop by itself after that long (used by CI to check the demo)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
D=${DEMO_DIR:-/tmp/guestagent-demo}
NODE=${DEMO_NODE:-$(hostname | tr 'A-Z_' 'a-z-')}
export QGA_ENV=${QGA_ENV:-$D/guest}
export KUBECONFIG=$D/kubeconfig
export LIBVIRT_DEFAULT_URI=qemu:///system
G1=demo-both G2=demo-qga
source hack/virsh.sh
mkdir -p "$D" "$QGA_ENV"
PIDS=()
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  trap - EXIT INT TERM
  say "Cleaning up"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bash hack/guest.sh down $G1 >/dev/null 2>&1 || true
  bash hack/guest.sh down $G2 >/dev/null 2>&1 || true
  echo "done (libvirtd keeps running; stop it with: bash hack/libvirt-env.sh stop)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Control plane (envtest: real kube-apiserver + etcd, CRDs installed)"
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(bash hack/envtest-assets.sh)}
ln -sf "$KUBEBUILDER_ASSETS/kubectl" bin/kubectl
rm -f "$KUBECONFIG"
bin/controlplane --write-kubeconfig "$KUBECONFIG" --nodes "$NODE" --namespaces guestagent-system,demo >"$D/controlplane.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 120); do [ -s "$KUBECONFIG" ] && break; sleep 0.5; done
[ -s "$KUBECONFIG" ] || { cat "$D/controlplane.log"; exit 1; }
K="bin/kubectl --kubeconfig $KUBECONFIG"
$K get crd | grep guestagent

say "libvirtd and two guests (TCG, real qemu-ga, virtio balloon; guest 1 also runs the oVirt guest agent)"
OGA_GUEST_BIN=$ROOT/bin/oga-guest bash hack/libvirt-env.sh
BALLOON=1 WITH_OGA=1 QGA_DISK=1 bash hack/guest.sh up $G1 & g1=$!
BALLOON=1 GA_NAMESPACE=demo bash hack/guest.sh up $G2 & g2=$!
wait $g1
wait $g2
virsh list

say "Controller manager and agentd (node $NODE)"
bin/manager --metrics-bind-address 0 --health-probe-bind-address 127.0.0.1:18081 >"$D/manager.log" 2>&1 &
PIDS+=($!)
bin/agentd --node-name "$NODE" --libvirt-uri qemu:///system --default-namespace guestagent-system \
  --metrics-bind-address 127.0.0.1:18080 --health-probe-bind-address 127.0.0.1:18082 >"$D/agentd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 120); do
  [ "$($K get gas -A --no-headers 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 1
done
# The oVirt agent negotiates its protocol version over its first heartbeats (~10 s).
for _ in $(seq 30); do
  [ "$($K get gas -A -o jsonpath='{.items[*].status.ovirtAgent.apiVersion}' 2>/dev/null)" = 3 ] && break; sleep 1
done
# Memory comes from libvirt's balloon statistics for every guest, the QGA-only one included.
mem() { $K get gas -A -o jsonpath='{range .items[*]}{.status.memory.totalBytes}{"\n"}{end}' 2>/dev/null | grep -c '^[1-9]'; }
for _ in $(seq 60); do
  [ "$(mem)" -ge 2 ] && break; sleep 1
done
$K get gas -A -o wide
if [ "$($K get gas -A --no-headers 2>/dev/null | wc -l)" -lt 2 ]; then
  echo "demo: the guests' GuestAgentStatus objects did not appear; agentd log:" >&2; tail -50 "$D/agentd.log" >&2; exit 1
fi
if [ "$(mem)" -lt 2 ]; then
  echo "demo: memory is not published for both guests; agentd log:" >&2; tail -50 "$D/agentd.log" >&2; exit 1
fi

say "A sample command: ping the guest with both agents through both"
T=$($K get gas -n guestagent-system -o jsonpath="{.items[?(@.spec.domainName==\"$G1\")].metadata.name}")
cat <<YAML | $K apply -f -
apiVersion: guestagent.io/v1alpha1
kind: GuestAgentCommand
metadata:
  name: demo-ping
  namespace: guestagent-system
spec:
  target: $T
  action: Ping
  agent: Both
YAML
for _ in $(seq 30); do
  case "$($K get gac demo-ping -n guestagent-system -o jsonpath='{.status.phase}')" in Succeeded|Failed) break;; esac; sleep 1
done
$K get gac -A -o wide
if [ "$($K get gac demo-ping -n guestagent-system -o jsonpath='{.status.phase}')" != Succeeded ]; then
  echo "demo: the sample command did not succeed" >&2; exit 1
fi

cat <<EOF2

Try (in another shell):
  export KUBECONFIG=$KUBECONFIG
  $ROOT/bin/kubectl get gas -A -o wide
  $ROOT/bin/kubectl get gas -n guestagent-system $T -o yaml
  $ROOT/bin/kubectl get guestagent -A
  $ROOT/bin/kubectl apply -f $ROOT/config/samples/      # edit spec.target first
  curl -s 127.0.0.1:18080/metrics | grep ^guestagent_
  virsh list; virsh qemu-agent-command $G1 '{"execute":"guest-get-osinfo"}'
Logs: $D/agentd.log $D/manager.log $D/controlplane.log
Press Ctrl-C to stop and clean up.
EOF2

if [ -n "${DEMO_EXIT_AFTER:-}" ]; then
  sleep "$DEMO_EXIT_AFTER"
else
  while sleep 3600; do :; done
fi
