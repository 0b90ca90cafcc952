#!/usr/bin/env bash
# tests/fuzz/run-fuzz.sh - runs one Chorus fuzz target with libFuzzer and
# merges what it found into the kept corpus (docs/fuzzing.md).
#
# Usage: tests/fuzz/run-fuzz.sh TARGET [SECONDS]     (default 600)
#   TARGET: bootstrap_msg, bootstrap_root or topo
#
# 1. builds (if needed) the clang fuzzing build in build-fuzz:
#    CC=clang ../configure --enable-fuzzing (ASan + UBSan + libFuzzer);
# 2. runs the target on one core for SECONDS, starting from
#    tests/fuzz/corpus/TARGET, new inputs into build-fuzz/fuzz-work/TARGET,
#    crashes into tests/fuzz/crashes/TARGET-*;
# 3. minimises: every hand-made seed (any file not named fuzz-*) is kept,
#    and libFuzzer's -merge=1 adds the fewest inputs (old fuzz-* and new
#    finds) that keep all the coverage, stored as fuzz-<sha1>.
# The libFuzzer log is build-fuzz/fuzz-work/TARGET.log; its last lines give
# executions and coverage (cov:, ft:).
#
# Environment: FUZZ_BUILD (default <src>/build-fuzz), FUZZ_ARGS (more libFuzzer
# options), FUZZ_NO_MERGE=1 (leave the kept corpus alone).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${1:?usage: run-fuzz.sh TARGET [SECONDS]}
SECS=${2:-600}
BUILD=${FUZZ_BUILD:-$SRC/build-fuzz}
case $TARGET in
    bootstrap_msg) MAXLEN=1024 ;;
    bootstrap_root) MAXLEN=4096 ;;
    topo) MAXLEN=16384 ;;
    *) echo "run-fuzz.sh: unknown target '$TARGET' (bootstrap_msg, bootstrap_root, topo)" >&2; exit 2 ;;
esac

if [ ! -f "$BUILD/Makefile" ]; then
    [ -x "$SRC/configure" ] || (cd "$SRC" && ./autogen.sh)
    mkdir -p "$BUILD"
    (cd "$BUILD" && CC=clang "$SRC/configure" --enable-fuzzing --enable-werror >configure.log)
fi
make -C "$BUILD" -j2 "tests/fuzz/fuzz_$TARGET" >/dev/null
BIN=$BUILD/tests/fuzz/fuzz_$TARGET
CORPUS=$SRC/tests/fuzz/corpus/$TARGET
WORK=$BUILD/fuzz-work/$TARGET
LOG=$BUILD/fuzz-work/$TARGET.log
mkdir -p "$CORPUS" "$WORK" "$SRC/tests/fuzz/crashes"

echo "run-fuzz.sh: fuzzing $TARGET for $SECS s (log: $LOG)"
set +e
# shellcheck disable=SC2086
"$BIN" "$WORK" "$CORPUS" -max_total_time="$SECS" -max_len="$MAXLEN" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$SRC/tests/fuzz/crashes/$TARGET-" ${FUZZ_ARGS:-} >"$LOG" 2>&1
rc=$?
set -e
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss' "$LOG" | tail -n 4
if [ "$rc" -ne 0 ]; then
    echo "run-fuzz.sh: the fuzzer stopped with status $rc: a crash? see $LOG and tests/fuzz/crashes/" >&2
    tail -n 40 "$LOG" >&2
    exit "$rc"
fi
[ "${FUZZ_NO_MERGE:-0}" = 1 ] && exit 0

# Minimise: seeds first (always kept), then whatever adds coverage.
MERGED=$(mktemp -d "${TMPDIR:-/tmp}/chorus-fuzz-merge.XXXXXX")
trap 'rm -rf "$MERGED"' EXIT
find "$CORPUS" -maxdepth 1 -type f ! -name 'fuzz-*' -exec cp {} "$MERGED/" \;
"$BIN" -merge=1 -max_len="$MAXLEN" "$MERGED" "$CORPUS" "$WORK" >"$LOG.merge" 2>&1
find "$CORPUS" -maxdepth 1 -type f -name 'fuzz-*' -delete
for f in "$MERGED"/*; do
    b=$(basename "$f")
    [ -e "$CORPUS/$b" ] || cp "$f" "$CORPUS/fuzz-$b"
done
echo "run-fuzz.sh: kept corpus $CORPUS: $(find "$CORPUS" -type f | wc -l) files," \
    "$(du -sk "$CORPUS" | cut -f1) KiB"
