#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need. Idempotent and silent when every
# package is present (no apt, no root needed then); installing needs root.
#   libvirt-dev + pkg-config + gcc : cgo build of libvirt.org/go/libvirt
#   libvirt-daemon(-driver-qemu), libvirt-clients, qemu-system-x86 : the real libvirtd + TCG guests
#   qemu-guest-agent : the real qemu-ga (host socket peer and guest initramfs)
#   busybox-static, cpio, e2fsprogs : guest initramfs and its optional ext4 disk
#   socat : manual poking at agent sockets
#   runc, containernetworking-plugins, iptables, conntrack, openssl : the real-cluster tier
#     (hack/cluster.sh; hack/test-cluster.sh reads the host's iptables before the cluster starts)
set -euo pipefail
PKGS=(libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
      qemu-guest-agent qemu-utils busybox-static cpio socat e2fsprogs pkg-config gcc git make
      runc containernetworking-plugins iptables conntrack openssl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
