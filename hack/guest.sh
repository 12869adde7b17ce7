#!/usr/bin/env bash
# Define/start/stop the TCG test guests used by the real-libvirt tests.
#
# usage: hack/guest.sh up NAME [MEM_MiB]   define (if needed) + start, wait for the agent's guest-ping
#        hack/guest.sh down NAME           agent shutdown (destroy as fallback) + undefine + remove files
#        hack/guest.sh xml NAME [MEM_MiB]  print the domain XML
# env:   QGA_ENV   dir with vmlinuz/initrd.gz (hack/libvirt-env.sh; default /tmp/qga-env)
#        QGA_DISK=1  attach a 16 MiB ext4 disk (serial "qgadisk-NAME", mounted at /mnt/data)
#        WITH_OGA=1  add the ovirt-guest-agent.0 channel (socket in GA_OGA_DIR, default
#                    /var/lib/libvirt/qemu/channels)
#        GA_NAMESPACE / GA_PUBLISH  add our <ga:placement> metadata element
#        BALLOON=1   a virtio memory balloon (without a statistics period) instead of none
#        VCPUS=N     N vCPUs (default 1)
#        PM=1        suspend to RAM enabled (<pm>: ACPI S3; the guest can then be PM-suspended)
# Always <domain type='qemu'> (TCG): /dev/kvm here is kvm-pvm and cannot run normal guests.
set -euo pipefail
export LIBVIRT_DEFAULT_URI=${LIBVIRT_DEFAULT_URI:-qemu:///system}
CMD=${1:?usage: $0 up|down|xml NAME [MEM_MiB]}
N=${2:?guest name}
MEM=${3:-128}
W=${QGA_ENV:-/tmp/qga-env}
CHDIR=${GA_OGA_DIR:-/var/lib/libvirt/qemu/channels}
source "$(dirname "${BASH_SOURCE[0]}")/virsh.sh"

xml() {
  local disk="" oga="" meta="" balloon="<memballoon model='none'/>"
  [ "${BALLOON:-0}" = 1 ] && balloon="<memballoon model='virtio'/>"
  local pm=""
  [ "${PM:-0}" = 1 ] && pm="<pm><suspend-to-mem enabled='yes'/><suspend-to-disk enabled='no'/></pm>"
  if [ "${QGA_DISK:-0}" = 1 ]; then
    [ -f "$W/$N.img" ] || mke2fs -q -t ext4 -F "$W/$N.img" 16M >/dev/null 2>&1
    disk="<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$W/$N.img'/><target dev='vda' bus='virtio'/><serial>qgadisk-$N</serial></disk>"
  fi
  if [ "${WITH_OGA:-0}" = 1 ]; then
    mkdir -p "$CHDIR"
    oga="<channel type='unix'><source mode='bind' path='$CHDIR/$N.ovirt-guest-agent.0'/><target type='virtio' name='ovirt-guest-agent.0'/></channel>"
  fi
  if [ -n "${GA_NAMESPACE:-}${GA_PUBLISH:-}" ]; then
    meta="<metadata><ga:placement xmlns:ga='http://guestagent.io/xmlns/libvirt/v1'${GA_NAMESPACE:+ namespace='$GA_NAMESPACE'}${GA_PUBLISH:+ publish='$GA_PUBLISH'}/></metadata>"
  fi
  cat <<XML
<domain type='qemu'>
  <name>$N</name>
  $meta
  <memory unit='MiB'>$MEM</memory>
  <vcpu>${VCPUS:-1}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$W/vmlinuz</kernel>
    <initrd>$W/initrd.gz</initrd>
    <cmdline>console=ttyS0 panic=-1 loglevel=4 qga.hostname=$N</cmdline>
  </os>
  <features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>
  $pm
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <interface type='user'><model type='virtio'/></interface>
    <serial type='file'><source path='$W/$N.console.log' append='on'/><target port='0'/></serial>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    $oga
    $disk
    $balloon
  </devices>
</domain>
XML
}

case $CMD in
xml) xml ;;
up)
  [ -f "$W/vmlinuz" ] && [ -f "$W/initrd.gz" ] || { echo "guest.sh: run hack/libvirt-env.sh first" >&2; exit 1; }
  virsh dominfo "$N" >/dev/null 2>&1 || xml | virsh define /dev/stdin >/dev/null
  t0=$(date +%s%N)
  [ "$(virsh domstate "$N")" = running ] || virsh start "$N" >/dev/null
  for _ in $(seq 600); do
    if virsh qemu-agent-command "$N" '{"execute":"guest-ping"}' --timeout 1 >/dev/null 2>&1; then
      echo "$N: agent up after $((($(date +%s%N) - t0) / 1000000)) ms"
      exit 0
    fi
    sleep 0.2
  done
  echo "$N: agent did not answer within 120 s; console: $W/$N.console.log" >&2
  exit 1
  ;;
down)
  if virsh dominfo "$N" >/dev/null 2>&1; then
    virsh shutdown "$N" --mode agent >/dev/null 2>&1 || true
    for _ in $(seq 50); do [ "$(virsh domstate "$N" 2>/dev/null)" = "shut off" ] && break; sleep 0.2; done
    virsh destroy "$N" >/dev/null 2>&1 || true
    virsh undefine "$N" >/dev/null
  fi
  rm -f "$W/$N.img" "$W/$N.console.log" "$CHDIR/$N.ovirt-guest-agent.0"
  ;;
*) echo "usage: $0 up|down|xml NAME [MEM_MiB]" >&2; exit 2 ;;
esac
