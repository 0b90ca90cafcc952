#!/usr/bin/env python3
"""perf/check_regression.py - flags sizes where Chorus lost ground against the MPI peers.

Usage: perf/check_regression.py RECORDED_DIR NEW_DIR [--tolerance 0.10] [--min-size 0]

Both directories hold the perf tools' JSON files (-J) of the standard sweep
(perf/run_standard.sh). For every file present in both and every size in
both, it compares the ratio the tool recorded (Chorus busbw / MPI busbw,
measured in the same run, so machine speed cancels out): a size is flagged
when the new ratio is more than TOLERANCE below the recorded one. Ratios are
what is compared because this machine's absolute numbers vary from run to run
(docs/perf.md). Prints one line per file and every flagged size; exit status
1 if anything was flagged, 2 on bad input.
"""
import argparse
import json
import os
import sys


def rows_by_size(path):
    with open(path) as f:
        doc = json.load(f)
    out = {}
    for row in doc.get("rows", []):
        ratio = row.get("ratio")
        if isinstance(ratio, (int, float)) and ratio > 0:
            out[row["size"]] = (ratio, row)
    return doc, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recorded")
    ap.add_argument("new")
    ap.add_argument("--tolerance", type=float, default=0.10,
                    help="flag a ratio more than this fraction below the recorded one")
    ap.add_argument("--min-size", type=int, default=0, help="ignore sizes below this many bytes")
    a = ap.parse_args()
    for d in (a.recorded, a.new):
        if not os.path.isdir(d):
            print(f"check_regression: {d} is not a directory", file=sys.stderr)
            return 2
    names = sorted(n for n in os.listdir(a.recorded) if n.endswith(".json"))
    if not names:
        print(f"check_regression: no .json files in {a.recorded}", file=sys.stderr)
        return 2
    flagged = compared = 0
    for name in names:
        new_path = os.path.join(a.new, name)
        if not os.path.exists(new_path):
            print(f"  {name}: missing from {a.new}")
            flagged += 1
            continue
        _, old = rows_by_size(os.path.join(a.recorded, name))
        doc, new = rows_by_size(new_path)
        bad = []
        for size in sorted(set(old) & set(new)):
            if size < a.min_size:
                continue
            compared += 1
            r_old, r_new = old[size][0], new[size][0]
            if r_new < (1 - a.tolerance) * r_old:
                bad.append((size, r_old, r_new))
        print(f"  {name}: {len(set(old) & set(new))} sizes, {len(bad)} flagged"
              f" ({doc.get('mpi_collective', 'MPI')} as the peer)")
        for size, r_old, r_new in bad:
            print(f"      {size:>12} B: ratio {r_new:.2f}x, recorded {r_old:.2f}x "
                  f"({100 * (r_new / r_old - 1):+.0f}%)")
        flagged += len(bad)
    print(f"check_regression: {compared} size points compared, {flagged} flagged "
          f"(tolerance {100 * a.tolerance:.0f}%)")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
