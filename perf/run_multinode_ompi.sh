#!/bin/bash
# perf/run_multinode_ompi.sh - the multi-node sweep of run_multinode.sh, with
# Open MPI's TCP transport (ob1 + tcp BTL) as the MPI side instead of MPICH:
# the perf tools built against Open MPI, launched with Open MPI's mpirun
# across network namespaces standing in for nodes (tests/netns,
# mpirun-nodes-ompi.sh).
#
# Usage: perf/run_multinode_ompi.sh [OMPI_BUILD_DIR] [OUT_DIR]   (as root)
#   OMPI_BUILD_DIR  a build configured against Open MPI (default build-ompi):
#       mkdir build-ompi && cd build-ompi && ../configure \
#         MPI_CFLAGS="$(pkg-config --cflags ompi-c)" MPI_LIBS="$(pkg-config --libs ompi-c)" \
#         MPIRUN=/usr/bin/mpirun.openmpi && make -j2
#   NODES=2 PER_NODE=2 RATE=1gbit   the shape and the link shaping (RATE=
#                                   empty: unshaped veths)
#   BTL=tcp,self    Open MPI's BTLs (default: TCP only, also within a node);
#                   BTL=vader,tcp,self: shared memory within a node, as MPICH
#                   (see tests/netns/mpirun-nodes-ompi.sh); names get _vader-tcp-self
#   SUFFIX=         appended to every file name (e.g. _rep2 for a repeat)
#   TIMEOUT=1200    seconds per run
# Runs on one set of namespaces, so every run sees the same links: all_reduce,
# all_gather, alltoall, reduce_scatter and broadcast, 8 B .. 64 MiB (-f 4,
# -n 5), Chorus with the model's choice (CHORUS_ALGO unset). Writes
# <tool>_<NODES>x<PER_NODE>_ompi_<1gbit|unshaped|RATE>.txt and .json per run
# to OUT_DIR (the suffix keeps runs with different shaping apart), plots if
# gnuplot is there, and prints the exact command of each run (also the first
# line of each .txt).
set -euo pipefail
BUILD=${1:-build-ompi}
OUT=${2:-results/multinode-ompi-$(date +%Y%m%d-%H%M%S)}
NODES=${NODES:-2}
PER_NODE=${PER_NODE:-2}
RATE=${RATE-1gbit}
TIMEOUT=${TIMEOUT:-1200}
BTL=${BTL:-tcp,self}
SUFFIX=${SUFFIX:-}
HERE=$(cd "$(dirname "$0")" && pwd)
NS=$HERE/../tests/netns
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD=$(cd "$BUILD" && pwd)
export NODES PER_NODE RATE TIMEOUT BTL SUFFIX

if ! grep -q 'ompi\|openmpi' "$BUILD/Makefile" 2>/dev/null; then
    echo "run_multinode_ompi.sh: $BUILD does not look like a build against Open MPI (MPI_LIBS)" >&2
    exit 1
fi

if [ -z "${CHORUS_NETNS_PREFIX:-}" ]; then
    # Bring the nodes up once and re-run this script inside them.
    shaping=()
    [ -n "$RATE" ] && shaping=(--rate "$RATE")
    exec "$NS/with-nodes.sh" "$NODES" "${shaping[@]}" -- "$0" "$BUILD" "$OUT"
fi

tag=${RATE:-unshaped}
[ "$BTL" = tcp,self ] || tag+=_$(echo "$BTL" | tr , -)
tag+=$SUFFIX
export CHORUS_NETNS_OMPI_BTL=$BTL
run() { # name tool args...
    local name=$1 tool=$2
    shift 2
    echo "\$ CHORUS_NETNS_OMPI_BTL=$BTL tests/netns/mpirun-nodes-ompi.sh $NODES $PER_NODE --timeout $TIMEOUT -- $BUILD/perf/$tool $* -J $name.json   # links: ${RATE:-unshaped} (applied: $CHORUS_NETNS_SHAPING), CHORUS_ALGO unset" | tee "$OUT/$name.txt"
    env -u CHORUS_ALGO "$NS/mpirun-nodes-ompi.sh" "$NODES" "$PER_NODE" --timeout "$TIMEOUT" -- \
        "$BUILD/perf/$tool" "$@" -J "$OUT/$name.json" >>"$OUT/$name.txt" 2>&1 || echo "# exit status $?" | tee -a "$OUT/$name.txt"
    grep -E '^# (Avg|Out of|Wrong)' "$OUT/$name.txt" || tail -3 "$OUT/$name.txt"
}

shape=${NODES}x${PER_NODE}
for tool in all_reduce all_gather alltoall reduce_scatter broadcast; do
    run "${tool}_${shape}_ompi_${tag}" "${tool}_perf" -b 8 -e 64M -f 4 -n 5
done
if command -v gnuplot >/dev/null; then
    for f in "$OUT"/*_"$shape"_ompi_"$tag".json; do
        [ -f "$f" ] || continue
        "$HERE/chorus_perf_plot" -o "${f%.json}.png" "$f" >/dev/null 2>&1 || true
    done
fi
echo "results in $OUT"
