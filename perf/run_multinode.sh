#!/bin/bash
# perf/run_multinode.sh - the multi-node sweep behind docs/network.md: the
# perf tools across network namespaces standing in for nodes (tests/netns),
# side by side with MPICH (UCX over TCP) on the same links.
#
# Usage: perf/run_multinode.sh [BUILD_DIR] [OUT_DIR]   (as root)
#   NODES=2 PER_NODE=2 RATE=1gbit   the shape and the link shaping (RATE=
#                                   empty: unshaped veths)
# Runs on one set of namespaces, so every run sees the same links:
#   1. every perf tool once with the model's choice (correctness: #wrong 0);
#   2. allreduce, allgather and reduce_scatter with CHORUS_ALGO=hier and with
#      the flat ring, 8 B .. 64 MiB: node-aware against flat.
# Writes one .txt and .json per run to OUT_DIR, plots if gnuplot is there,
# and prints the exact command of each run.
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-results/multinode-$(date +%Y%m%d-%H%M%S)}
NODES=${NODES:-2}
PER_NODE=${PER_NODE:-2}
RATE=${RATE-1gbit}
HERE=$(cd "$(dirname "$0")" && pwd)
NS=$HERE/../tests/netns
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD=$(cd "$BUILD" && pwd)

if [ -z "${CHORUS_NETNS_PREFIX:-}" ]; then
    # Bring the nodes up once and re-run this script inside them.
    shaping=()
    [ -n "$RATE" ] && shaping=(--rate "$RATE")
    exec "$NS/with-nodes.sh" "$NODES" "${shaping[@]}" -- "$0" "$BUILD" "$OUT"
fi

run() { # name algo tool args...
    local name=$1 algo=$2 tool=$3
    shift 3
    echo "\$ CHORUS_ALGO='$algo' tests/netns/mpirun-nodes.sh $NODES $PER_NODE -- perf/$tool $* -J $name.json   # links: ${RATE:-unshaped}" | tee "$OUT/$name.txt"
    env CHORUS_ALGO="$algo" "$NS/mpirun-nodes.sh" "$NODES" "$PER_NODE" --timeout 900 -- \
        "$BUILD/perf/$tool" "$@" -J "$OUT/$name.json" >>"$OUT/$name.txt" 2>&1 || true
    grep -E '^# (Avg|Out of|Wrong)' "$OUT/$name.txt" || tail -3 "$OUT/$name.txt"
}

shape=${NODES}x${PER_NODE}
for tool in all_reduce all_gather alltoall reduce_scatter broadcast reduce sendrecv; do
    run "${tool}_${shape}_auto" "" "${tool}_perf" -b 8 -e 16M -f 8 -n 5
done
for tool in all_reduce all_gather reduce_scatter; do
    for algo in hier ring; do
        run "${tool}_${shape}_${algo}" "$algo" "${tool}_perf" -b 8 -e 64M -f 4 -n 5
    done
done
if command -v gnuplot >/dev/null; then
    for f in "$OUT"/*_"$shape"_*.json; do
        "$HERE/chorus_perf_plot" -o "${f%.json}.png" "$f" >/dev/null 2>&1 || true
    done
fi
echo "results in $OUT"
