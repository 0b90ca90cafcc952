#!/bin/bash
# perf/run_multinode_gloo.sh - a gloo baseline across the namespace "nodes" of
# tests/netns, with Chorus' own perf tools on the same links minutes apart.
#
# Usage: perf/run_multinode_gloo.sh [OUT_DIR]          (as root)
#   NODES=2 PER_NODE=2 RATE=1gbit   the shape and the link shaping (RATE=
#                                   empty: unshaped veths)
#   BUILD=build                     where Chorus' perf tools are (BUILD/perf)
#   PYTHON=/usr/bin/python3         an interpreter with torch (Debian's
#                                   python3-torch, PyTorch 1.13 with gloo)
#   COLLS="all_reduce all_gather alltoall"
#   GLOO_ARGS="-b 8 -e 64M -f 4"    perf/gloo_bench.py's options
#   CHORUS_ARGS="-b 8 -e 64M -f 4 -n 5 -m 0"   the perf tools' options (-m 0:
#                                   no MPI side by side)
#   RUN_TIMEOUT=900                 seconds for each run (gloo or Chorus)
#
# On one set of namespaces (with-nodes.sh NODES [--rate RATE]), for each
# collective:
#   1. perf/gloo_bench.py, one process per rank started with
#      `tests/netns/netns.sh exec I ...` in the background: node i runs ranks
#      i*PER_NODE .. i*PER_NODE+PER_NODE-1, with MASTER_ADDR = node 0's eth0
#      address, MASTER_PORT, RANK, LOCAL_RANK, WORLD_SIZE and
#      GLOO_SOCKET_IFNAME=eth0; all are waited for, each bounded by
#      RUN_TIMEOUT. Rank 0's output: OUT_DIR/<coll>_<shape>_<rate>.txt (first
#      line: the command), JSON next to it; stderr of all ranks in .err (kept
#      only if not empty).
#   2. right after, Chorus' perf tool for the same collective on the same
#      nodes: tests/netns/mpirun-nodes.sh NODES PER_NODE -- BUILD/perf/<tool>
#      CHORUS_ARGS, into OUT_DIR/<coll>_<shape>_<rate>_chorus.txt and .json.
# <shape> is NODESxPER_NODE, <rate> the RATE or "unshaped". The load of the
# machine (uptime, busiest processes) before each run goes to
# OUT_DIR/load_<shape>_<rate>.log, since other work on the same cores skews
# the times.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
NS=$ROOT/tests/netns
OUT=${1:-$HERE/results/multinode-gloo-$(date +%Y%m%d-%H%M%S)}
NODES=${NODES:-2}
PER_NODE=${PER_NODE:-2}
RATE=${RATE-1gbit}
BUILD=${BUILD:-$ROOT/build}
PYTHON=${PYTHON:-/usr/bin/python3}
COLLS=${COLLS:-all_reduce all_gather alltoall}
GLOO_ARGS=${GLOO_ARGS:--b 8 -e 64M -f 4}
CHORUS_ARGS=${CHORUS_ARGS:--b 8 -e 64M -f 4 -n 5 -m 0}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
MASTER_PORT=${MASTER_PORT:-29500}
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)
BUILD=$(cd "$BUILD" && pwd) || exit 1

if [ -z "${GLOO_RUN_INNER:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "run_multinode_gloo.sh: needs root (network namespaces)" >&2; exit 1; }
    "$PYTHON" -c 'import torch.distributed as d; assert d.is_gloo_available()' 2>/dev/null || {
        echo "run_multinode_gloo.sh: $PYTHON has no torch with gloo (apt-get install python3-torch)" >&2
        exit 1
    }
    # Bring the nodes up once and re-run this script inside them.
    shaping=()
    [ -n "$RATE" ] && shaping=(--rate "$RATE")
    export GLOO_RUN_INNER=1 NODES PER_NODE RATE BUILD PYTHON COLLS GLOO_ARGS CHORUS_ARGS RUN_TIMEOUT MASTER_PORT
    exec "$NS/with-nodes.sh" "$NODES" "${shaping[@]}" -- "$0" "$OUT"
fi

# our settings are not the ranks' business (and CHORUS_*/GLOO_* would show up
# in the tools' "Environment:" header lines)
export -n GLOO_RUN_INNER NODES PER_NODE RATE BUILD PYTHON COLLS GLOO_ARGS CHORUS_ARGS RUN_TIMEOUT MASTER_PORT
shape=${NODES}x${PER_NODE}
rate=${RATE:-unshaped}
NP=$((NODES * PER_NODE))
IFS=, read -r -a addrs <<<"$CHORUS_NETNS_ADDRS"
MASTER_ADDR=${addrs[0]}
LOAD=$OUT/load_${shape}_${rate}.log
read -r -a gloo_args <<<"$GLOO_ARGS"
read -r -a chorus_args <<<"$CHORUS_ARGS"

load() { # what else runs on the machine right now
    {
        echo "## $(date '+%F %T') before $1"
        uptime
        ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -8
    } >>"$LOAD"
}

tool_of() {
    case $1 in
        all_reduce) echo all_reduce_perf ;;
        all_gather) echo all_gather_perf ;;
        alltoall) echo alltoall_perf ;;
        *) return 1 ;;
    esac
}

