#!/usr/bin/env bash
# tests/netns/netns.sh - network namespaces as stand-in "nodes" on one machine.
#
# Topology made by `up N` (defaults shown; PREFIX=chns, SUBNET=10.77.0):
#
#     root namespace                          namespace PREFIX<i> (i = 0..N-1)
#     +----------------------------+          +-----------------------------+
#     | bridge PREFIXbr ("switch") |   veth   | eth0  SUBNET.<i+1>/24       |
#     |   SUBNET.254/24            |<-------->| lo up                       |
#     |   ports: PREFIXv<i>        |          | default via SUBNET.254      |
#     +----------------------------+          | [tc shaping on eth0 egress] |
#                                             +-----------------------------+
#
# Every node reaches every other node through the bridge (layer 2), and the
# root namespace (where mpiexec or a test driver runs) through the bridge's
# address. Nothing is routed beyond the subnet.
#
# Usage:
#   netns.sh up N [--prefix P] [--subnet A.B.C] [--delay 100us] [--rate 1gbit]
#                 [--loss 0.1%] [--best-effort] [--brnf-off] [--no-check]
#   netns.sh down [--prefix P]
#   netns.sh exec [--prefix P] I CMD [ARGS...]
#   netns.sh hosts [--prefix P] [--env | --addrs]
#
#   up      Removes leftovers of PREFIX, then creates N namespaces PREFIX0..,
#           the bridge PREFIXbr and the veth pairs, applies the shaping, and
#           checks that every node reaches the bridge and node 0 reaches every
#           node. Shaping is applied to each node's eth0 egress, so a path
#           between two nodes gets the delay (and loss) once per direction:
#           the round trip between two nodes is >= 2 x delay.
#             --delay T    netem delay (e.g. 100us, 1ms)           needs sch_netem
#             --loss  P    netem random loss (e.g. 0.1%)           needs sch_netem
#             --rate  R    tbf rate limit (e.g. 1gbit, 100mbit)    needs sch_tbf
#             --best-effort  if a qdisc is missing from the kernel, warn and go
#                          on without that part of the shaping (default: fail
#                          with exit status 3 and a clear message)
#             --brnf-off   set net.bridge.bridge-nf-call-{iptables,ip6tables,
#                          arptables}=0 in the root namespace (system-wide!) if
#                          bridged traffic would pass through the firewall
#             --no-check   skip the connectivity check
#             --subnet     the /24 to use, as A.B.C (default 10.77.0 for the
#                          prefix chns, else derived from the prefix; when not
#                          given, a subnet already used in the root namespace
#                          is skipped)
#   down    Kills processes still inside PREFIX<i> namespaces, removes the
#           namespaces, the bridge and the veths. Succeeds when nothing (or
#           only part) exists.
#   exec    Runs CMD inside namespace PREFIX<I> (I: index, namespace name or
#           address) with CHORUS_HOSTID=node<I>, CHORUS_SOCKET_IFNAME=eth0 and
#           CHORUS_NETNS_NODE=<I> added to the current environment.
#   hosts   Prints "INDEX NAMESPACE ADDRESS HOSTID" per node after a comment
#           line with the bridge and shaping; --addrs: the addresses joined by
#           commas; --env: shell assignments (CHORUS_NETNS_PREFIX, _NODES,
#           _ADDRS, _NAMES, _BRIDGE_ADDR, _SHAPING) for eval.
#
# PREFIX defaults to $CHORUS_NETNS_PREFIX, else "chns". It is 1-10 characters,
# letters, digits, '_' or '-', starting with a letter and not ending with a
# digit (so PREFIX<i> of one prefix never looks like another prefix's node).
# Different prefixes can be up at the same time (each gets its own subnet).
#
# No state files: what a prefix consists of is read back from the kernel. The
# node index and prefix are kept in eth0's interface alias inside each
# namespace, the subnet and shaping in the bridge's alias.
#
# Exit status: 0 ok, 1 error, 2 usage, 3 requested shaping not supported by
# the kernel (without --best-effort).
#
# Requires root (ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2
# (ip, tc), util-linux (flock), coreutils (timeout); ping (iputils-ping) is
# used for the connectivity check when present. See README.md.
set -u
set -o pipefail

