#!/usr/bin/env bash
# Real libvirt test environment for agentd: a root libvirtd without systemd (TCG only) plus a
# Debian guest kernel and a busybox initramfs carrying the host's qemu-ga (see guest-initrd.sh).
#
# usage: hack/libvirt-env.sh [up]     configure + start libvirtd if it does not answer, build guest files
#        hack/libvirt-env.sh files    only build the guest files (kernel, initrd) in QGA_ENV
#        hack/libvirt-env.sh stop     stop the libvirtd this script started (guests keep running)
#        hack/libvirt-env.sh env      print the exports the real-libvirt tests need
# env:   QGA_ENV  work dir for kernel/initrd/disk images (default /tmp/qga-env)
# Idempotent; needs root and the packages from hack/install-deps.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${QGA_ENV:-/tmp/qga-env}
URI=qemu:///system
source "$HERE/virsh.sh"

answering() { virsh -c "$URI" version >/dev/null 2>&1; }

configure() {
  # The QEMU driver resolves its built-in default user before it reads qemu.conf, so the
  # user has to exist even though QEMU runs as root with the conf below.
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null ||
    useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  install -d /etc/libvirt /var/log/libvirt /var/lib/libvirt/qemu/channels
  # root QEMU, no cgroups/namespaces/labels, stdio straight to files (no virtlogd needed)
  local qconf='user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"'
  local dconf='log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
auth_unix_rw = "none"
auth_unix_ro = "none"'
  [ "$(cat /etc/libvirt/qemu.conf 2>/dev/null)" = "$qconf" ] || printf '%s\n' "$qconf" >/etc/libvirt/qemu.conf
  [ "$(cat /etc/libvirt/libvirtd.conf 2>/dev/null)" = "$dconf" ] || printf '%s\n' "$dconf" >/etc/libvirt/libvirtd.conf
}

start_daemon() {
  answering && return 0
  libvirtd -d # pid file /run/libvirtd.pid; the cold start probes QEMU capabilities (~8 s)
  for _ in $(seq 300); do answering && return 0; sleep 0.1; done
  echo "libvirt-env: libvirtd did not answer within 30 s; see /var/log/libvirt/libvirtd.log" >&2
  return 1
}

guest_files() {
  mkdir -p "$W"
  if [ ! -f "$W/vmlinuz" ] || ! ls -d "$W"/kroot/lib/modules/* >/dev/null 2>&1; then
    # Debian's kernel, unpacked only (no postinst, no initramfs-tools)
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
    [ -n "$pkg" ] || { echo "libvirt-env: no linux-image package found (apt-get update?)" >&2; return 1; }
    (cd "$W" && rm -f ./*.deb && apt-get download "$pkg" >/dev/null && rm -rf kroot &&
      dpkg-deb -x "$pkg"_*.deb kroot && rm -f "$pkg"_*.deb)
    cp "$W"/kroot/boot/vmlinuz-* "$W/vmlinuz"
  fi
  local kmod
  kmod=$(ls -d "$W"/kroot/lib/modules/* | head -1)
  # rebuild the initrd when missing, when its build script changed (e.g. its module list), or
  # when an OGA guest binary is requested/changed
  local stamp="$W/initrd.stamp" want
  want="script=$(sha256sum "$HERE/guest-initrd.sh" | cut -c1-16):oga=${OGA_GUEST_BIN:-}"
  [ -z "${OGA_GUEST_BIN:-}" ] || want="$want:$(stat -c %Y "$OGA_GUEST_BIN")"
  if [ ! -f "$W/initrd.gz" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$HERE/guest-initrd.sh" "$kmod" "$W/initrd.gz"
    echo "$want" >"$stamp"
  fi
}

stop_daemon() {
  local pid
  pid=$(cat /run/libvirtd.pid 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "libvirt-env: libvirtd ($pid) stopped"
  else
    echo "libvirt-env: libvirtd not running"
  fi
}

case "${1:-up}" in
up)
  [ "$(id -u)" -eq 0 ] || { echo "libvirt-env: must run as root" >&2; exit 1; }
  command -v libvirtd >/dev/null || { echo "libvirt-env: run hack/install-deps.sh first" >&2; exit 1; }
  configure
  start_daemon
  guest_files
  echo "libvirt-env: ready ($(virsh -c "$URI" version | awk '/hypervisor/{print $NF}')), kernel=$W/vmlinuz initrd=$W/initrd.gz"
  ;;
files) guest_files ;;
stop) stop_daemon ;;
env) echo "export GA_REAL_LIBVIRT=1 QGA_ENV=$W LIBVIRT_DEFAULT_URI=$URI" ;;
*) echo "usage: $0 [up|files|stop|env]" >&2; exit 2 ;;
esac
