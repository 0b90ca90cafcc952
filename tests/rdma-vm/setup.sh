#!/usr/bin/env bash
# tests/rdma-vm/setup.sh - prepares the host for run-in-vm.sh (idempotent).
#
#   1. installs the Debian packages the guest harness needs (only the missing ones);
#   2. downloads Debian's own kernel (the versioned package linux-image-amd64 depends on),
#      unpacks it without installing it, and runs depmod on the unpacked tree: the host's
#      kernel has no RDMA, Debian's has rdma_rxe (soft-RoCE);
#   3. extracts the uncompressed vmlinux from it (boots faster under emulation) and builds a
#      small busybox initramfs that mounts the host's / in the guest.
#
# Everything goes to $CHORUS_RDMA_VM_CACHE (default /var/cache/chorus-rdma-vm):
#   kernel-version, kroot/ (unpacked .deb, ~400 MB), vmlinux-K (66 MB), initramfs.cpio.gz,
#   ready (stamp).
# A complete cache is reused as is (no network); remove the folder to start over.
# Every step is bounded by a timeout. Exit 0 when ready, 1 with a message otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CHORUS_RDMA_VM_CACHE:-/var/cache/chorus-rdma-vm}
# the stamp records the kernel and a hash of this script and the guest's /init, so that a
# change to either rebuilds the initramfs (a few seconds; the kernel is kept)
# (run-in-vm.sh computes the same to decide whether to call us)
FORMAT=$(cat "$HERE/setup.sh" "$HERE/initramfs-init.sh" | md5sum | cut -c1-12)
PKGS="qemu-system-x86 busybox-static cpio kmod xz-utils iproute2 ibverbs-providers libibverbs1 librdmacm1
      ibverbs-utils rdmacm-utils perftest rdma-core libibverbs-dev librdmacm-dev"

