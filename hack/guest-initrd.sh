#!/usr/bin/env bash
# Build the test guests' initramfs: busybox-static, the host's qemu-ga with its shared libraries,
# and the virtio (console, net, blk, balloon)/ext4 kernel modules, with an /init that brings up lo/eth0 (slirp), creates the
# /dev/virtio-ports/<name> links (there is no udev) and lets busybox init respawn qemu-ga.
#
# usage: hack/guest-initrd.sh KMODDIR OUT.gz     (KMODDIR = .../lib/modules/<version>)
# env:   OGA_GUEST_BIN  optional static binary, installed as /usr/sbin/oga-guest and respawned on
#                       /dev/virtio-ports/ovirt-guest-agent.0 (only when the guest has that port)
set -euo pipefail
KMOD=${1:?kernel modules dir}
OUT=${2:?output initrd path}
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT

MODS="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console virtio_balloon failover net_failover virtio_net virtio_blk crc16 mbcache jbd2 crc32c_generic ext4"

mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,lib/modules,mnt,var}
ln -s ../run "$R/var/run"
install -m 0755 /bin/busybox "$R/bin/busybox"
for applet in $("$R/bin/busybox" --list); do
  [ -e "$R/bin/$applet" ] || ln -s busybox "$R/bin/$applet"
done
# qemu-ga's guest-set-time runs /sbin/hwclock and reports "not supported" without it
ln -s ../bin/busybox "$R/sbin/hwclock"

# qemu-ga is dynamically linked: copy it with every library ldd names (loader included)
install -m 0755 /usr/sbin/qemu-ga "$R/usr/sbin/qemu-ga"
for lib in $(ldd /usr/sbin/qemu-ga | grep -oE '/[^ ]+'); do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done

for m in $MODS; do
  f=$(find "$KMOD" -name "$m.ko" -print -quit)
  [ -n "$f" ] || { echo "guest-initrd: module $m not found under $KMOD" >&2; exit 1; }
  cp "$f" "$R/lib/modules/"
done

cp /etc/os-release "$R/etc/os-release"
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"

OGA_LINE=""
if [ -n "${OGA_GUEST_BIN:-}" ]; then
  if file -L "$OGA_GUEST_BIN" 2>/dev/null | grep -q 'dynamically linked'; then
    echo "guest-initrd: $OGA_GUEST_BIN must be a static binary (CGO_ENABLED=0)" >&2; exit 1
  fi
  install -m 0755 "$OGA_GUEST_BIN" "$R/usr/sbin/oga-guest"
  # the wrapper idles when the guest has no OGA port, so init's respawn does not spin
  cat >"$R/usr/sbin/oga-guest-run" <<'EOS'
#!/bin/sh
P=/dev/virtio-ports/ovirt-guest-agent.0
[ -e "$P" ] || exec sleep 3600
exec /usr/sbin/oga-guest -device "$P"
EOS
  chmod 0755 "$R/usr/sbin/oga-guest-run"
  OGA_LINE="::respawn:/usr/sbin/oga-guest-run"
  # Guest hooks, as the real agent runs them from hooks.d/<event>/: each appends to
  # /run/hooks.log (tmpfs, so a reboot clears it), which the e2e suite reads back.
  for ev in before_migration after_migration before_hibernation after_hibernation; do
    mkdir -p "$R/etc/ovirt-guest-agent/hooks.d/$ev"
    # before_hibernation takes 8 s and says when it starts in /run/hooks-started.log (the e2e
    # suite kills agentd while it runs)
    pause=""; [ "$ev" = before_hibernation ] && pause="echo $ev >>/run/hooks-started.log; sleep 8; "
    printf '#!/bin/sh\n%secho "%s $(date +%%s)" >>/run/hooks.log\n' "$pause" "$ev" >"$R/etc/ovirt-guest-agent/hooks.d/$ev/10-log"
    chmod 0755 "$R/etc/ovirt-guest-agent/hooks.d/$ev/10-log"
  done
fi

cat >"$R/init" <<EOS
#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs run /run; mount -t tmpfs tmp /tmp
for m in $MODS; do insmod /lib/modules/\$m.ko 2>/dev/null; done
for a in \$(cat /proc/cmdline); do case \$a in qga.hostname=*) hostname "\${a#qga.hostname=}";; esac; done
ip link set lo up
# optional test disk (QGA_DISK=1) gives guest-get-fsinfo / guest-get-disks something to report
if [ -b /dev/vda ]; then mkdir -p /mnt/data; mount -t ext4 /dev/vda /mnt/data; fi
# no udev either: qemu-ga reads disk serials (ID_SERIAL) from the udev database, so write the
# entries udev would have written for virtio disks
mkdir -p /run/udev/data
for b in /sys/block/vd*; do
  [ -s "\$b/serial" ] && echo "E:ID_SERIAL=\$(cat \$b/serial)" >/run/udev/data/b\$(cat \$b/dev)
done
if ip link show eth0 >/dev/null 2>&1; then
  ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
fi
# no udev: make /dev/virtio-ports/<name> ourselves
mkdir -p /dev/virtio-ports
for i in \$(seq 50); do [ -n "\$(ls /sys/class/virtio-ports/ 2>/dev/null)" ] && break; sleep 0.1; done
for p in /sys/class/virtio-ports/*; do [ -e "\$p/name" ] && ln -sf ../\$(basename \$p) /dev/virtio-ports/\$(cat \$p/name); done
echo "guest-initrd: init done, ports: \$(ls /dev/virtio-ports)" >/dev/console
exec /bin/busybox init
EOS
chmod 0755 "$R/init"

{
  echo '::respawn:/usr/sbin/qemu-ga -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -t /run -l /dev/console'
  [ -z "$OGA_LINE" ] || echo "$OGA_LINE"
  echo '::shutdown:/bin/sync'
} >"$R/etc/inittab"

# qemu-ga execs: /sbin/shutdown -h -P|-H|-r +0 "hypervisor initiated shutdown" (mode is NOT \$1)
cat >"$R/sbin/shutdown" <<'EOS'
#!/bin/sh
sync
case " $* " in
*" -r "*) exec reboot -f ;;
*" -H "*) exec halt -f ;;
*) exec poweroff -f ;;
esac
EOS
chmod 0755 "$R/sbin/shutdown"

(cd "$R" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "guest-initrd: $OUT ($(du -h "$OUT" | cut -f1))${OGA_GUEST_BIN:+ with oga-guest}"
