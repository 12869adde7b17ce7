#!/usr/bin/env bash
# Builds the project's images without Docker: the binaries as the Dockerfiles' build stages build
# them, then hack/imagebuild reproduces each Dockerfile's final stage from Debian packages and writes
# a docker-archive tarball (for `ctr images import` or `docker load`).
#
# usage: hack/images.sh [all|product]   product: manager and agentd; all: also the cluster test's
#                                       pause and probe images
# env:   IMG_MANAGER, IMG_AGENTD (default guestagent/manager:dev, guestagent/agentd:dev), IMAGES_DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${IMAGES_DIR:-$ROOT/bin/images}
IMG_MANAGER=${IMG_MANAGER:-guestagent/manager:dev}
IMG_AGENTD=${IMG_AGENTD:-guestagent/agentd:dev}
mkdir -p "$OUT"
(cd hack/imagebuild && go build -o "$ROOT/bin/imagebuild" .)
IB="$ROOT/bin/imagebuild -debs $OUT/debs"

# Same flags as the Dockerfiles' build stages.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/manager" ./cmd/manager
CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o "$OUT/agentd" ./cmd/agentd
$IB -dockerfile Dockerfile -artifact /manager="$OUT/manager" -tag "$IMG_MANAGER" -o "$OUT/manager.tar"
$IB -dockerfile Dockerfile.agentd -artifact /agentd="$OUT/agentd" -tag "$IMG_AGENTD" -o "$OUT/agentd.tar"

if [ "${1:-all}" = all ]; then
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/pause" ./hack/cluster/pause
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/probe" ./test/cluster/probe
  $IB -binary "$OUT/pause=/pause" -entrypoint /pause -user 65535:65535 -tag guestagent.local/pause:1 -o "$OUT/pause.tar"
  $IB -binary "$OUT/probe=/probe" -entrypoint /probe -user 65532:65532 -tag guestagent.local/probe:1 -o "$OUT/probe.tar"
fi
