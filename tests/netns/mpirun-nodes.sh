#!/usr/bin/env bash
# tests/netns/mpirun-nodes.sh - runs an MPI program with MPICH's mpiexec
# (Hydra) across the namespace nodes of netns.sh, one Hydra "host" per
# namespace.
#
# Usage: mpirun-nodes.sh NODES RANKS_PER_NODE [options] -- PROGRAM [ARGS...]
#
# Options:
#   --block            ranks block-distributed (default): node 0 gets ranks
#                      0..K-1, node 1 ranks K..2K-1, ...
#   --rr, --round-robin  rank r on node r % NODES
#   --prefix P         use the nodes of prefix P (default: $CHORUS_NETNS_PREFIX)
#   --timeout SECS     bound on the whole run (default $CHORUS_NETNS_MPI_TIMEOUT,
#                      else 300); on expiry everything the run started is
#                      killed and the status is 124
#   --mpiexec PATH     the Hydra mpiexec (default: mpiexec.hydra, else
#                      mpirun.mpich, else mpiexec)
#   --mpiexec-arg ARG  one more argument for mpiexec (repeatable), e.g.
#                      --mpiexec-arg -prepend-rank
#   --delay/--rate/--loss/--subnet/--best-effort/--brnf-off
#                      shaping etc. for nodes this script brings up itself
#
# Nodes: if the prefix (option or $CHORUS_NETNS_PREFIX) has at least NODES
# nodes up, they are used (nodes 0..NODES-1), e.g. inside with-nodes.sh.
# Otherwise the script runs itself under with-nodes.sh: it brings up NODES
# nodes with a fresh prefix (or --prefix P), runs, and tears them down.
#
# What it sets up for MPICH (Debian's MPICH 4.0 is ch4:ucx; see README.md):
#   -launcher ssh -launcher-exec netns-rsh   Hydra starts one proxy per
#                            namespace through netns-rsh, which runs it in
#                            that namespace with CHORUS_HOSTID=node<i> and
#                            CHORUS_SOCKET_IFNAME=eth0
#   -localhost BRIDGE_ADDR   the address the proxies use to reach mpiexec's
#                            control port (default: the hostname, which
#                            resolves to 127.0.0.1 - the namespace's own lo)
#   -hosts A1:K,A2:K,...     (block) or A1:1,A2:1,... (round-robin; Hydra
#                            wraps around the list) with -n NODES*K
#   UCX_TLS=tcp,self         UCX must not use shared memory between
#                            namespaces: without this it does (same machine),
#                            and no MPI traffic crosses the veths. Ranks on
#                            one node still use MPICH's own shared memory.
#                            Override: CHORUS_NETNS_UCX_TLS.
#   UCX_NET_DEVICES=eth0     UCX's TCP transport on the namespace interface
#                            only (not lo). Override: CHORUS_NETNS_UCX_NET_DEVICES.
#   -genv LD_PRELOAD ucx_disconnect_shim.so  works around a hang in
#                            MPI_Finalize of MPICH 4.0 over UCX tcp (see
#                            ucx_disconnect_shim.c; built with ${CC:-cc} into
#                            $CHORUS_NETNS_CACHE, default /tmp/chorus-netns-UID).
#                            CHORUS_NETNS_UCX_SHIM=0: without it.
#   CHORUS_HOSTID, CHORUS_SOCKET_IFNAME unset in mpiexec's environment, since
#                            Hydra would pass them to every rank over the
#                            per-node values netns-rsh sets.
# Standard input of the program is /dev/null. CHORUS_NETNS_VERBOSE=1 prints
# the mpiexec command line.
#
# Exit status: mpiexec's (the program's); 124 on timeout; 2 usage.
set -u

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETNS=$DIR/netns.sh

usage() { echo "usage: mpirun-nodes.sh NODES RANKS_PER_NODE [--block|--rr] [--prefix P] [--timeout S] [--mpiexec PATH] [--mpiexec-arg A]... [shaping] -- PROGRAM [ARGS...]" >&2; exit 2; }
die() { echo "mpirun-nodes.sh: error: $*" >&2; exit 1; }

