#!/usr/bin/env bash
# tests/rdma-vm/run-in-vm.sh - runs a command inside a qemu guest that has soft-RoCE devices.
#
# Usage: run-in-vm.sh [options] -- CMD [ARGS...]
#   --devices 1|2     1: rxe0 on dummy0 (10.88.0.1); 2 (default): rxe0 on veth0 (10.88.1.1) and
#                     rxe1 on veth1 (10.88.1.2), routed so that they reach each other
#   --timeout S       bound on the whole run, boot included (default 600); exit 124 on expiry
#   --smp N           guest CPUs (default 2)        --mem M   guest memory in MiB (default 2048)
#   --env NAME=VALUE  one more environment variable for CMD (repeatable)
#   --console         also show the guest's serial console (kernel, setup) on stderr
#   --keep            keep the run's temp folder (console log, outputs) and print its path
#
# The guest boots Debian's kernel (setup.sh caches it; run here if the cache is not ready) under
# qemu TCG with this host's / as its root, read-only under a tmpfs overlay: every host program
# and file is there, writes stay in the guest. CMD runs as root in the host's cwd with PATH, HOME,
# LANG, LC_ALL, TMPDIR, LD_LIBRARY_PATH, CHORUS_*, UCX_*, MPIR_CVAR_*, HYDRA_* and the --env ones
# passed through, plus CHORUS_RDMA_VM=1, CHORUS_RDMA_DEVICES (rxe0[,rxe1]), CHORUS_RDMA_ADDRS
# (the devices' IPv4 addresses), CHORUS_RDMA_NETDEVS. Its stdout and stderr are streamed here
# through a writable 9p share. Exit status: CMD's; 124 on timeout; 125 if the harness failed.
# Debugging: --console, --keep, CHORUS_RDMA_VM_KARGS (more kernel arguments, e.g. loglevel=7),
# CHORUS_RDMA_VM_VERBOSE=1 (wall time), CHORUS_RDMA_VM_CACHE (as for setup.sh).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CHORUS_RDMA_VM_CACHE:-/var/cache/chorus-rdma-vm}
DEVICES=2 LIMIT=600 SMP=2 MEM=2048 CONSOLE=0 KEEP=0
extra_env=()
usage() { sed -n '4,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 125; }
die() { echo "run-in-vm: $*" >&2; exit 125; }
while [ $# -gt 0 ]; do
    case $1 in
    --devices) DEVICES=${2:-}; shift 2 ;;
    --timeout) LIMIT=${2:-}; shift 2 ;;
    --smp) SMP=${2:-}; shift 2 ;;
    --mem) MEM=${2:-}; shift 2 ;;
    --env) [[ ${2:-} == [A-Za-z_]*=* ]] || die "--env wants NAME=VALUE"; extra_env+=("$2"); shift 2 ;;
    --console) CONSOLE=1; shift ;;
    --keep) KEEP=1; shift ;;
    --) shift; break ;;
    -h | --help) usage ;;
    *) echo "run-in-vm: unknown option $1" >&2; usage ;;
    esac
