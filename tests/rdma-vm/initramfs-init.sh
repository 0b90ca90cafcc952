#!/bin/sh
# tests/rdma-vm/initramfs-init.sh - /init of the guest's initramfs (busybox sh, PID 1).
# setup.sh copies it into the initramfs; run-in-vm.sh passes its parameters on the kernel
# command line (no spaces in the paths):
#   chorus.kver=K         kernel version (the unpacked modules tree)
#   chorus.mods=PATH      host path of lib/modules/K (in the cache)
#   chorus.share=PATH     where the writable results share (9p tag "share") is mounted
#   chorus.stage2=PATH    host path of the script run after switch_root (guest.sh)
# It loads virtio/9p/overlay, mounts the host's / read-only over 9p with a tmpfs overlay on top
# (the guest may write anywhere, nothing reaches the host), and switch_roots into stage 2.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "chorus-rdma-vm init: $*"; poweroff -f; sleep 10; }

for w in $(cat /proc/cmdline); do
    case $w in
    chorus.kver=*) K=${w#*=} ;;
    chorus.mods=*) MODS=${w#*=} ;;
    chorus.share=*) SHARE=${w#*=} ;;
    chorus.stage2=*) STAGE2=${w#*=} ;;
    esac
done
[ -n "$K" ] && [ -n "$MODS" ] && [ -n "$SHARE" ] && [ -n "$STAGE2" ] || fail "missing chorus.* parameters"

for m in $(cat /mods/order); do insmod /mods/$m || fail "insmod $m failed"; done

# cache=loose: fast, and the host's files are not expected to change during a run
O=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $O,ro,cache=loose hostroot /lower || fail "9p mount of the host's / failed"
mount -t tmpfs tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot ||
    fail "overlay mount failed"
R=/newroot
mkdir -p $R/lib/modules/$K $R$SHARE
# modprobe in the guest (and the kernel's request_module) look in /lib/modules/K
mount --bind /lower$MODS $R/lib/modules/$K || fail "bind mount of $MODS failed"
# the results share: no cache, so the host sees writes as they happen
mount -t 9p -o $O,rw share $R$SHARE || fail "9p mount of the results share failed"
mount --move /proc $R/proc
mount --move /sys $R/sys
mount --move /dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t tmpfs tmpfs $R/run
read -r up _ <$R/proc/uptime
echo "chorus-rdma-vm init: switching root at $up s"
exec switch_root $R /bin/bash $STAGE2
