#!/bin/bash
# perf/run_standard.sh - the standard side-by-side sweep behind docs/perf.md.
#
# Usage: perf/run_standard.sh [BUILD_DIR] [OUT_DIR]
# Runs every perf tool on 2 ranks (8 B .. 32 KiB with 2000 iterations,
# 128 KiB .. 256 MiB with 20, with the memory probe -B 256M) and the small-message
# allreduce on 4 and 8 ranks (more ranks than cores on purpose), each timing
# Chorus and the MPI library's own collective on the same buffers in the same
# run. Writes one .txt (the tool's table) and one .json per run to OUT_DIR,
# plus busbw plots, and prints the exact command of each run.
#
# The MPI side is whatever MPI the build links: the default build uses MPICH;
# for Open MPI, a build configured against it (see perf/run_multinode_ompi.sh)
# with OMPI=1, which launches with Open MPI's mpirun (no binding, as MPICH's
# Hydra; oversubscription allowed; as root if need be):
#   perf/run_standard.sh build perf/results/standard/mpich
#   OMPI=1 perf/run_standard.sh build-ompi perf/results/standard/ompi
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-results/$(date +%Y%m%d-%H%M%S)}
if [ "${OMPI:-0}" = 1 ]; then
    MPIRUN=${MPIRUN:-$(command -v mpirun.openmpi)}
    MPIRUN_ARGS=(--bind-to none --oversubscribe)
    [ "$(id -u)" = 0 ] && MPIRUN_ARGS+=(--allow-run-as-root)
else
    MPIRUN=${MPIRUN:-$(command -v mpirun.mpich || command -v mpirun)}
    MPIRUN_ARGS=()
fi
mkdir -p "$OUT"
BUILD=$(cd "$BUILD" && pwd)

run() { # name np tool args...
    local name=$1 np=$2 tool=$3
    shift 3
    local cmd=("$MPIRUN" "${MPIRUN_ARGS[@]}" -np "$np" "$BUILD/perf/$tool" "$@" -J "$OUT/$name.json")
    echo "\$ $(basename "$MPIRUN") ${MPIRUN_ARGS[*]} -np $np perf/$tool $* -J $name.json" |
        tee "$OUT/$name.txt"
    "${cmd[@]}" >>"$OUT/$name.txt" 2>&1
    grep -E '^# (Avg|Out of|Wrong)' "$OUT/$name.txt"
}

# Two runs per tool: small sizes need many iterations for a stable time (a call
# takes well under a microsecond), large ones take seconds at 20.
for tool in all_reduce all_gather alltoall reduce_scatter broadcast reduce sendrecv; do
    run "${tool}_np2_small" 2 "${tool}_perf" -b 8 -e 32K -f 4 -n 2000
    # -B: the memory probe before and after, and each size from 64 MiB as a share of the
    # busbw ceiling it allows (docs/perf.md)
    run "${tool}_np2" 2 "${tool}_perf" -b 128K -e 256M -f 4 -n 20 -B 256M
done
# More ranks than cores: MPICH busy-polls and needs milliseconds per call here,
# so these runs use few sizes to stay within minutes.
run all_reduce_np4 4 all_reduce_perf -b 8 -e 4K -f 8 -n 2000
run all_reduce_np8 8 all_reduce_perf -b 8 -e 8 -n 5000
if command -v gnuplot >/dev/null; then
    for f in "$OUT"/*_np2.json; do
        "$(dirname "$0")/chorus_perf_plot" -o "${f%.json}.png" "$f" >/dev/null
    done
fi
echo "results in $OUT"
