#!/usr/bin/env bash
# tests/tuner_match.sh - the runtime decides what chorus_tune (and the
# simulator, which asks the same tuner) predicts for the same layout.
#
# Usage: tests/tuner_match.sh BUILD_DIR MPIRUN
#
# Runs the all-reduce perf tool on fake hosts (CHORUS_HOSTID) with
# CHORUS_LOG_LEVEL=info, takes the decision table rank 0 logs for the world
# communicator, and compares it line by line with `chorus_tune --layout
# HOSTSxPPN --summary`: for 2x2 and 3x2 with the default figures, and 2x2
# with a tuning file whose figures and rules change the choices; then with
# CHORUS_TOPO_FILE (two test topologies, one with a shuffled rank map)
# against `chorus_tune --topo FILE --summary`. Then checks that ranks
# reading different tuning files are refused at init.
set -u
BUILD=$1
MPIRUN=$2
TUNE=$BUILD/src/chorus_tune
PERF=$BUILD/perf/all_reduce_perf
TMP=$(mktemp -d "${TMPDIR:-/tmp}/chorus-tuner-match.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail=0

runtime_table() { # hosts ppn [env...] : the world communicator's table
    local hosts=$1 ppn=$2
    shift 2
    local args=() h
    for ((h = 0; h < hosts; h++)); do
        [ "$h" -gt 0 ] && args+=(:)
        args+=(-np "$ppn" -env CHORUS_HOSTID "host$h" "$PERF" -b 8 -e 8 -n 1 -w 0)
    done
    env CHORUS_LOG_LEVEL=info "$@" "$MPIRUN" "${args[@]}" 2>&1 >/dev/null |
        grep " INFO tuner " | grep "rank 0/$((hosts * ppn)): " | head -n 8 |
        sed 's/.*rank 0\/[0-9]*: //'
}

compare() { # name hosts ppn [env...]
    local name=$1 hosts=$2 ppn=$3
    shift 3
    runtime_table "$hosts" "$ppn" "$@" >"$TMP/runtime"
    env "$@" "$TUNE" --layout "${hosts}x${ppn}" --summary >"$TMP/tune"
    if [ "$(wc -l <"$TMP/runtime")" -ne 8 ]; then
        echo "FAIL $name: the runtime logged $(wc -l <"$TMP/runtime") table lines, want 8"
        fail=1
    elif ! diff -u "$TMP/tune" "$TMP/runtime"; then
        echo "FAIL $name: runtime and chorus_tune disagree (diff above: - tune, + runtime)"
        fail=1
    else
        echo "ok   $name: $(head -n 1 "$TMP/runtime")"
    fi
}

compare "2x2 defaults" 2 2
compare "3x2 defaults" 3 2
cat >"$TMP/tuning.yaml" <<'EOF'
figures:
  tcp: {latency: 80 us, bandwidth: 0.5 GB/s}
  shm: {latency: 0.5 us, bandwidth: 9 GB/s}
rules:
  - {collective: allreduce, min: 0, max: 64K, algorithm: rhd}
  - {collective: alltoall, min: 1M, max: 1G, algorithm: pairwise}
EOF
compare "2x2 tuning file" 2 2 CHORUS_TUNING_FILE="$TMP/tuning.yaml"
if ! grep -q 'allreduce: 1-64K rhd' "$TMP/runtime"; then
    echo "FAIL the tuning file's allreduce rule is not in the runtime's table"
    fail=1
fi

# a topology file describing the communicator's ranks: the runtime prices
# (and composes over) it exactly as chorus_tune --topo and the simulator do
SRC=$(cd "$(dirname "$0")/.." && pwd)
for f in test-3x2:6 test-2x2x2-shuffled:8; do
    name=${f%%:*} np=${f##*:}
    runtime_table 1 "$np" CHORUS_TRANSPORT=tcp CHORUS_TOPO_FILE="$SRC/tests/topo/$name.yaml" \
        >"$TMP/runtime"
    "$TUNE" --topo "$SRC/tests/topo/$name.yaml" --summary >"$TMP/tune"
    if [ "$(wc -l <"$TMP/runtime")" -ne 8 ] || ! diff -u "$TMP/tune" "$TMP/runtime"; then
        echo "FAIL topology $name: runtime and chorus_tune --topo disagree (or no table logged)"
        fail=1
    else
        echo "ok   topology $name: $(grep '^alltoall:' "$TMP/runtime")"
    fi
done

# ranks deciding from different files would wait on each other forever
cp "$TMP/tuning.yaml" "$TMP/other.yaml"
echo "  - {collective: allgather, min: 0, max: 1K, algorithm: ring}" >>"$TMP/other.yaml"
out=$(timeout 60 "$MPIRUN" -np 1 -env CHORUS_TUNING_FILE "$TMP/tuning.yaml" "$PERF" -b 8 -e 8 \
    -n 1 -w 0 : -np 1 -env CHORUS_TUNING_FILE "$TMP/other.yaml" "$PERF" -b 8 -e 8 -n 1 -w 0 2>&1)
if echo "$out" | grep -q "tuning file settings"; then
    echo "ok   ranks with different tuning files refused"
else
    echo "FAIL ranks with different tuning files were not refused:"
    echo "$out" | tail -n 5
    fail=1
fi
# a broken file is an init error naming file and line, not a silent default
echo "rules: [{collective: allreduce, algorithm: nope}]" >"$TMP/broken.yaml"
out=$(timeout 60 env CHORUS_TUNING_FILE="$TMP/broken.yaml" "$MPIRUN" -np 2 "$PERF" -b 8 -e 8 \
    -n 1 -w 0 2>&1)
if echo "$out" | grep -q "broken.yaml:1: rules\[0\].algorithm: unknown algorithm 'nope'"; then
    echo "ok   a broken tuning file is refused with its line"
else
    echo "FAIL a broken tuning file was not refused clearly:"
    echo "$out" | tail -n 5
    fail=1
fi
exit $fail
