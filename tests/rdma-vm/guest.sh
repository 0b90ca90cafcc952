#!/bin/bash
# tests/rdma-vm/guest.sh - stage 2 of the guest (PID 1 after switch_root; bash from the host's /).
# Not for direct use: run-in-vm.sh boots the guest with chorus.share=DIR on the kernel command
# line, and DIR (the results share, also the host's path) holds
#   config   DEVICES=1|2, LIMIT=seconds (the whole run's budget, boot included), T0=host's
#            start time (epoch seconds)
#   cmd.sh   the command, its cwd and environment, written by run-in-vm.sh
# This script loads soft-RoCE, creates the devices, runs cmd.sh with its stdout/stderr going to
# DIR/stdout and DIR/stderr (the host streams them), writes its exit status to DIR/rc and powers
# off. Setup messages go to the serial console (run-in-vm.sh --console shows it).
# Every program started here is read over 9p by an emulated CPU (~0.3 s each): hence bash
# builtins and one `ip -batch` rather than many small commands.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
read -r cmdline </proc/cmdline
SHARE=${cmdline#*chorus.share=}
SHARE=${SHARE%% *}
. "$SHARE/config"
log() { read -r up _ </proc/uptime; echo "chorus-rdma-vm [$up s]: $*"; }
finish() { # rc: record it, flush, power off (PID 1 must never just exit: kernel panic)
    echo "$1" >"$SHARE/rc"
    sync
    exec /bin/busybox poweroff -f
}
setup_failed() { # the harness, not CMD, failed: say so on CMD's stderr, which the host shows
    {
        echo "run-in-vm (guest): $*"
        dmesg | grep -iE "rxe|infiniband|crc32|ib_core|ib_uverbs" | tail -n 20
    } >>"$SHARE/stderr" 2>&1
    finish 125
}

# a hostname of our own, resolvable (MPICH's Hydra looks its host up); the overlay is writable
echo chorus-rdma-vm >/proc/sys/kernel/hostname
echo "127.0.1.1 chorus-rdma-vm" >>/etc/hosts

log "loading modules"
# rdma_rxe needs crc32, which modules.dep does not name: without crc32_generic,
# `rdma link add` fails with "No such file or directory" (dmesg: failed to init crc32 algorithm)
modprobe -a rdma_rxe rdma_ucm ib_uverbs crc32_generic dummy veth || setup_failed "modprobe failed"

log "creating $DEVICES rxe device(s)"
if [ "$DEVICES" = 1 ]; then
    # one device: several processes share rxe0, like ranks on one HCA
    DEVS=(rxe0) ADDRS=(10.88.0.1) NETDEVS=(dummy0)
    net="link add dummy0 type dummy
addr add 10.88.0.1/24 dev dummy0
link set dummy0 up"
else
    # two devices on the ends of a veth pair. Both addresses are local to this one namespace,
    # so by default the kernel routes between them via lo and rxe drops the packets: make
    # traffic from one to the other leave through its own veth end (policy rules looked up
    # before the local table) and be accepted on arrival (accept_local, no reverse-path
    # filter). (rxe in this kernel only works in the initial network namespace, so no netns.)
    DEVS=(rxe0 rxe1) ADDRS=(10.88.1.1 10.88.1.2) NETDEVS=(veth0 veth1)
    net="link add veth0 type veth peer name veth1
addr add 10.88.1.1/24 dev veth0
addr add 10.88.1.2/24 dev veth1
link set veth0 up
link set veth1 up
route add 10.88.1.2 dev veth0 src 10.88.1.1 table 101
route add 10.88.1.1 dev veth1 src 10.88.1.2 table 102
rule add pref 10 iif lo from 10.88.1.1 to 10.88.1.2 lookup 101
rule add pref 11 iif lo from 10.88.1.2 to 10.88.1.1 lookup 102
rule add pref 100 lookup local
rule del pref 0 lookup local"
fi
ip -batch - <<<"link set lo up
$net" || setup_failed "ip -batch failed: $net"
for i in all default "${NETDEVS[@]}"; do
    [ "$DEVICES" = 2 ] || break
    echo 1 >/proc/sys/net/ipv4/conf/$i/accept_local
    echo 0 >/proc/sys/net/ipv4/conf/$i/rp_filter
done
for i in "${!DEVS[@]}"; do
    echo "link add ${DEVS[i]} type rxe netdev ${NETDEVS[i]}"
done | rdma -b - || setup_failed "rdma link add failed"

# the ports become ACTIVE shortly after their netdev is up
for _ in {1..50}; do
    active=0
    for d in "${DEVS[@]}"; do
        read -r st </sys/class/infiniband/$d/ports/1/state
        [[ $st == *ACTIVE ]] && active=$((active + 1))
    done
    [ $active = ${#DEVS[@]} ] && break
    sleep 0.2
done
[ $active = ${#DEVS[@]} ] || setup_failed "rxe ports not ACTIVE after 10 s"
IFS=,
echo "export CHORUS_RDMA_VM=1 CHORUS_RDMA_DEVICES=${DEVS[*]} CHORUS_RDMA_ADDRS=${ADDRS[*]}" \
    "CHORUS_RDMA_NETDEVS=${NETDEVS[*]}" >"$SHARE/rdma.env"
unset IFS

# CMD gets what is left of the budget minus a few seconds to flush and power off, so that a
# hang ends here (rc 124, output kept) rather than by the host killing qemu. Time since the
# host started qemu (T0): the guest's clock comes from the host's; if it looks wrong, uptime
# plus a guess for the time before the kernel started counting.
read -r up _ </proc/uptime
printf -v now '%(%s)T' -1
spent=$((now - T0))
[ "$spent" -ge "${up%.*}" ] && [ "$spent" -le "$LIMIT" ] || spent=$((${up%.*} + 5))
left=$((LIMIT - spent - 8))
[ "$left" -lt 5 ] && left=5
log "devices ${DEVS[*]} up, running the command (limit $left s)"
timeout -k 3 "$left" bash "$SHARE/cmd.sh" </dev/null >>"$SHARE/stdout" 2>>"$SHARE/stderr"
rc=$?
read -r up2 _ </proc/uptime
# 137: still running after the grace period of timeout -k: a timeout as well
[ "$rc" = 137 ] && [ "$((${up2%.*} - ${up%.*}))" -ge "$left" ] && rc=124
log "command exited with $rc"
finish $rc
