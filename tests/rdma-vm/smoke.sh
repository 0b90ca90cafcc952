#!/usr/bin/env bash
# tests/rdma-vm/smoke.sh - verbs-level checks that the soft-RoCE guest works.
#
# On the host:   tests/rdma-vm/smoke.sh       boots the guest with 2 devices (run-in-vm.sh
#                                             --devices 2; SMOKE_TIMEOUT, default 300 s) and
#                                             runs itself there
# In the guest:  uses CHORUS_RDMA_DEVICES / CHORUS_RDMA_ADDRS (set by run-in-vm.sh):
#   - ibv_devices lists every device, ibv_devinfo shows its port ACTIVE;
#   - on the first device (two processes sharing it) and, with 2 devices, from rxe1 to rxe0:
#     ibv_rc_pingpong (raw verbs, RC QP), rping -V (rdma_cm connect + RDMA read/write, data
#     verified), ib_write_bw with 4 KiB x 200 (perftest; correctness only, emulated speed);
#   - with 2 devices, that the rxe1 -> rxe0 traffic really crossed the veth pair.
# Prints one PASS/FAIL line per check and "smoke: N passed, N failed"; exit 0 iff all passed.
set -u
if [ "${CHORUS_RDMA_VM:-0}" != 1 ]; then
    me=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
    exec "$(dirname "$me")/run-in-vm.sh" --devices 2 --timeout "${SMOKE_TIMEOUT:-300}" -- "$me" "$@"
fi

IFS=, read -r -a DEVS <<<"$CHORUS_RDMA_DEVICES"
IFS=, read -r -a ADDRS <<<"$CHORUS_RDMA_ADDRS"
OUT=$(mktemp -d /tmp/smoke.XXXXXX)
passed=0 failed=0 port=18600

result() { # NAME RC SECONDS [LOG...]: one PASS/FAIL line, on failure the logs' tails
    local name=$1 rc=$2 dt=$3
    shift 3
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
        printf 'PASS  %-50s %5s s\n' "$name" "$dt"
    else
        failed=$((failed + 1))
        printf 'FAIL  %-50s %5s s  (%s)\n' "$name" "$dt" "$rc"
        for f in "$@"; do tail -n 15 "$f" | sed "s/^/    | $(basename "$f"): /"; done
    fi
}

# the GID index of DEV's IPv4 address (RoCE v2, ::ffff:a.b.c.d): the index is not fixed, it
# depends on the order in which the kernel added the interface's addresses
gid_index() {
    local dev=$1 want g i
    IFS=. read -r a b c d <<<"$2"
    want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' "$a" "$b" "$c" "$d")
    # rxe has 1024 entries, mostly empty: builtins only (a `cat` per entry takes minutes here)
    for g in /sys/class/infiniband/$dev/ports/1/gids/*; do
        i=${g##*/} v= t=
        read -r v <"$g" 2>/dev/null
        [ "$v" = "$want" ] || continue
        read -r t </sys/class/infiniband/$dev/ports/1/gid_attrs/types/$i 2>/dev/null
        [ "$t" = "RoCE v2" ] && { echo "$i"; return 0; }
    done
    return 1
}

# wait (up to 20 s) until a TCP port listens: perftest and the pingpongs exchange their QP
# numbers over TCP first, and a client that comes too early just fails
wait_listen() {
    local hex
    hex=$(printf '%04X' "$1")
    for _ in {1..100}; do
        grep -qE "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:0000 0A " /proc/net/tcp /proc/net/tcp6 && return 0
        sleep 0.2
    done
    return 1
}

