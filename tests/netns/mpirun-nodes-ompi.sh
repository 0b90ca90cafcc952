#!/usr/bin/env bash
# tests/netns/mpirun-nodes-ompi.sh - runs an MPI program built against
# Open MPI with Open MPI's mpirun across the namespace nodes of netns.sh, one
# orted daemon per namespace, MPI traffic over Open MPI's TCP transport
# (ob1 + the tcp BTL). The Open MPI counterpart of mpirun-nodes.sh (MPICH).
#
# Usage: mpirun-nodes-ompi.sh NODES RANKS_PER_NODE [options] -- PROGRAM [ARGS...]
#
# Options:
#   --block            ranks block-distributed (default): node 0 gets ranks
#                      0..K-1, node 1 ranks K..2K-1, ...
#   --rr, --round-robin  rank r on node r % NODES (--map-by node)
#   --prefix P         use the nodes of prefix P (default: $CHORUS_NETNS_PREFIX)
#   --timeout SECS     bound on the whole run (default $CHORUS_NETNS_MPI_TIMEOUT,
#                      else 300); on expiry everything the run started is
#                      killed and the status is 124
#   --mpirun PATH      Open MPI's mpirun (default: mpirun.openmpi, else
#                      orterun); plain `mpirun` is MPICH's on this machine
#   --mpirun-arg ARG   one more argument for mpirun (repeatable), e.g.
#                      --mpirun-arg --tag-output
#   --delay/--rate/--loss/--subnet/--best-effort/--brnf-off
#                      shaping etc. for nodes this script brings up itself
#
# Nodes: if the prefix (option or $CHORUS_NETNS_PREFIX) has at least NODES
# nodes up, they are used (nodes 0..NODES-1), e.g. inside with-nodes.sh.
# Otherwise the script runs itself under with-nodes.sh: it brings up NODES
# nodes with a fresh prefix (or --prefix P), runs, and tears them down.
#
# What it sets up for Open MPI 4.1 (Debian 12's openmpi-bin; see README.md):
#   --hostfile F             "ADDR slots=K" per node (the node addresses are
#                            the host names); -np NODES*K
#   --mca plm_rsh_agent netns-rsh   mpirun starts one orted per node through
#                            the "ssh" netns-rsh, which runs it in that
#                            namespace with CHORUS_HOSTID=node<i>,
#                            CHORUS_SOCKET_IFNAME=eth0, CHORUS_NETNS_NODE=<i>;
#                            orted passes its environment on to the ranks
#   --mca plm_rsh_no_tree_spawn 1   mpirun launches every orted itself (no
#                            orted launching orteds from inside a namespace)
#   --mca oob_tcp_if_include SUBNET.0/24   the orteds connect back to mpirun
#                            (root namespace) through the bridge address. A
#                            subnet, not an interface name: the same value
#                            reaches the orteds, where the bridge interface
#                            does not exist (with the bridge's name the orteds
#                            find no interface and the run hangs); the subnet
#                            matches the bridge in the root namespace and eth0
#                            in the nodes
#   --mca pml ob1 --mca btl tcp,self   MPI traffic over TCP only, also
#                            between the ranks of one node (over their eth0
#                            address, i.e. kernel loopback: not on the veth).
#                            Override: CHORUS_NETNS_OMPI_BTL, e.g.
#                            vader,tcp,self for shared memory within a node
#                            (as MPICH does): vader names its segment files
#                            by hostname, job and local rank, which every
#                            namespace shares, so out of the box the ranks
#                            crash (SIGSEGV in mca_btl_vader_poll_handle_frag);
#                            with vader in the list the script gives each
#                            node's orted its own btl_vader_backing_directory
#                            under /dev/shm (the agent becomes
#                            "mpirun-nodes-ompi.sh --rsh-agent", which sets it
#                            and runs netns-rsh). Only ranks of one node use
#                            vader: Open MPI's locality is per orted.
#   --mca btl_tcp_if_include eth0   the node interface, not lo.
#                            Override: CHORUS_NETNS_OMPI_IF.
#   --bind-to none --oversubscribe   no core binding (as MPICH's Hydra), and
#                            no refusal when ranks outnumber cores (every
#                            namespace sees the machine's 2 cores)
#   --allow-run-as-root (and OMPI_ALLOW_RUN_AS_ROOT*=1)
#   -x VAR for every CHORUS_* variable of the caller except CHORUS_HOSTID,
#                            CHORUS_SOCKET_IFNAME and CHORUS_NETNS_NODE, which
#                            are unset for mpirun: -x values override the
#                            orted's, so they would replace the per-node ones
# Standard input of the program is /dev/null. CHORUS_NETNS_VERBOSE=1 prints
# the mpirun command line. mpirun may print "plm:rsh: Warning: setpgid(...)
# failed in parent with errno=Permission denied(13)": harmless (the orted
# had already exec'd; the child sets its own process group).
#
# Exit status: mpirun's (the program's); 124 on timeout; 2 usage.
set -u

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETNS=$DIR/netns.sh

