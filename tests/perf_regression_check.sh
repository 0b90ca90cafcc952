#!/usr/bin/env bash
# tests/perf_regression_check.sh - perf/check_regression.py flags what it must:
# the recorded standard sweep against itself passes; the same with one ratio
# lowered by 20% is flagged (exit 1) naming that size; a missing result too.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
REC=$SRC/perf/results/standard/mpich
CHECK=$SRC/perf/check_regression.py
TMP=$(mktemp -d "${TMPDIR:-/tmp}/chorus-regress.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
python3 "$CHECK" "$REC" "$REC" >"$TMP/same" || { echo "FAIL: recorded vs itself"; cat "$TMP/same"; exit 1; }
cp -r "$REC" "$TMP/new"
python3 - "$TMP/new/all_reduce_np2.json" <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
row = d["rows"][len(d["rows"]) // 2]
row["ratio"] *= 0.8
json.dump(d, open(p, "w"))
print(row["size"])
PY
size=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["rows"][len(d["rows"])//2]["size"])' "$TMP/new/all_reduce_np2.json")
if python3 "$CHECK" "$REC" "$TMP/new" >"$TMP/out"; then
    echo "FAIL: a 20% lower ratio was not flagged"; cat "$TMP/out"; exit 1
fi
grep -q " $size B: ratio" "$TMP/out" || { echo "FAIL: size $size not named"; cat "$TMP/out"; exit 1; }
rm "$TMP/new/alltoall_np2.json"
python3 "$CHECK" "$REC" "$TMP/new" >"$TMP/out2" && { echo "FAIL: a missing result passed"; exit 1; }
grep -q "alltoall_np2.json: missing" "$TMP/out2" || { echo "FAIL: missing file not named"; exit 1; }
echo "ok: unchanged passes, a 20% drop at $size B and a missing result are flagged"
