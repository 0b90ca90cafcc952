#!/usr/bin/env bash
# tests/tuner_match.sh - the runtime decides what chorus_tune (and the
# simulator, which asks the same tuner) predicts for the same layout.
#
# Usage: tests/tuner_match.sh BUILD_DIR MPIRUN
#
# Runs the all-reduce perf tool on fake hosts (CHORUS_HOSTID) with
# CHORUS_LOG_LEVEL=info, takes the decision table rank 0 logs for the world
# communicator, and compares it line by line with `chorus_tune --layout
# HOSTSxPPN --summary` (every collective, alltoallv included): for 2x2, 3x2
# and 4x1 with the default figures, and 2x2 with a tuning file whose figures
# and rules change the choices; then with CHORUS_TOPO_FILE (two test
# topologies, one with a shuffled rank map) against `chorus_tune --topo FILE
# --summary`. Then runs alltoallv (test_coll, counts that differ between
# ranks) on 4x1 and 2x2 hosts at CHORUS_LOG_LEVEL=trace, where its table
# changes algorithm with the size: every call must run what `chorus_tune
# --coll alltoallv` names for the size the ranks agreed on, the same on
# every rank, on both sides of the switch. Last, ranks reading different
# tuning files are refused at init.
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
    env "$@" "$TUNE" --layout "${hosts}x${ppn}" --summary | grep -v '^#' >"$TMP/tune"
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
compare "4x1 defaults" 4 1
if ! grep -q '^alltoallv: .*direct, .*pairwise' "$TMP/runtime"; then
    echo "FAIL 4x1: alltoallv should switch from direct to pairwise (the test below needs it)"
    fail=1
fi
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
    "$TUNE" --topo "$SRC/tests/topo/$name.yaml" --summary | grep -v '^#' >"$TMP/tune"
    if [ "$(wc -l <"$TMP/runtime")" -ne 8 ] || ! diff -u "$TMP/tune" "$TMP/runtime"; then
        echo "FAIL topology $name: runtime and chorus_tune --topo disagree (or no table logged)"
        fail=1
    else
        echo "ok   topology $name: $(grep '^alltoall:' "$TMP/runtime")"
    fi
done

# alltoallv: ranks send different amounts, so they agree on the size they
# look up (the busiest rank's bytes / ranks) before choosing; each call must
# run the algorithm chorus_tune names for that size, on every rank alike
alltoallv_runs() { # name hosts ppn [env...]
    local name=$1 hosts=$2 ppn=$3
    shift 3
    local args=() h n=$((hosts * ppn))
    for ((h = 0; h < hosts; h++)); do
        [ "$h" -gt 0 ] && args+=(:)
        args+=(-np "$ppn" -env CHORUS_HOSTID "host$h" "$BUILD/tests/test_coll" --quick
               --large-mib 16 --coll alltoallv)
    done
    if ! timeout 240 env CHORUS_LOG_LEVEL=trace "$@" "$MPIRUN" "${args[@]}" \
        >"$TMP/a2av.out" 2>"$TMP/a2av.log"; then
        echo "FAIL alltoallv $name: test_coll failed:"
        grep -hv " TRACE \| DEBUG " "$TMP/a2av.log" "$TMP/a2av.out" | tail -n 5
        fail=1
        return
    fi
    # rank r's decisions ("bytes algorithm", one per call) and the plans it built
    local r bad=0
    for ((r = 0; r < n; r++)); do
        grep " rank $r/$n: alltoallv (busiest" "$TMP/a2av.log" |
            sed 's/.* looks up \([0-9]*\) B: \(.*\)/\1 \2/' >"$TMP/dec.$r"
        grep " rank $r/$n: alltoallv over $n ranks with " "$TMP/a2av.log" |
            sed 's/.* with \([a-z]*\) .*/\1/' >"$TMP/ran.$r"
        if ! cmp -s "$TMP/dec.0" "$TMP/dec.$r"; then
            echo "FAIL alltoallv $name: rank $r looked up other sizes or chose otherwise than rank 0"
            diff "$TMP/dec.0" "$TMP/dec.$r" | head -n 5
            bad=1
        fi
        if ! cut -d' ' -f2 "$TMP/dec.$r" | cmp -s - "$TMP/ran.$r"; then
            echo "FAIL alltoallv $name: rank $r ran other plans than it chose"
            bad=1
        fi
    done
    local calls bytes want got
    calls=$(wc -l <"$TMP/dec.0")
    while read -r bytes got; do
        [ "$bytes" -gt 0 ] || bytes=1 # 0 B looks up the 1-byte entry
        want=$(env "$@" "$TUNE" --layout "${hosts}x${ppn}" --coll alltoallv -b "$bytes" \
            -e "$bytes" | grep -v '^#' | awk 'NR == 2 { print $2 }')
        if [ "$want" != "$got" ]; then
            echo "FAIL alltoallv $name: $bytes B per peer ran $got, chorus_tune says $want"
            bad=1
        fi
    done < <(sort -u "$TMP/dec.0")
    # the ranks' own loads differed, so the agreement mattered
    local differ kinds
    differ=$(grep "alltoallv: largest load" "$TMP/a2av.log" |
        sed "s/.*largest load of any rank \([0-9]*\) B (this rank's \([0-9]*\) B).*/\1 \2/" |
        awk '$1 != $2' | wc -l)
    kinds=$(cut -d' ' -f2 "$TMP/dec.0" | sort -u | tr '\n' ' ')
    if [ "$calls" -lt 10 ] || [ "$(echo "$kinds" | wc -w)" -lt 2 ] || [ "$differ" -eq 0 ]; then
        echo "FAIL alltoallv $name: $calls calls, algorithms: $kinds; $differ calls where a" \
            "rank's own load was not the agreed one: want >= 10 calls, both sides of a switch," \
            "and unequal loads"
        bad=1
    fi
    [ "$bad" = 0 ] && echo "ok   alltoallv $name: $calls calls, each ran the table's choice for" \
        "the agreed size (${kinds% }); a rank's own load differed from it in $differ"
    [ "$bad" = 0 ] || fail=1
}

if [ -x "$BUILD/tests/test_coll" ]; then
    alltoallv_runs "4x1 defaults" 4 1
    printf 'rules:\n  - {collective: alltoallv, min: 16K, max: 1T, algorithm: pairwise}\n' \
        >"$TMP/a2av.yaml"
    alltoallv_runs "2x2, rule: pairwise from 16K" 2 2 CHORUS_TUNING_FILE="$TMP/a2av.yaml"
else
    echo "FAIL alltoallv: $BUILD/tests/test_coll is not built (make check)"
    fail=1
fi

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
