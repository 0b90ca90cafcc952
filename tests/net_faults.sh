#!/usr/bin/env bash
# tests/net_faults.sh - Chorus over TCP through a faulty network: tc netem on a real veth pair,
# inside the rdma-vm guest (this host's kernel has no sch_netem; Debian's guest kernel has).
#
# Usage (host, as root):  tests/net_faults.sh [BUILD_DIR] [PHASE...]
#   boots the guest (tests/rdma-vm/run-in-vm.sh --devices 2, NET_FAULTS_TIMEOUT s, default
#   280) and runs itself there. It does not take /tmp/chorus-vm.lock: wrap it in
#   `flock /tmp/chorus-vm.lock ...` when others may boot the guest too.
# PHASE (default: netem blackhole linkdown):
#   netem      netem on both ends of the veth pair (each direction): delay 2ms 1ms normal,
#              reorder 25% 50%, loss 2%, duplicate 2%. test_coll (--quick --no-large,
#              allreduce and alltoall) and all_reduce_perf (512 KiB - 1 MiB, checked) between
#              two fake hosts, one on each end, must pass; and the counters must show that the
#              faults happened to Chorus's traffic: bytes on both veths, netem drops on both,
#              TCP retransmissions, out-of-order segments and D-SACKs (duplicates). No
#              corruption: on veth the kernel does not verify TCP checksums (offloaded), so
#              corrupted segments would reach the application as bad data - not a Chorus test.
#   blackhole  all_reduce_perf running (sweep 64 KiB - 64 MiB), then every packet of the pair
#              dropped (netem loss 100% on both ends: a cut cable, links stay up): both ranks
#              must fail with CHORUS_TIMEOUT or CHORUS_REMOTE_ERROR naming the other one,
#              within CHORUS_TIMEOUT_MS (NET_FAULTS_TIMEOUT_MS, default 10000) + 10 s.
#   linkdown   the same with `ip link set veth0 down` instead.
#
# In the guest: the two ranks run under MPICH (UCX on shared memory: MPI stays off the veths;
# it only launches), CHORUS_TRANSPORT=tcp (else the rxe devices would make it RDMA),
# CHORUS_HOSTID a / b and CHORUS_SOCKET_IFNAME =veth0 / =veth1. Chorus does not bind the
# source address of its outgoing connections, and both addresses are local to the guest's one
# network stack, so the kernel would route every connection over lo: the script adds policy
# rules (preference 5 and 6: anything sent locally to 10.88.1.1 leaves through veth1 with
# source 10.88.1.2, to 10.88.1.2 through veth0 with source 10.88.1.1), checked with
# `ip route get`. The failing phases preload tests/netns/mpi_abort_hold.c (built on the host
# before the boot) so that the first rank's MPI_Abort does not kill the other before it
# reports; its line gives the time of each rank's report.
# Output: one PASS/FAIL line per check, "net_faults: N passed, N failed"; exit 0 iff all
# passed, 77 when not root or the guest is unavailable (host side).
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)