PROG=netns.sh
LOCK=${CHORUS_NETNS_LOCK:-/run/lock/chorus-netns.lock}

die() { echo "$PROG: error: $*" >&2; exit 1; }
usage_error() { echo "$PROG: $*" >&2; echo "usage: $0 help" >&2; exit 2; }
warn() { echo "$PROG: warning: $*" >&2; }
info() { [ -n "${CHORUS_NETNS_QUIET:-}" ] || echo "$PROG: $*" >&2; }

# Runs a command with a time bound (kernel operations do not hang, but a
# wedged netlink or a stuck process must not hang a CI run either).
t() { timeout -k 5 "${CHORUS_NETNS_CMD_TIMEOUT:-30}" "$@"; }

check_prefix() {
    [[ $1 =~ ^[A-Za-z][A-Za-z0-9_-]{0,9}$ ]] || usage_error "bad prefix '$1' (1-10 chars [A-Za-z0-9_-], starting with a letter)"
    [[ $1 =~ [0-9]$ ]] && usage_error "bad prefix '$1': must not end with a digit"
    return 0
}

need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "'$c' not found (apt-get install $(pkg_of "$c"))"
    done
}
pkg_of() {
    case $1 in
        ip | tc | bridge) echo iproute2 ;;
        flock | unshare | nsenter) echo util-linux ;;
        timeout) echo coreutils ;;
        ping) echo iputils-ping ;;
        modprobe) echo kmod ;;
        *) echo "the package providing $1" ;;
    esac
}

# Loads a kernel module if the kernel has module support and modprobe exists;
# quiet either way (a built-in feature needs no module). Debian's kernels
# autoload qdisc modules on `tc qdisc add` only if kmod's modprobe exists.
load_module() {
    [ -e /proc/modules ] && command -v modprobe >/dev/null 2>&1 && t modprobe -q "$1" 2>/dev/null
    return 0
}

# --- naming ---------------------------------------------------------------
ns_name() { echo "$PREFIX$1"; }
bridge_name() { echo "${PREFIX}br"; }
veth_name() { echo "${PREFIX}v$1"; }

# namespaces of PREFIX, sorted by index, one per line
list_ns() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+\$" | sort -t/ -k1.$((${#PREFIX} + 1))n
}
# root-namespace veth ends of PREFIX
list_veths() {
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^${PREFIX}v[0-9]+\$"
}
ns_addr() { ip -n "$1" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1; }
# "key=value ..." alias of an interface (empty if none)
link_alias() { ip "${@:2}" -o link show dev "$1" 2>/dev/null | sed -n 's/.* alias \(.*\)$/\1/p' | sed 's/\\$//'; }
alias_get() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1; }

# --- down -----------------------------------------------------------------
# kills what runs inside namespace $1 (TERM, then KILL after 2 s)
kill_ns_procs() {
    local ns=$1 pids i
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [ -n "${pids// /}" ] || return 0
    info "killing processes left in $ns: $pids"
    kill -TERM $pids 2>/dev/null
    for i in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        [ -n "${pids// /}" ] || return 0
        sleep 0.2
    done
    kill -KILL $pids 2>/dev/null
    sleep 0.1
}

do_down() {
    local ns l i rc=0 br
    br=$(bridge_name)
    for ns in $(list_ns); do kill_ns_procs "$ns"; done
    # Deleting the root end of a veth pair deletes both ends at once; deleting
    # a namespace would also remove its end, but asynchronously (the kernel
    # cleans up namespaces in a work queue), so veths go first.
    for l in $(list_veths); do
        t ip link del "$l" 2>/dev/null || { ip link show dev "$l" >/dev/null 2>&1 && { warn "could not delete link $l"; rc=1; }; }
    done
    if ip link show dev "$br" >/dev/null 2>&1; then
        t ip link del "$br" || { warn "could not delete bridge $br"; rc=1; }
    fi
    for ns in $(list_ns); do
        t ip netns del "$ns" 2>/dev/null || { [ -e "/run/netns/$ns" ] && { warn "could not delete namespace $ns"; rc=1; }; }
    done
    # a veth whose namespace end was deleted with its namespace disappears a
    # moment later: wait for that (bounded) so a following `up` finds a clean slate
    for i in $(seq 1 50); do
        [ -z "$(list_veths)" ] && break
        sleep 0.1
    done
    [ -z "$(list_veths)" ] || { warn "links left: $(list_veths | tr '\n' ' ')"; rc=1; }
    return $rc
}

