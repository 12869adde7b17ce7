#!/usr/bin/env bash
# Runs one tier of the test suite. Called by the Makefile; usable directly.
#   unit          go test -race of every package but test/e2e: unit tests, envtest (real
#                 kube-apiserver + etcd), libvirt's test:/// driver, Debian's qemu-ga on a host socket
#   real          tests against a real libvirtd with TCG guests running the real qemu-ga
#   migration     live migration between two real libvirtd nodes on this machine (hack/two-nodes.sh),
#                 one in-process agentd per node; the nodes are torn down also on failure
#   e2e           the end-to-end suite (test/e2e): real libvirtd + guests + control plane + binaries,
#                 run under a pseudo-terminal
#   fuzz [TIME]   every fuzz target for TIME (default 20s) each
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(bash hack/envtest-assets.sh)}
GOTEST=(go test -race -count=1)

case "${1:-unit}" in
unit)
  "${GOTEST[@]}" -timeout 20m $(go list ./... | grep -v -e /test/e2e -e /test/cluster)
  # the image builder is its own module (hack/imagebuild)
  (cd hack/imagebuild && go test -count=1 ./...)
  ;;
real)
  # Real libvirtd + TCG guests running the real qemu-ga: boots, tests, tears the guests down.
  bash hack/test-real-libvirt.sh -timeout 20m
  ;;
migration)
  bash hack/test-migration.sh
  ;;
e2e)
  # Full verbose output goes to a log; the console gets the test lines, and everything on failure.
  # The suite runs under a pseudo-terminal (script(1)), as when a person runs it from a shell: host
  # tools behave differently with a controlling terminal (virsh then starts polkit's text agent,
  # which prints a warning), and CI, which has none, would not see such a break otherwise.
  log=${E2E_LOG:-/tmp/guestagent-e2e.log}
  set +e
  script -qec "$(printf '%q ' "${GOTEST[@]}" -timeout 30m -v ./test/e2e/...) >$(printf '%q' "$log") 2>&1" /dev/null
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    cat "$log"
  else
    grep -E '^(=== RUN|\s*--- |PASS|FAIL|ok|panic)|e2e:' "$log"
  fi
  exit "$rc"
  ;;
fuzz)
  t=${2:-20s}
  # Every FuzzXxx in the module, one at a time (go test -fuzz takes one target per package run).
  grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
    pkg=./$(dirname "${f#./}")
    for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$f" | awk '{print $2}'); do
      echo "fuzz: $pkg $fn for $t"
      # The fuzzing engine itself sometimes ends a run with a bare "context deadline exceeded" when
      # the time is up (no failing input is written): run such a target once more. A real finding
      # prints "Failing input written to" and fails at once.
      if ! out=$(go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" "$pkg" 2>&1); then
        echo "$out"
        if grep -q 'Failing input written to' <<<"$out" || ! grep -q 'context deadline exceeded' <<<"$out"; then
          exit 1
        fi
        echo "fuzz: $fn ended with the engine's deadline error and no failing input; running it again"
        go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" "$pkg"
      else
        echo "$out" | tail -1
      fi
    done
  done
  ;;
*)
  echo "usage: $0 unit|real|migration|e2e|fuzz [TIME]" >&2; exit 2 ;;
esac
