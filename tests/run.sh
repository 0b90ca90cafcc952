#!/usr/bin/env bash
# tests/run.sh - runs the Chorus test suite against one build directory.
#
# Usage: tests/run.sh [BUILD_DIR]          (default ./build)
#
# Builds the test programs (make check) unless RUN_NO_BUILD=1, then runs the
# unit tests and the multi-process tests under MPICH's mpirun, each with a
# wall-clock timeout (a hang is a failure), and checks that no chorus* entry
# is left in /dev/shm. Prints one PASS/FAIL line per test with its time, the
# tail of the output of failing tests, and ends with "N passed, N failed".
# Exit status 0 iff nothing failed.
#
# Environment:
#   RUN_QUICK=1            smaller sweeps everywhere (sanitizer/valgrind builds)
#   TEST_TIMEOUT_SCALE=K   multiply every timeout by K (slow builds, e.g. ASan)
#   RUN_NO_BUILD=1         do not run make
#   MPIRUN=path            the launcher (default: mpirun.mpich, mpiexec.hydra, mpirun)
#   RUN_FILTER=regex       only tests whose name matches
#   CHORUS_LOG_LEVEL       passed on (default here: error)
set -u

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-./build}
if [ ! -d "$BUILD" ]; then
    echo "run.sh: build directory $BUILD does not exist (configure and make first)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
BUILD=$(cd "$BUILD" && pwd)
T=$BUILD/tests
SCALE=${TEST_TIMEOUT_SCALE:-1}
QUICK=${RUN_QUICK:-0}
FILTER=${RUN_FILTER:-}
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/chorus-run.XXXXXX")
# invalid-argument warnings of the bad-input tests would drown the output
export CHORUS_LOG_LEVEL=${CHORUS_LOG_LEVEL:-error}
passed=0
failed=0
failed_names=()
t_start=$(date +%s)

now() { date +%s.%N; }

