#!/usr/bin/env bash
# tests/netns/with-nodes.sh - runs a command with N namespace "nodes" up, and
# always tears them down afterwards.
#
# Usage: with-nodes.sh N [--prefix P] [--delay T] [--rate R] [--loss P]
#                        [--subnet A.B.C] [--best-effort] [--brnf-off]
#                        [--no-check] -- CMD [ARGS...]
#
# Brings N nodes up with tests/netns/netns.sh (options as for `netns.sh up`),
# then runs CMD in the root namespace with these exported:
#   CHORUS_NETNS_PREFIX       the namespaces' prefix (namespace i: PREFIX<i>)
#   CHORUS_NETNS_NODES        N
#   CHORUS_NETNS_ADDRS        the nodes' addresses, comma-separated, node order
#   CHORUS_NETNS_NAMES        the namespace names, comma-separated
#   CHORUS_NETNS_BRIDGE_ADDR  the root namespace's address on the bridge
#   CHORUS_NETNS_SHAPING      what shaping was applied, e.g.
#                             delay=100us,rate=1gbit,loss=- ("unavailable"
#                             for a part the kernel could not do with
#                             --best-effort)
#   CHORUS_NETNS_DIR          this directory (netns.sh, netns-rsh, ...)
# CMD reaches node i with e.g. "$CHORUS_NETNS_DIR/netns.sh exec i ..." (the
# prefix comes from the environment), or runs MPI programs with
# mpirun-nodes.sh.
#
# Without --prefix a fresh prefix ("cw" + 5 random letters) is used, so runs
# in parallel (and nested runs) do not clash; CHORUS_NETNS_PREFIX in the
# caller's environment is deliberately not used as the default.
#
# Teardown (netns.sh down: kills what still runs in the namespaces, removes
# namespaces, veths and bridge) runs on every exit: CMD's end, an error in
# `up`, and SIGINT/SIGTERM/SIGHUP (CMD and its descendants are then sent
# SIGTERM, and SIGKILL 5 s later if still there).
#
# Exit status: CMD's; 128+signal if interrupted; `up`'s status if the nodes
# could not be brought up (3: shaping unsupported); 1 if CMD succeeded but
# the teardown failed.
set -u

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETNS=$DIR/netns.sh

usage() { echo "usage: with-nodes.sh N [netns.sh up options] -- CMD [ARGS...]" >&2; exit 2; }

[ $# -ge 1 ] || usage
N=$1
shift
[[ $N =~ ^[0-9]+$ ]] || usage
PREFIX=''
up_opts=()
while [ $# -gt 0 ]; do
    case $1 in
        --) shift; break ;;
        --prefix) [ $# -ge 2 ] || usage; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --delay | --rate | --loss | --subnet) [ $# -ge 2 ] || usage; up_opts+=("$1" "$2"); shift 2 ;;
        --delay=* | --rate=* | --loss=* | --subnet=* | --best-effort | --brnf-off | --no-check) up_opts+=("$1"); shift ;;
        *) echo "with-nodes.sh: unknown option '$1' (did you forget '--' before the command?)" >&2; usage ;;
    esac
done
[ $# -ge 1 ] || usage

if [ -z "$PREFIX" ]; then
    letters=abcdefghijklmnopqrstuvwxyz
    for try in 1 2 3 4 5 6 7 8 9 10; do
        PREFIX=cw
        for _ in 1 2 3 4 5; do PREFIX+=${letters:$(((RANDOM + $$ * try) % 26)):1}; done
        ip netns list 2>/dev/null | awk '{print $1}' | grep -qE "^${PREFIX}[0-9]+\$" || break
    done
fi

child=''
rc=0
torn_down=0

teardown() {
    [ "$torn_down" = 1 ] && return
    torn_down=1
    if ! "$NETNS" down --prefix "$PREFIX"; then
        echo "with-nodes.sh: teardown of prefix $PREFIX failed" >&2
        [ "$rc" = 0 ] && rc=1
    fi
}

# CMD's process and its descendants (those not yet orphaned), by pid
tree_pids() {
    local f l r
    for f in /proc/[0-9]*/stat; do
        read -r l <"$f" 2>/dev/null || continue
        r=${l##*) }
        # r: state ppid ...
        set -- $r
        echo "${l%% *} $2"
    done | awk -v root="$1" '{ kids[$2] = kids[$2] " " $1 }
        END { todo = root; while (todo != "") { n = split(todo, a, " "); todo = ""
              for (i = 1; i <= n; i++) { print a[i]; todo = todo " " kids[a[i]] } } }'
}

# stops CMD and what it started (only processes this script started): TERM,
# then KILL after 5 s
stop_child() {
    [ -n "$child" ] || return 0
    kill -0 "$child" 2>/dev/null || return 0
    local pids
    pids=$(tree_pids "$child" | tr '\n' ' ')
    kill -TERM $pids 2>/dev/null
    for _ in $(seq 1 50); do
        pids=$(for p in $pids; do kill -0 "$p" 2>/dev/null && echo "$p"; done | tr '\n' ' ')
        [ -n "${pids// /}" ] || return 0
        sleep 0.1
    done
    kill -KILL $pids 2>/dev/null
}

on_signal() {
    echo "with-nodes.sh: got SIG$1, stopping" >&2
    rc=$2
    trap '' INT TERM HUP # a second Ctrl-C must not cut the teardown short
    stop_child
    exit "$rc" # runs the EXIT trap
}

trap 'teardown; exit $rc' EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

"$NETNS" up "$N" --prefix "$PREFIX" "${up_opts[@]}"
up_rc=$?
if [ "$up_rc" != 0 ]; then
    rc=$up_rc
    echo "with-nodes.sh: could not bring up $N nodes (status $up_rc)" >&2
    exit "$rc"
fi

env_text=$("$NETNS" hosts --env --prefix "$PREFIX") || { rc=1; exit 1; }
eval "$env_text"
export CHORUS_NETNS_PREFIX CHORUS_NETNS_NODES CHORUS_NETNS_ADDRS CHORUS_NETNS_NAMES \
    CHORUS_NETNS_BRIDGE_ADDR CHORUS_NETNS_SHAPING
export CHORUS_NETNS_DIR=$DIR

# CMD runs in the background so that the traps run while we wait; the
# explicit <&0 keeps our stdin (a background command would get /dev/null)
"$@" <&0 &
child=$!
wait "$child"
rc=$?
child=''
exit "$rc"
