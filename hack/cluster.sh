#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, from the Go module proxy and Debian packages
# only (no image registry, no Docker): etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet and kube-proxy v$K8S_VERSION (hack/envtest-assets.sh --cluster), containerd 2.x, Debian's
# runc and CNI plugins (bridge, host-local, loopback), certificates made here, a local pause image.
#
# usage: hack/cluster.sh up       build what is missing, start everything, wait for the node Ready
#        hack/cluster.sh down     stop exactly what `up` started and restore what it changed on the
#                                 host (sysctls, iptables, the bridge, mounts, cgroups, directories)
#        hack/cluster.sh env      print `export KUBECONFIG=...` and the paths the tests need
#        hack/cluster.sh import T load docker-archive tarball T into the node's containerd
#        hack/cluster.sh status   print the node and the components' pids
#        hack/cluster.sh fingerprint  print the host state `up` changes and `down` restores
# env:   CLUSTER_DIR (default /var/lib/guestagent-cluster), CLUSTER_NODE (default guestagent-node)
# Needs root. Facts of this machine it relies on: cgroup v1 (kubelet failCgroupV1: false, cgroupfs),
# swap tolerated (failSwapOn: false), no CAP_SYS_RESOURCE (containerd restrict_oom_score_adj).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
K8S_VERSION=${K8S_VERSION:-1.37.2}
D=${CLUSTER_DIR:-/var/lib/guestagent-cluster}
RUN=/run/guestagent-cluster
NODE=${CLUSTER_NODE:-guestagent-node}
BIN=${ENVTEST_ASSETS_DIR:-$ROOT/bin/k8s/$K8S_VERSION}
PKI=$D/pki
LOGS=$D/logs
SNAP=$D/host-snapshot
SOCK=$RUN/containerd/containerd.sock
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
BRIDGE=gacni0
ETCD_PORT=22379
PAUSE_IMAGE=guestagent.local/pause:1
# Host paths the kubelet, containerd and CNI may create outside $D; `down` removes those that did not
# exist before `up`.
HOST_PATHS=(/var/lib/kubelet /var/log/pods /var/log/containers /run/containerd /var/lib/containerd
  /var/lib/cni /run/netns /var/run/netns /etc/kubernetes /etc/cni /opt/cni)
# Sysctls the kubelet and kube-proxy set; `down` writes back the values saved by `up`.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet net.ipv4.ip_forward
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait
  net.netfilter.nf_conntrack_tcp_be_liberal)
COMPONENTS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }
kc() { "$BIN/kubectl" --kubeconfig "$D/admin.kubeconfig" "$@"; }

# The machine's own non-loopback address: the apiserver advertises it (the `kubernetes` Service
# points there) and the node reports it as its InternalIP.
host_address() {
  local a
  a=$(ip -4 -o route get 1.1.1.1 2>/dev/null | awk '{for (i=1;i<NF;i++) if ($i=="src") {print $(i+1); exit}}')
  [ -n "$a" ] || a=$(ip -4 -o addr show scope global | awk '{split($4,x,"/"); print x[1]; exit}')
  [ -n "$a" ] || die "no non-loopback IPv4 address on this machine"
  echo "$a"
}

