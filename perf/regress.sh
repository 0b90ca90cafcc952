#!/usr/bin/env bash
# perf/regress.sh - re-runs the standard sweep and flags any size where
# Chorus' ratio to the MPI peer fell by more than 10% against the recorded
# results (perf/results/standard/, the numbers behind perf/RESULTS.md).
#
# Usage: perf/regress.sh [BUILD_DIR] [OMPI_BUILD_DIR]
#   BUILD_DIR       default build (MPICH): compared with perf/results/standard/mpich
#   OMPI_BUILD_DIR  default build-ompi, when it exists (Open MPI): compared with
#                   perf/results/standard/ompi
#   TOLERANCE=0.10  MIN_SIZE=0 (bytes; smaller sizes are not compared)
# Run it on a quiet machine: a loaded one slows the libraries unevenly.
# Exit status 1 if a size was flagged.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
OMPI_BUILD=${2:-$SRC/build-ompi}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/chorus-regress.XXXXXX")
rc=0
echo "== MPICH: $BUILD"
"$SRC/perf/run_standard.sh" "$BUILD" "$OUT/mpich" >/dev/null || rc=1
python3 "$SRC/perf/check_regression.py" --tolerance "${TOLERANCE:-0.10}" \
    --min-size "${MIN_SIZE:-0}" "$SRC/perf/results/standard/mpich" "$OUT/mpich" || rc=1
if [ -x "$OMPI_BUILD/perf/all_reduce_perf" ] && command -v mpirun.openmpi >/dev/null; then
    echo "== Open MPI: $OMPI_BUILD"
    OMPI=1 "$SRC/perf/run_standard.sh" "$OMPI_BUILD" "$OUT/ompi" >/dev/null || rc=1
    python3 "$SRC/perf/check_regression.py" --tolerance "${TOLERANCE:-0.10}" \
        --min-size "${MIN_SIZE:-0}" "$SRC/perf/results/standard/ompi" "$OUT/ompi" || rc=1
else
    echo "== Open MPI: no build at $OMPI_BUILD (see perf/run_multinode_ompi.sh to make one); skipped"
fi
echo "new results in $OUT"
exit $rc
