#!/usr/bin/env bash
# tests/mpi_interpose_compare.sh - one ordinary MPI benchmark, timed plain and
# with the MPI interposer preloaded, in one run.
#
# Usage: tests/mpi_interpose_compare.sh BUILD_DIR NP ROUNDS [mpi_loop_bench args...]
#   e.g. tests/mpi_interpose_compare.sh build 4 3 -c allreduce -b 8 -e 64M -f 4
#
# Runs BUILD_DIR/perf/mpi_loop_bench (MPI calls only) ROUNDS times each way,
# alternating plain / preloaded so that both see the same machine load, keeps
# each size's best (lowest) time, and prints one table:
#     bytes  mpi_us  chorus_us  speedup  check
# Exit status 0 iff every run of both ways ran and checked its results right
# (a "WRONG" check or a failed run is an error).
# Environment: MPIRUN (default mpirun.mpich or mpirun); LD_PRELOAD of an ASan
# build's runtime is added automatically.
set -u
if [ $# -lt 3 ]; then
    echo "usage: $0 BUILD_DIR NP ROUNDS [mpi_loop_bench args...]" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd) || exit 2
NP=$2
ROUNDS=$3
shift 3
BENCH=$BUILD/perf/mpi_loop_bench
LIB=$BUILD/src/mpi/.libs/libchorus_mpi.so
MPIRUN=${MPIRUN:-$(command -v mpirun.mpich || command -v mpirun)}
for f in "$BENCH" "$LIB"; do
    [ -e "$f" ] || { echo "$0: $f is missing (make check TESTS= builds it)" >&2; exit 2; }
done
PRELOAD=$LIB
asan=$(ldd "$LIB" 2>/dev/null | awk '/libasan/ { print $3 }')
[ -n "$asan" ] && PRELOAD="$asan $LIB"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/chorus-compare.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
status=0
for r in $(seq 1 "$ROUNDS"); do
    "$MPIRUN" -np "$NP" "$BENCH" "$@" >"$TMP/plain.$r" 2>&1 || {
        echo "plain run $r failed:"; cat "$TMP/plain.$r"; status=1; }
    "$MPIRUN" -np "$NP" -genv LD_PRELOAD "$PRELOAD" "$BENCH" "$@" >"$TMP/chorus.$r" 2>&1 || {
        echo "preloaded run $r failed:"; cat "$TMP/chorus.$r"; status=1; }
    grep -q "plain MPI" "$TMP/plain.$r" || { echo "run $r: the plain run was not plain"; status=1; }
    grep -q "interposer loaded" "$TMP/chorus.$r" ||
        { echo "run $r: the interposer was not loaded"; status=1; }
done
if grep -q WRONG "$TMP"/plain.* "$TMP"/chorus.* 2>/dev/null; then
    echo "a result was WRONG:"
    grep -H WRONG "$TMP"/plain.* "$TMP"/chorus.*
    status=1
fi
head -n 1 "$TMP/plain.1" | sed 's/, plain MPI//'
echo "# $ROUNDS round(s) each way, best time per size; speedup = mpi_us / chorus_us"
# best time per size of each way, then joined by size
best() {
    cat "$@" | awk '!/^#/ && NF >= 4 {
            if (!($1 in t) || $2 < t[$1]) t[$1] = $2
            if ($4 != "ok") bad[$1] = 1 }
        END { for (b in t) printf "%s %s %s\n", b, t[b], (b in bad) ? "WRONG" : "ok" }' | sort -n
}
best "$TMP"/plain.* >"$TMP/p"
best "$TMP"/chorus.* >"$TMP/c"
printf '# %12s %12s %12s %8s %6s\n' bytes mpi_us chorus_us speedup check
join "$TMP/p" "$TMP/c" | sort -n | awk '{ chk = ($3 == "ok" && $5 == "ok") ? "ok" : "WRONG";
    printf "  %12s %12.2f %12.2f %7.2fx %6s\n", $1, $2, $4, ($4 > 0 ? $2 / $4 : 0), chk }'
exit $status
