#!/usr/bin/env bash
# Provides envtest assets (kube-apiserver, etcd, kubectl) built from the Go module proxy.
#
# envtest needs real kube-apiserver and etcd binaries. Instead of downloading prebuilt archives
# (not reachable here), we build them from source through the module proxy: a throwaway module
# requires k8s.io/kubernetes and replaces every k8s.io/<staging> module with the same-named
# published module (DESIGN §6). Binaries land in bin/k8s/<version>/ and are reused when present.
#
# Usage: hack/envtest-assets.sh [--cluster]   prints the KUBEBUILDER_ASSETS directory on stdout;
#        --cluster also builds kubelet, kube-controller-manager, kube-scheduler, kube-proxy and
#        containerd (same directory) for hack/cluster.sh.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-2.4.2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${ENVTEST_ASSETS_DIR:-$ROOT/bin/k8s/$K8S_VERSION}
WORK=${ENVTEST_BUILD_DIR:-$ROOT/bin/.envtest-build}
mkdir -p "$OUT" "$WORK"

log() { echo "envtest-assets: $*" >&2; }

# kube_module DIR CMD...: builds k8s.io/kubernetes/cmd/CMD into $OUT for each CMD not yet there, in a
# throwaway module at $WORK/DIR whose tools.go imports exactly those commands.
kube_module() {
  local dir=$1; shift
  local want=() c
  for c in "$@"; do [ -x "$OUT/$c" ] || want+=("$c"); done
  [ ${#want[@]} -eq 0 ] && return 0
  local d="$WORK/$dir"
  mkdir -p "$d"
  log "building ${want[*]} v$K8S_VERSION from the module proxy (a few minutes cold)"
  (
    cd "$d"
    if [ ! -f go.sum ]; then
      cat > go.mod <<MOD
module envtestassets/$dir

go 1.26

require k8s.io/kubernetes v$K8S_VERSION
MOD
      # Every staging module k8s.io/kubernetes requires as v0.0.0 is replaced by its published twin.
      GOFLAGS=-mod=mod go mod download -json k8s.io/kubernetes@v$K8S_VERSION >/dev/null
      local kmod
      kmod=$(go env GOMODCACHE)/k8s.io/kubernetes@v$K8S_VERSION/go.mod
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$kmod" \
        | awk '{print $1}' | sort -u | while read -r m; do
          echo "replace $m => $m v0.${K8S_VERSION#1.}" >> go.mod
        done
      {
        printf '//go:build tools\n\npackage tools\n\nimport (\n'
        for c in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
        printf ')\n'
      } > tools.go
      GOFLAGS=-mod=mod go mod tidy
    fi
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
    for b in "${want[@]}"; do
      go build -trimpath -ldflags "$ld" -o "$OUT/$b" "k8s.io/kubernetes/cmd/$b"
    done
  )
}

# containerd 2.x and its runc shim, static (the CRI plugin is built in). runc and the CNI plugins come
# from Debian (hack/install-deps.sh cluster).
build_containerd() {
  local c missing=()
  for c in containerd containerd-shim-runc-v2 ctr; do [ -x "$OUT/$c" ] || missing+=("github.com/containerd/containerd/v2/cmd/$c@v$CONTAINERD_VERSION"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building containerd v$CONTAINERD_VERSION from the module proxy"
  GOBIN=$OUT CGO_ENABLED=0 GOFLAGS= go install -trimpath -ldflags "-s -w" \
    -tags "no_btrfs no_devmapper no_zfs" "${missing[@]}"
}

build_etcd() {
  [ -x "$OUT/etcd" ] && return 0
  local d="$WORK/etcd"
  mkdir -p "$d"
  log "building etcd v$ETCD_VERSION from the module proxy"
  (
    cd "$d"
    if [ ! -f go.sum ]; then
      cat > go.mod <<MOD
module envtestassets/etcd

go 1.26

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 v$ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 v$ETCD_VERSION
	go.etcd.io/etcd/server/v3 => go.etcd.io/etcd/server/v3 v$ETCD_VERSION
)
MOD
      cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3/etcdmain"
GO
      cat > main.go <<'GO'
// Command etcd is etcd's server main, built from the published server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
      GOFLAGS=-mod=mod go mod tidy
    fi
    go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" .
  )
}

build_etcd
kube_module kubernetes kube-apiserver kubectl
if [ "${1:-}" = --cluster ]; then
  # the components of a real single-node cluster (hack/cluster.sh)
  kube_module kubernetes-node kubelet kube-controller-manager kube-scheduler kube-proxy
  build_containerd
fi
echo "$OUT"