# pair NAME WAIT SERVER_CMD -- CLIENT_CMD: both under a 60 s timeout; PASS iff both exit 0.
# WAIT is "tcp" (wait for the port in $port) or "sleep" (rdma_cm: nothing visible to wait for)
pair() {
    local name=$1 how=$2 t0=$SECONDS srv=() src crc
    shift 2
    while [ "$1" != -- ]; do srv+=("$1"); shift; done
    shift
    local log=$OUT/${name//[^A-Za-z0-9]/_}
    timeout 60 "${srv[@]}" >"$log.server" 2>&1 &
    local spid=$!
    if [ "$how" = tcp ]; then wait_listen "$port"; else sleep 2; fi
    timeout 60 "$@" >"$log.client" 2>&1
    crc=$?
    wait "$spid"
    src=$?
    local rc=0
    [ "$src" = 0 ] && [ "$crc" = 0 ] || rc="server rc=$src, client rc=$crc"
    result "$name" "$rc" $((SECONDS - t0)) "$log.server" "$log.client"
    port=$((port + 1))
}

echo "smoke: devices ${DEVS[*]}, addresses ${ADDRS[*]}"
t0=$SECONDS
ibv_devices >"$OUT/ibv_devices" 2>&1
rc=$?
for d in "${DEVS[@]}"; do grep -qw "$d" "$OUT/ibv_devices" || rc="$d not listed"; done
result "ibv_devices lists ${DEVS[*]}" "$rc" $((SECONDS - t0)) "$OUT/ibv_devices"
GID=()
for i in "${!DEVS[@]}"; do
    d=${DEVS[i]} t0=$SECONDS
    ibv_devinfo -d "$d" >"$OUT/devinfo-$d" 2>&1
    rc=$?
    grep -q 'PORT_ACTIVE' "$OUT/devinfo-$d" || rc="port not active"
    GID[i]=$(gid_index "$d" "${ADDRS[i]}") || rc="no RoCE v2 GID for ${ADDRS[i]}"
    result "ibv_devinfo $d: port active, GID ${GID[i]:-?} = ${ADDRS[i]}" "$rc" $((SECONDS - t0)) \
        "$OUT/devinfo-$d"
done

# SERVER_IDX CLIENT_IDX LABEL: the three tools between two devices (or one, twice)
tools() {
    local s=$1 c=$2 what=$3
    local sd=${DEVS[s]} cd=${DEVS[c]} sg=${GID[s]:-1} cg=${GID[c]:-1} sa=${ADDRS[s]} ca=${ADDRS[c]}
    pair "ibv_rc_pingpong $what" tcp \
        ibv_rc_pingpong -d "$sd" -g "$sg" -p $port -n 200 -- \
        ibv_rc_pingpong -d "$cd" -g "$cg" -p $port -n 200 127.0.0.1
    pair "rping -V (rdma_cm) $what" sleep \
        rping -s -V -a "$sa" -p $port -C 50 -S 4096 -- \
        rping -c -V -a "$sa" -I "$ca" -p $port -C 50 -S 4096
    pair "ib_write_bw 4 KiB x 200 $what" tcp \
        ib_write_bw -d "$sd" -x "$sg" -F -s 4096 -n 200 -p $port -- \
        ib_write_bw -d "$cd" -x "$cg" -F -s 4096 -n 200 -p $port 127.0.0.1
}
tools 0 0 "(2 processes on ${DEVS[0]})"
if [ ${#DEVS[@]} -ge 2 ]; then
    # proof that rxe1 -> rxe0 went over the wire (veth1 -> veth0), not through lo
    IFS=, read -r -a NETDEVS <<<"${CHORUS_RDMA_NETDEVS:-veth0,veth1}"
    stat=/sys/class/net/${NETDEVS[0]}/statistics/rx_packets
    rx0=$(cat "$stat" 2>/dev/null || echo 0)
    tools 0 1 "(${DEVS[1]} -> ${DEVS[0]})"
    rx1=$(cat "$stat" 2>/dev/null || echo 0)
    rc=0
    [ $((rx1 - rx0)) -ge 1000 ] || rc="only $((rx1 - rx0)) packets"
    result "${DEVS[1]} -> ${DEVS[0]} crossed ${NETDEVS[0]} ($((rx1 - rx0)) packets received)" "$rc" 0
fi

rm -rf "$OUT"
echo "smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
