#!/usr/bin/env bash
# perf/sim_report.sh - the supernode report (docs/supernode-report.md):
# chorus_sim on CloudMatrix384 and MetaX C550 x 128 for allreduce, allgather
# and alltoall, every candidate algorithm and the tuner's choice, 8 B .. 1 GiB;
# then every shipped topology and collective at 256 MiB and 1 GiB against
# the bandwidth bound (tuner_bound, docs/tuner.md), from the same check
# tests/test_sim makes (test_sim --bound-table).
#
# Usage: perf/sim_report.sh [BUILD_DIR] [OUT_DIR]
#   OUT_DIR (default docs/supernode-report): one .txt per run (chorus_sim's
#   own output, with its command line), report.md (the tables) and, with
#   gnuplot, one busbw plot per topology and collective.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
OUT=${2:-$SRC/docs/supernode-report}
SIM=$BUILD/perf/chorus_sim
export CHORUS_TOPO_DIR=${CHORUS_TOPO_DIR:-$SRC/topo}
mkdir -p "$OUT"
MD=$OUT/report.md
: >"$MD"
for topo in cloudmatrix384 metax-c550-128; do
    for coll in allreduce allgather alltoall; do
        base=$OUT/$topo-$coll
        args=(--topo "$topo" --coll "$coll" -b 8 -e 1G -f 8)
        "$SIM" "${args[@]}" >"$base-tuner.txt"
        "$SIM" "${args[@]}" --algo all >"$base-all.txt"
        # table: size, then busbw per algorithm, then the tuner's choice and busbw
        awk -v topo="$topo" -v coll="$coll" '
            FNR == 1 { file++ }
            /^#/ || NF < 9 { next }
            file == 1 { tb[$1] = $8; tl[$1] = $9; sizes[++n] = $1; next }
            { a = $9; sub(/\(.*/, "", a); if (!(a in seen)) { seen[a] = 1; algos[++na] = a }
              bw[$1, a] = $8 }
            END {
                printf "### %s, %s: busbw (GB/s) by size\n\n| size |", topo, coll
                for (j = 1; j <= na; j++) printf " %s |", algos[j]
                printf " tuner\047s choice | its busbw | of best |\n|---:|"
                for (j = 1; j <= na + 3; j++) printf "---:|"
                printf "\n"
                for (i = 1; i <= n; i++) {
                    s = sizes[i]; best = tb[s]
                    printf "| %s |", s
                    for (j = 1; j <= na; j++) {
                        v = ((s, algos[j]) in bw) ? bw[s, algos[j]] : "-"
                        if (v != "-" && v + 0 > best + 0) best = v
                        printf " %s |", v
                    }
                    printf " %s | %s | %.0f%% |\n", tl[s], tb[s], (best > 0 ? 100 * tb[s] / best : 100)
                }
                printf "\n"
            }' "$base-tuner.txt" "$base-all.txt" >>"$MD"
        # plot data: size, busbw per algorithm (columns), tuner last
        awk '
            FNR == 1 { file++ }
            /^#/ || NF < 9 { next }
            file == 1 { tb[$1] = $8; sizes[++n] = $1; next }
            { a = $9; sub(/\(.*/, "", a); if (!(a in seen)) { seen[a] = 1; algos[++na] = a }
              bw[$1, a] = $8 }
            END {
                printf "size"; for (j = 1; j <= na; j++) printf " %s", algos[j]; printf " tuner\n"
                for (i = 1; i <= n; i++) {
                    s = sizes[i]; printf "%s", s
                    for (j = 1; j <= na; j++) printf " %s", ((s, algos[j]) in bw) ? bw[s, algos[j]] : "NaN"
                    printf " %s\n", tb[s]
                }
            }' "$base-tuner.txt" "$base-all.txt" >"$base.dat"
        if command -v gnuplot >/dev/null; then
            ncol=$(head -n 1 "$base.dat" | wc -w)
            gnuplot <<EOF
set terminal pngcairo size 900,520 enhanced font 'Sans,10'
set output '$base.png'
set title '$coll on $topo (chorus\\_sim): bus bandwidth by algorithm'
set logscale x 2
set format x '2^{%L}'
set xlabel 'size (bytes)'
set ylabel 'busbw (GB/s)'
set key top left
set grid
set datafile missing 'NaN'
plot for [c=2:$((ncol - 1))] '$base.dat' using 1:c with linespoints title columnhead(c), \
     '$base.dat' using 1:$ncol with lines lw 3 dt 2 lc rgb 'black' title "tuner's choice"
EOF
        fi
        echo "$topo $coll done"
    done
done
{
    echo "### Every shipped topology against the bandwidth bound (256 MiB and 1 GiB)"
    echo
    echo "The tuner's choice simulated; bound = tuner_bound (docs/tuner.md), as busbw."
    echo "Command: \`CHORUS_TOPO_DIR=topo tests/test_sim --bound-table\` in the build directory"
    echo
    "$BUILD/tests/test_sim" --bound-table
    echo
} >>"$MD"
echo "tables in $MD"
