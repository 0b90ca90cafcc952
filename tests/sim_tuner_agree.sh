#!/usr/bin/env bash
# tests/sim_tuner_agree.sh - the tuner's choice against the simulator's best.
#
# Usage: tests/sim_tuner_agree.sh BUILD_DIR [TOPO...]
#
# For each topology (default: every shipped one) and each of allreduce,
# allgather, alltoall, reduce_scatter, broadcast and reduce, at sizes 8 B to
# 1 GiB (x8), runs chorus_sim twice: rows of the tuner's choice (default)
# and one row per candidate (--algo all). A size point agrees when the
# tuner's choice simulates within 10% of the fastest row there. Prints one
# line per topology and collective, and the points that disagree; exits 1
# when fewer than 90% of a topology's points agree (issue 5's bar).
set -u
BUILD=$1
shift
SIM=$BUILD/perf/chorus_sim
SRC=$(cd "$(dirname "$0")/.." && pwd)
export CHORUS_TOPO_DIR=${CHORUS_TOPO_DIR:-$SRC/topo}
TOPOS=("$@")
[ ${#TOPOS[@]} -eq 0 ] && TOPOS=(cloudmatrix384 metax-c550-128 gb200-nvl72 8gpu-roce400)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/chorus-agree.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail=0
for topo in "${TOPOS[@]}"; do
    agree=0 total=0
    for coll in allreduce allgather alltoall reduce_scatter broadcast reduce; do
        args=(--topo "$topo" --coll "$coll" -b 8 -e 1G -f 8)
        if ! "$SIM" "${args[@]}" >"$TMP/tuner" 2>"$TMP/err" ||
            ! "$SIM" "${args[@]}" --algo all >"$TMP/all" 2>>"$TMP/err"; then
            echo "FAIL $topo $coll: chorus_sim failed:"
            tail -n 5 "$TMP/err"
            fail=1
            continue
        fi
        # size -> tuner time and label; size -> best time over every row
        out=$(awk '
            FNR == 1 { file++ }
            /^#/ || NF < 9 { next }
            file == 1 { t[$1] = $6; lbl[$1] = $9; order[++n] = $1; best[$1] = $6; bl[$1] = $9; next }
            { if (!($1 in best) || $6 < best[$1]) { best[$1] = $6; bl[$1] = $9 } }
            END {
                for (i = 1; i <= n; i++) {
                    s = order[i]; ok = t[s] <= 1.10 * best[s]
                    printf "%s %s %s %s %s %d\n", s, t[s], lbl[s], best[s], bl[s], ok
                }
            }' "$TMP/tuner" "$TMP/all")
        a=$(echo "$out" | awk '$6 == 1' | wc -l)
        n=$(echo "$out" | grep -c .)
        agree=$((agree + a))
        total=$((total + n))
        printf '  %-15s %-16s %2d/%2d points within 10%% of the best\n' "$topo" "$coll" "$a" "$n"
        echo "$out" | awk '$6 == 0 { printf "      %12s B: tuner %s us (%s), best %s us (%s)\n", $1, $2, $3, $4, $5 }'
    done
    if [ "$total" -eq 0 ] || [ $((agree * 100)) -lt $((total * 90)) ]; then
        echo "FAIL $topo: $agree of $total points agree (need 90%)"
        fail=1
    else
        echo "ok   $topo: $agree of $total points agree ($((agree * 100 / total))%)"
    fi
done
exit $fail
