#!/usr/bin/env bash
# tests/netns/kill_rank.sh - kill -9 one rank of a running perf tool across
# namespace nodes; the others must fail with an error naming it, soon, and
# leave nothing behind.
#
# Usage: kill_rank.sh [options] [TOOL:VICTIM[:plain]...]
#
# Each case runs build/perf/TOOL (nccl-tests style) with MPICH on NODES x PPN
# ranks (default 2 x 2: shared memory inside a node, TCP between the nodes)
# through mpirun-nodes.sh, over a long sweep (-b 1M -e 64M -n 100 -w 0 -m 0:
# Chorus calls only), waits until the first row of the table is out, waits
# --delay more seconds and kills rank VICTIM with SIGKILL. Then it checks:
#   * every other rank printed the tool's failure line naming the victim,
#     "[s] rank s: chorus_X(...) failed: remote error: ... rank VICTIM ...",
#     and did so within --bound seconds of the kill;
#   * mpiexec exited with the tool's status 3 ("a call failed"), not a hang
#     (the whole run is bounded) nor Hydra's own teardown;
#   * no process is left in the nodes' namespaces, mpirun-nodes.sh had none
#     to clean up, and no new /dev/shm/chorus* entry exists.
#
# Why each rank runs under a shell: Hydra kills every rank as soon as its
# proxy sees one exit (BAD TERMINATION ...), within milliseconds and usually
# before the survivors have noticed anything. -disable-auto-cleanup does not
# help reliably with MPICH 4.0.2: the proxies then send SIGUSR1 to the ranks
# and one of them often exits and takes its node's ranks down anyway. So each
# rank is started as `bash -c 'TOOL & wait; sleep S if it was killed'`: the
# shell outlives a killed rank, Hydra learns nothing, and only Chorus can
# tell the survivors. (The pid killed is the tool's own, from its "Using
# ranks" table, checked against PMI_RANK.)
# Why mpi_abort_hold.so: the perf tools call MPI_Abort as soon as a Chorus
# call fails, and that ends the whole job: the first survivor to report
# would take the others down before they report. Unless the case says
# ":plain", the ranks preload tests/netns/mpi_abort_hold.c, which prints the
# time of each MPI_Abort and holds it back (CHORUS_ABORT_HOLD_MS, 6000 ms: room for a survivor descheduled on a busy machine),
# so that every survivor's report can be checked and timed. A ":plain" case
# runs the tool as a user would (the shell around it aside): it checks that
# at least one survivor reported, that every report names the victim, and
# that mpiexec was done within the bound.
#
# Options:
#   --build DIR     the build tree (default: BUILD_DIR of this checkout, ./build)
#   --nodes N       nodes (default 2)      --ppn K   ranks per node (default 2)
#   --bound S       survivors must report within S seconds of the kill (default 20)
#   --delay S       seconds between the first row of the table and the kill (default 1)
#   --hold-ms MS    how long MPI_Abort is held (default 6000)
#   --timeout S     bound on one case's mpiexec (default 180)
#   -k, --keep      keep the logs (printed path) even when everything passed
#
# Default cases: all_reduce_perf:2 (a rank on the other node than rank 0),
# all_reduce_perf:1 (rank 0's node-mate), all_gather_perf:3, alltoall_perf:1,
# reduce_scatter_perf:2, broadcast_perf:0 (the root), reduce_perf:3. The
# tools run with -m 0, so between sizes they agree on times and counts through
# Chorus too (before, a survivor caught in the tool's own MPI calls could wait
# there for good, or be ended by MPI's error: seen in CI). No
# ":plain" case by default: when the first MPI_Abort ends the job, Hydra
# sometimes drops the survivors' last lines (seen once in ~5 plain runs: exit
# 3 and no failure line at all), which says nothing about Chorus.
#
# Nodes: uses the nodes of $CHORUS_NETNS_PREFIX if there are enough of them,
# else runs itself under with-nodes.sh (fresh prefix, torn down at the end).
# Needs root, MPICH (mpiexec.hydra, mpicc) and a C compiler.
# Output: one "ok"/"FAIL" line per case, then "kill_rank: N passed, N failed".
# Exit status: 0 iff every case passed; 2 usage; 77 not root.
set -u

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$DIR/../.." && pwd)
BUILD=$SRC/build
NODES=2 PPN=2 BOUND=20 DELAY=1 HOLD_MS=6000 TIMEOUT=180 KEEP=0
orig_args=("$@")

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
cases=()
while [ $# -gt 0 ]; do
    case $1 in
        --build) [ $# -ge 2 ] || usage; BUILD=$2; shift 2 ;;
        --nodes) [ $# -ge 2 ] || usage; NODES=$2; shift 2 ;;
        --ppn) [ $# -ge 2 ] || usage; PPN=$2; shift 2 ;;
        --bound) [ $# -ge 2 ] || usage; BOUND=$2; shift 2 ;;
        --delay) [ $# -ge 2 ] || usage; DELAY=$2; shift 2 ;;
        --hold-ms) [ $# -ge 2 ] || usage; HOLD_MS=$2; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
        -k | --keep) KEEP=1; shift ;;
        -h | --help) usage ;;
        -*) echo "kill_rank.sh: unknown option $1" >&2; usage ;;
        *) cases+=("$1"); shift ;;
    esac
