#!/usr/bin/env bash
# tests/netns/selftest.sh - checks the namespace harness of tests/netns.
#
# Usage: tests/netns/selftest.sh          (as root)
#
# 1. brings up 3 nodes with shaping (--delay 100us --rate 1gbit, with
#    --best-effort: a kernel without netem gets the rate only, and the delay
#    checks are skipped with the reason) under with-nodes.sh, and inside:
#    the exported CHORUS_NETNS_* variables, `netns.sh exec` (environment,
#    interfaces), ping between every pair of nodes and to the bridge, the
#    delay seen by ping, the tbf qdisc, netns-rsh, and the MPI hello
#    (mpi_hello.c, built with mpicc) across 3x2 ranks block-distributed and
#    round-robin via mpirun-nodes.sh, checking where each rank ran and that
#    megabytes crossed every node's veth;
# 2. checks that nothing of it is left (namespaces, bridge, veths);
# 3. checks teardown when the command fails (exit 7 comes back), when
#    with-nodes.sh gets SIGTERM, when `up` is asked for shaping the kernel
#    lacks (exit 3), `up` twice / `down` twice, and a self-contained
#    mpirun-nodes.sh run (it brings up and removes its own nodes).
#
# Prints PASS/FAIL/SKIP per check and "selftest: N passed, N failed, N
# skipped". Exit status 0 iff nothing failed; 77 if the harness cannot run
# here at all (not root, no network namespaces).
#
# Environment: MPI_HELLO=path  a prebuilt mpi_hello (default: built with
# mpicc into a temporary directory); SELFTEST_SHAPES=0 skips the extra MPI
# shapes (2x1, 2x2, 4x1).
set -u

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETNS=$DIR/netns.sh