# kill every process of session $1 (a test and whatever it started)
# (zombies are not counted: they are dead already and hold nothing; when a killed process's
# parent dies with it, they wait for PID 1 to reap them, which some containers' PID 1 never does)
kill_session() {
    local left
    left=$(ps -eo pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ { print $1 }')
    [ -n "$left" ] && kill -KILL $left 2>/dev/null
    echo "$left"
}
current_session=
trap '[ -n "$current_session" ] && kill_session "$current_session" >/dev/null; echo "run.sh: interrupted"; exit 130' INT TERM
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---- launcher -------------------------------------------------------------------------
if [ -z "${MPIRUN:-}" ]; then
    for m in mpirun.mpich mpiexec.hydra mpirun mpiexec; do
        if command -v "$m" >/dev/null 2>&1; then
            MPIRUN=$(command -v "$m")
            break
        fi
    done
fi
MPIRUN=${MPIRUN:-}

# ---- one test ---------------------------------------------------------------------------
# run_test NAME TIMEOUT_SECONDS COMMAND...
# Runs COMMAND in its own session under `timeout`; afterwards kills whatever
# is left of that session (ranks orphaned by a killed launcher).
run_test() {
    local name=$1 limit=$2
    shift 2
    if [ -n "$FILTER" ] && ! [[ $name =~ $FILTER ]]; then
        return 0
    fi
    limit=$(awk -v a="$limit" -v s="$SCALE" 'BEGIN { printf "%d", a * s }')
    local log=$LOGDIR/$(echo "$name" | tr -c 'A-Za-z0-9_.=-' '_').log
    local t0 rc pid
    t0=$(now)
    setsid timeout -k 10 "$limit" "$@" >"$log" 2>&1 </dev/null &
    pid=$!
    current_session=$pid
    wait "$pid"
    rc=$?
    current_session=
    # leftovers of this test's session
    local left
    local what
    what=$(ps -o pid=,stat=,args= -s "$pid" 2>/dev/null) # what they were, for the log
    left=$(kill_session "$pid")
    if [ -n "$left" ]; then
        echo "run.sh: killed leftover processes of this test:" $left >>"$log"
        printf '%s\n' "$what" | sed 's/^/run.sh:   /' >>"$log"
        [ "$rc" -eq 0 ] && rc=99
    fi
    local dt
    dt=$(elapsed "$t0")
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        printf 'PASS  %-58s %7s s\n' "$name" "$dt"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        local why="exit code $rc"
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="timed out after $limit s (hang?)"
        [ "$rc" -eq 99 ] && why="left processes behind"
        printf 'FAIL  %-58s %7s s  (%s)\n' "$name" "$dt" "$why"
        tail -n 60 "$log" | sed 's/^/    | /'
    fi
}

# A check that is not a program: record PASS/FAIL with a message.
record() {
    local name=$1 ok=$2 msg=${3:-}
    if [ -n "$FILTER" ] && ! [[ $name =~ $FILTER ]]; then
        return 0
    fi
    if [ "$ok" -eq 0 ]; then
        passed=$((passed + 1))
        printf 'PASS  %-58s\n' "$name"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        printf 'FAIL  %-58s\n' "$name"
        [ -n "$msg" ] && printf '%s\n' "$msg" | sed 's/^/    | /'
    fi
}

chorus_shm() { ls -1 /dev/shm 2>/dev/null | grep -i '^chorus' | sort; }

echo "== Chorus tests: build $BUILD (launcher: ${MPIRUN:-none}; quick=$QUICK; timeout x$SCALE)"
shm_before=$(chorus_shm)
if [ -n "$shm_before" ]; then
    echo "note: /dev/shm already holds chorus entries before the tests (ignored below):"
    echo "$shm_before" | sed 's/^/    /'
fi

# ---- build the test programs ---------------------------------------------------------------
if [ "${RUN_NO_BUILD:-0}" != 1 ]; then
    t0=$(now)
    if make -C "$BUILD" -j2 check >"$LOGDIR/build.log" 2>&1; then
        passed=$((passed + 1))
        printf 'PASS  %-58s %7s s\n' "build (make check)" "$(elapsed "$t0")"
    else
        failed=$((failed + 1))
        failed_names+=("build (make check)")
        printf 'FAIL  %-58s %7s s\n' "build (make check)" "$(elapsed "$t0")"
        grep -E 'error|Error' "$LOGDIR/build.log" | head -n 30 | sed 's/^/    | /'
    fi
fi

have() { [ -x "$T/$1" ]; }
missing() { record "$1" 1 "$T/$1 was not built"; }

# ---- unit tests (one process) -----------------------------------------------------------------
for t in test_reduce test_tunables test_bootstrap_msg test_bootstrap test_fault test_tcp test_plan \
         test_tuner; do
    if have "$t"; then
        run_test "$t" 180 env CHORUS_TOPO_DIR="$SRC/topo" "$T/$t"
    else
        missing "$t"
    fi
done
if have test_tunables; then
    run_test "test_tunables --bad-env CHORUS_SHM_CHUNK=abc" 30 \
        env CHORUS_SHM_CHUNK=abc "$T/test_tunables" --bad-env CHORUS_SHM_CHUNK
fi

# ---- fuzz corpus replay (issue 7; docs/fuzzing.md) ---------------------------------------------
# Every kept fuzz input (seeds and finds) through the same LLVMFuzzerTestOneInput the fuzzers
# use, in every build (gcc, clang, ASan+UBSan): seconds.
for t in bootstrap_msg bootstrap_root topo; do
    if have "fuzz/fuzz_replay_$t"; then
        run_test "fuzz replay $t (tests/fuzz/corpus/$t)" 120 \
            "$T/fuzz/fuzz_replay_$t" "$SRC/tests/fuzz/corpus/$t"
    else
        missing "fuzz/fuzz_replay_$t"
    fi
done
# multi-level plans (algos/hier_plan.c) of every rank on the model executor
if have test_hier_plan; then
    hq=()
    [ "$QUICK" = 1 ] && hq=(-q)
    run_test "test_hier_plan" 120 "$T/test_hier_plan" "${hq[@]}"
else
    missing test_hier_plan
fi

# ---- topologies (issue 5): files, units, rank maps, detection; the chorus_topo tool --------------
# Both read the shipped files from the source tree (CHORUS_TOPO_DIR), not from an install.
if have test_topo; then
    run_test "test_topo" 120 env CHORUS_TOPO_DIR="$SRC/topo" "$T/test_topo"
else
    missing test_topo
fi
if [ -x "$BUILD/src/chorus_topo" ]; then
    run_test "chorus_topo: this host and every shipped topology" 120 \
        "$SRC/tests/test_chorus_topo.sh" "$BUILD"
else
    record "chorus_topo" 1 "$BUILD/src/chorus_topo was not built"
fi

# ---- the perf regression check flags what it must (perf/check_regression.py) -----------------
if command -v python3 >/dev/null && [ -d "$SRC/perf/results/standard/mpich" ]; then
    run_test "perf regression check: unchanged passes, a 20% drop is flagged" 60 \
        bash "$SRC/tests/perf_regression_check.sh"
fi
# every perf tool, as a user runs it: checked sweeps on 2 and 3 ranks, JSON, the memory probe
# (-B) and its ceiling, bad options refused
if [ -n "$MPIRUN" ] && [ -x "$BUILD/perf/all_reduce_perf" ] && command -v python3 >/dev/null; then
    run_test "perf tools: every tool np=2,3 checked, JSON, -B ceiling, bad options" 300 \
        bash "$SRC/tests/perf_tools_check.sh" "$BUILD" "$MPIRUN"
fi

# ---- the simulator (issue 5): closed forms, contention, rule breaks, 768 ranks; chorus_sim ------
# chorus_sim runs every collective on the two supernode models (shipped files from the source
# tree), each size a row naming its algorithm, exit status 0.
if have test_sim; then
    # with the shipped topologies: issue 5's bar (the tuner's choice against the bandwidth bound)
    run_test "test_sim" 240 env CHORUS_TOPO_DIR="$SRC/topo" "$T/test_sim"
else
    missing test_sim
fi
if [ -x "$BUILD/perf/chorus_sim" ]; then
    run_test "chorus_sim: every collective on cloudmatrix384 and metax-c550-128" 300 bash -c '
        for topo in cloudmatrix384 metax-c550-128; do
            for coll in allreduce allgather alltoall alltoallv reduce_scatter broadcast reduce \
                        barrier; do
                out=$(CHORUS_TOPO_DIR="$2" "$1" --topo $topo --coll $coll -b 8 -e 4M \
                      -f 524288) || { echo "$topo $coll failed:"; echo "$out"; exit 1; }
                # whole-buffer collectives skip 8 B (under one element per rank)
                rows=$(echo "$out" | grep -vc "^#")
                named=$(echo "$out" | grep -v "^#" | grep -cE " (ring|rhd|tree|bruck|pairwise|direct|dissemination|hier[(,a-z)]*)$")
                [ "$rows" -ge 1 ] && [ "$rows" = "$named" ] ||
                    { echo "$topo $coll: $rows rows, $named naming an algorithm"; echo "$out"; exit 1; }
            done
        done
        echo "every collective simulated on both topologies"' _ "$BUILD/perf/chorus_sim" "$SRC/topo"
    # the tuner's choice simulates within 10% of the best candidate at >= 90% of the points
    [ "$QUICK" = 1 ] || run_test "tuner vs simulator: every shipped topology, 6 collectives" 600 \
        bash "$SRC/tests/sim_tuner_agree.sh" "$BUILD"
else
    record "chorus_sim" 1 "$BUILD/perf/chorus_sim was not built"
fi

# ---- the network path (TCP transport, plans, node-aware algorithms) ---------------------------------
# 1. every rank over TCP on this host (CHORUS_TRANSPORT=tcp), each algorithm
#    forced, and the failure scenarios over TCP;
# 2. "hosts" faked with per-rank CHORUS_HOSTID (MPMD segments), so the
#    node-aware algorithms run over shared memory + TCP on loopback;
# 3. real namespaces joined by veth pairs to a bridge (tests/netns), one
#    network stack per "node", MPICH launching into them (needs root).
net_tests() {
    local q=(--quick --no-large) algo np
    have test_fault && run_test "test_fault [TRANSPORT=tcp]" 240 \
        env CHORUS_TRANSPORT=tcp "$T/test_fault"
    have test_coll || return 0
    for algo in ring rhd tree bruck pairwise direct; do
        for np in 3 4; do
            [ "$QUICK" = 1 ] && [ "$np" = 4 ] && continue
            run_test "test_coll np=$np [TRANSPORT=tcp ALGO=$algo]" 300 \
                env CHORUS_TRANSPORT=tcp CHORUS_ALGO=$algo \
                "$MPIRUN" -np "$np" "$T/test_coll" "${q[@]}" --seed $((29 + np))
        done
    done
    run_test "test_coll np=2 [TRANSPORT=tcp, 64 MiB cases]" 300 \
        env CHORUS_TRANSPORT=tcp "$MPIRUN" -np 2 "$T/test_coll" --quick --large-mib 64
    # fake hosts: 2 x 2 (model's choice, with large cases), 3 x 2 (node-aware
    # forced), 2 + 1 (unequal hosts: flat plans), 4 x 1
    local tc=("$T/test_coll" "${q[@]}")
    run_test "test_coll 2x2 hosts (hostid) auto" 300 \
        "$MPIRUN" -np 2 -env CHORUS_HOSTID a "$T/test_coll" --quick --large-mib 16 : \
        -np 2 -env CHORUS_HOSTID b "$T/test_coll" --quick --large-mib 16
    run_test "test_coll 3x2 hosts (hostid) [ALGO=hier]" 300 \
        "$MPIRUN" -genv CHORUS_ALGO hier -np 2 -env CHORUS_HOSTID a "${tc[@]}" : \
        -np 2 -env CHORUS_HOSTID b "${tc[@]}" : -np 2 -env CHORUS_HOSTID c "${tc[@]}"
    # the pipelined node-aware allreduce: many segments, shared memory and
    # network phases of neighbouring segments overlapping
    run_test "test_coll 2x2 hosts (hostid) allreduce [ALGO=hier HIER_SEGMENT=64K]" 300 \
        "$MPIRUN" -genv CHORUS_ALGO hier -genv CHORUS_HIER_SEGMENT 64K \
        -np 2 -env CHORUS_HOSTID a "$T/test_coll" --quick --large-mib 16 --coll allreduce : \
        -np 2 -env CHORUS_HOSTID b "$T/test_coll" --quick --large-mib 16 --coll allreduce
    run_test "test_coll 2+1 hosts (hostid) auto" 300 \
        "$MPIRUN" -np 2 -env CHORUS_HOSTID a "${tc[@]}" : -np 1 -env CHORUS_HOSTID b "${tc[@]}"
    run_test "test_coll 2x2 hosts (hostid) --split" 300 \
        "$MPIRUN" -np 2 -env CHORUS_HOSTID a "${tc[@]}" --split : \
        -np 2 -env CHORUS_HOSTID b "${tc[@]}" --split
    # chorus_mem_alloc buffers: the node phases of the multi-node algorithms
    # go zero copy where they pass the user's buffers (test_coll checks that
    # peers' allocations were mapped)
    run_test "test_coll 2x2 hosts (hostid) --mem chorus [ZCOPY_MIN=1 SHM_SMALL=0]" 300 \
        "$MPIRUN" -genv CHORUS_ZCOPY_MIN 1 -genv CHORUS_SHM_SMALL 0 \
        -np 2 -env CHORUS_HOSTID a "$T/test_coll" --quick --large-mib 16 --mem chorus : \
        -np 2 -env CHORUS_HOSTID b "$T/test_coll" --quick --large-mib 16 --mem chorus
    have test_p2p && run_test "test_p2p 2x2 hosts (hostid)" 240 \
        "$MPIRUN" -np 2 -env CHORUS_HOSTID a "$T/test_p2p" --quick : \
        -np 2 -env CHORUS_HOSTID b "$T/test_p2p" --quick
    have test_comm && run_test "test_comm 2x2 hosts (hostid)" 240 \
        "$MPIRUN" -np 2 -env CHORUS_HOSTID a "$T/test_comm" : \
        -np 2 -env CHORUS_HOSTID b "$T/test_comm"
    # hosts a, b, b, a: chorus_comm_host numbers hosts by their lowest rank
    have test_comm && run_test "test_comm hosts a,b,b,a (hostid)" 240 \
        "$MPIRUN" -np 1 -env CHORUS_HOSTID a "$T/test_comm" : \
        -np 2 -env CHORUS_HOSTID b "$T/test_comm" : -np 1 -env CHORUS_HOSTID a "$T/test_comm"
    have test_badinput && run_test "test_badinput 2x2 hosts (hostid)" 240 \
        "$MPIRUN" -np 2 -env CHORUS_HOSTID a "$T/test_badinput" : \
        -np 2 -env CHORUS_HOSTID b "$T/test_badinput"
    # four ranks over TCP, one never joining: ranks that time out together
    # (and echo each other's notices) must still report CHORUS_TIMEOUT
    have test_badinput && run_test "test_badinput np=4 [TRANSPORT=tcp]" 240 \
        env CHORUS_TRANSPORT=tcp "$MPIRUN" -np 4 "$T/test_badinput"
    # CHORUS_TOPO_FILE describing the communicator: "hier" is the plan composed over its
    # levels (algos/hier_plan.c), run over TCP with positions mapped to ranks
    run_test "test_coll np=6 [TRANSPORT=tcp TOPO_FILE=test-3x2 ALGO=hier] composed plans" 300 \
        env CHORUS_TRANSPORT=tcp CHORUS_TOPO_FILE="$SRC/tests/topo/test-3x2.yaml" \
        CHORUS_ALGO=hier "$MPIRUN" -np 6 "${tc[@]}" --seed 61
    # the pipelined compositions (allreduce, allgather, reduce_scatter past a few MiB) and the
    # double binary tree broadcast (4 MiB and up), checked in the runtime
    run_test "test_coll np=6 [TRANSPORT=tcp TOPO_FILE=test-3x2 ALGO=hier] pipelined (64 MiB)" 300 \
        env CHORUS_TRANSPORT=tcp CHORUS_TOPO_FILE="$SRC/tests/topo/test-3x2.yaml" CHORUS_ALGO=hier \
        "$MPIRUN" -np 6 "$T/test_coll" --quick --large-mib 64 --seed 67
    [ -x "$BUILD/perf/reduce_scatter_perf" ] &&
        run_test "reduce_scatter_perf np=6 [TRANSPORT=tcp TOPO_FILE=test-3x2 ALGO=hier] pipelined, checked" \
        300 env CHORUS_TRANSPORT=tcp CHORUS_TOPO_FILE="$SRC/tests/topo/test-3x2.yaml" \
        CHORUS_ALGO=hier "$MPIRUN" -np 6 "$BUILD/perf/reduce_scatter_perf" -b 96M -e 96M -n 2 -w 1
    run_test "test_coll np=5 [TRANSPORT=tcp ALGO=tree] double binary tree broadcast" 300 \
        env CHORUS_TRANSPORT=tcp CHORUS_ALGO=tree "$MPIRUN" -np 5 "$T/test_coll" --quick \
        --large-mib 16 --coll broadcast
    [ "$QUICK" = 1 ] || run_test "test_coll np=8 [TRANSPORT=tcp TOPO_FILE=test-2x2x2-shuffled ALGO=hier]" \
        300 env CHORUS_TRANSPORT=tcp CHORUS_TOPO_FILE="$SRC/tests/topo/test-2x2x2-shuffled.yaml" \
        CHORUS_ALGO=hier "$MPIRUN" -np 8 "${tc[@]}" --seed 83
    # the runtime's decision table is the tuner's for the same layout
    [ -x "$BUILD/perf/all_reduce_perf" ] && [ -x "$BUILD/src/chorus_tune" ] &&
        run_test "tuner: runtime = chorus_tune (2x2, 3x2, 4x1, tuning file; alltoallv runs)" 300 \
            bash "$SRC/tests/tuner_match.sh" "$BUILD" "$MPIRUN"
    # ... and runs what chorus_sim names for the same topology file, call by call
    [ -x "$BUILD/perf/all_reduce_perf" ] && [ -x "$BUILD/perf/chorus_sim" ] &&
        run_test "tuner: runtime runs chorus_sim's choice (topology files over TCP)" 300 \
            bash "$SRC/tests/runtime_sim_match.sh" "$BUILD" "$MPIRUN"
    # ranks disagreeing on CHORUS_ALGO are refused at init, not left to hang
    have test_badinput && run_test "env check: CHORUS_ALGO differs between ranks" 60 \
        "$MPIRUN" -np 1 -env CHORUS_ALGO ring "$T/test_badinput" --env-mismatch CHORUS_ALGO : \
        -np 1 "$T/test_badinput" --env-mismatch CHORUS_ALGO
    have test_badinput && run_test "env check CHORUS_ALGO=allreduce:bruck (np=2)" 60 \
        env CHORUS_ALGO=allreduce:bruck "$MPIRUN" -np 2 "$T/test_badinput" --env-check CHORUS_ALGO

    # real namespaces
    if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null 2>&1; then
        record "netns multi-node tests" 1 "need root and iproute2 (ip netns)"
        return 0
    fi
    [ "$QUICK" = 1 ] && return 0
    local NS=$SRC/tests/netns
    run_test "netns selftest" 120 "$NS/selftest.sh"
    local shape
    for shape in "2 1" "2 2" "3 2" "4 1"; do
        run_test "test_coll netns ${shape/ /x} auto" 300 \
            "$NS/mpirun-nodes.sh" $shape --timeout 280 -- "${tc[@]}"
    done
    for algo in ring rhd tree bruck pairwise direct hier; do
        run_test "test_coll netns 2x2 [ALGO=$algo]" 300 \
            env CHORUS_ALGO=$algo "$NS/mpirun-nodes.sh" 2 2 --timeout 280 -- "${tc[@]}"
    done
    run_test "test_coll netns 3x2 round-robin --split" 300 \
        "$NS/mpirun-nodes.sh" 3 2 --rr --timeout 280 -- "${tc[@]}" --split
    run_test "test_coll netns 2x2 rate 1gbit, 64 MiB cases" 300 \
        "$NS/mpirun-nodes.sh" 2 2 --rate 1gbit --timeout 280 -- "$T/test_coll" --quick \
        --large-mib 64 --coll allreduce
    # kill -9 one rank of a running perf tool (2 nodes x 2 ranks: shared memory inside a node,
    # TCP between): every other rank fails naming it within 20 s, nothing is left behind
    [ -x "$BUILD/perf/all_reduce_perf" ] && run_test "perf tools netns 2x2: kill -9 a rank mid-collective" \
        300 "$NS/kill_rank.sh" --build "$BUILD"
}

# ---- multi-process tests -------------------------------------------------------------------------
if [ -z "$MPIRUN" ]; then
    record "MPI launcher (mpirun)" 1 "no mpirun.mpich/mpiexec.hydra/mpirun found: install mpich"
else
    coll_args=()
    p2p_args=()
    if [ "$QUICK" = 1 ]; then
        coll_args=(--quick --no-large)
        p2p_args=(--quick)
    fi
    if have test_coll; then
        for np in 1 2 3 4; do
            run_test "test_coll np=$np ${coll_args[*]}" 300 \
                "$MPIRUN" -np "$np" "$T/test_coll" "${coll_args[@]}"
        done
        # 8 ranks on a few cores: oversubscribed on purpose
        run_test "test_coll np=8 --quick --no-large" 400 \
            "$MPIRUN" -np 8 "$T/test_coll" --quick --no-large
    else
        missing test_coll
    fi
    for np in 2 3 4; do
        if have test_p2p; then
            run_test "test_p2p np=$np ${p2p_args[*]}" 240 "$MPIRUN" -np "$np" "$T/test_p2p" "${p2p_args[@]}"
        fi
        if have test_comm; then
            run_test "test_comm np=$np" 240 "$MPIRUN" -np "$np" "$T/test_comm"
        fi
        if have test_badinput; then
            run_test "test_badinput np=$np" 240 "$MPIRUN" -np "$np" "$T/test_badinput"
        fi
    done
    for t in test_p2p test_comm test_badinput; do have "$t" || missing "$t"; done

    # the same tests under other tunables: many pipeline rounds, two-step
    # allreduce for every size, no single copy, scalar kernels, single copy
    # for every size, tiny and huge eager slots; odd rank counts; split
    # communicators; other seeds
    if have test_coll; then
        run_test "test_coll np=3 --quick [SHM_CHUNK=4K SHM_SMALL=0]" 300 \
            env CHORUS_SHM_CHUNK=4K CHORUS_SHM_SMALL=0 \
            "$MPIRUN" -np 3 "$T/test_coll" --quick --no-large --seed 7
        run_test "test_coll np=4 --quick [CMA=off REDUCE_ISA=scalar]" 300 \
            env CHORUS_CMA=off CHORUS_REDUCE_ISA=scalar \
            "$MPIRUN" -np 4 "$T/test_coll" --quick --no-large --seed 11
        run_test "test_coll np=2 --quick [CMA_MIN=0 SHM_SMALL=1M]" 300 \
            env CHORUS_CMA_MIN=0 CHORUS_SHM_SMALL=1M \
            "$MPIRUN" -np 2 "$T/test_coll" --quick --large-mib 16 --seed 13
        # broadcast: single copy with the root writing a share into 3 readers (ranks
        # outnumber cores here, so that is forced); staged rounds on 2 ranks
        run_test "test_coll np=4 --quick [OVERSUBSCRIBED=no]" 300 \
            env CHORUS_OVERSUBSCRIBED=no "$MPIRUN" -np 4 "$T/test_coll" --quick --large-mib 8 --seed 31
        run_test "test_coll np=2 --quick [OVERSUBSCRIBED=yes SHM_CHUNK=64K]" 300 \
            env CHORUS_OVERSUBSCRIBED=yes CHORUS_SHM_CHUNK=64K \
            "$MPIRUN" -np 2 "$T/test_coll" --quick --large-mib 8 --seed 37
        # oversubscription counts the CPUs a node's ranks may run on between them: one
        # rank bound to each core is not oversubscribed, two per core are
        run_test "oversubscription: ranks bound one per core (not), two per core (yes)" 120 \
            bash -c 'n=$(nproc); for per in 1 2; do
                want=$([ $per = 1 ] && echo no || echo yes)
                out=$(CHORUS_LOG_LEVEL=info "$1" -bind-to core -np $((n * per)) "$2" \
                      --quick --no-large --coll broadcast --max-count 40000 2>&1) ||
                    { echo "$out" | tail -5; exit 1; }
                got=$(echo "$out" | grep -c "oversubscribed $want\$")
                echo "$((n * per)) ranks bound to $n cores: $got of $((n * per)) say oversubscribed $want"
                [ "$got" = $((n * per)) ] || exit 1
            done' _ "$MPIRUN" "$T/test_coll"
        # allgather/alltoall switching from single copy to the workspace at 1 MiB
        run_test "test_coll np=3 --quick [CMA_MAX=1M]" 300 \
            env CHORUS_CMA_MAX=1M "$MPIRUN" -np 3 "$T/test_coll" --quick --large-mib 8 --seed 29
        run_test "test_coll np=5 --quick" 300 \
            "$MPIRUN" -np 5 "$T/test_coll" --quick --no-large --seed 17
        # zero copy between chorus_mem_alloc buffers: every size (ZCOPY_MIN=1,
        # and SHM_SMALL=0 so small allreduces take it too), every type and op
        # on 2 ranks; the default threshold with large cases; split halves;
        # and some ranks' buffers not Chorus memory (everyone falls back)
        run_test "test_coll np=2 --mem chorus [ZCOPY_MIN=1 SHM_SMALL=0]" 300 \
            env CHORUS_ZCOPY_MIN=1 CHORUS_SHM_SMALL=0 \
            "$MPIRUN" -np 2 "$T/test_coll" --no-large --mem chorus --seed 41
        run_test "test_coll np=3 --quick --mem chorus [ZCOPY_MIN=1 SHM_SMALL=0 SHM_CHUNK=4K]" 300 \
            env CHORUS_ZCOPY_MIN=1 CHORUS_SHM_SMALL=0 CHORUS_SHM_CHUNK=4K \
            "$MPIRUN" -np 3 "$T/test_coll" --quick --large-mib 8 --mem chorus --seed 43
        run_test "test_coll np=4 --quick --mem chorus" 300 \
            "$MPIRUN" -np 4 "$T/test_coll" --quick --large-mib 8 --mem chorus --seed 47
        run_test "test_coll np=4 --quick --split --mem chorus [ZCOPY_MIN=1 SHM_SMALL=0]" 300 \
            env CHORUS_ZCOPY_MIN=1 CHORUS_SHM_SMALL=0 \
            "$MPIRUN" -np 4 "$T/test_coll" --quick --no-large --split --mem chorus --seed 53
        run_test "test_coll np=3 --quick --mem mixed [ZCOPY_MIN=1 SHM_SMALL=0]" 300 \
            env CHORUS_ZCOPY_MIN=1 CHORUS_SHM_SMALL=0 \
            "$MPIRUN" -np 3 "$T/test_coll" --quick --large-mib 8 --mem mixed --seed 59
        # on split communicators (3 + 2 and 2 + 2 ranks), both halves at once
        run_test "test_coll np=5 --quick --split" 300 \
            "$MPIRUN" -np 5 "$T/test_coll" --quick --no-large --split --seed 19
        run_test "test_coll np=4 --quick --split" 300 \
            "$MPIRUN" -np 4 "$T/test_coll" --quick --no-large --split --seed 23
    fi
    if have test_p2p; then
        run_test "test_p2p np=3 --quick [SHM_P2P_SLOT=1K]" 240 \
            env CHORUS_SHM_P2P_SLOT=1K "$MPIRUN" -np 3 "$T/test_p2p" --quick
        run_test "test_p2p np=2 --quick [SHM_P2P_SLOT=1M CMA=off]" 240 \
            env CHORUS_SHM_P2P_SLOT=1M CHORUS_CMA=off "$MPIRUN" -np 2 "$T/test_p2p" --quick
    fi

    # ---- MPI interposer (issue 6) ----------------------------------------------------
    # libchorus_mpi against MPI itself: the test linked with it (np 2, 3, 4), the
    # same test built plain and preloaded (ranks only, -genv), and without it; the
    # CHORUS_MPI_* selection; the debug log naming a fallback; an ordinary MPI
    # benchmark loop run plain and preloaded, its results checked.
    ip_lib=$BUILD/src/mpi/.libs/libchorus_mpi.so
    if have test_mpi_interpose && have test_mpi_interpose_plain && [ -f "$ip_lib" ]; then
        ip_preload=$ip_lib
        # a sanitizer build's runtime must come first in the preload list
        ip_asan=$(ldd "$ip_lib" 2>/dev/null | awk '/libasan/ { print $3 }')
        [ -n "$ip_asan" ] && ip_preload="$ip_asan $ip_lib"
        ip_q=()
        [ "$QUICK" = 1 ] && ip_q=(--quick)
        run_test "test_mpi_interpose np=2 (linked) ${ip_q[*]}" 120 \
            "$MPIRUN" -np 2 "$T/test_mpi_interpose" --expect-interposer "${ip_q[@]}"
        run_test "test_mpi_interpose np=3 (linked) ${ip_q[*]}" 180 \
            "$MPIRUN" -np 3 "$T/test_mpi_interpose" --expect-interposer "${ip_q[@]}" --seed 3
        run_test "test_mpi_interpose np=4 --quick (linked)" 180 \
            "$MPIRUN" -np 4 "$T/test_mpi_interpose" --expect-interposer --quick --seed 4
        # the program itself, not libtool's wrapper script (whose sed and
        # friends would get the preload too)
        ip_plain=$T/test_mpi_interpose_plain
        [ -x "$T/.libs/test_mpi_interpose_plain" ] && ip_plain=$T/.libs/test_mpi_interpose_plain
        run_test "test_mpi_interpose np=3 --quick (LD_PRELOAD)" 180 \
            "$MPIRUN" -genv LD_PRELOAD "$ip_preload" -genv LD_LIBRARY_PATH "$BUILD/src/.libs" \
            -np 3 "$ip_plain" --expect-interposer --quick --seed 5
        run_test "test_mpi_interpose np=2 --quick (no interposer: MPI alone)" 120 \
            "$MPIRUN" -np 2 "$T/test_mpi_interpose_plain" --quick
        run_test "test_mpi_interpose np=3 --tunables-check [MPI_COLLS MPI_MIN/MAX_BYTES]" 60 \
            env CHORUS_MPI_COLLS=allreduce,iallgather,bcast CHORUS_MPI_MIN_BYTES=64 \
            CHORUS_MPI_MAX_BYTES=64K "$MPIRUN" -np 3 "$T/test_mpi_interpose" --tunables-check
        ip_log=$LOGDIR/interpose-debug
        mkdir -p "$ip_log"
        run_test "test_mpi_interpose np=2 debug log names the fallbacks" 120 bash -c '
            env CHORUS_LOG_LEVEL=debug CHORUS_LOG_FILE="$1/log.%p" "$2" -np 2 "$3" \
                --expect-interposer --quick >"$1/out" 2>&1 || { cat "$1/out"; exit 1; }
            for want in "collectives run on Chorus" \
                "MPI_allreduce goes to MPI: op is user-defined" \
                "MPI_bcast goes to MPI: datatype is derived" \
                "MPI_allreduce goes to MPI: inter-communicator"; do
                grep -q "$want" "$1"/log.* || { echo "no log line \"$want\""; exit 1; }
            done' _ "$ip_log" "$MPIRUN" "$T/test_mpi_interpose"
        if [ -x "$BUILD/perf/mpi_loop_bench" ]; then
            for ip_c in allreduce alltoall; do
                run_test "mpi_loop_bench np=2 $ip_c, plain and LD_PRELOAD (results checked)" 120 \
                    env MPIRUN="$MPIRUN" "$SRC/tests/mpi_interpose_compare.sh" "$BUILD" 2 1 \
                    -c "$ip_c" -b 8 -e 1M -f 16 -i 20 -W 0.1
            done
        fi
        # MPICH's own collective tests (third-party, unmodified: Debian's MPICH
        # source, fetched once into a cache), plain and preloaded, with the
        # interposer's counts; a machine that cannot download it skips them,
        # CI (CI set) must not
        ip_name="MPICH test suite coll/ subset, plain and LD_PRELOAD"
        "$SRC/tests/mpich_testsuite.sh" --fetch-only "$BUILD" >"$LOGDIR/mpich-fetch.log" 2>&1
        ip_rc=$?
        if [ "$ip_rc" -eq 0 ]; then
            run_test "$ip_name" 900 env MPIRUN="$MPIRUN" "$SRC/tests/mpich_testsuite.sh" "$BUILD"
        elif [ "$ip_rc" -eq 77 ] && [ -z "${CI:-}" ]; then
            { [ -n "$FILTER" ] && ! [[ $ip_name =~ $FILTER ]]; } ||
                printf 'SKIP  %-58s (%s)\n' "$ip_name" \
                    "cannot download MPICH's source from deb.debian.org: $(tail -n 1 "$LOGDIR/mpich-fetch.log")"
        else
            record "$ip_name" 1 "$(tail -n 5 "$LOGDIR/mpich-fetch.log")"
        fi
    else
        record "test_mpi_interpose (MPI interposer)" 1 \
            "test_mpi_interpose, test_mpi_interpose_plain or $ip_lib was not built"
    fi

    net_tests
    # checking mode: mismatched calls become invalid usage on every rank
    if have test_checkmode; then
        for np in 2 3; do
            run_test "test_checkmode np=$np [CHECK_CALLS=1]" 120 \
                env CHORUS_CHECK_CALLS=1 "$MPIRUN" -np "$np" "$T/test_checkmode"
        done
        run_test "test_checkmode 2x2 hosts (hostid) [CHECK_CALLS=1]" 120 \
            env CHORUS_CHECK_CALLS=1 "$MPIRUN" -np 2 -env CHORUS_HOSTID a "$T/test_checkmode" : \
            -np 2 -env CHORUS_HOSTID b "$T/test_checkmode"
    else
        missing test_checkmode
    fi
    have test_coll && run_test "test_coll np=3 --quick [CHECK_CALLS=1] (no false alarms)" 300 \
        env CHORUS_CHECK_CALLS=1 "$MPIRUN" -np 3 "$T/test_coll" --quick --no-large --seed 37
    # a malformed tunable makes communicator creation fail, naming the variable
    if have test_badinput; then
        run_test "env check CHORUS_SHM_CHUNK=abc (np=2)" 60 \
            env CHORUS_SHM_CHUNK=abc "$MPIRUN" -np 2 "$T/test_badinput" --env-check CHORUS_SHM_CHUNK
        run_test "env check CHORUS_TIMEOUT_MS=12x (np=2)" 60 \
            env CHORUS_TIMEOUT_MS=12x "$MPIRUN" -np 2 "$T/test_badinput" --env-check CHORUS_TIMEOUT_MS
        run_test "env check CHORUS_SHM_P2P_SLOT=-4K (np=1)" 60 \
            env CHORUS_SHM_P2P_SLOT=-4K "$MPIRUN" -np 1 "$T/test_badinput" --env-check CHORUS_SHM_P2P_SLOT
    fi
fi

# ---- training jobs (issue 9): the C example, the Python binding, DDP ------------------------------
# examples/train_mlp on 2 ranks through Chorus and through MPI_Iallreduce: same final weights, the
# loss falls (tests/python_train_compare.py). The binding's test on 2 and 3 processes (every
# collective, type, op and error), `make install` placing the package on Python's path, and
# examples/ddp_train.py with the Chorus DDP hook and with gloo: same final parameters, the loss
# falls. Python: $PYTHON, else Debian's /usr/bin/python3 (python3-numpy, python3-torch: a pyenv
# python3 earlier in PATH usually lacks torch), else python3. Skipped, saying why, without numpy
# or torch, and in sanitizer builds (ctypes cannot load an ASan library into an uninstrumented
# interpreter).
train_py=${PYTHON:-}
if [ -z "$train_py" ]; then
    if [ -x /usr/bin/python3 ]; then train_py=/usr/bin/python3; else train_py=$(command -v python3 || true); fi
fi
train_py_has() { [ -n "$train_py" ] && "$train_py" -c "import $1" >/dev/null 2>&1; }
train_skip() { [ -n "$FILTER" ] && ! [[ $1 =~ $FILTER ]] || printf 'SKIP  %-58s (%s)\n' "$1" "$2"; }
train_dir=$LOGDIR/training
mkdir -p "$train_dir"
train_lib=$BUILD/src/.libs/libchorus.so
if [ -n "$MPIRUN" ]; then
    if [ ! -x "$BUILD/examples/train_mlp" ]; then
        missing_ex="$BUILD/examples/train_mlp was not built"
        record "examples/train_mlp np=2" 1 "$missing_ex"
    elif [ -z "$train_py" ]; then
        record "examples/train_mlp np=2" 1 "no python3 to compare the runs with"
    else
        run_test "examples/train_mlp np=2: Chorus vs --mpi (same weights, loss falls)" 180 bash -c '
            d=$1 mpirun=$2 exe=$3 py=$4 cmp=$5
            "$mpirun" -np 2 "$exe" --epochs 10 --dump "$d/mlp-chorus.params" >"$d/mlp-chorus.log" 2>&1 ||
                { cat "$d/mlp-chorus.log"; exit 1; }
            "$mpirun" -np 2 "$exe" --mpi --epochs 10 --dump "$d/mlp-mpi.params" >"$d/mlp-mpi.log" 2>&1 ||
                { cat "$d/mlp-mpi.log"; exit 1; }
            grep -h "per step\|identical" "$d/mlp-chorus.log" "$d/mlp-mpi.log"
            "$py" "$cmp" "$d" mlp-chorus mlp-mpi --rtol 1e-5 --atol 1e-7' _ \
            "$train_dir" "$MPIRUN" "$BUILD/examples/train_mlp" "$train_py" \
            "$SRC/tests/python_train_compare.py"
        run_test "examples/train_mlp np=3 --no-overlap (weights identical on all ranks)" 120 \
            "$MPIRUN" -np 3 "$BUILD/examples/train_mlp" --epochs 3 --no-overlap
    fi
fi
if [ -n "$train_py" ] && ldd "$train_lib" 2>/dev/null | grep -q libasan; then
    train_skip "python binding and DDP tests" "sanitizer build: ctypes cannot load it"
elif ! train_py_has numpy; then
    train_skip "python binding and DDP tests" "${train_py:-python3} lacks numpy: apt-get install python3-numpy python3-torch"
else
    for np in 2 3; do
        [ "$QUICK" = 1 ] && [ "$np" = 3 ] && continue
        run_test "python binding np=$np (tests/test_python_binding.py)" 240 \
            env CHORUS_LIBRARY="$train_lib" PYTHONDONTWRITEBYTECODE=1 "$train_py" \
            "$SRC/tests/test_python_binding.py" --np "$np" --timeout 220
    done
    run_test "python: make install puts chorus on the prefix's Python path" 120 \
        "$SRC/tests/python_install_check.sh" "$BUILD" "$train_py"
    if ! train_py_has torch; then
        train_skip "examples/ddp_train.py: Chorus hook vs gloo" "$train_py lacks torch: apt-get install python3-torch"
    else
        run_test "examples/ddp_train.py 2 procs: Chorus hook vs gloo (same parameters, loss falls)" 300 \
            env CHORUS_LIBRARY="$train_lib" PYTHONPATH="$SRC/python" PYTHONDONTWRITEBYTECODE=1 bash -c '
            d=$1 py=$2 ex=$3 cmp=$4
            for c in chorus gloo; do
                "$py" "$ex" --comm $c --epochs 3 --steps 8 --out "$d/ddp-$c.params" \
                    >"$d/ddp-$c.log" 2>&1 || { cat "$d/ddp-$c.log"; exit 1; }
            done
            grep -h "per step" "$d/ddp-chorus.log" "$d/ddp-gloo.log"
            "$py" "$cmp" "$d" ddp-chorus ddp-gloo --rtol 1e-4 --atol 1e-6' _ \
            "$train_dir" "$train_py" "$SRC/examples/ddp_train.py" "$SRC/tests/python_train_compare.py"
    fi
fi

# ---- the straggler watchdog (issue 7; docs/errors.md "Finding a stalled rank") --------------------
# late ranks reported while the others wait (one host, 2x2 fake hosts, TCP
# between every pair), one warning per stalled collective in each rank's
# log, foreign datagrams dropped; and with the watchdog off, nothing.
if [ -n "$MPIRUN" ] && have test_watchdog; then
    wd_log=$LOGDIR/watchdog
    mkdir -p "$wd_log"
    wd_env=(env CHORUS_WATCHDOG_MS=300 CHORUS_LOG_LEVEL=warn)
    run_test "test_watchdog np=3 [WATCHDOG_MS=300]" 180 \
        "${wd_env[@]}" CHORUS_LOG_FILE="$wd_log/np3.%p" "$MPIRUN" -np 3 "$T/test_watchdog"
    run_test "test_watchdog 2x2 hosts (hostid) [WATCHDOG_MS=300]" 180 \
        "${wd_env[@]}" CHORUS_LOG_FILE="$wd_log/2x2.%p" \
        "$MPIRUN" -np 2 -env CHORUS_HOSTID a "$T/test_watchdog" : \
        -np 2 -env CHORUS_HOSTID b "$T/test_watchdog"
    run_test "test_watchdog np=3 [TRANSPORT=tcp WATCHDOG_MS=300]" 180 \
        "${wd_env[@]}" CHORUS_TRANSPORT=tcp CHORUS_LOG_FILE="$wd_log/tcp.%p" \
        "$MPIRUN" -np 3 "$T/test_watchdog"
    run_test "test_watchdog np=3 --off [WATCHDOG_MS=0]" 120 \
        env CHORUS_WATCHDOG_MS=0 "$MPIRUN" -np 3 "$T/test_watchdog" --off
    # real namespaces (one network stack per node; see net_tests)
    if [ "$QUICK" != 1 ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
        run_test "test_watchdog netns 2x2 [WATCHDOG_MS=300]" 180 \
            env CHORUS_WATCHDOG_MS=300 "$SRC/tests/netns/mpirun-nodes.sh" 2 2 --timeout 170 \
            -- "$T/test_watchdog"
    fi
elif [ -n "$MPIRUN" ]; then
    missing test_watchdog
fi

# ---- RDMA on soft-RoCE in a qemu guest (issue 4) --------------------------------------------------
# tests/rdma-vm boots Debian's own kernel (it has rdma_rxe) under qemu over this host's root
# filesystem: setup.sh installs the packages and caches the kernel (about a second once done),
# then the verbs smoke test and test_tcp run inside the guest (~1 min each under emulation).
# Needs root (apt-get, /var/cache, 9p export of /); RUN_QUICK=1 skips it (sanitizer builds:
# far too slow under an emulated CPU).
if [ "$QUICK" != 1 ]; then
    VM=$SRC/tests/rdma-vm
    if [ "$(id -u)" != 0 ]; then
        record "rdma-vm: soft-RoCE guest" 1 "needs root (apt-get, /var/cache/chorus-rdma-vm)"
    else
        vm_failed_before=$failed
        run_test "rdma-vm setup (packages, Debian kernel, initramfs)" 900 "$VM/setup.sh"
        if [ "$failed" = "$vm_failed_before" ]; then
            run_test "rdma-vm smoke: verbs, rdma_cm, perftest on rxe0/rxe1" 300 \
                "$VM/run-in-vm.sh" --devices 2 --timeout 280 -- "$VM/smoke.sh"
            have test_tcp && run_test "test_tcp --quick [in the rdma-vm guest]" 300 \
                "$VM/run-in-vm.sh" --devices 2 --timeout 280 -- "$T/test_tcp" --quick
            # the RDMA transport: its own test on one device and across two
            # (rank r on rxe r%2), then every collective with CHORUS_TRANSPORT=rdma
            # between ranks on different soft-RoCE devices
            for d in 1 2; do
                have test_rdma && run_test "test_rdma --quick [rdma-vm, $d device(s)]" 300 \
                    "$VM/run-in-vm.sh" --devices $d --timeout 280 -- "$T/test_rdma" --quick
            done
            # a rank killed (or stuck, or absent at init) in the middle of every collective
            # over RDMA: the others fail fast naming it (test_fault forks its own ranks)
            have test_fault && run_test "test_fault [TRANSPORT=rdma, rdma-vm: kill, abort, noinit, stuck]" \
                300 "$VM/run-in-vm.sh" --devices 1 --timeout 280 -- \
                env CHORUS_TRANSPORT=rdma TEST_FAULT_CASE_MS=150000 "$T/test_fault"
            # TCP through a faulty network (tc netem on the guest's veth pair; this host's kernel
            # has no netem): loss, delay, reordering, duplication - results still correct; the
            # link cut or taken down in the middle of a collective - both ranks fail naming the
            # other within CHORUS_TIMEOUT_MS + 10 s
            have test_coll && run_test "net faults over TCP: netem loss/delay/reorder/dup [rdma-vm]" 300 \
                env NET_FAULTS_TIMEOUT=280 "$SRC/tests/net_faults.sh" "$BUILD" netem
            for nf_phase in blackhole linkdown; do
                [ -x "$BUILD/perf/all_reduce_perf" ] && run_test \
                    "net faults over TCP: $nf_phase in the middle of a collective [rdma-vm]" 300 \
                    env NET_FAULTS_TIMEOUT=280 "$SRC/tests/net_faults.sh" "$BUILD" $nf_phase
            done
            # MPI only launches and checks here, and every rank is in the one guest: MPICH's
            # own traffic goes over shared memory. Not over the emulated devices (UCX's UD
            # endpoints over rxe abort with "unhandled timeout error" when a rank leaves MPI
            # idle for ~30 s under emulation), and not over UCX's TCP transport either: under
            # emulation one rank sometimes spins in MPI_Finalize for good (gdb: in
            # uct_tcp_iface_progress, the other ranks waiting in the PMI barrier), long after
            # Chorus has finished and every check has passed.
            vm_mpi=(-genv UCX_TLS sm,self)
            # 4 ranks, 2 on each device: every pair over RDMA (forced), across and within devices
            have test_coll && run_test "test_coll np=4 [TRANSPORT=rdma, 2 on rxe0 + 2 on rxe1, rdma-vm]" 500 \
                "$VM/run-in-vm.sh" --devices 2 --timeout 480 -- "$MPIRUN" "${vm_mpi[@]}" \
                -np 2 -env CHORUS_RDMA_HCA rxe0 -env CHORUS_TRANSPORT rdma \
                "$T/test_coll" --quick --no-large : \
                -np 2 -env CHORUS_RDMA_HCA rxe1 -env CHORUS_TRANSPORT rdma \
                "$T/test_coll" --quick --no-large
            # 2 hosts x 2 ranks (host ids a on rxe0, b on rxe1), transport left automatic: shared
            # memory inside a host, and every rank must choose RDMA between hosts (its info log
            # line says so) for the node-aware algorithms' network phases
            have test_coll && run_test "test_coll 2x2 hosts [auto: shm + RDMA between, rxe0/rxe1, rdma-vm]" 500 \
                "$VM/run-in-vm.sh" --devices 2 --timeout 480 -- bash -c '
                out=$("$@" 2>&1); rc=$?; printf "%s\n" "$out"; [ $rc -eq 0 ] || exit $rc
                n=$(grep -c "RDMA between hosts" <<<"$out")
                if [ "$n" -lt 4 ] || grep -q "TCP between hosts" <<<"$out"; then
                    echo "expected every rank to choose RDMA between hosts; $n did"; exit 1
                fi' _ "$MPIRUN" "${vm_mpi[@]}" -genv CHORUS_LOG_LEVEL info \
                -np 2 -env CHORUS_HOSTID a -env CHORUS_RDMA_HCA rxe0 "$T/test_coll" --quick --no-large : \
                -np 2 -env CHORUS_HOSTID b -env CHORUS_RDMA_HCA rxe1 "$T/test_coll" --quick --no-large
            # communicators, splits and memory registration over RDMA
            have test_comm && run_test "test_comm np=2 [TRANSPORT=rdma, rxe0 + rxe1, rdma-vm]" 300 \
                "$VM/run-in-vm.sh" --devices 2 --timeout 280 -- "$MPIRUN" "${vm_mpi[@]}" \
                -np 1 -env CHORUS_RDMA_HCA rxe0 -env CHORUS_TRANSPORT rdma "$T/test_comm" : \
                -np 1 -env CHORUS_RDMA_HCA rxe1 -env CHORUS_TRANSPORT rdma "$T/test_comm"
            # the perf tool prints its table over RDMA (emulated speed: correctness only)
            [ -x "$BUILD/perf/all_reduce_perf" ] && run_test \
                "all_reduce_perf np=2 [TRANSPORT=rdma, rxe0 + rxe1, rdma-vm] (0 wrong)" 300 \
                "$VM/run-in-vm.sh" --devices 2 --timeout 280 -- "$MPIRUN" "${vm_mpi[@]}" \
                -np 1 -env CHORUS_RDMA_HCA rxe0 -env CHORUS_TRANSPORT rdma \
                "$BUILD/perf/all_reduce_perf" -b 8 -e 256K -f 8 -n 5 -m 0 : \
                -np 1 -env CHORUS_RDMA_HCA rxe1 -env CHORUS_TRANSPORT rdma \
                "$BUILD/perf/all_reduce_perf" -b 8 -e 256K -f 8 -n 5 -m 0
        fi
    fi
fi

# ---- nothing left in /dev/shm -----------------------------------------------------------------------
sleep 1
shm_after=$(chorus_shm)
leftover=$(comm -13 <(echo "$shm_before") <(echo "$shm_after") | sed '/^$/d')
if [ -n "$leftover" ]; then
    record "no chorus* entries left in /dev/shm" 1 "$leftover"
else
    record "no chorus* entries left in /dev/shm" 0
fi

total=$(( $(date +%s) - t_start ))
echo "== run.sh finished in ${total} s (logs in $LOGDIR)"
if [ "$failed" -gt 0 ]; then
    echo "failed:"
    for f in "${failed_names[@]}"; do echo "    $f"; done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