say() { echo "rdma-vm setup: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
trap 'say "ERROR: unexpected failure at line $LINENO"' ERR

# ---- 1. packages --------------------------------------------------------------------------
missing=()
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run as root or: apt-get install ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || die "apt-get update failed or timed out"
    timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed or timed out"
fi
# depmod/modprobe live in /sbin, not always on a user's PATH
export PATH=$PATH:/usr/sbin:/sbin
for c in qemu-system-x86_64 depmod modprobe cpio /bin/busybox ibv_devices rping ib_write_bw; do
    command -v "$c" >/dev/null || die "$c not found after installing packages"
done

# ---- the cache ------------------------------------------------------------------------------
ready() { # the stamp names the kernel and the format; the files must all be there
    local k
    k=$(cat "$CACHE/kernel-version" 2>/dev/null) || return 1
    [ "$(cat "$CACHE/ready" 2>/dev/null)" = "$k $FORMAT" ] &&
        [ -s "$CACHE/kroot/boot/vmlinuz-$k" ] && [ -s "$CACHE/kroot/lib/modules/$k/modules.dep" ] &&
        [ -s "$CACHE/initramfs.cpio.gz" ]
}
if ! ready; then # one setup at a time (concurrent runs may call us); check again once locked
    mkdir -p "$CACHE" && exec 9>"$CACHE/.lock" ||
        die "cannot write to $CACHE (run as root, or set CHORUS_RDMA_VM_CACHE to a writable folder)"
    timeout 900 flock 9 || die "timed out waiting for another setup.sh holding $CACHE/.lock"
fi
if ready; then
    say "cache $CACHE ready (kernel $(cat "$CACHE/kernel-version"))"
    exit 0
fi
rm -f "$CACHE/ready"

# ---- 2. Debian's kernel, unpacked (not installed) --------------------------------------------
K=$(cat "$CACHE/kernel-version" 2>/dev/null || true)
if [ -z "$K" ] || [ ! -s "$CACHE/kroot/boot/vmlinuz-$K" ] ||
    [ ! -s "$CACHE/kroot/lib/modules/$K/modules.dep" ]; then
    depends() { apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { sub("linux-image-", "", $2); print $2; exit }'; }
    download() { # apt's _apt user may not write here: apt then downloads as root, with a warning
        say "downloading linux-image-$K"
        rm -rf "$CACHE/debs" && mkdir -p "$CACHE/debs" &&
            (cd "$CACHE/debs" && timeout 600 apt-get download -qq "linux-image-$K" 2>&1 |
                grep -v 'unsandboxed' >&2 || true)
        deb=$(ls "$CACHE/debs"/linux-image-"${K}"_*.deb 2>/dev/null | head -n 1 || true)
        [ -n "$deb" ]
    }
    K=$(depends) deb=
    [ -n "$K" ] && download || { # no or stale package lists: refresh once and retry
        timeout 300 apt-get update -qq || die "apt-get update failed or timed out"
        K=$(depends)
        [ -n "$K" ] || die "cannot tell which kernel linux-image-amd64 depends on (apt-cache depends)"
        download || die "apt-get download linux-image-$K failed"
    }
    say "unpacking linux-image-$K"
    rm -rf "$CACHE/kroot" "$CACHE/kroot.new"
    mkdir -p "$CACHE/kroot.new"
    timeout 300 dpkg-deb -x "$deb" "$CACHE/kroot.new" || die "dpkg-deb -x $deb failed"
    timeout 300 depmod -b "$CACHE/kroot.new" "$K" || die "depmod failed"
    mv "$CACHE/kroot.new" "$CACHE/kroot"
    rm -rf "$CACHE/debs"   # 68 MB we no longer need
    echo "$K" >"$CACHE/kernel-version"
fi

# ---- 2b. the uncompressed kernel, booted directly (PVH entry) --------------------------------
# Under emulation, the bzImage spends seconds (15 s on a loaded host) unpacking itself before the
# kernel starts; qemu boots the ELF vmlinux inside it directly if it has a PVH entry point
# (CONFIG_PVH). Optional: run-in-vm.sh falls back to the bzImage when vmlinux-K is absent.
if [ ! -s "$CACHE/vmlinux-$K" ] && grep -q '^CONFIG_PVH=y' "$CACHE/kroot/boot/config-$K" 2>/dev/null; then
    bz=$CACHE/kroot/boot/vmlinuz-$K
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n 1 | cut -d: -f1 || true)
    if [ -n "$off" ]; then # xz reports the padding after the stream as an error: check the ELF
        tail -c +$((off + 1)) "$bz" | timeout 120 xz -dc >"$CACHE/vmlinux.new" 2>/dev/null || true
        if [ "$(head -c 4 "$CACHE/vmlinux.new" | od -An -c | tr -d ' ')" = '177ELF' ]; then
            mv "$CACHE/vmlinux.new" "$CACHE/vmlinux-$K"
        fi
    fi
    rm -f "$CACHE/vmlinux.new"
    [ -s "$CACHE/vmlinux-$K" ] || say "note: could not extract vmlinux; booting the slower bzImage"
fi

# ---- 3. initramfs: busybox + the modules needed to mount the host's / ------------------------
# Only virtio-pci, 9p and overlay (+ their dependencies) are loaded here with insmod; everything
# else (rdma_rxe, veth, ...) is loaded later with the host's modprobe from the unpacked tree.
say "building the initramfs for $K"
W=$(mktemp -d "$CACHE/initramfs.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{bin,dev,proc,sys,lower,upper,newroot,mods}
cp /bin/busybox "$W/bin/"
for a in sh mount umount insmod mkdir cat sed poweroff switch_root sleep echo; do
    ln -s busybox "$W/bin/$a"
done
for m in virtio_pci 9p 9pnet_virtio overlay; do
    modprobe -d "$CACHE/kroot" -S "$K" --show-depends "$m" || die "modprobe --show-depends $m"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r f; do
    b=$(basename "$f")
    case $b in # busybox insmod cannot read compressed modules
    *.xz) xz -dc "$f" >"$W/mods/${b%.xz}"; b=${b%.xz} ;;
    *.zst) zstd -qdc "$f" >"$W/mods/${b%.zst}"; b=${b%.zst} ;;
    *) cp "$f" "$W/mods/" ;;
    esac
    echo "$b" >>"$W/mods/order"
done
[ -s "$W/mods/order" ] || die "no modules found for the initramfs"
cp "$HERE/initramfs-init.sh" "$W/init"
chmod +x "$W/init"
(cd "$W" && find . | cpio -o -H newc --quiet | gzip -1) >"$CACHE/initramfs.cpio.gz.new" ||
    die "cpio failed"
mv "$CACHE/initramfs.cpio.gz.new" "$CACHE/initramfs.cpio.gz"
echo "$K $FORMAT" >"$CACHE/ready"
say "cache $CACHE ready (kernel $K)"