# --- up -------------------------------------------------------------------
subnet_in_use() { # $1 = A.B.C ; used by an address or a route in the root namespace
    local s=${1//./\\.}
    ip -4 -o addr show 2>/dev/null | awk '{print $4}' | grep -qE "^$s\." && return 0
    ip -4 route show table all 2>/dev/null | grep -qE "(^|[ ])$s\.[0-9]+" && return 0
    return 1
}

# rate in bytes per second from a tc rate string (bit, kbit, mbit, gbit, tbit,
# bps, kbps, mbps, gbps, tbps; k/m/g powers of 1000 as in tc), or fail
rate_bytes() {
    awk -v r="$1" 'BEGIN {
        if (!match(r, /^[0-9]+(\.[0-9]+)?/)) exit 1
        n = substr(r, 1, RLENGTH); u = tolower(substr(r, RLENGTH + 1))
        m["bit"] = 1/8; m["kbit"] = 1e3/8; m["mbit"] = 1e6/8; m["gbit"] = 1e9/8; m["tbit"] = 1e12/8
        m["bps"] = 1; m["kbps"] = 1e3; m["mbps"] = 1e6; m["gbps"] = 1e9; m["tbps"] = 1e12
        if (!(u in m)) exit 1
        printf "%d\n", n * m[u] }'
}