# ---- host side ---------------------------------------------------------------------------
if [ "${CHORUS_RDMA_VM:-0}" != 1 ]; then
    BUILD=$SRC/build
    if [ $# -gt 0 ] && [ -d "$1" ]; then BUILD=$(cd "$1" && pwd); shift; fi
    [ "$(id -u)" = 0 ] || { echo "net_faults: needs root (the rdma-vm guest): skipped"; exit 77; }
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/chorus-net-faults.XXXXXX") || exit 1
    trap 'rm -rf "$WORK"' EXIT
    MPICC=$(command -v mpicc.mpich || command -v mpicc) || { echo "net_faults: no mpicc" >&2; exit 1; }
    "$MPICC" -shared -fPIC -O2 -o "$WORK/mpi_abort_hold.so" "$SRC/tests/netns/mpi_abort_hold.c" ||
        { echo "net_faults: cannot build mpi_abort_hold.so" >&2; exit 1; }
    "$SRC/tests/rdma-vm/run-in-vm.sh" --devices 2 --timeout "${NET_FAULTS_TIMEOUT:-280}" \
        --env NET_FAULTS_BUILD="$BUILD" --env NET_FAULTS_SHIM="$WORK/mpi_abort_hold.so" -- \
        "$SRC/tests/net_faults.sh" "$@"
    exit $?
fi

# ---- in the guest ---------------------------------------------------------------------------
BUILD=${NET_FAULTS_BUILD:-$SRC/build}
SHIM=${NET_FAULTS_SHIM:-}
TMO_MS=${NET_FAULTS_TIMEOUT_MS:-10000}
HOLD_MS=6000
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(netem blackhole linkdown)
OUT=$(mktemp -d /tmp/net_faults.XXXXXX)
NETEM='delay 2ms 1ms distribution normal reorder 25% 50% loss 2% duplicate 2% limit 10000'
passed=0 failed=0
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
result() { # NAME OK DETAIL [LOG]
    if [ "$2" = 0 ]; then
        passed=$((passed + 1))
        printf 'PASS  %-58s %s\n' "$1" "$3"
    else
        failed=$((failed + 1))
        printf 'FAIL  %-58s %s\n' "$1" "$3"
        # the log without the sweep's table rows: each rank's error and report lines
        [ -n "${4:-}" ] && [ -f "$4" ] && grep -vE '^\[[0-9]+\] +[0-9]+ +[0-9]+ ' "$4" | tail -n 40 | sed 's/^/    | /'
    fi
}
# does text name rank r ("rank 1", not "rank 1/2" - the label - nor "rank 10")?
names_rank() { grep -qE "rank $2([^0-9/]|\$)" <<<"$1"; }
tx() { cat "/sys/class/net/$1/statistics/tx_bytes"; }
nst() { nstat -asz "$1" 2>/dev/null | awk -v n="$1" '$1 == n { print $2; f = 1 } END { if (!f) print 0 }'; }
qdisc_dropped() { tc -s qdisc show dev "$1" | awk '/dropped/ { gsub(/,/, ""); for (i = 1; i < NF; i++) if ($i == "(dropped") print $(i + 1) }' | head -n1; }

# two fake hosts, rank 0 on veth0's address, rank 1 on veth1's; extra -genv pairs first
# (--prepend: "[rank] " before every line; only for line-buffered output such as the perf tools)
mpi_pair() {
    local genv=()
    while [ "${1:-}" = -genv ] || [ "${1:-}" = --prepend ]; do
        if [ "$1" = --prepend ]; then genv+=(-prepend-rank); shift; else genv+=(-genv "$2" "$3"); shift 3; fi
    done
    mpiexec.hydra -genv UCX_TLS sm,self -genv CHORUS_TRANSPORT tcp "${genv[@]}" \
        -np 1 -env CHORUS_HOSTID a -env CHORUS_SOCKET_IFNAME =veth0 "$@" : \
        -np 1 -env CHORUS_HOSTID b -env CHORUS_SOCKET_IFNAME =veth1 "$@"
}

[ "${CHORUS_RDMA_NETDEVS:-}" = veth0,veth1 ] || { result "guest with veth0,veth1 (--devices 2)" 1 "CHORUS_RDMA_NETDEVS=${CHORUS_RDMA_NETDEVS:-}"; echo "net_faults: $passed passed, $failed failed"; exit 1; }
modprobe sch_netem 2>"$OUT/modprobe.log" && tc qdisc add dev veth0 root netem delay 1ms 2>>"$OUT/modprobe.log" &&
    tc qdisc del dev veth0 root
result "sch_netem in the guest kernel ($(uname -r))" $? "" "$OUT/modprobe.log"
ip -batch - <<'EOF'
route add 10.88.1.1 dev veth1 src 10.88.1.2 table 112
route add 10.88.1.2 dev veth0 src 10.88.1.1 table 111
rule add pref 5 iif lo to 10.88.1.1 lookup 112
rule add pref 6 iif lo to 10.88.1.2 lookup 111
EOF
r1=$(ip route get 10.88.1.1) r2=$(ip route get 10.88.1.2)
[[ $r1 == *"dev veth1"* ]] && [[ $r2 == *"dev veth0"* ]]
result "routes: to 10.88.1.1 via veth1, to 10.88.1.2 via veth0" $? "$(echo $r1 | cut -d' ' -f1-5); $(echo $r2 | cut -d' ' -f1-5)"

# ---- netem: results still correct -------------------------------------------------------------
phase_netem() {
    local d t0 rc log v0 v1 lo0 c
    for d in veth0 veth1; do tc qdisc add dev $d root netem $NETEM || { result "netem on $d" 1 "tc failed"; return; }; done
    v0=$(tx veth0) v1=$(tx veth1) lo0=$(tx lo)
    local names=(TcpRetransSegs TcpExtTCPOFOQueue TcpExtTCPDSACKRecv TcpExtTCPDSACKOldSent TcpExtTCPDSACKOfoSent)
    declare -A before
    for c in "${names[@]}"; do before[$c]=$(nst "$c"); done
    for c in allreduce alltoall; do
        log=$OUT/netem.test_coll.$c.log
        t0=$(now)
        timeout -k 5 150 bash -c "$(declare -f mpi_pair); mpi_pair \"\$@\"" _ \
            "$BUILD/tests/test_coll" --quick --no-large --coll "$c" >"$log" 2>&1
        rc=$?
        [ "$rc" = 0 ] && grep -q '^ok test_coll np=2' "$log"
        result "test_coll --coll $c under netem (TCP, 2 hosts)" $? "rc $rc, $(secs "$t0" "$(now)") s, $(grep -o 'ok test_coll.*' "$log")" "$log"
    done
    log=$OUT/netem.all_reduce_perf.log
    t0=$(now)
    timeout -k 5 150 bash -c "$(declare -f mpi_pair); mpi_pair \"\$@\"" _ \
        "$BUILD/perf/all_reduce_perf" -b 512K -e 1M -f 2 -n 2 -w 1 -m 0 -c 1 >"$log" 2>&1
    rc=$?
    [ "$rc" = 0 ] && grep -q 'Wrong values *: 0 OK' "$log" && grep -q 'Out of bounds values *: 0 OK' "$log"
    result "all_reduce_perf 512K-1M under netem: 0 wrong" $? "rc $rc, $(secs "$t0" "$(now)") s" "$log"

    # did the faults happen to this traffic?
    local dv0=$(($(tx veth0) - v0)) dv1=$(($(tx veth1) - v1)) dlo=$(($(tx lo) - lo0))
    [ "$dv0" -gt 1000000 ] && [ "$dv1" -gt 1000000 ]
    result "traffic crossed the veth pair" $? "veth0 tx $dv0 B, veth1 tx $dv1 B (lo $dlo B)"
    local q0 q1
    q0=$(qdisc_dropped veth0) q1=$(qdisc_dropped veth1)
    [ "${q0:-0}" -gt 0 ] && [ "${q1:-0}" -gt 0 ]
    result "netem dropped packets in both directions" $? "veth0 dropped ${q0:-?}, veth1 dropped ${q1:-?}"
    declare -A delta
    for c in "${names[@]}"; do delta[$c]=$(($(nst "$c") - before[$c])); done
    [ "${delta[TcpRetransSegs]}" -gt 0 ]
    result "TCP retransmitted (loss)" $? "TcpRetransSegs +${delta[TcpRetransSegs]}"
    [ "${delta[TcpExtTCPOFOQueue]}" -gt 0 ]
    result "TCP queued out-of-order segments (reordering)" $? "TCPOFOQueue +${delta[TcpExtTCPOFOQueue]}"
    local dsack=$((delta[TcpExtTCPDSACKOldSent] + delta[TcpExtTCPDSACKOfoSent] + delta[TcpExtTCPDSACKRecv]))
    [ "$dsack" -gt 0 ]
    result "TCP saw duplicate segments (D-SACK)" $? "DSACKOldSent +${delta[TcpExtTCPDSACKOldSent]}, OfoSent +${delta[TcpExtTCPDSACKOfoSent]}, Recv +${delta[TcpExtTCPDSACKRecv]}"
    tc -s qdisc show dev veth0 | sed 's/^/    veth0: /'
    tc -s qdisc show dev veth1 | sed 's/^/    veth1: /'
    for d in veth0 veth1; do tc qdisc del dev $d root 2>/dev/null; done
}

# ---- the link fails in the middle of a collective: an error, not a hang --------------------------
# fault_run NAME "FAULT COMMAND" "REPAIR COMMAND"
fault_run() {
    local name=$1 fault=$2 repair=$3 log=$OUT/$1.log
    if [ -z "$SHIM" ] || [ ! -f "$SHIM" ]; then
        result "$name: mpi_abort_hold.so" 1 "NET_FAULTS_SHIM not set or missing (run from the host)"
        return
    fi
    local limit=$((TMO_MS / 1000 + 10)) t_start t_fault t_end rc i
    t_start=$(now)
    timeout -k 5 250 bash -c "$(declare -f mpi_pair); mpi_pair \"\$@\"" _ \
        --prepend -genv CHORUS_TIMEOUT_MS "$TMO_MS" -genv LD_PRELOAD "$SHIM" -genv CHORUS_ABORT_HOLD_MS "$HOLD_MS" \
        "$BUILD/perf/all_reduce_perf" -b 64K -e 64M -f 2 -n 20 -w 1 -m 0 >"$log" 2>&1 &
    local mp=$!
    while [ "$(secs "$t_start" "$(now)" | cut -d. -f1)" -lt 150 ]; do
        grep -qE '^\[0\] +[0-9]+ +[0-9]+ ' "$log" && break
        kill -0 "$mp" 2>/dev/null || break
        sleep 0.1
    done
    if ! kill -0 "$mp" 2>/dev/null || ! grep -qE '^\[0\] +[0-9]+ +[0-9]+ ' "$log"; then
        kill -TERM "$mp" 2>/dev/null
        wait "$mp"
        result "$name: the sweep was running" 1 "no row of the table within 150 s" "$log"
        return
    fi
    sleep 1
    t_fault=$(now)
    eval "$fault"
    echo "net_faults: $fault at $t_fault; then: $(ip route get 10.88.1.2 2>&1 | head -n1)" >>"$OUT/$name.fault"
    while kill -0 "$mp" 2>/dev/null; do
        [ "$(secs "$t_fault" "$(now)" | cut -d. -f1)" -ge $((limit + HOLD_MS / 1000 + 5)) ] && break
        sleep 0.2
    done
    local hung=0
    kill -0 "$mp" 2>/dev/null && { hung=1; kill -TERM "$mp"; }
    wait "$mp"
    rc=$?
    t_end=$(now)
    eval "$repair"
    local r peer line t dt ok=0 detail=''
    for r in 0 1; do
        peer=$((1 - r))
        # the failed collective, or the sweep's own agreement between sizes (perf/perf_timing.c)
        line=$(grep -m1 -E "^\[$r\] rank $r: chorus_[a-z_]+(\(.*\)| \(the sweep's bookkeeping\)) failed: " "$log")
        t=$(grep -m1 -E "^\[$r\] mpi_abort_hold: rank $r MPI_Abort" "$log" | awk '{ print $7 }')
        if [ -z "$line" ] || [ -z "$t" ]; then
            ok=1 detail+="rank $r did not report; "
            continue
        fi
        dt=$(secs "$t_fault" "$t")
        if ! [[ $line == *" failed: timeout: "* || $line == *" failed: remote error: "* ]]; then
            ok=1 detail+="rank $r: not a timeout/remote error; "
        fi
        names_rank "${line#*failed: }" "$peer" || { ok=1; detail+="rank $r: does not name rank $peer; "; }
        awk -v d="$dt" -v b="$limit" 'BEGIN { exit !(d >= -0.01 && d <= b) }' || { ok=1; detail+="rank $r after $dt s (bound $limit s); "; }
        detail+="rank $r: ${line#*failed: } after $dt s; "
    done
    [ "$hung" = 0 ] || { ok=1; detail="still running $((limit + HOLD_MS / 1000 + 5)) s after the fault; $detail"; }
    [ "$rc" = 3 ] || { ok=1; detail="mpiexec exit $rc (expected 3); $detail"; }
    result "$name: both ranks fail naming the peer, <= $limit s" "$ok" "(CHORUS_TIMEOUT_MS=$TMO_MS) $detail" "$log"
    sed 's/^/    /' "$OUT/$name.fault"
}

for p in "${phases[@]}"; do
    t0=$(now)
    case $p in
        netem) phase_netem ;;
        blackhole) fault_run blackhole \
            'tc qdisc add dev veth0 root netem loss 100%; tc qdisc add dev veth1 root netem loss 100%' \
            'tc qdisc del dev veth0 root; tc qdisc del dev veth1 root' ;;
        linkdown) fault_run linkdown 'ip link set veth0 down' \
            'ip link set veth0 up; ip route replace 10.88.1.2 dev veth0 src 10.88.1.1 table 111; ip route replace 10.88.1.2 dev veth0 src 10.88.1.1 table 101' ;;
        *) result "phase $p" 1 "unknown phase (netem, blackhole, linkdown)" ;;
    esac
    echo "    (phase $p: $(secs "$t0" "$(now)") s)"
done
ls /dev/shm | grep -qi '^chorus'
[ $? != 0 ]
result "nothing left in /dev/shm" $? "$(ls /dev/shm | grep -i '^chorus' | tr '\n' ' ')"
echo "net_faults: $passed passed, $failed failed"
[ "$failed" = 0 ]