gloo_run() { # coll
    local coll=$1 name=${1}_${shape}_${rate} i j r pids=() rc=0 st
    local txt=$OUT/$name.txt err=$OUT/$name.err
    load "gloo $coll"
    local envs=(MASTER_ADDR="$MASTER_ADDR" MASTER_PORT="$MASTER_PORT" WORLD_SIZE="$NP" GLOO_SOCKET_IFNAME=eth0)
    echo "\$ tests/netns/netns.sh exec I timeout $RUN_TIMEOUT env ${envs[*]} RANK=R LOCAL_RANK=L $PYTHON perf/gloo_bench.py -c $coll $GLOO_ARGS -J $name.json   # rank R = I*$PER_NODE+L on node I, I < $NODES, L < $PER_NODE, all in the background; links: $rate; nodes ${CHORUS_NETNS_ADDRS}" | tee "$txt"
    : >"$err"
    for ((i = 0; i < NODES; i++)); do
        for ((j = 0; j < PER_NODE; j++)); do
            r=$((i * PER_NODE + j))
            local json=()
            [ "$r" = 0 ] && json=(-J "$OUT/$name.json")
            # timeout is outside netns.sh exec: netns.sh and `ip netns exec`
            # exec the command, so timeout's child is the Python process
            if [ "$r" = 0 ]; then
                timeout -k 10 "$RUN_TIMEOUT" "$NS/netns.sh" exec "$i" env "${envs[@]}" RANK=$r LOCAL_RANK=$j \
                    "$PYTHON" "$HERE/gloo_bench.py" -c "$coll" "${gloo_args[@]}" "${json[@]}" \
                    >>"$txt" 2>>"$err" </dev/null &
            else
                timeout -k 10 "$RUN_TIMEOUT" "$NS/netns.sh" exec "$i" env "${envs[@]}" RANK=$r LOCAL_RANK=$j \
                    "$PYTHON" "$HERE/gloo_bench.py" -c "$coll" "${gloo_args[@]}" \
                    >>"$err" 2>&1 </dev/null &
            fi
            pids+=($!)
        done
    done
    for p in "${pids[@]}"; do
        wait "$p"
        st=$?
        [ "$st" != 0 ] && rc=$st
    done
    [ -s "$err" ] || rm -f "$err"
    [ "$rc" = 124 ] && echo "run_multinode_gloo.sh: gloo $coll timed out after ${RUN_TIMEOUT}s" | tee -a "$txt" >&2
    [ "$rc" != 0 ] && echo "run_multinode_gloo.sh: gloo $coll: status $rc" >&2
    grep -E '^# (Avg|Wrong)' "$txt" || tail -3 "$txt"
    # the next run must not meet this one's port in TIME_WAIT trouble
    MASTER_PORT=$((MASTER_PORT + 1))
    return 0
}

chorus_run() { # coll
    local coll=$1 tool name=${1}_${shape}_${rate}_chorus
    tool=$(tool_of "$coll") || return 0
    load "chorus $coll"
    echo "\$ tests/netns/mpirun-nodes.sh $NODES $PER_NODE --timeout $RUN_TIMEOUT -- $BUILD/perf/$tool $CHORUS_ARGS -J $name.json   # CHORUS_ALGO='${CHORUS_ALGO:-}'; links: $rate" | tee "$OUT/$name.txt"
    "$NS/mpirun-nodes.sh" "$NODES" "$PER_NODE" --timeout "$RUN_TIMEOUT" -- \
        "$BUILD/perf/$tool" "${chorus_args[@]}" -J "$OUT/$name.json" >>"$OUT/$name.txt" 2>&1 ||
        echo "run_multinode_gloo.sh: chorus $coll: status $?" >&2
    grep -E '^# (Avg|Out of|Wrong)' "$OUT/$name.txt" || tail -3 "$OUT/$name.txt"
}

echo "# nodes: $CHORUS_NETNS_NAMES ($CHORUS_NETNS_ADDRS), shaping $CHORUS_NETNS_SHAPING, $shape ranks" | tee -a "$LOAD"
for coll in $COLLS; do
    gloo_run "$coll"
    chorus_run "$coll"
done
load "end"
echo "results in $OUT"
