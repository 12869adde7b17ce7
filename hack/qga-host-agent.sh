#!/usr/bin/env bash
# Run Debian's qemu-ga on the HOST over a unix socket, as a protocol peer for tests.
# qemu-ga 7.2 serves one client at a time and exits on a client read error (ECONNRESET), so it
# runs in a respawn loop. It runs as root on the host: every command that could act on the host
# (shutdown, suspend, exec, file access, set-time, passwords) is blocked with -b.
#
# usage: hack/qga-host-agent.sh [SOCK] [STATEDIR]    (foreground; stop it with SIGTERM/SIGINT)
#   e.g. setsid hack/qga-host-agent.sh /tmp/qga-host.sock /tmp/qga-host-state & echo $! >loop.pid
#        ... kill $(cat loop.pid)     # stops the loop and the agent it started
set -u
SOCK=${1:-/tmp/qga-host.sock}
STATE=${2:-/tmp/qga-host-state}
BLOCK=guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-user-password,guest-exec,guest-file-open,guest-set-time
mkdir -p "$STATE" # qemu-ga fails without an existing state dir
child=""
stop() { [ -n "$child" ] && kill "$child" 2>/dev/null; wait 2>/dev/null; rm -f "$SOCK"; exit 0; }
trap stop TERM INT HUP
while :; do
  rm -f "$SOCK"
  /usr/sbin/qemu-ga -m unix-listen -p "$SOCK" -t "$STATE" -b "$BLOCK" &
  child=$!
  wait "$child"
  child=""
  sleep 0.1
done
