#!/usr/bin/env bash
# test_chorus_topo.sh - the chorus_topo tool as a user runs it: this host,
# every shipped topology (tree, levels, YAML that reads back the same), the
# list, CHORUS_TOPO_FILE, and a broken file (exit 1, message naming file:line).
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
expect_in "$out" "ranks in" "source: detected" "over shm" "host " "NUMA node"
out=$("$TOOL" --levels) || fail "chorus_topo --levels exited $?"
expect_in "$out" "level" "host" "shm"
"$TOOL" --yaml >"$tmp/host.yaml" || fail "chorus_topo --yaml (host) exited $?"
"$TOOL" --topo "$tmp/host.yaml" --yaml >"$tmp/host2.yaml" || fail "host YAML does not load back"
diff <(sed 1d "$tmp/host.yaml") <(sed 1d "$tmp/host2.yaml") || fail "host YAML differs on reload"

# shipped topologies: name ranks level-names...
while read -r name ranks levels; do
    out=$("$TOOL" --topo "$name") || fail "chorus_topo --topo $name exited $?"
    echo "$out"
    expect_in "$out" "$name: $ranks ranks" "supernodes.md" ${levels//,/ }
    out=$("$TOOL" --topo "$name" --levels) || fail "--levels $name exited $?"
    expect_in "$out" ${levels//,/ }
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