done
[ ${#cases[@]} -gt 0 ] || cases=(all_reduce_perf:2 all_reduce_perf:1 all_gather_perf:3
    alltoall_perf:1 reduce_scatter_perf:2 broadcast_perf:0 reduce_perf:3)
NRANKS=$((NODES * PPN))
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "kill_rank.sh: no build directory" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "kill_rank.sh: needs root (network namespaces): skipped"; exit 77; }

# --- the nodes -------------------------------------------------------------------------
have_nodes() {
    [ -n "${CHORUS_NETNS_PREFIX:-}" ] || return 1
    local n
    n=$("$DIR/netns.sh" hosts --prefix "$CHORUS_NETNS_PREFIX" 2>/dev/null | grep -vc '^#')
    [ "${n:-0}" -ge "$NODES" ]
}
if ! have_nodes; then
    [ -z "${CHORUS_KILL_RANK_INNER:-}" ] || { echo "kill_rank.sh: no nodes after bringing them up" >&2; exit 1; }
    CHORUS_KILL_RANK_INNER=1 exec "$DIR/with-nodes.sh" "$NODES" -- "$0" "${orig_args[@]}"
fi
PREFIX=$CHORUS_NETNS_PREFIX

# --- the shims (ranks only): MPI_Abort held back, and mpirun-nodes.sh's UCX one ---------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/chorus-kill-rank.XXXXXX") || exit 1
MPICC=$(command -v mpicc.mpich || command -v mpicc) || { echo "kill_rank.sh: no mpicc" >&2; exit 1; }
"$MPICC" -shared -fPIC -O2 -o "$WORK/mpi_abort_hold.so" "$DIR/mpi_abort_hold.c" &&
    ${CC:-cc} -shared -fPIC -O2 -o "$WORK/ucx_disconnect_shim.so" "$DIR/ucx_disconnect_shim.c" ||
    { echo "kill_rank.sh: cannot build the shims" >&2; exit 1; }

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
chorus_shm() { ls -1 /dev/shm 2>/dev/null | grep -i '^chorus' | sort; }
# does text name rank r ("rank 3", not "rank 3/4", our own label, nor "rank 31")?
names_rank() { grep -qE "rank $2([^0-9/]|\$)" <<<"$1"; }
# processes inside the nodes' namespaces
ns_pids() {
    local i
    for ((i = 0; i < NODES; i++)); do ip netns pids "$PREFIX$i" 2>/dev/null; done | tr '\n' ' '
}