[ $# -ge 2 ] || usage
NODES=$1 PPN=$2
shift 2
[[ $NODES =~ ^[1-9][0-9]*$ ]] && [[ $PPN =~ ^[1-9][0-9]*$ ]] || usage
orig_opts=()
MODE=block
PREFIX=${CHORUS_NETNS_PREFIX:-}
PREFIX_GIVEN=0
TIMEOUT=${CHORUS_NETNS_MPI_TIMEOUT:-300}
MPIEXEC=''
mpiexec_args=()
up_opts=()
while [ $# -gt 0 ]; do
    case $1 in
        --) shift; break ;;
        --block) MODE=block; orig_opts+=("$1"); shift ;;
        --rr | --round-robin) MODE=rr; orig_opts+=("$1"); shift ;;
        --prefix) [ $# -ge 2 ] || usage; PREFIX=$2; PREFIX_GIVEN=1; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; orig_opts+=("$1" "$2"); shift 2 ;;
        --mpiexec) [ $# -ge 2 ] || usage; MPIEXEC=$2; orig_opts+=("$1" "$2"); shift 2 ;;
        --mpiexec-arg) [ $# -ge 2 ] || usage; mpiexec_args+=("$2"); orig_opts+=("$1" "$2"); shift 2 ;;
        --delay | --rate | --loss | --subnet) [ $# -ge 2 ] || usage; up_opts+=("$1" "$2"); shift 2 ;;
        --best-effort | --brnf-off | --no-check) up_opts+=("$1"); shift ;;
        *) echo "mpirun-nodes.sh: unknown option '$1' (did you forget '--' before the program?)" >&2; usage ;;
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
[ ${#up_opts[@]} = 0 ] || echo "mpirun-nodes.sh: note: nodes of prefix $PREFIX exist, shaping options ignored" >&2

eval "$("$NETNS" hosts --env --prefix "$PREFIX")" || die "cannot read the nodes of prefix $PREFIX"
IFS=, read -r -a addrs <<<"$CHORUS_NETNS_ADDRS"
[ -n "$CHORUS_NETNS_BRIDGE_ADDR" ] || die "prefix $PREFIX has no bridge address"

hosts=()
for ((i = 0; i < NODES; i++)); do
    if [ "$MODE" = block ]; then hosts+=("${addrs[$i]}:$PPN"); else hosts+=("${addrs[$i]}:1"); fi
done
hostlist=$(IFS=,; echo "${hosts[*]}")

if [ -z "$MPIEXEC" ]; then
    for c in mpiexec.hydra mpirun.mpich mpiexec; do
        command -v "$c" >/dev/null 2>&1 && { MPIEXEC=$c; break; }
    done
    [ -n "$MPIEXEC" ] || die "no mpiexec found (apt-get install mpich)"
fi

cmd=("$MPIEXEC" -launcher ssh -launcher-exec "$DIR/netns-rsh"
    -localhost "$CHORUS_NETNS_BRIDGE_ADDR" -hosts "$hostlist" -n $((NODES * PPN))
    "${mpiexec_args[@]}" "$@")

# --- the UCX finalize work-around (see ucx_disconnect_shim.c) -----------------
shim=''
if [ "${CHORUS_NETNS_UCX_SHIM:-1}" != 0 ]; then
    cache=${CHORUS_NETNS_CACHE:-${TMPDIR:-/tmp}/chorus-netns-$(id -u)}
    shim=$cache/ucx_disconnect_shim.so
    if [ ! -f "$shim" ] || [ "$DIR/ucx_disconnect_shim.c" -nt "$shim" ]; then
        mkdir -p "$cache" &&
            ${CC:-cc} -shared -fPIC -O2 -o "$shim.tmp.$$" "$DIR/ucx_disconnect_shim.c" &&
            mv -f "$shim.tmp.$$" "$shim" || {
            rm -f "$shim.tmp.$$"
            echo "mpirun-nodes.sh: warning: could not build $shim; MPI_Finalize may hang (MPICH 4.0 + UCX tcp)" >&2
            shim=''
        }
    fi
fi
[ -n "$shim" ] && cmd=("${cmd[0]}" -genv LD_PRELOAD "$shim" "${cmd[@]:1}")
[ -n "${CHORUS_NETNS_VERBOSE:-}" ] && echo "mpirun-nodes.sh: ${cmd[*]}" >&2

# --- run, bounded ---------------------------------------------------------------
# Hydra's proxies and the ranks make sessions of their own, so they are found
# by a marker in their environment (inherited from mpiexec through
# netns-rsh and Hydra) and whatever of this run is left after mpiexec ends
# (a timeout, a crash) is killed: only processes this run started.
RUNID=mpirun-nodes.$$.$RANDOM$RANDOM
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
    [ -n "${p// /}" ] && { echo "mpirun-nodes.sh: killing left-over processes of the run: $p" >&2; kill -KILL $p 2>/dev/null; }
    return 0
}

export CHORUS_NETNS_PREFIX=$PREFIX
export UCX_TLS=${CHORUS_NETNS_UCX_TLS:-tcp,self}
export UCX_NET_DEVICES=${CHORUS_NETNS_UCX_NET_DEVICES:-eth0}
unset CHORUS_HOSTID CHORUS_SOCKET_IFNAME CHORUS_NETNS_NODE

trap 'kill_run; exit 130' INT
trap 'kill_run; exit 143' TERM
CHORUS_NETNS_RUNID=$RUNID timeout -k 10 "$TIMEOUT" "${cmd[@]}" </dev/null &
wait $!
rc=$?
[ "$rc" = 124 ] && echo "mpirun-nodes.sh: timed out after ${TIMEOUT}s" >&2
kill_run
exit "$rc"