# Applies the shaping to eth0 of namespace $1. Sets SHAPING_DESC.
# Layout: netem (delay/loss) at the root with tbf (rate) as its child, as in
# the netem documentation; tbf alone when only a rate is asked for.
shape_node() {
    local ns=$1 netem_args=() tbf_args=() bps burst limit parent=root
    [ -n "$DELAY" ] && [ "$HAVE_NETEM" = 1 ] && netem_args+=(delay "$DELAY")
    [ -n "$LOSS" ] && [ "$HAVE_NETEM" = 1 ] && netem_args+=(loss "$LOSS")
    if [ -n "$RATE" ] && [ "$HAVE_TBF" = 1 ]; then
        bps=$(rate_bytes "$RATE")
        # burst: 1 ms at the rate, at least 32 KiB (tbf uses hrtimers, so a
        # burst below rate/HZ no longer caps the rate); queue: 20 ms of data
        burst=$((bps / 1000)); [ "$burst" -lt 32768 ] && burst=32768
        limit=$((bps / 50 + burst))
        tbf_args=(tbf rate "$RATE" burst "$burst" limit "$limit")
    fi
    if [ ${#netem_args[@]} -gt 0 ]; then
        # a large limit: netem's default of 1000 packets drops at high rates
        t tc -n "$ns" qdisc add dev eth0 root handle 1: netem "${netem_args[@]}" limit 100000 ||
            die "tc netem on $ns failed"
        parent="parent 1:1"
    fi
    if [ ${#tbf_args[@]} -gt 0 ]; then
        # shellcheck disable=SC2086
        t tc -n "$ns" qdisc add dev eth0 $parent handle 10: "${tbf_args[@]}" ||
            die "tc tbf on $ns failed"
    fi
}

# Probes whether qdisc kind $1 (with args) can be created, on lo of namespace
# $2 (removed again). Prints the error text on failure.
probe_qdisc() {
    local kind=$1 ns=$2 err
    shift 2
    load_module "sch_$kind"
    if err=$(t tc -n "$ns" qdisc add dev lo root handle 77: "$kind" "$@" 2>&1); then
        t tc -n "$ns" qdisc del dev lo root 2>/dev/null
        return 0
    fi
    echo "$err"
    return 1
}

# 0 if namespace $1 reaches address $2: ping if installed, else a TCP connect
# to port 9 (a refusal proves reachability just as well; a timeout does not)
reach() {
    local ns=$1 addr=$2
    if command -v ping >/dev/null 2>&1; then
        t ip netns exec "$ns" ping -n -q -c 1 -W 2 "$addr" >/dev/null 2>&1 && return 0
        t ip netns exec "$ns" ping -n -q -c 1 -W 2 "$addr" >/dev/null 2>&1 && return 0
        return 1
    fi
    local out
    out=$(timeout 3 ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/$addr/9" 2>&1)
    [ $? = 0 ] && return 0
    grep -qi refused <<<"$out"
}

brnf_on() {
    local f
    for f in iptables ip6tables arptables; do
        [ "$(cat /proc/sys/net/bridge/bridge-nf-call-$f 2>/dev/null)" = 1 ] && return 0
    done
    return 1
}
brnf_set_off() {
    local f
    for f in iptables ip6tables arptables; do
        [ -w /proc/sys/net/bridge/bridge-nf-call-$f ] && echo 0 >/proc/sys/net/bridge/bridge-nf-call-$f
    done
    warn "set net.bridge.bridge-nf-call-{iptables,ip6tables,arptables}=0 (system-wide, not restored)"
}

check_connectivity() {
    local n=$1 i bad=() ns0 gw=$SUBNET.254
    ns0=$(ns_name 0)
    for ((i = 0; i < n; i++)); do
        reach "$(ns_name "$i")" "$gw" || bad+=("$(ns_name "$i")->$gw")
    done
    if [ ${#bad[@]} -gt 0 ]; then
        echo "$PROG: error: nodes cannot reach the bridge address: ${bad[*]}" >&2
        echo "$PROG: (is a firewall in the root namespace dropping input on $(bridge_name)?)" >&2
        return 1
    fi
    for ((i = 1; i < n; i++)); do
        reach "$ns0" "$SUBNET.$((i + 1))" || bad+=("$ns0->$SUBNET.$((i + 1))")
    done
    if [ ${#bad[@]} -gt 0 ]; then
        if brnf_on && [ "$BRNF_OFF" = 1 ]; then
            brnf_set_off
            bad=()
            for ((i = 1; i < n; i++)); do
                reach "$ns0" "$SUBNET.$((i + 1))" || bad+=("$ns0->$SUBNET.$((i + 1))")
            done
            [ ${#bad[@]} = 0 ] && return 0
        fi
        echo "$PROG: error: nodes cannot reach each other through bridge $(bridge_name): ${bad[*]}" >&2
        if brnf_on; then
            cat >&2 <<EOF
$PROG: net.bridge.bridge-nf-call-iptables=1 (br_netfilter): bridged packets go
$PROG: through the root namespace's iptables/nftables FORWARD chain, which
$PROG: seems to drop them (e.g. Docker sets its policy to DROP). Either rerun
$PROG: with --brnf-off (sets the sysctl to 0 system-wide), or allow the
$PROG: bridge: iptables -I FORWARD -i $(bridge_name) -o $(bridge_name) -j ACCEPT
EOF
        fi
        return 1
    fi
    return 0
}

do_up() {
    local n=$1 i ns veth br addr err alias_txt
    br=$(bridge_name)
    # whatever fails below (die exits), remove what was made so far
    UP_DONE=0
    trap '[ "$UP_DONE" = 1 ] || { warn "up failed; removing what was made"; do_down; }' EXIT

    # leftovers of an earlier run with this prefix
    if [ -n "$(list_ns)$(list_veths)" ] || ip link show dev "$br" >/dev/null 2>&1; then
        info "removing leftovers of prefix $PREFIX"
        do_down || die "could not remove the leftovers of prefix $PREFIX"
    fi

    # the subnet: explicit, or derived from the prefix and moved on if taken
    if [ -n "$SUBNET" ]; then
        subnet_in_use "$SUBNET" && die "subnet $SUBNET.0/24 is already used in the root namespace (ip -4 addr / ip route); pick another --subnet"
    else
        local third
        if [ "$PREFIX" = chns ]; then third=0; else third=$(($(printf %s "$PREFIX" | cksum | cut -d' ' -f1) % 250 + 1)); fi
        for ((i = 0; i < 251; i++)); do
            subnet_in_use "10.77.$third" || break
            third=$(((third + 1) % 251))
        done
        [ "$i" -lt 251 ] || die "no free subnet 10.77.X.0/24 left; pass --subnet"
        SUBNET=10.77.$third
    fi

    # kernel features: bridge and veth (modules on stock Debian kernels)
    load_module bridge
    load_module veth
    if ! err=$(t ip link add "$br" type bridge forward_delay 0 stp_state 0 2>&1); then
        die "cannot create bridge $br: $err (kernel without CONFIG_BRIDGE, or not root / no CAP_NET_ADMIN)"
    fi
    t ip addr add "$SUBNET.254/24" dev "$br" || die "cannot set $SUBNET.254/24 on $br"
    t ip link set "$br" up || die "cannot set $br up"

    for ((i = 0; i < n; i++)); do
        ns=$(ns_name "$i")
        veth=$(veth_name "$i")
        addr=$SUBNET.$((i + 1))
        t ip netns add "$ns" || die "cannot create namespace $ns (needs root: CAP_SYS_ADMIN + CAP_NET_ADMIN)"
        t ip -n "$ns" link set lo up || die "cannot set lo up in $ns"
        # IPv6 link-local addresses usable at once (no duplicate address
        # detection wait) on interfaces created in the namespace from now on
        t ip netns exec "$ns" sh -c 'for f in /proc/sys/net/ipv6/conf/default/accept_dad /proc/sys/net/ipv6/conf/all/accept_dad; do [ -w $f ] && echo 0 >$f; done; exit 0'
        if ! err=$(t ip link add "$veth" type veth peer name eth0 netns "$ns" 2>&1); then
            die "cannot create veth pair $veth/eth0@$ns: $err (kernel without CONFIG_VETH?)"
        fi
        t ip link set "$veth" master "$br" || die "cannot attach $veth to $br"
        t ip link set "$veth" up || die "cannot set $veth up"
        t ip -n "$ns" addr add "$addr/24" dev eth0 || die "cannot set $addr/24 on eth0 in $ns"
        t ip -n "$ns" link set eth0 alias "chorus-netns prefix=$PREFIX node=$i" || die "cannot set the alias of eth0 in $ns"
        t ip -n "$ns" link set eth0 up || die "cannot set eth0 up in $ns"
        t ip -n "$ns" route add default via "$SUBNET.254" dev eth0 || die "cannot add the default route in $ns"
    done

    # shaping: probe what the kernel has, then apply
    HAVE_NETEM=0 HAVE_TBF=0
    local missing=() d_desc=- r_desc=- l_desc=-
    if [ -n "$DELAY$LOSS$RATE" ]; then
        need tc
        local ns0
        ns0=$(ns_name 0)
        if [ -n "$DELAY$LOSS" ]; then
            if err=$(probe_qdisc netem "$ns0" delay 1us); then HAVE_NETEM=1; else
                missing+=("netem (for --delay/--loss): $err")
            fi
        fi
        if [ -n "$RATE" ]; then
            if err=$(probe_qdisc tbf "$ns0" rate 1gbit burst 32k latency 10ms); then HAVE_TBF=1; else
                missing+=("tbf (for --rate): $err")
            fi
        fi
        if [ ${#missing[@]} -gt 0 ]; then
            local m
            for m in "${missing[@]}"; do
                echo "$PROG: the kernel lacks the qdisc ${m%%:*}:${m#*:}" >&2
            done
            echo "$PROG: (a stock Debian kernel has them as modules sch_netem / sch_tbf: apt-get install kmod, then modprobe sch_netem; this kernel: $(uname -r), modules $([ -e /proc/modules ] && echo supported || echo 'not supported (CONFIG_MODULES=n)'))" >&2
            if [ "$BEST_EFFORT" != 1 ]; then
                echo "$PROG: error: requested shaping unavailable; rerun with --best-effort to go on without it" >&2
                exit 3
            fi
            warn "--best-effort: going on without the missing shaping"
        fi
        [ -n "$DELAY" ] && { [ "$HAVE_NETEM" = 1 ] && d_desc=$DELAY || d_desc=unavailable; }
        [ -n "$LOSS" ] && { [ "$HAVE_NETEM" = 1 ] && l_desc=$LOSS || l_desc=unavailable; }
        [ -n "$RATE" ] && { [ "$HAVE_TBF" = 1 ] && r_desc=$RATE || r_desc=unavailable; }
        for ((i = 0; i < n; i++)); do shape_node "$(ns_name "$i")"; done
    fi
    SHAPING_DESC="delay=$d_desc,rate=$r_desc,loss=$l_desc"
    alias_txt="chorus-netns prefix=$PREFIX nodes=$n subnet=$SUBNET shaping=$SHAPING_DESC"
    t ip link set "$br" alias "$alias_txt" || die "cannot set the alias of $br"

    if [ "$CHECK" = 1 ]; then
        check_connectivity "$n" || exit 1
    fi
    UP_DONE=1
    info "up: $n nodes $(ns_name 0)..$(ns_name $((n - 1))) on $SUBNET.0/24 via bridge $br ($SUBNET.254), shaping $SHAPING_DESC"
}

# --- hosts / exec -----------------------------------------------------------
# resolves I (index, namespace name, address, or nodeI) to "INDEX NAMESPACE"
resolve_node() {
    local x=$1 ns a
    if [[ $x =~ ^[0-9]+$ ]]; then
        ns=$(ns_name "$x")
        [ -e "/run/netns/$ns" ] || die "no namespace $ns (is '$PROG up' done with prefix $PREFIX?)"
        echo "$x $ns"
        return
    fi
    if [[ $x =~ ^node([0-9]+)$ ]]; then resolve_node "${BASH_REMATCH[1]}"; return; fi
    if [[ $x =~ ^${PREFIX}([0-9]+)$ ]]; then resolve_node "${BASH_REMATCH[1]}"; return; fi
    for ns in $(list_ns); do
        a=$(ns_addr "$ns")
        [ "$a" = "$x" ] && { echo "${ns#"$PREFIX"} $ns"; return; }
    done
    die "no node '$x' with prefix $PREFIX"
}

do_hosts() {
    local mode=$1 ns i a names=() addrs=() br alias_txt
    br=$(bridge_name)
    for ns in $(list_ns); do
        names+=("$ns")
        addrs+=("$(ns_addr "$ns")")
    done
    alias_txt=$(link_alias "$br")
    case $mode in
        addrs)
            (IFS=,; echo "${addrs[*]}")
            ;;
        env)
            printf 'CHORUS_NETNS_PREFIX='"'"'%s'"'"'\n' "$PREFIX"
            printf 'CHORUS_NETNS_NODES='"'"'%s'"'"'\n' "${#names[@]}"
            printf 'CHORUS_NETNS_ADDRS='"'"'%s'"'"'\n' "$(IFS=,; echo "${addrs[*]}")"
            printf 'CHORUS_NETNS_NAMES='"'"'%s'"'"'\n' "$(IFS=,; echo "${names[*]}")"
            printf 'CHORUS_NETNS_BRIDGE_ADDR='"'"'%s'"'"'\n' "$(ip -4 -o addr show dev "$br" 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1)"
            printf 'CHORUS_NETNS_SHAPING='"'"'%s'"'"'\n' "$(alias_get "$alias_txt" shaping)"
            ;;
        *)
            if [ ${#names[@]} = 0 ]; then
                echo "# prefix $PREFIX: no nodes"
                return 0
            fi
            echo "# prefix=$PREFIX bridge=$br $(ip -4 -o addr show dev "$br" 2>/dev/null | awk '{print $4}') shaping=$(alias_get "$alias_txt" shaping)"
            for i in "${!names[@]}"; do
                echo "${names[$i]#"$PREFIX"} ${names[$i]} ${addrs[$i]} node${names[$i]#"$PREFIX"}"
            done
            ;;
    esac
}

do_exec() {
    local r idx ns
    r=$(resolve_node "$1") || exit 1
    idx=${r%% *} ns=${r#* }
    shift
    [ $# -gt 0 ] || usage_error "exec: no command"
    exec ip netns exec "$ns" env CHORUS_HOSTID="node$idx" CHORUS_SOCKET_IFNAME=eth0 \
        CHORUS_NETNS_NODE="$idx" "$@"
}

# --- main -------------------------------------------------------------------
PREFIX=${CHORUS_NETNS_PREFIX:-chns}
SUBNET=${CHORUS_NETNS_SUBNET:-}
DELAY='' RATE='' LOSS='' BEST_EFFORT=0 BRNF_OFF=0 CHECK=1 HOSTS_MODE=table

[ $# -ge 1 ] || usage_error "no subcommand"
cmd=$1
shift
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || usage_error "--prefix needs a value"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --subnet) [ $# -ge 2 ] || usage_error "--subnet needs a value"; SUBNET=$2; shift 2 ;;
        --subnet=*) SUBNET=${1#*=}; shift ;;
        --delay) [ $# -ge 2 ] || usage_error "--delay needs a value"; DELAY=$2; shift 2 ;;
        --delay=*) DELAY=${1#*=}; shift ;;
        --rate) [ $# -ge 2 ] || usage_error "--rate needs a value"; RATE=$2; shift 2 ;;
        --rate=*) RATE=${1#*=}; shift ;;
        --loss) [ $# -ge 2 ] || usage_error "--loss needs a value"; LOSS=$2; shift 2 ;;
        --loss=*) LOSS=${1#*=}; shift ;;
        --best-effort) BEST_EFFORT=1; shift ;;
        --brnf-off) BRNF_OFF=1; shift ;;
        --no-check) CHECK=0; shift ;;
        --env) HOSTS_MODE="env"; shift ;;
        --addrs) HOSTS_MODE=addrs; shift ;;
        --) shift; args+=("$@"); break ;;
        -*)
            # exec: options end at the node; anything after it is the command
            if [ "$cmd" = exec ] && [ ${#args[@]} -gt 0 ]; then args+=("$@"); break; fi
            usage_error "unknown option $1"
            ;;
        *)
            args+=("$1"); shift
            if [ "$cmd" = exec ]; then args+=("$@"); break; fi
            ;;
    esac
done
check_prefix "$PREFIX"
if [ -n "$SUBNET" ]; then
    SUBNET=${SUBNET%/24}; SUBNET=${SUBNET%.0}
    [[ $SUBNET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || usage_error "bad --subnet '$SUBNET' (want A.B.C for A.B.C.0/24)"
fi
[ -z "$DELAY" ] || [[ $DELAY =~ ^[0-9]+(\.[0-9]+)?(us|usec|ms|msec|s|sec)$ ]] || usage_error "bad --delay '$DELAY' (e.g. 100us, 2ms)"
[ -z "$LOSS" ] || [[ $LOSS =~ ^[0-9]+(\.[0-9]+)?%$ ]] || usage_error "bad --loss '$LOSS' (e.g. 0.1%)"
[ -z "$RATE" ] || rate_bytes "$RATE" >/dev/null || usage_error "bad --rate '$RATE' (e.g. 1gbit, 100mbit, 10mbps)"

need ip timeout
case $cmd in
    up)
        [ ${#args[@]} = 1 ] && [[ ${args[0]} =~ ^[0-9]+$ ]] && [ "${args[0]}" -ge 1 ] && [ "${args[0]}" -le 250 ] ||
            usage_error "up: want one node count 1..250"
        [ "$(id -u)" = 0 ] || warn "not root: ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN"
        need flock
        mkdir -p "$(dirname "$LOCK")"
        # one up/down at a time machine-wide: subnet choice and leftover
        # removal must not race with another prefix's run
        exec 9>>"$LOCK"
        flock -w 60 9 || die "timed out waiting for $LOCK"
        do_up "${args[0]}"
        ;;
    down)
        [ ${#args[@]} = 0 ] || usage_error "down takes no arguments"
        need flock
        mkdir -p "$(dirname "$LOCK")"
        exec 9>>"$LOCK"
        flock -w 60 9 || die "timed out waiting for $LOCK"
        do_down || exit 1
        info "down: prefix $PREFIX removed"
        ;;
    exec)
        [ ${#args[@]} -ge 2 ] || usage_error "exec: want a node and a command"
        do_exec "${args[@]}"
        ;;
    hosts)
        [ ${#args[@]} = 0 ] || usage_error "hosts takes no arguments"
        do_hosts "$HOSTS_MODE"
        ;;
    -h | --help | help)
        sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        ;;
    *) usage_error "unknown subcommand '$cmd'" ;;
esac