install_packages() {
  local p missing=()
  for p in runc containernetworking-plugins iptables conntrack openssl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

# --- host snapshot ---------------------------------------------------------------------------------

snapshot_host() {
  [ -d "$SNAP" ] && return 0 # an earlier `up` without `down`: keep the first, pristine snapshot
  mkdir -p "$SNAP.tmp"
  local k p
  for k in "${SYSCTLS[@]}"; do
    if v=$(sysctl -n "$k" 2>/dev/null); then printf '%s=%s\n' "$k" "$v"; fi
  done >"$SNAP.tmp/sysctl"
  for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] || echo "$p"; done >"$SNAP.tmp/absent-paths"
  iptables-save >"$SNAP.tmp/iptables"
  ip6tables-save >"$SNAP.tmp/ip6tables" 2>/dev/null || true
  for c in /sys/fs/cgroup/*/; do
    [ -d "$c/kubepods" ] || [ -d "$c/kubepods.slice" ] || continue
    die "cgroup ${c}kubepods exists already: another kubelet runs or ran here"
  done
  mv "$SNAP.tmp" "$SNAP"
}

# empty_new_tables CMD SNAPSHOT: the tables CMD (iptables or ip6tables) has now but the snapshot has
# not (the kubelet and kube-proxy made them) lose their rules and chains, and their built-in chains
# accept again: as if they did not exist (restoring the snapshot only rewrites the tables it names).
empty_new_tables() {
  local cmd=$1 snap=$2 t c
  for t in $("$cmd-save" 2>/dev/null | sed -n 's/^\*//p'); do
    grep -qx "\*$t" "$snap" 2>/dev/null && continue
    "$cmd" -t "$t" -F && "$cmd" -t "$t" -X || log "could not empty $cmd table $t"
    for c in $("$cmd-save" -t "$t" 2>/dev/null | sed -n 's/^:\([^ ]*\) \(DROP\|REJECT\).*/\1/p'); do
      "$cmd" -t "$t" -P "$c" ACCEPT || log "could not reset the policy of $cmd $t $c"
    done
  done
}

# tables_fingerprint: iptables-save output without counters, comments and tables that hold nothing
# (only built-in chains accepting): an empty table is the same as no table.
tables_fingerprint() {
  { grep -v '^#' || true; } | sed -E 's/\[[0-9]+:[0-9]+\]//' | awk '
    /^\*/ { tbl = $0; buf = $0 "\n"; keep = 0; next }
    /^COMMIT/ { if (keep) printf "%s%s\n", buf, $0; tbl = ""; next }
    tbl != "" { buf = buf $0 "\n"; if ($0 !~ /^:[^ ]+ ACCEPT/) keep = 1; next }
    { print }'
}

