#!/usr/bin/env bash
# tests/perf_tools_check.sh - the perf tools run as a user runs them, and say what they must.
#
# Usage: tests/perf_tools_check.sh BUILD_DIR MPIRUN
#
# Every tool on 2 and 3 ranks over a small checked sweep (exit status 0, "Wrong values : 0 OK",
# one table row per size, the MPI columns filled), the JSON file parses, -m 0 with every -a
# (the sweep's bookkeeping then goes through Chorus), and the memory probe
# (-B) prints its rates, a positive ceiling and a %ceil row per large size. Bad options are
# refused with status 2, and a tunable with a typo fails init with a message naming it. No speed is asserted: the numbers are the benchmark's business.
set -u
BUILD=$1 MPIRUN=$2
P=$BUILD/perf
TMP=$(mktemp -d "${TMPDIR:-/tmp}/chorus-perf-check.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

for np in 2 3; do
    for tool in all_reduce all_gather alltoall reduce_scatter broadcast reduce sendrecv; do
        out=$TMP/$tool.$np.txt json=$TMP/$tool.$np.json
        "$MPIRUN" -np $np "$P/${tool}_perf" -b 8 -e 64K -f 8 -n 3 -w 1 -d float,int32 \
            -J "$json" >"$out" 2>&1
        rc=$?
        [ $rc -eq 0 ] || { fail "$tool np=$np: exit status $rc"; sed 's/^/    /' "$out" | tail -20; continue; }
        grep -q '^# Wrong values *: 0 OK' "$out" || fail "$tool np=$np: no '0 OK' line"
        # 8, 64, 512, 4K, 32K bytes (fewer for whole-buffer tools whose count rounds to 0)
        rows=$(grep -cE '^ +[0-9]+ +[0-9]+ +(float|int32) ' "$out")
        [ "$rows" -ge 6 ] || fail "$tool np=$np: only $rows table rows"
        python3 - "$json" <<'EOF' || fail "$tool np=$np: bad JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "OK" and d["rows"], d["result"]
assert all(r["oop_wrong"] == 0 for r in d["rows"])
assert any(r["mpi_busbw"] is not None for r in d["rows"])
EOF
    done
done
echo "every tool on 2 and 3 ranks: checked sweeps pass"

# -m 0: the sweep's bookkeeping (warm-up agreement, times by every -a, error counts) goes
# through Chorus instead of MPI
for a in 0 1 2 3; do
    out=$TMP/m0.$a.txt
    "$MPIRUN" -np 3 "$P/all_reduce_perf" -b 8 -e 64K -f 8 -n 3 -m 0 -a $a >"$out" 2>&1 ||
        fail "all_reduce_perf -m 0 -a $a: exit status $?"
    grep -q '^# Wrong values *: 0 OK' "$out" || fail "all_reduce_perf -m 0 -a $a: no '0 OK' line"
    rows=$(grep -cE '^ +[0-9]+ +[0-9]+ +float ' "$out")
    [ "$rows" -eq 5 ] || fail "all_reduce_perf -m 0 -a $a: $rows table rows, expected 5"
done
echo "-m 0 (bookkeeping over Chorus) with every -a"

# the memory probe and its ceiling
out=$TMP/probe.txt json=$TMP/probe.json
"$MPIRUN" -np 2 "$P/all_reduce_perf" -b 1M -e 4M -f 4 -n 2 -w 1 -B 4M -J "$json" >"$out" 2>&1 ||
    fail "all_reduce_perf -B 4M: exit status $?"
grep -qE '^# Memory probe before : memcpy of 4194304 bytes: [0-9.]+ GB/s per rank' "$out" ||
    fail "-B: no 'Memory probe before' line"
grep -qE '^# Memory probe after ' "$out" || fail "-B: no 'Memory probe after' line"
grep -qE '^# Busbw ceiling +: [0-9]*\.[0-9]*[1-9][0-9]* GB/s' "$out" || fail "-B: no positive ceiling"
pct=$(grep -cE '^# +(1048576|4194304) +[0-9.]+ +[0-9]+%' "$out")
[ "$pct" -eq 2 ] || fail "-B: expected 2 %ceil rows (1M and 4M), got $pct"
python3 - "$json" <<'EOF' || fail "-B: JSON lacks the ceiling"
import json, sys
d = json.load(open(sys.argv[1]))
c = d["busbw_ceiling_gbps"]
# all_reduce on 2 ranks: 0.8 x the rate of every rank copying at once (docs/perf.md)
assert c > 0 and abs(c - 0.8 * d["membw_copy_all_gbps"]) < 1e-3 * c, (c, d["membw_copy_all_gbps"])
EOF
sed -n '/Memory probe before/p;/Busbw ceiling/,/^#$/p' "$out"

# refused options: status 2 and a message
for bad in "-B 100K" "-B x" "-b 1M -e 8" "-d nosuchtype"; do
    # shellcheck disable=SC2086
    "$MPIRUN" -np 1 "$P/all_reduce_perf" $bad >"$TMP/bad.txt" 2>&1
    rc=$?
    [ $rc -eq 2 ] || fail "all_reduce_perf $bad: exit status $rc, expected 2"
done
echo "bad options refused with status 2"

# a word-valued tunable with a typo: init fails, naming the variable and the words it takes
# (once: the error text already starts with the result's name)
for bad in CMA=of TRANSPORT=tpc OVERSUBSCRIBED=maybe; do
    env "CHORUS_$bad" CHORUS_LOG_LEVEL=none "$MPIRUN" -np 2 "$P/all_reduce_perf" -b 8 -e 8 -n 1 \
        >"$TMP/badenv.txt" 2>&1 && fail "CHORUS_$bad: the tool ran"
    n=$(grep -c "^rank [01]: chorus_comm_init_mpi failed: invalid argument: CHORUS_${bad%%=*}='${bad#*=}': use one of: " "$TMP/badenv.txt")
    [ "$n" -eq 2 ] || { fail "CHORUS_$bad: $n of 2 ranks said why"; sed 's/^/    /' "$TMP/badenv.txt" | head; }
done
echo "tunables with a typo refused at init, naming the variable"

[ $fails -eq 0 ] && echo "perf tools: all checks passed"
exit $((fails > 0))
