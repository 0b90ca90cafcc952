#!/usr/bin/env bash
# test_chorus_topo.sh - the chorus_topo tool as a user runs it: this host,
# every shipped topology (tree, levels, YAML that reads back the same), the
# list, CHORUS_TOPO_FILE, the levels the runtime's tuner prices for a layout
# (--layout, as chorus_tune --layout), each view saying whether the tuner
# prices its levels, and bad input (exit 1 naming file:line, or 2).
#
# Usage: tests/test_chorus_topo.sh BUILD_DIR   (sets CHORUS_TOPO_DIR to the source topo/)
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
TOOL=$1/src/chorus_topo
export CHORUS_TOPO_DIR=$SRC/topo
unset CHORUS_TOPO_FILE
tmp=$(mktemp -d "${TMPDIR:-/tmp}/chorus-topo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_in TEXT WORD...: every word appears in the text
expect_in() {
    local text=$1 w
    shift
    for w in "$@"; do
        grep -qF -- "$w" <<<"$text" || fail "output lacks '$w':"$'\n'"$text"
    done
}

# this host
out=$("$TOOL") || fail "chorus_topo (this host) exited $?"
echo "$out"
expect_in "$out" "ranks in" "source: detected" "over shm" "host " "NUMA node" \
    "tuner:" "does not price these levels" "--layout HOSTSxRANKS"
out=$("$TOOL" --levels) || fail "chorus_topo --levels exited $?"
expect_in "$out" "level" "host" "shm" "# the runtime's tuner does not price these levels"
"$TOOL" --yaml >"$tmp/host.yaml" || fail "chorus_topo --yaml (host) exited $?"
"$TOOL" --topo "$tmp/host.yaml" --yaml >"$tmp/host2.yaml" || fail "host YAML does not load back"
diff <(sed 1d "$tmp/host.yaml") <(sed 1d "$tmp/host2.yaml") || fail "host YAML differs on reload"

# shipped topologies: name ranks level-names...
while read -r name ranks levels; do
    out=$("$TOOL" --topo "$name") || fail "chorus_topo --topo $name exited $?"
    echo "$out"
    expect_in "$out" "$name: $ranks ranks" "supernodes.md" ${levels//,/ }
    out=$("$TOOL" --topo "$name" --levels) || fail "--levels $name exited $?"
    expect_in "$out" ${levels//,/ } "prices these levels for a communicator of exactly $ranks"
    "$TOOL" --topo "$name" --yaml >"$tmp/$name.yaml" || fail "--yaml $name exited $?"
    "$TOOL" --topo "$tmp/$name.yaml" --yaml >"$tmp/$name.2.yaml" || fail "$name YAML does not load back"
    diff <(sed 1d "$tmp/$name.yaml") <(sed 1d "$tmp/$name.2.yaml") || fail "$name YAML differs on reload"
done <<'LIST'
cloudmatrix384 768 die-pair,server,supernode
metax-c550-128 128 server,domain,cabinet
gb200-nvl72 72 nvlink
8gpu-roce400 128 server,cluster
LIST

out=$("$TOOL" --list) || fail "chorus_topo --list exited $?"
echo "$out"
expect_in "$out" "cloudmatrix384" "768 ranks" "metax-c550-128" "gb200-nvl72" "8gpu-roce400"

# the topology in force follows CHORUS_TOPO_FILE
out=$(CHORUS_TOPO_FILE=gb200-nvl72 "$TOOL") || fail "CHORUS_TOPO_FILE=gb200-nvl72 exited $?"
expect_in "$out" "gb200-nvl72: 72 ranks"

# what the runtime's tuner prices for a layout: the host and network levels
# with the network transport's figures (tuner_layout_topo, as chorus_tune)
out=$("$TOOL" --layout 2x2) || fail "chorus_topo --layout 2x2 exited $?"
expect_in "$out" "runtime: 4 ranks in 2 levels" "network x1" "host x2" "1.25 GB/s" "25 us" \
    "communicator of 2 hosts x 2" "chorus_tune --layout 2x2" "shared memory inside a host"
out=$("$TOOL" --layout 3x2 --levels) || fail "chorus_topo --layout 3x2 --levels exited $?"
expect_in "$out" "# the runtime's tuner prices these levels for a communicator of 3 hosts x 2"
[ "$(grep -vc '^#' <<<"$out")" = 3 ] && grep -q '^0 *host *2 ' <<<"$out" &&
    grep -q '^1 *network *3 ' <<<"$out" || fail "--layout 3x2 --levels: want host 2, network 3:"$'\n'"$out"
out=$("$TOOL" --layout 1x4 --levels) || fail "chorus_topo --layout 1x4 --levels exited $?"
expect_in "$out" "network" "only with CHORUS_TRANSPORT=tcp or rdma"
out=$("$TOOL" --layout 2x2 --transport rdma --levels) || fail "--transport rdma exited $?"
expect_in "$out" "12 GB/s" "4 us" "figures of rdma"
printf 'figures:\n  tcp: {latency: 80 us, bandwidth: 0.5 GB/s}\n' >"$tmp/tuning.yaml"
out=$(CHORUS_TUNING_FILE=$tmp/tuning.yaml "$TOOL" --layout 2x2 --levels) ||
    fail "--layout with CHORUS_TUNING_FILE exited $?"
expect_in "$out" "500 MB/s" "80 us" "from $tmp/tuning.yaml"
out=$(CHORUS_TUNING_FILE=/nonexistent "$TOOL" --layout 2x2 --tuning "$tmp/tuning.yaml" --levels) ||
    fail "--tuning should win over CHORUS_TUNING_FILE (exit $?)"
expect_in "$out" "500 MB/s"
"$TOOL" --layout 2x2 --tuning "$tmp/none.yaml" >/dev/null 2>&1
[ $? -eq 1 ] || fail "--layout with a missing tuning file: want exit 1"
for bad in "--layout 2y2" "--layout 0x2" "--layout" "--layout 2x2 --transport udp" \
    "--layout 2x2 --topo gb200-nvl72" "--layout 2x2 --detect"; do
    # shellcheck disable=SC2086
    "$TOOL" $bad >/dev/null 2>&1
    [ $? -eq 2 ] || fail "chorus_topo $bad: want exit 2"
done

# a broken file: exit 1, file:line and the field
printf 'name: x\nreduce_bandwidth: 1 GB/s\nlevels:\n  - name: a\n    group: 2\n    shape: ring\n    bandwidth: 3 furlongs\n    latency: 1 us\n' >"$tmp/bad.yaml"
err=$("$TOOL" --topo "$tmp/bad.yaml" 2>&1)
rc=$?
[ "$rc" -eq 1 ] || fail "broken file: exit $rc, want 1"
expect_in "$err" "$tmp/bad.yaml:7:" "bandwidth" "furlongs"
err=$("$TOOL" --topo no-such-topology 2>&1)
[ $? -eq 1 ] || fail "unknown short name: want exit 1"
expect_in "$err" "no-such-topology" "not found"
"$TOOL" --bogus >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown option: want exit 2"

if [ "$fails" -gt 0 ]; then
    echo "FAIL test_chorus_topo.sh: $fails failures"
    exit 1
fi
echo "ok test_chorus_topo.sh"