restore_host() {
  [ -d "$SNAP" ] || return 0
  local line k v
  while IFS= read -r line; do
    k=${line%%=*}; v=${line#*=}
    [ "$(sysctl -n "$k" 2>/dev/null)" = "$v" ] && continue
    sysctl -q -w "$k=$v" >/dev/null 2>&1 && log "restored sysctl $k=$v" || log "could not restore sysctl $k"
  done <"$SNAP/sysctl"
  empty_new_tables iptables "$SNAP/iptables"
  empty_new_tables ip6tables "$SNAP/ip6tables"
  [ -s "$SNAP/iptables" ] && { iptables-restore <"$SNAP/iptables" || log "iptables-restore failed"; }
  [ -s "$SNAP/ip6tables" ] && { ip6tables-restore <"$SNAP/ip6tables" || log "ip6tables-restore failed"; }
  while IFS= read -r p; do
    [ -e "$p" ] || continue
    umount_below "$p"
    rm -rf "$p"
  done <"$SNAP/absent-paths"
}

# --- certificates and kubeconfigs --------------------------------------------------------------------

cert() { # cert NAME CN [O] [SAN]
  local name=$1 cn=$2 o=${3:-} san=${4:-} subj="/CN=$2"
  [ -f "$PKI/$name.crt" ] && return 0
  [ -n "$o" ] && subj="/O=$o/CN=$cn"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' >"$ext"
  [ -n "$san" ] && echo "subjectAltName=$san" >>"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

kubeconfig() { # kubeconfig NAME CERT
  cat >"$D/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://$ADDR:6443", certificate-authority: "$PKI/ca.crt"}
users:
- name: $2
  user: {client-certificate: "$PKI/$2.crt", client-key: "$PKI/$2.key"}
contexts:
- name: local
  context: {cluster: local, user: $2}
current-context: local
EOF
}

make_pki() {
  mkdir -p "$PKI"
  if [ ! -f "$PKI/ca.crt" ]; then
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -subj "/CN=guestagent-cluster-ca" \
      -days 30 -sha256 -out "$PKI/ca.crt" 2>/dev/null
  fi
  [ -f "$PKI/sa.key" ] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null && openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
  cert apiserver kube-apiserver "" "IP:127.0.0.1,IP:$ADDR,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert admin admin system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kube-proxy system:kube-proxy
  cert kubelet "system:node:$NODE" system:nodes "IP:$ADDR,IP:127.0.0.1,DNS:$NODE"
  local k
  for k in admin controller-manager scheduler kube-proxy kubelet; do kubeconfig "$k" "$k"; done
}

# --- configuration -----------------------------------------------------------------------------------

write_configs() {
  mkdir -p "$D/cni/net.d" "$D/containerd" "$RUN"
  cat >"$D/cni/net.d/10-guestagent.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "guestagent-cluster", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$RUN/cni-ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  cat >"$D/containerd/config.toml" <<EOF
version = 3
root = "$D/containerd/root"
state = "$RUN/containerd"
[grpc]
  address = "$SOCK"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "$PAUSE_IMAGE"
[plugins.'io.containerd.cri.v1.runtime']
  # No CAP_SYS_RESOURCE here: without this every sandbox fails writing /proc/self/oom_score_adj.
  restrict_oom_score_adj = true
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "/usr/sbin/runc"
  SystemdCgroup = false
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "$D/cni/net.d"
EOF
  cat >"$D/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/kubelet.crt"
tlsPrivateKeyFile: "$PKI/kubelet.key"
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDirectory: "$D/pod-logs"
serializeImagePulls: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  cat >"$D/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: "$POD_CIDR"
hostnameOverride: "$NODE"
clientConnection: {kubeconfig: "$D/kube-proxy.kubeconfig"}
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
bindAddress: 127.0.0.1
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
}

# --- processes ---------------------------------------------------------------------------------------

start() { # start NAME CMD...: a daemon with its log in $LOGS and its pid in $RUN
  local name=$1; shift
  if [ -f "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then return 0; fi
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

wait_for() { # wait_for WHAT SECONDS CMD...
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$what not ready after ${secs}s (logs: $LOGS)"
}

stop_pid() { # stop_pid NAME: SIGTERM, then SIGKILL after 10 s
  local f=$RUN/$1.pid p i
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

umount_below() { # unmount every mount point at or below $1, deepest first
  local m
  awk -v p="$1" '{ if ($5 == p || index($5, p "/") == 1) print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

up() {
  [ "$(id -u)" -eq 0 ] || die "needs root"
  install_packages
  bash "$HERE/envtest-assets.sh" --cluster >/dev/null
  [ -f "$ROOT/bin/images/pause.tar" ] || bash "$HERE/images.sh" all >/dev/null
  ADDR=$(host_address)
  mkdir -p "$D" "$LOGS" "$RUN"
  snapshot_host
  make_pki
  write_configs
  echo "$ADDR" >"$D/address"

  start etcd "$BIN/etcd" --data-dir "$D/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls http://127.0.0.1:22380 \
    --unsafe-no-fsync --quota-backend-bytes 2147483648
  # containerd finds its shim (built next to it) and runc through PATH.
  PATH=$BIN:$PATH start containerd "$BIN/containerd" --config "$D/containerd/config.toml"
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --secure-port 6443 --bind-address 0.0.0.0 --advertise-address "$ADDR" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction --allow-privileged=true \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP,Hostname
  wait_for containerd 30 test -S "$SOCK"
  "$BIN/ctr" --address "$SOCK" -n k8s.io images import "$ROOT/bin/images/pause.tar" >/dev/null
  wait_for kube-apiserver 60 kc get --raw /readyz
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$D/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$D/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$D/controller-manager.kubeconfig" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials --leader-elect=false --bind-address 127.0.0.1 \
    --service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$D/scheduler.kubeconfig" \
    --authentication-kubeconfig "$D/scheduler.kubeconfig" --authorization-kubeconfig "$D/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1
  start kubelet "$BIN/kubelet" --config "$D/kubelet.yaml" --kubeconfig "$D/kubelet.kubeconfig" \
    --root-dir "$D/kubelet" --hostname-override "$NODE" --node-ip "$ADDR"
  start kube-proxy "$BIN/kube-proxy" --config "$D/kube-proxy.yaml"
  wait_for "node $NODE" 120 kc wait --for=condition=Ready "node/$NODE" --timeout=1s
  log "node $NODE Ready; $(env_lines | head -1)"
}

down() {
  [ "$(id -u)" -eq 0 ] || die "needs root"
  local c
  # The control loops first, so nothing re-creates what is torn down below.
  for c in kube-proxy kubelet kube-scheduler kube-controller-manager; do stop_pid "$c"; done
  # Every container process (all live in the kubelet's pod cgroups), then the shims, then containerd.
  for c in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods; do
    [ -d "$c" ] && find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
  pkill -KILL -f "$BIN/containerd-shim-runc-v2" 2>/dev/null || true
  stop_pid containerd
  stop_pid kube-apiserver
  stop_pid etcd
  # Network namespaces of the sandboxes (their veths go with them), the bridge, the mounts.
  if [ -d /run/netns ]; then
    for c in /run/netns/cni-*; do [ -e "$c" ] && { umount "$c" 2>/dev/null || true; rm -f "$c"; }; done
  fi
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
  umount_below "$D"
  umount_below "$RUN"
  # cgroups the kubelet made (cgroupfs driver), deepest first.
  for c in /sys/fs/cgroup/*/kubepods; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  restore_host
  rm -rf "$RUN" "$D"
  log "down: stopped and restored"
}

# fingerprint prints what `up` changes on the host, normalised, so that two runs can be compared.
fingerprint() {
  local k p
  for k in "${SYSCTLS[@]}"; do echo "sysctl $k=$(sysctl -n "$k" 2>/dev/null || echo absent)"; done
  for p in "${HOST_PATHS[@]}" "$D" "$RUN"; do [ -e "$p" ] && echo "path $p present" || echo "path $p absent"; done
  iptables-save 2>/dev/null | tables_fingerprint
  ip6tables-save 2>/dev/null | tables_fingerprint
  ip -o link show | awk -F': ' '{print "link " $2}' | sed 's/@.*//' | sort
  awk '{print "mount " $5}' /proc/self/mountinfo | sort
  for p in /sys/fs/cgroup/*/; do find "$p" -maxdepth 1 -mindepth 1 -type d | sed 's/^/cgroup /'; done | sort
}

env_lines() {
  echo "export KUBECONFIG=$D/admin.kubeconfig"
  echo "export CLUSTER_NODE=$NODE"
  echo "export CLUSTER_CONTAINERD_SOCK=$SOCK"
  echo "export CLUSTER_BIN=$BIN"
  echo "export CLUSTER_LOGS=$LOGS"
}

case "${1:-}" in
up) up ;;
down) down ;;
env) env_lines ;;
fingerprint) fingerprint ;;
import)
  [ -n "${2:-}" ] || die "usage: $0 import TARBALL"
  "$BIN/ctr" --address "$SOCK" -n k8s.io images import "$2" >/dev/null
  ;;
status)
  for c in "${COMPONENTS[@]}"; do
    p=$(cat "$RUN/$c.pid" 2>/dev/null || true)
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo "$c running (pid $p)"; else echo "$c stopped"; fi
  done
  kc get nodes -o wide 2>/dev/null || true
  ;;
*) echo "usage: $0 up|down|env|import TARBALL|status|fingerprint" >&2; exit 2 ;;
esac
