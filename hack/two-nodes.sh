#!/usr/bin/env bash
# Two libvirt "nodes" on one machine, for live-migration tests: two libvirtd daemons, each in its
# own network, mount and UTS namespace (own hostname, own host UUID), with per-node directories
# bind-mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
# /var/log/libvirt, joined by a veth pair that carries QEMU's migration stream. The host's own
# (system) libvirtd, its sockets, pid file and domains are never touched.
#
# usage: hack/two-nodes.sh up       create + start both nodes (idempotent), build the guest files
#        hack/two-nodes.sh down     destroy the nodes' domains, stop both daemons, remove the
#                                   namespaces and the veth pair (safe to run any time, repeatedly)
#        hack/two-nodes.sh env      print the exports the migration test needs
#        hack/two-nodes.sh uri NODE print the client URI of NODE (mig-a or mig-b)
# env:   GA_MIG_DIR  work dir (default /tmp/ga-mig): NODE/{etc,run,lib,cache,log}, guest/, NODE/oga/
#
# Clients on the host reach a node as qemu:///system?socket=$GA_MIG_DIR/NODE/run/libvirt-sock: the
# run directory lives on the host and is bind-mounted INTO the node's namespace. A peer-to-peer
# migration targets qemu+unix:///system?socket=... (libvirt refuses a plain qemu:///system target
# as "the same host"). Node mig-a has 10.251.77.1/30 on veth gamig-a, mig-b 10.251.77.2/30.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${GA_MIG_DIR:-/tmp/ga-mig}
NODES=(mig-a mig-b)
declare -A ADDR=([mig-a]=10.251.77.1 [mig-b]=10.251.77.2)
source "$HERE/virsh.sh"
declare -A HUUID=([mig-a]=6a1e0a0a-0000-4000-8000-00000000000a [mig-b]=6a1e0b0b-0000-4000-8000-00000000000b)

netns() { echo "ga-$1"; }       # named network namespace of a node
sock() { echo "$W/$1/run/libvirt-sock"; }
uri() { echo "qemu:///system?socket=$(sock "$1")"; }
pidfile() { echo "$W/$1/run/libvirtd.pid"; }
answering() { virsh -c "$(uri "$1")" version >/dev/null 2>&1; }

configure() {
  local n=$1 d="$W/$1"
  mkdir -p "$d"/{etc,run,lib/qemu/channels,cache,log} "$d/oga"
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null ||
    useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  # root QEMU without cgroups (the same domain runs on both nodes during a migration: machine
  # cgroup names would clash), namespaces or labels; stdio to files, so no virtlogd
  cat >"$d/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_address = "${ADDR[$n]}"
migration_host = "${ADDR[$n]}"
EOF
  cat >"$d/etc/libvirtd.conf" <<EOF
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
auth_unix_rw = "none"
auth_unix_ro = "none"
host_uuid = "${HUUID[$n]}"
EOF
  # a warm capabilities cache saves the ~8 s QEMU probe of a cold start; libvirtd re-validates it
  if [ ! -d "$d/cache/qemu/capabilities" ] && [ -d /var/cache/libvirt/qemu/capabilities ]; then
    mkdir -p "$d/cache/qemu" && cp -r /var/cache/libvirt/qemu/capabilities "$d/cache/qemu/" 2>/dev/null || true
  fi
}

network() {
  local a b
  a=$(netns mig-a) b=$(netns mig-b)
  for n in "$a" "$b"; do ip netns list | grep -qw "$n" || ip netns add "$n"; done
  if ! ip -n "$a" link show gamig-a >/dev/null 2>&1; then
    ip link del gamig-a 2>/dev/null || true
    ip link add gamig-a type veth peer name gamig-b
    ip link set gamig-a netns "$a"
    ip link set gamig-b netns "$b"
    ip -n "$a" addr add "${ADDR[mig-a]}/30" dev gamig-a
    ip -n "$b" addr add "${ADDR[mig-b]}/30" dev gamig-b
  fi
  for n in mig-a mig-b; do
    ip -n "$(netns $n)" link set lo up
    ip -n "$(netns $n)" link set "gamig-${n#mig-}" up
  done
}

start() {
  local n=$1 d="$W/$1"
  answering "$n" && return 0
  rm -f "$(sock "$n")" "$(pidfile "$n")"
  # The mount namespace lives as long as the daemon: the bind mounts vanish with it.
  ip netns exec "$(netns "$n")" unshare --mount --uts --propagation private sh -ec '
    hostname "$1"
    mount --bind "$2/etc" /etc/libvirt
    mount --bind "$2/run" /run/libvirt
    mount --bind "$2/lib" /var/lib/libvirt
    mount --bind "$2/cache" /var/cache/libvirt
    mount --bind "$2/log" /var/log/libvirt
    exec libvirtd -d --pid-file /run/libvirt/libvirtd.pid' _ "$n" "$d"
  for _ in $(seq 300); do answering "$n" && return 0; sleep 0.1; done
  echo "two-nodes: $n did not answer within 30 s; see $d/log/libvirtd.log" >&2
  return 1
}

stop() {
  local n=$1 pid
  if answering "$n"; then
    for dom in $(virsh -c "$(uri "$n")" list --all --name 2>/dev/null); do
      virsh -c "$(uri "$n")" destroy "$dom" >/dev/null 2>&1 || true
      virsh -c "$(uri "$n")" undefine "$dom" >/dev/null 2>&1 || true
    done
  fi
  pid=$(cat "$(pidfile "$n")" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q libvirtd "/proc/$pid/comm" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # QEMU processes of this node that outlived their daemon (found by their per-node pid files)
  for qp in "$W/$n"/run/qemu/*.pid; do
    [ -f "$qp" ] || continue
    pid=$(cat "$qp" 2>/dev/null || true)
    [ -n "$pid" ] && grep -q qemu "/proc/$pid/comm" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    rm -f "$qp"
  done
  rm -f "$(sock "$n")" "$(pidfile "$n")"
}

case "${1:-up}" in
up)
  [ "$(id -u)" -eq 0 ] || { echo "two-nodes: must run as root" >&2; exit 1; }
  command -v libvirtd >/dev/null || { echo "two-nodes: run hack/install-deps.sh first" >&2; exit 1; }
  QGA_ENV=$W/guest "$HERE/libvirt-env.sh" files
  network
  for n in "${NODES[@]}"; do configure "$n"; start "$n"; done
  echo "two-nodes: up: $(for n in "${NODES[@]}"; do printf '%s=%s ' "$n" "$(uri "$n")"; done)"
  ;;
down)
  for n in "${NODES[@]}"; do stop "$n"; done
  ip link del gamig-a 2>/dev/null || true
  for n in "${NODES[@]}"; do ip netns del "$(netns "$n")" 2>/dev/null || true; done
  echo "two-nodes: down"
  ;;
env)
  echo "export GA_MIGRATION=1 GA_MIG_DIR=$W QGA_ENV=$W/guest GA_MIG_URI_A='$(uri mig-a)' GA_MIG_URI_B='$(uri mig-b)'"
  ;;
uri) uri "${2:?node}" ;;
*) echo "usage: $0 up|down|env|uri NODE" >&2; exit 2 ;;
esac