passed=0 failed=0
run_case() {
    local spec=$1 tool victim mode
    IFS=: read -r tool victim mode <<<"$spec"
    mode=${mode:-hold}
    local name="$tool ${NODES}x$PPN, kill -9 rank $victim${mode:+ ($mode)}"
    local log=$WORK/$tool.$victim.$mode.log problems=()
    if [ ! -x "$BUILD/perf/$tool" ] || ! [[ $victim =~ ^[0-9]+$ ]] || [ "$victim" -ge "$NRANKS" ]; then
        echo "FAIL $name: no $BUILD/perf/$tool, or rank $victim not in 0..$((NRANKS - 1))"
        failed=$((failed + 1))
        return
    fi
    local shm_before
    shm_before=$(chorus_shm)

    local env_run=(env CHORUS_NETNS_UCX_SHIM=0 CHORUS_ABORT_HOLD_MS="$HOLD_MS")
    local preload="$WORK/ucx_disconnect_shim.so"
    [ "$mode" = plain ] || preload="$preload $WORK/mpi_abort_hold.so"
    # each rank runs under a shell that outlives it (see the top)
    local keep_s=$((BOUND + HOLD_MS / 1000 + 10))
    "${env_run[@]}" "$DIR/mpirun-nodes.sh" "$NODES" "$PPN" --timeout "$TIMEOUT" \
        --mpiexec-arg -prepend-rank \
        --mpiexec-arg -genv --mpiexec-arg LD_PRELOAD --mpiexec-arg "$preload" -- \
        bash -c '"$@" & wait $!; rc=$?; [ $rc -gt 128 ] && sleep '"$keep_s"'; exit $rc' rank \
        "$BUILD/perf/$tool" -b 1M -e 64M -f 2 -n 100 -w 0 -m 0 >"$log" 2>&1 &
    local mp=$! t_start t_kill t_end rc pid=''
    t_start=$(now)

    # the sweep is running once rank 0 printed the first row of the table
    local i
    for ((i = 0; i < 1200; i++)); do
        grep -qE '^\[0\] +[0-9]+ +[0-9]+ ' "$log" && break
        kill -0 "$mp" 2>/dev/null || break
        sleep 0.1
    done
    pid=$(awk -v r="$victim" '$2 == "#" && $3 == "Rank" && $4 == r && $5 == "Pid" { print $6; exit }' "$log")
    sleep "$DELAY"
    # only a rank of this run: in one of our namespaces, with that PMI_RANK
    if [ -z "$pid" ] || ! grep -qE '^\[0\] +[0-9]+ +[0-9]+ ' "$log" ||
        ! tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "PMI_RANK=$victim" ||
        ! [[ " $(ns_pids) " == *" $pid "* ]]; then
        problems+=("the sweep did not start, or rank $victim (pid '${pid}') was not found running")
        kill -TERM "$mp" 2>/dev/null
        wait "$mp"
        rc=$?
        t_kill=$(now)
    else
        t_kill=$(now)
        kill -KILL "$pid"
        # bounded wait for the launcher: the survivors' reports, the held
        # aborts, Hydra's teardown
        local limit=$((BOUND + HOLD_MS / 1000 + 15))
        while kill -0 "$mp" 2>/dev/null; do
            [ "$(secs "$t_kill" "$(now)" | cut -d. -f1)" -ge "$limit" ] && break
            sleep 0.1
        done
        if kill -0 "$mp" 2>/dev/null; then
            problems+=("still running $limit s after the kill (hang): stopped")
            kill -TERM "$mp" 2>/dev/null
        fi
        wait "$mp"
        rc=$?
    fi
    t_end=$(now)

    # the survivors' reports
    local s line worst=0 reported=0 t dt
    for ((s = 0; s < NRANKS; s++)); do
        [ "$s" = "$victim" ] && continue
        # a collective's failure line, or the sweep's own (with -m 0 the perf tool agrees on
        # times and counts through Chorus, so a survivor may learn of the death there)
        line=$(grep -m1 -E "^\[$s\] rank $s: chorus_[a-z_]+(\(.*\)| \(the sweep's bookkeeping\)) failed: " "$log")
        if [ -z "$line" ]; then
            [ "$mode" = plain ] || problems+=("rank $s (survivor) printed no failure line")
            continue
        fi
        reported=$((reported + 1))
        [[ $line == *" failed: remote error: "* ]] ||
            problems+=("rank $s: not a remote error: ${line#*failed: }")
        names_rank "${line#*failed: }" "$victim" ||
            problems+=("rank $s: the error does not name the killed rank $victim: ${line#*failed: }")
        if [ "$mode" != plain ]; then
            t=$(grep -m1 -E "^\[$s\] mpi_abort_hold: rank $s MPI_Abort" "$log" | awk '{ print $7 }')
            if [ -z "$t" ]; then
                problems+=("rank $s: no MPI_Abort time (mpi_abort_hold.so not loaded?)")
            else
                dt=$(secs "$t_kill" "$t")
                # (a report before the kill would be a parsing error of ours)
                awk -v d="$dt" -v b="$BOUND" 'BEGIN { exit !(d >= -0.01 && d <= b) }' ||
                    problems+=("rank $s reported $dt s after the kill (bound $BOUND s)")
                worst=$(awk -v a="$worst" -v d="$dt" 'BEGIN { printf "%.3f", (d > a ? d : a) }')
            fi
        fi
    done
    [ "$reported" -ge 1 ] || problems+=("no survivor printed a failure line")
    if [ "$mode" = plain ]; then
        worst=$(secs "$t_kill" "$t_end")
        awk -v d="$worst" -v b="$BOUND" 'BEGIN { exit !(d <= b) }' ||
            problems+=("mpiexec ended $worst s after the kill (bound $BOUND s)")
    fi
    [ "$rc" = 3 ] || problems+=("mpiexec exited with $rc (expected 3, the tool's 'a call failed')")
    grep -q 'BAD TERMINATION' "$log" && problems+=("Hydra tore the job down (BAD TERMINATION)")
    grep -q 'killing left-over processes' "$log" && problems+=("processes outlived mpiexec")
    local left
    left=$(ns_pids)
    if [ -n "${left// /}" ]; then
        problems+=("processes left in the namespaces: $left")
        kill -KILL $left 2>/dev/null
    fi
    local new_shm
    new_shm=$(comm -13 <(echo "$shm_before") <(chorus_shm) | sed '/^$/d')
    if [ -n "$new_shm" ]; then
        sleep 1 # another test's segment lives only until its ranks have mapped it
        new_shm=$(comm -13 <(echo "$shm_before") <(chorus_shm) | sed '/^$/d')
        [ -z "$new_shm" ] || problems+=("left in /dev/shm: $(echo $new_shm)")
    fi

    if [ ${#problems[@]} = 0 ]; then
        passed=$((passed + 1))
        printf 'ok   %s: %d survivors failed naming rank %d, %s in <= %s s; exit 3 %s s after the kill (run %s s); nothing left\n' \
            "$name" "$reported" "$victim" "$([ "$mode" = plain ] && echo "mpiexec done" || echo "MPI_Abort")" \
            "$worst" "$(secs "$t_kill" "$t_end")" "$(secs "$t_start" "$t_end")"
        grep -E '^\[[0-9]+\] rank [0-9]+: chorus_' "$log" | sed 's/^/       /'
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        printf '       %s\n' "${problems[@]}"
        echo "       --- log ($log), without rank 0's table:"
        grep -vE '^\[0\] (#| +[0-9])' "$log" | tail -n 40 | sed 's/^/       | /'
        KEEP=1
    fi
}

echo "kill_rank: nodes $PREFIX (${NODES}x$PPN), build $BUILD, bound $BOUND s, MPI_Abort held $HOLD_MS ms"
for c in "${cases[@]}"; do
    run_case "$c"
done
[ "$KEEP" = 1 ] && echo "kill_rank: logs in $WORK" || rm -rf "$WORK"
echo "kill_rank: $passed passed, $failed failed"
[ "$failed" = 0 ]