# --- agent mode: mpirun calls "mpirun-nodes-ompi.sh --rsh-agent HOST CMD..."
# when vader is in the BTL list: the node's orted (and so its ranks) gets a
# backing directory of its own for vader's segments, then netns-rsh runs it.
if [ "${1:-}" = --rsh-agent ]; then
    shift
    host=''
    for a in "$@"; do case $a in -*) ;; *) host=${a##*@}; break ;; esac; done
    if [ -n "$host" ] && [ -n "${CHORUS_NETNS_OMPI_SHMDIR:-}" ]; then
        mkdir -p "$CHORUS_NETNS_OMPI_SHMDIR/$host" &&
            export OMPI_MCA_btl_vader_backing_directory=$CHORUS_NETNS_OMPI_SHMDIR/$host
    fi
    exec "$DIR/netns-rsh" "$@"
fi

usage() { echo "usage: mpirun-nodes-ompi.sh NODES RANKS_PER_NODE [--block|--rr] [--prefix P] [--timeout S] [--mpirun PATH] [--mpirun-arg A]... [shaping] -- PROGRAM [ARGS...]" >&2; exit 2; }
die() { echo "mpirun-nodes-ompi.sh: error: $*" >&2; exit 1; }

[ $# -ge 2 ] || usage
NODES=$1 PPN=$2
shift 2
[[ $NODES =~ ^[1-9][0-9]*$ ]] && [[ $PPN =~ ^[1-9][0-9]*$ ]] || usage
orig_opts=()
MODE=block
PREFIX=${CHORUS_NETNS_PREFIX:-}
PREFIX_GIVEN=0
TIMEOUT=${CHORUS_NETNS_MPI_TIMEOUT:-300}
MPIRUN=''
mpirun_args=()
up_opts=()
while [ $# -gt 0 ]; do
    case $1 in
        --) shift; break ;;
        --block) MODE=block; orig_opts+=("$1"); shift ;;
        --rr | --round-robin) MODE=rr; orig_opts+=("$1"); shift ;;
        --prefix) [ $# -ge 2 ] || usage; PREFIX=$2; PREFIX_GIVEN=1; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; orig_opts+=("$1" "$2"); shift 2 ;;
        --mpirun) [ $# -ge 2 ] || usage; MPIRUN=$2; orig_opts+=("$1" "$2"); shift 2 ;;
        --mpirun-arg) [ $# -ge 2 ] || usage; mpirun_args+=("$2"); orig_opts+=("$1" "$2"); shift 2 ;;
        --delay | --rate | --loss | --subnet) [ $# -ge 2 ] || usage; up_opts+=("$1" "$2"); shift 2 ;;
        --best-effort | --brnf-off | --no-check) up_opts+=("$1"); shift ;;
        *) echo "mpirun-nodes-ompi.sh: unknown option '$1' (did you forget '--' before the program?)" >&2; usage ;;
    esac