# --- result bookkeeping (a file, so the inner part under with-nodes.sh can
# add to it) ------------------------------------------------------------------
pass() { echo "PASS: $*"; echo PASS >>"$RESULTS"; }
fail() { echo "FAIL: $*"; echo FAIL >>"$RESULTS"; }
skip() { echo "SKIP: $*"; echo SKIP >>"$RESULTS"; }
check() { # check NAME CMD... : PASS if CMD succeeds
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

# nothing of prefix $1 is left: namespaces, links, processes in them
nothing_left() {
    local p=$1 left
    left=$( (ip netns list | awk '{print $1}' | grep -E "^${p}[0-9]+\$"
        ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^${p}(br|v[0-9]+)\$") 2>/dev/null)
    [ -z "$left" ] || { echo "  left over of prefix $p: $(echo $left)"; return 1; }
}

# min RTT in ms of `ping -c N` from namespace $1 to $2 (empty on failure)
min_rtt() {
    timeout 20 ip netns exec "$1" ping -n -q -c "${3:-5}" -i 0.2 -W 2 "$2" 2>/dev/null |
        sed -n 's|^rtt min/avg/max/mdev = \([0-9.]*\)/.*|\1|p'
}

tx_bytes() { ip -n "$1" -s link show dev eth0 | awk '/TX:/ { getline; print $1; exit }'; }

# --- the part that runs inside with-nodes.sh ----------------------------------
inner() {
    local p=$CHORUS_NETNS_PREFIX n i j out rtt
    IFS=, read -r -a addrs <<<"$CHORUS_NETNS_ADDRS"
    IFS=, read -r -a names <<<"$CHORUS_NETNS_NAMES"

    check "with-nodes exports 3 nodes (CHORUS_NETNS_NODES=$CHORUS_NETNS_NODES, ADDRS=$CHORUS_NETNS_ADDRS)" \
        test "$CHORUS_NETNS_NODES" = 3 -a ${#addrs[@]} = 3 -a "${names[2]}" = "${p}2"
    check "bridge address $CHORUS_NETNS_BRIDGE_ADDR is in the root namespace" \
        bash -c "ip -4 -o addr show dev ${p}br | grep -q ' $CHORUS_NETNS_BRIDGE_ADDR/24 '"
    out=$("$NETNS" hosts)
    check "netns.sh hosts lists 3 nodes" test "$(grep -vc '^#' <<<"$out")" = 3

    # exec: environment and interfaces inside a node
    out=$(timeout 10 "$NETNS" exec 2 sh -c 'echo "$CHORUS_HOSTID $CHORUS_SOCKET_IFNAME $CHORUS_NETNS_NODE $HOME"; ip -o link show | awk -F": " "{print \$2}" | sed "s/@.*//" | sort | tr "\n" " "; ip -4 -o addr show dev eth0 | awk "{print \$4}"')
    check "netns.sh exec 2: CHORUS_HOSTID=node2, CHORUS_SOCKET_IFNAME=eth0, environment kept" \
        test "$(sed -n 1p <<<"$out")" = "node2 eth0 2 $HOME"
    check "node 2 has only lo and eth0 (${addrs[2]}/24)" \
        test "$(sed -n 2p <<<"$out")" = "eth0 lo ${addrs[2]}/24"
    out=$(timeout 10 "$NETNS" exec "${addrs[1]}" printenv CHORUS_HOSTID)
    check "netns.sh exec by address ${addrs[1]} -> node1" test "$out" = node1

    # netns-rsh, as Hydra calls it
    out=$(timeout 10 "$DIR/netns-rsh" -x "${addrs[1]}" '"printenv"' CHORUS_HOSTID CHORUS_SOCKET_IFNAME)
    check "netns-rsh -x ${addrs[1]} runs in node1 (through sh -c, like ssh)" test "$(echo $out)" = "node1 eth0"
    out=$(timeout 10 "$DIR/netns-rsh" "${p}0" 'ip -4 -o addr show dev eth0' | awk '{print $4}')
    check "netns-rsh by namespace name ${p}0" test "$out" = "${addrs[0]}/24"
    timeout 10 "$DIR/netns-rsh" -x 10.255.255.254 true 2>/dev/null
    check "netns-rsh to an unknown host fails with 255" test $? = 255

    # connectivity
    if command -v ping >/dev/null 2>&1; then
        local bad=''
        for ((i = 0; i < 3; i++)); do
            timeout 10 ip netns exec "${p}$i" ping -n -q -c 1 -W 2 "$CHORUS_NETNS_BRIDGE_ADDR" >/dev/null || bad+=" $i->bridge"
            for ((j = 0; j < 3; j++)); do
                [ $i = $j ] && continue
                timeout 10 ip netns exec "${p}$i" ping -n -q -c 1 -W 2 "${addrs[$j]}" >/dev/null || bad+=" $i->$j"
            done
        done
        check "ping between all nodes and to the bridge${bad:+ (failed:$bad)}" test -z "$bad"

        # delay: netem on each node's egress, so node<->node >= 2 x 100us
        case $CHORUS_NETNS_SHAPING in
            *delay=100us*)
                rtt=$(min_rtt "${p}0" "${addrs[1]}" 10)
                check "delay visible: min RTT node0<->node1 ${rtt:-?} ms >= 0.19 ms" \
                    awk -v r="${rtt:-0}" 'BEGIN { exit !(r >= 0.19) }'
                rtt=$(min_rtt "${p}0" "$CHORUS_NETNS_BRIDGE_ADDR" 10)
                check "delay visible: min RTT node0<->bridge ${rtt:-?} ms >= 0.095 ms" \
                    awk -v r="${rtt:-0}" 'BEGIN { exit !(r >= 0.095) }'
                ;;
            *delay=unavailable*)
                rtt=$(min_rtt "${p}0" "${addrs[1]}" 5)
                skip "delay check: this kernel has no netem qdisc (shaping: $CHORUS_NETNS_SHAPING; unshaped min RTT ${rtt:-?} ms)"
                ;;
            *) fail "delay: unexpected shaping '$CHORUS_NETNS_SHAPING'" ;;
        esac
    else
        skip "ping checks: ping not installed (apt-get install iputils-ping)"
    fi

    # rate: tbf on every node's eth0
    case $CHORUS_NETNS_SHAPING in
        *rate=1gbit*)
            local bad=''
            for ((i = 0; i < 3; i++)); do
                tc -n "${p}$i" qdisc show dev eth0 | grep -q 'tbf .*rate 1Gbit' || bad+=" $i"
            done
            check "tbf rate 1Gbit on eth0 of every node${bad:+ (missing on:$bad)}" test -z "$bad"
            ;;
        *) fail "rate: unexpected shaping '$CHORUS_NETNS_SHAPING'" ;;
    esac

    # MPI across the nodes
    if [ -z "${MPI_HELLO:-}" ]; then
        skip "MPI checks: no mpi_hello (mpicc missing?)"
        return
    fi
    local tx0=() tx1=() k rc
    for ((i = 0; i < 3; i++)); do tx0[$i]=$(tx_bytes "${p}$i"); done
    out=$(timeout 200 "$DIR/mpirun-nodes.sh" 3 2 --timeout 120 -- "$MPI_HELLO" 2>&1)
    rc=$?
    for ((i = 0; i < 3; i++)); do tx1[$i]=$(tx_bytes "${p}$i"); done
    echo "$out" | sed 's/^/  | /'
    check "mpirun-nodes.sh 3 2 mpi_hello exits 0 (got $rc)" test "$rc" = 0
    check "mpi_hello reports OK with 6 ranks on 3 nodes" grep -q '^mpi_hello: OK size=6 nodes=3 ' <<<"$out"
    local bad=''
    for ((k = 0; k < 6; k++)); do
        n=$((k / 2))
        grep -q "^rank $k/6 hostid=node$n ip=${addrs[$n]} if=eth0 " <<<"$out" || bad+=" $k"
    done
    check "block distribution: ranks 2n, 2n+1 in node n with its address${bad:+ (wrong:$bad)}" test -z "$bad"
    bad=''
    for ((i = 0; i < 3; i++)); do
        [ $((tx1[i] - tx0[i])) -ge 1000000 ] || bad+=" node$i:$((tx1[i] - tx0[i]))B"
    done
    check "MPI traffic crossed the veths (>= 1 MB sent by every node's eth0)${bad:+ (too little:$bad)}" test -z "$bad"

    out=$(timeout 200 "$DIR/mpirun-nodes.sh" 3 2 --rr --timeout 120 -- "$MPI_HELLO" 65536 2>&1)
    rc=$?
    bad=''
    for ((k = 0; k < 6; k++)); do
        n=$((k % 3))
        grep -q "^rank $k/6 hostid=node$n ip=${addrs[$n]} " <<<"$out" || bad+=" $k"
    done
    check "round-robin: rank r in node r%3 and OK (rc $rc)${bad:+ (wrong:$bad)}" \
        test -z "$bad" -a "$rc" = 0 -a -n "$(grep '^mpi_hello: OK size=6 nodes=3' <<<"$out")"
}

