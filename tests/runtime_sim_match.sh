#!/usr/bin/env bash
# tests/runtime_sim_match.sh - the real runtime runs, at each size, the
# algorithm chorus_sim names on its row for the same topology (issue 5:
# "the real runtime makes the same choice as the simulator for the same
# layout").
#
# Usage: tests/runtime_sim_match.sh BUILD_DIR MPIRUN
#
# For each test topology (tests/topo/test-3x2.yaml on 6 ranks,
# test-2x2x2-shuffled.yaml on 8, the second with a rank map that is not the
# identity), and each of allreduce, allgather, alltoall, reduce_scatter,
# broadcast and reduce: the perf tool runs a sweep over TCP on this host
# with CHORUS_TOPO_FILE naming the topology and CHORUS_LOG_LEVEL=trace,
# where coll_net.c logs one line per call with its element count and the
# choice ("allreduce of 2 x 4 B looks up 8 B: hier(ring,ring)", labels as
# chorus_sim prints them); chorus_sim runs the same sweep. Every simulated
# row's count must have run on every rank, with the algorithm of the row.
# The sweep crosses switch points of both tables (e.g. rhd to a composed
# hier for allreduce). Last, the same with a tuning file's rule and
# CHORUS_ALGO in the environment of both, which they must honour alike.
set -u
BUILD=$1
MPIRUN=$2
SRC=$(cd "$(dirname "$0")/.." && pwd)
SIM=$BUILD/perf/chorus_sim
TMP=$(mktemp -d "${TMPDIR:-/tmp}/chorus-runtime-sim.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail=0
SWEEP=(-b 8 -e 32M -f 4)

# collective and its perf tool
perf_of() {
    case $1 in
    allreduce) echo all_reduce_perf ;; allgather) echo all_gather_perf ;;
    alltoall) echo alltoall_perf ;; reduce_scatter) echo reduce_scatter_perf ;;
    broadcast) echo broadcast_perf ;; reduce) echo reduce_perf ;;
    esac
}

check() { # case-name topology-name nranks "colls" [env...]: runtime and simulator alike
    local cname=$1 name=$2 np=$3 colls=$4
    shift 4
    local file=$SRC/tests/topo/$name.yaml coll perf bad seen rows count label ranks labels
    for coll in $colls; do
        perf=$BUILD/perf/$(perf_of "$coll")
        # the simulator's rows: count label (float, 4 B: the perf tools' default type)
        if ! env "$@" "$SIM" --topo "$file" --coll "$coll" "${SWEEP[@]}" >"$TMP/sim"; then
            echo "FAIL $cname $coll: chorus_sim failed"
            fail=1
            continue
        fi
        grep -v '^#' "$TMP/sim" | awk '{ print $2, $NF }' >"$TMP/sim.rows"
        # the runtime's decisions: -m 0 (no MPI timing; the sweep's own
        # agreement runs through Chorus in 8-byte types, which ' x 4 B' skips)
        if ! timeout 240 env CHORUS_TRANSPORT=tcp CHORUS_TOPO_FILE="$file" \
            CHORUS_LOG_LEVEL=trace "$@" "$MPIRUN" -np "$np" "$perf" "${SWEEP[@]}" -n 1 -w 0 \
            -m 0 >"$TMP/perf.out" 2>"$TMP/perf.log"; then
            echo "FAIL $cname $coll: the perf tool failed:"
            grep -hv " TRACE " "$TMP/perf.log" "$TMP/perf.out" | tail -n 5
            fail=1
            continue
        fi
        # "rank count label", one line per call
        grep " TRACE coll .*: $coll of [0-9]* x 4 B looks up " "$TMP/perf.log" |
            sed "s/.* rank \([0-9]*\)\/$np: $coll of \([0-9]*\) x 4 B looks up [0-9]* B: \(.*\)/\1 \2 \3/" \
            >"$TMP/runtime"
        bad=0 seen=""
        while read -r count label; do
            ranks=$(awk -v c="$count" '$2 == c { print $1 }' "$TMP/runtime" | sort -un | wc -l)
            labels=$(awk -v c="$count" '$2 == c { print $3 }' "$TMP/runtime" | sort -u)
            if [ "$ranks" -ne "$np" ]; then
                echo "FAIL $cname $coll: count $count ran on $ranks of $np ranks (the perf" \
                    "tool's sweep and the simulator's should have the same counts)"
                bad=1
            elif [ "$labels" != "$label" ]; then
                echo "FAIL $cname $coll: count $count: runtime ran" $labels", chorus_sim: $label"
                bad=1
            fi
            case " $seen " in *" $label "*) ;; *) seen="$seen $label" ;; esac
        done <"$TMP/sim.rows"
        rows=$(wc -l <"$TMP/sim.rows")
        if [ "$rows" -lt 8 ]; then
            echo "FAIL $cname $coll: only $rows simulated rows"
            bad=1
        fi
        [ "$bad" = 0 ] && echo "ok   $cname $coll: $rows sizes, runtime = chorus_sim:$seen"
        [ "$bad" = 0 ] || fail=1
    done
}

ALL="allreduce allgather alltoall reduce_scatter broadcast reduce"
check test-3x2 test-3x2 6 "$ALL"
check test-2x2x2-shuffled test-2x2x2-shuffled 8 "$ALL"
# overrides read from the environment by all three (docs/tuner.md): a tuning
# file's rule and CHORUS_ALGO's exclusions and forcing
printf 'rules:\n  - {collective: allreduce, min: 0, max: 4K, algorithm: tree}\n' >"$TMP/rules.yaml"
check "test-3x2 [tuning rule, CHORUS_ALGO]" test-3x2 6 "allreduce allgather broadcast" \
    CHORUS_TUNING_FILE="$TMP/rules.yaml" CHORUS_ALGO='allgather:^rhd;broadcast:ring'
exit $fail