done
[ $# -ge 1 ] || usage
[[ $TIMEOUT =~ ^[0-9]+$ ]] || usage

# --- the nodes: existing ones, or our own under with-nodes.sh ---------------
have_nodes() {
    [ -n "$PREFIX" ] || return 1
    local n
    n=$("$NETNS" hosts --prefix "$PREFIX" 2>/dev/null | grep -vc '^#')
    [ "${n:-0}" -ge "$NODES" ]
}
if ! have_nodes; then
    [ -z "${CHORUS_NETNS_MPIRUN_INNER:-}" ] || die "no $NODES nodes with prefix '$PREFIX' after bringing them up"
    [ "$PREFIX_GIVEN" = 1 ] && up_opts+=(--prefix "$PREFIX")
    # with-nodes.sh picks a fresh prefix unless one was given, and exports it
    CHORUS_NETNS_MPIRUN_INNER=1 exec "$DIR/with-nodes.sh" "$NODES" "${up_opts[@]}" -- \
        "$0" "$NODES" "$PPN" "${orig_opts[@]}" -- "$@"
fi
[ ${#up_opts[@]} = 0 ] || echo "mpirun-nodes-ompi.sh: note: nodes of prefix $PREFIX exist, shaping options ignored" >&2

eval "$("$NETNS" hosts --env --prefix "$PREFIX")" || die "cannot read the nodes of prefix $PREFIX"
IFS=, read -r -a addrs <<<"$CHORUS_NETNS_ADDRS"
[ -n "$CHORUS_NETNS_BRIDGE_ADDR" ] || die "prefix $PREFIX has no bridge address"
subnet=${CHORUS_NETNS_BRIDGE_ADDR%.*}.0/24

if [ -z "$MPIRUN" ]; then
    for c in mpirun.openmpi orterun; do
        command -v "$c" >/dev/null 2>&1 && { MPIRUN=$c; break; }
    done
    [ -n "$MPIRUN" ] || die "no Open MPI mpirun found (apt-get install openmpi-bin)"
fi

# --- the hostfile, removed at exit -------------------------------------------
hostfile=$(mktemp "${TMPDIR:-/tmp}/mpirun-nodes-ompi.hosts.XXXXXX") || die "mktemp failed"
for ((i = 0; i < NODES; i++)); do echo "${addrs[$i]} slots=$PPN"; done >"$hostfile"

unset CHORUS_HOSTID CHORUS_SOCKET_IFNAME CHORUS_NETNS_NODE
xvars=()
while IFS='=' read -r name _; do
    [[ $name =~ ^CHORUS_[A-Za-z0-9_]*$ ]] && xvars+=(-x "$name")
done < <(env)

map=()
[ "$MODE" = rr ] && map=(--map-by node)
BTL=${CHORUS_NETNS_OMPI_BTL:-tcp,self}
agent=$DIR/netns-rsh
shmdir=''
if [[ ,$BTL, == *,vader,* ]]; then
    # vader names its segment files <dir>/vader_segment.<hostname>.<uid>.<jobid>.<local rank>:
    # the namespaces share the hostname and /dev/shm, so local rank 0 of every
    # node would map the same file (the ranks crash). One directory per node.
    shmdir=$(mktemp -d /dev/shm/mpirun-nodes-ompi.XXXXXX) || die "mktemp -d /dev/shm failed"
    export CHORUS_NETNS_OMPI_SHMDIR=$shmdir
    agent="$DIR/mpirun-nodes-ompi.sh --rsh-agent"
fi
cmd=("$MPIRUN" --allow-run-as-root --hostfile "$hostfile" -np $((NODES * PPN)) "${map[@]}"
    --bind-to none --oversubscribe
    --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1
    --mca oob_tcp_if_include "$subnet"
    --mca pml ob1 --mca btl "$BTL"
    --mca btl_tcp_if_include "${CHORUS_NETNS_OMPI_IF:-eth0}"
    "${xvars[@]}" "${mpirun_args[@]}" "$@")
[ -n "${CHORUS_NETNS_VERBOSE:-}" ] && echo "mpirun-nodes-ompi.sh: ${cmd[*]}" >&2

# --- run, bounded ---------------------------------------------------------------
# The orteds daemonize (setsid) and the ranks are their children, so they are
# found by a marker in their environment (inherited from mpirun through
# netns-rsh and orted) and whatever of this run is left after mpirun ends
# (a timeout, a crash) is killed: only processes this run started.
RUNID=mpirun-nodes-ompi.$$.$RANDOM$RANDOM
run_pids() {
    local f p
    for f in /proc/[0-9]*/environ; do
        p=${f#/proc/}; p=${p%/environ}
        [ "$p" = $$ ] && continue
        grep -qaF "CHORUS_NETNS_RUNID=$RUNID" "$f" 2>/dev/null && echo "$p"
    done
}
kill_run() {
    local p
    p=$(run_pids | tr '\n' ' ')
    [ -n "${p// /}" ] && { echo "mpirun-nodes-ompi.sh: killing left-over processes of the run: $p" >&2; kill -KILL $p 2>/dev/null; }
    rm -f "$hostfile"
    [ -n "$shmdir" ] && rm -rf "$shmdir"
    return 0
}

export CHORUS_NETNS_PREFIX=$PREFIX
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

trap 'kill_run; exit 130' INT
trap 'kill_run; exit 143' TERM
CHORUS_NETNS_RUNID=$RUNID timeout -k 10 "$TIMEOUT" "${cmd[@]}" </dev/null &
wait $!
rc=$?
[ "$rc" = 124 ] && echo "mpirun-nodes-ompi.sh: timed out after ${TIMEOUT}s" >&2
kill_run
exit "$rc"
