#!/usr/bin/env bash
# The real-cluster tier: a single-node Kubernetes cluster on this machine (hack/cluster.sh), the
# images built here (hack/images.sh) imported into its containerd, then test/cluster installs the
# product with Helm and with kustomize and checks it through the API against the real libvirtd.
# `up; down` runs twice around the tests; each `down` must leave the host as it was before.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
log() { echo "test-cluster: $*" >&2; }

bash hack/images.sh all >/dev/null
bash hack/envtest-assets.sh --cluster >/dev/null
before=$(bash hack/cluster.sh fingerprint) || { log "cannot read the host's state (hack/cluster.sh fingerprint)"; exit 1; }
check_host() {
  local after
  after=$(bash hack/cluster.sh fingerprint) || { log "cannot read the host's state (hack/cluster.sh fingerprint)"; return 1; }
  if [ "$before" != "$after" ]; then
    log "the host differs from before \`up\` after \`down\` ($1):"
    diff <(echo "$before") <(echo "$after") >&2 || true
    return 1
  fi
  log "host as before \`up\` ($1)"
}

t0=$(date +%s)
bash hack/cluster.sh up
log "first up: node Ready after $(($(date +%s) - t0)) s"
bash hack/cluster.sh down
check_host "first down"

t0=$(date +%s)
trap 'bash hack/cluster.sh down >/dev/null 2>&1 || true' EXIT
bash hack/cluster.sh up
log "second up: node Ready after $(($(date +%s) - t0)) s"
for img in manager agentd probe; do bash hack/cluster.sh import "bin/images/$img.tar"; done
eval "$(bash hack/cluster.sh env)"

log=${CLUSTER_TEST_LOG:-/tmp/guestagent-cluster-test.log}
set +e
go test -count=1 -timeout 30m -v ./test/cluster/... >"$log" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  cat "$log"
  log "component logs: $(bash hack/cluster.sh env | sed -n 's/^export CLUSTER_LOGS=//p')"
  bash hack/cluster.sh status || true
else
  grep -E '^(=== RUN|\s*--- |PASS|FAIL|ok|panic)|cluster:' "$log"
fi
trap - EXIT
bash hack/cluster.sh down
check_host "second down"
exit "$rc"
