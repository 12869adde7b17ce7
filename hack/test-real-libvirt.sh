#!/usr/bin/env bash
# Run agentd's libvirt/QGA/memory-statistics test tiers against the real stack: set up libvirtd + guest files, boot
# the pre-booted test guests, run the virt and qga packages with -race (real tier enabled), and
# shut the guests down and undefine them again (also on failure). libvirtd is left running.
#
# usage: hack/test-real-libvirt.sh [extra go test args...]     (root; after hack/install-deps.sh)
# env:   GA_TEST_GUESTS  comma-separated pre-booted guest names (default ga-t1,ga-t2)
set -euo pipefail
cd "$(dirname "$0")/.."
hack/libvirt-env.sh up
eval "$(hack/libvirt-env.sh env)"
export GA_TEST_GUESTS=${GA_TEST_GUESTS:-ga-t1,ga-t2}
IFS=, read -r -a guests <<<"$GA_TEST_GUESTS"
teardown() { for g in "${guests[@]}" ga-life ga-virt-life ga-mem ga-freeze ga-hot; do hack/guest.sh down "$g" || true; done; }
trap teardown EXIT
pids=()
for g in "${guests[@]}"; do hack/guest.sh up "$g" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
# -p 1: the qga tier restarts libvirtd, which must not overlap the virt tier
go test -race -count=1 -p 1 "$@" ./agentd/virt/... ./agentd/qga/... ./agentd/memstats/...