if [ "${1:-}" = --inner ]; then
    inner
    exit 0
fi

# --- outer part -------------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
    echo "selftest: SKIP: needs root (network namespaces, veths, a bridge)"
    exit 77
fi
for c in ip tc timeout flock; do
    command -v $c >/dev/null 2>&1 || { echo "selftest: SKIP: '$c' missing (apt-get install iproute2 util-linux coreutils)"; exit 77; }
done
probe=stprobe$$x
if ! ip netns add "$probe" 2>/dev/null; then
    echo "selftest: SKIP: cannot create a network namespace here"
    exit 77
fi
ip netns del "$probe"

TMPD=$(mktemp -d "${TMPDIR:-/tmp}/chorus-netns-selftest.XXXXXX")
export RESULTS=$TMPD/results
: >"$RESULTS"
letters=abcdefghijklmnopqrstuvwxyz
BASE=st
for i in 1 2 3 4; do BASE+=${letters:$((RANDOM % 26)):1}; done
# every prefix used below is BASE + one letter; all are removed on exit
cleanup() {
    local s
    for s in a b c d e; do CHORUS_NETNS_QUIET=1 "$NETNS" down --prefix "$BASE$s" >/dev/null 2>&1; done
    rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${MPI_HELLO:-}" ]; then
    [ -x "$MPI_HELLO" ] || { echo "selftest: MPI_HELLO=$MPI_HELLO is not executable"; exit 1; }
elif command -v mpicc >/dev/null 2>&1; then
    if timeout 120 mpicc -O2 -o "$TMPD/mpi_hello" "$DIR/mpi_hello.c"; then
        export MPI_HELLO=$TMPD/mpi_hello
    else
        fail "mpicc mpi_hello.c"
    fi
fi
export MPI_HELLO=${MPI_HELLO:-}

echo "== 3 nodes, delay 100us, rate 1gbit (prefix ${BASE}a)"
timeout 900 "$DIR/with-nodes.sh" 3 --prefix "${BASE}a" --delay 100us --rate 1gbit --best-effort -- "$DIR/selftest.sh" --inner
rc=$?
check "with-nodes.sh run returns 0 (got $rc)" test "$rc" = 0
check "nothing left of prefix ${BASE}a" nothing_left "${BASE}a"

echo "== a failing command still tears down (prefix ${BASE}b)"
timeout 120 "$DIR/with-nodes.sh" 2 --prefix "${BASE}b" -- sh -c "ip netns list | grep -q '^${BASE}b1' && exit 7"
rc=$?
check "with-nodes.sh returns the command's status 7 (got $rc)" test "$rc" = 7
check "nothing left of prefix ${BASE}b" nothing_left "${BASE}b"

echo "== SIGTERM to with-nodes.sh tears down (prefix ${BASE}c)"
timeout 120 "$DIR/with-nodes.sh" 2 --prefix "${BASE}c" -- sh -c "\"$NETNS\" exec 0 sleep 600 & sleep 600" &
wn=$!
for i in $(seq 1 100); do
    [ -n "$(ip netns pids "${BASE}c0" 2>/dev/null)" ] && break
    sleep 0.1
done
kill -TERM "$wn"
wait "$wn"
rc=$?
check "with-nodes.sh on SIGTERM returns 143 (got $rc)" test "$rc" = 143
check "nothing left of prefix ${BASE}c" nothing_left "${BASE}c"

echo "== up twice, down twice (prefix ${BASE}d)"
"$NETNS" up 2 --prefix "${BASE}d" && "$NETNS" up 3 --prefix "${BASE}d"
rc=$?
out=$("$NETNS" hosts --prefix "${BASE}d" --addrs)
check "a second up replaces the first (rc $rc, nodes: $out)" test "$rc" = 0 -a "$(tr ',' '\n' <<<"$out" | grep -c .)" = 3
"$NETNS" down --prefix "${BASE}d" && "$NETNS" down --prefix "${BASE}d"
check "down twice succeeds" test $? = 0
check "nothing left of prefix ${BASE}d" nothing_left "${BASE}d"

echo "== shaping the kernel lacks (prefix ${BASE}e)"
if "$NETNS" up 1 --prefix "${BASE}e" --delay 1ms --no-check >/dev/null 2>"$TMPD/err"; then
    skip "this kernel has netem: no missing-qdisc case to check"
    "$NETNS" down --prefix "${BASE}e"
else
    rc=$?
    check "up --delay without netem fails with status 3 and says why (got $rc)" \
        bash -c "[ $rc = 3 ] && grep -q 'lacks the qdisc netem' '$TMPD/err'"
fi
check "nothing left of prefix ${BASE}e" nothing_left "${BASE}e"

if [ -n "$MPI_HELLO" ]; then
    echo "== self-contained mpirun-nodes.sh runs"
    shapes="2x1"
    [ "${SELFTEST_SHAPES:-1}" = 0 ] || shapes="2x1 2x2 4x1"
    for s in $shapes; do
        out=$(env -u CHORUS_NETNS_PREFIX timeout 300 "$DIR/mpirun-nodes.sh" "${s%x*}" "${s#*x}" --timeout 120 -- "$MPI_HELLO" 1048576 2>&1)
        rc=$?
        pfx=$(sed -n 's/^netns.sh: up: [0-9]* nodes \([A-Za-z_-]*\)0\.\..*/\1/p' <<<"$out" | head -n1)
        n=$((${s%x*} * ${s#*x}))
        ok=0
        [ "$rc" = 0 ] && grep -q "^mpi_hello: OK size=$n nodes=${s%x*} " <<<"$out" && ok=1
        [ $ok = 1 ] || echo "$out" | sed 's/^/  | /'
        check "mpirun-nodes.sh $s (own nodes, prefix ${pfx:-?}): OK, rc $rc" test $ok = 1
        [ -n "$pfx" ] && check "nothing left of prefix $pfx" nothing_left "$pfx"
    done
fi

np=$(grep -c PASS "$RESULTS")
nf=$(grep -c FAIL "$RESULTS")
ns=$(grep -c SKIP "$RESULTS")
echo "selftest: $np passed, $nf failed, $ns skipped"
[ "$nf" = 0 ]
