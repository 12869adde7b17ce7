#!/usr/bin/env bash
# Live-migration tier: brings up two libvirt nodes on this machine (hack/two-nodes.sh), builds the
# guest-side oVirt agent into the test guests' initramfs, runs test/migration (two in-process
# agentds against one envtest control plane) and tears the nodes down again, also on failure.
#
# usage: hack/test-migration.sh [extra go test args...]     (root; after hack/install-deps.sh)
# env:   GA_MIG_DIR  work dir of the two nodes (default /tmp/ga-mig)
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(bash hack/envtest-assets.sh)}
export GA_MIG_DIR=${GA_MIG_DIR:-/tmp/ga-mig}
mkdir -p "$GA_MIG_DIR/bin"
CGO_ENABLED=0 go build -o "$GA_MIG_DIR/bin/oga-guest" ./cmd/oga-guest
export OGA_GUEST_BIN=$GA_MIG_DIR/bin/oga-guest
trap 'bash hack/two-nodes.sh down' EXIT
trap 'exit 130' INT TERM # a signal still tears the nodes down
bash hack/two-nodes.sh up
eval "$(bash hack/two-nodes.sh env)"
go test -race -count=1 -timeout 15m -v "$@" ./test/migration/...