done
[ $# -gt 0 ] || usage
[[ $DEVICES == [12] ]] || die "--devices must be 1 or 2"
for v in "$LIMIT" "$SMP" "$MEM"; do [[ $v =~ ^[0-9]+$ ]] || die "not a number: '$v'"; done

# ---- the cached kernel and initramfs (setup.sh is quick when they are ready) -----------------
# (the stamp names the kernel and a hash of setup.sh and initramfs-init.sh: see setup.sh)
K=$(cat "$CACHE/kernel-version" 2>/dev/null || true)
stamp="$K $(cat "$HERE/setup.sh" "$HERE/initramfs-init.sh" | md5sum | cut -c1-12)"
if [ "$(cat "$CACHE/ready" 2>/dev/null)" != "$stamp" ] || ! command -v qemu-system-x86_64 >/dev/null; then
    "$HERE/setup.sh" || die "setup.sh failed"
    K=$(cat "$CACHE/kernel-version")
fi

# ---- one guest at a time ----------------------------------------------------------------------
# Two emulated guests on a small machine starve each other until their commands time out, so a
# run waits (within its own bound) for the one before it. The lock goes with this process.
exec 9>>"$CACHE/guest.lock" || die "cannot open $CACHE/guest.lock"
if ! flock -n 9; then
    echo "run-in-vm: waiting for another guest to finish (lock $CACHE/guest.lock)" >&2
    flock -w "$LIMIT" 9 || { echo "run-in-vm: another guest ran for all of ${LIMIT} s" >&2; exit 124; }
fi

# ---- a private folder per run: concurrent runs do not share anything writable ----------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/chorus-rdma-vm.XXXXXX") || die "mktemp failed"
SHARE=$RUN/share
mkdir "$SHARE"
for p in "$SHARE" "$CACHE" "$HERE"; do # they go on the kernel command line, split at spaces
    [[ $p != *[[:space:]]* ]] || die "path with white space not supported: $p"
done
qpid= tails=()
cleanup() { # qemu (under timeout, $qpid) and the tails must not outlive us
    if [ -n "$qpid" ]; then
        local q
        q=$(ps -o pid= --ppid "$qpid" 2>/dev/null)
        kill "$qpid" $q 2>/dev/null && sleep 0.5
        kill -KILL "$qpid" $q 2>/dev/null
    fi
    [ ${#tails[@]} -gt 0 ] && kill "${tails[@]}" 2>/dev/null
    if [ "$KEEP" = 1 ]; then echo "run-in-vm: kept $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'echo "run-in-vm: interrupted" >&2; exit 130' INT TERM HUP

echo "DEVICES=$DEVICES LIMIT=$LIMIT T0=$(date +%s)" >"$SHARE/config"
{   # the command, its cwd and environment, quoted for the guest's bash
    echo "# written by run-in-vm.sh"
    env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | sort -u | while read -r n; do
        case $n in
        PATH | HOME | LANG | LC_ALL | TMPDIR | LD_LIBRARY_PATH | CHORUS_* | UCX_* | MPIR_CVAR_* | HYDRA_*)
            printf 'export %s=%q\n' "$n" "${!n}" ;;
        esac
    done
    for e in "${extra_env[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
    printf '. %q\n' "$SHARE/rdma.env" # written by guest.sh: the devices it made
    printf 'cd %q || exit 126\n' "$PWD"
    printf 'exec'
    printf ' %q' "$@"
    echo
} >"$SHARE/cmd.sh"
: >"$SHARE/stdout"
: >"$SHARE/stderr"
: >"$RUN/console.log"

# ---- boot --------------------------------------------------------------------------------------
# TCG (software emulation): no dependency on /dev/kvm, which cannot always run a stock kernel.
# No network card: RDMA runs over dummy/veth devices inside the guest. -no-reboot turns the
# guest's poweroff (or a panic) into qemu exiting. no_timer_check: on a busy host the emulated
# timer can miss the kernel's IO-APIC timer check, which then panics at boot ("IO-APIC + timer
# doesn't work!"); the check is for broken hardware timers, not for a slow emulator.
KERNEL=$CACHE/vmlinux-$K # uncompressed: no slow self-decompression under emulation
[ -s "$KERNEL" ] || KERNEL=$CACHE/kroot/boot/vmlinuz-$K
t0=$(date +%s)
timeout -k 5 "$LIMIT" qemu-system-x86_64 -nodefaults -display none -monitor none \
    -accel tcg,thread=multi -cpu max -smp "$SMP" -m "$MEM" -nic none -no-reboot \
    -serial "file:$RUN/console.log" \
    -kernel "$KERNEL" -initrd "$CACHE/initramfs.cpio.gz" \
    -append "console=ttyS0 loglevel=4 panic=-1 no_timer_check chorus.kver=$K chorus.mods=$CACHE/kroot/lib/modules/$K chorus.share=$SHARE chorus.stage2=$HERE/guest.sh ${CHORUS_RDMA_VM_KARGS:-}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$SHARE,mount_tag=share,security_model=none" \
    </dev/null >"$RUN/qemu.log" 2>&1 &
qpid=$!
# stream CMD's output as the guest writes it; tail exits once qemu is gone
tail -q -n +1 -s 0.2 -f --pid=$qpid "$SHARE/stdout" &
tails+=($!)
tail -q -n +1 -s 0.2 -f --pid=$qpid "$SHARE/stderr" >&2 &
tails+=($!)
if [ "$CONSOLE" = 1 ]; then
    tail -q -n +1 -s 0.2 -f --pid=$qpid "$RUN/console.log" > >(sed -u 's/^/[console] /' >&2) &
    tails+=($!)
fi
wait $qpid
qrc=$?
qpid=
wait "${tails[@]}" 2>/dev/null
tails=()
dt=$(($(date +%s) - t0))

if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
    echo "run-in-vm: timed out after $LIMIT s (guest killed); last console lines:" >&2
    tail -n 15 "$RUN/console.log" | sed 's/^/    | /' >&2
    exit 124
fi
if ! [ -s "$SHARE/rc" ]; then
    echo "run-in-vm: the guest ended without a result after $dt s (qemu exit $qrc)" >&2
    tail -n 30 "$RUN/qemu.log" "$RUN/console.log" 2>/dev/null | sed 's/^/    | /' >&2
    exit 125
fi
rc=$(cat "$SHARE/rc")
[ "$rc" = 124 ] && echo "run-in-vm: the command timed out inside the guest (budget $LIMIT s)" >&2
[ "${CHORUS_RDMA_VM_VERBOSE:-0}" = 1 ] && echo "run-in-vm: exit $rc after $dt s" >&2
exit "$rc"
