#!/usr/bin/env python3
"""perf/results_table.py - the tables of perf/RESULTS.md from the standard sweep's JSON files.

Usage: perf/results_table.py MPICH_DIR [OMPI_DIR]

For each collective run on 2 ranks, one row per size: Chorus' busbw (out of
place; in place for broadcast, as the tool compares it) with each peer's busbw
measured in the same run, and the ratio Chorus / peer. Chorus appears once per
peer run (its own run next to MPICH, its own run next to Open MPI); the row
shows both, since each ratio is only meaningful within its run. 8 B rows give
times in microseconds instead. Then the small-message rows of the runs with
more ranks than cores. Markdown on stdout.
"""
import json
import os
import sys

TOOLS = ["all_reduce", "all_gather", "alltoall", "reduce_scatter", "broadcast", "reduce",
         "sendrecv"]


def load(d, name):
    p = os.path.join(d, name + ".json") if d else None
    if not p or not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def chorus_of(doc, row):
    # the tools compare MPI_Bcast (one buffer) with Chorus in place
    if doc["tool"].startswith("broadcast"):
        return row["ip_busbw"], row["ip_time_us"]
    return row["oop_busbw"], row["oop_time_us"]


def human(size):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= div and size % div == 0:
            return f"{size // div} {unit}"
    return f"{size} B"


def ceiling_table(mp, om):
    """Busbw at the sizes the memory probe bounds (from -B/4 up), as a share of the
    ceiling measured in the same run (docs/perf.md, 'The memory ceiling'). Chorus out of
    place, as the ceiling; MPI_Bcast has one buffer (its root copies nothing)."""
    lines = []
    for tool in TOOLS:
        for d, peer in ((mp, "MPICH"), (om, "Open MPI")):
            doc = load(d, tool + "_np2")
            if not doc or not doc.get("busbw_ceiling_gbps"):
                continue
            ceil, frm = doc["busbw_ceiling_gbps"], max(doc.get("membw_probe_bytes", 0) // 4, 1 << 20)
            for r in doc["rows"]:
                if r["size"] < frm:
                    continue
                # out of place: the variant the ceiling is derived for (docs/perf.md)
                cb = r["oop_busbw"]
                mb = r["mpi_busbw"]
                lines.append(f"| {tool} | {human(r['size'])} | {doc['membw_copy_all_gbps']:.2f} | "
                             f"{ceil:.2f} | {cb:.2f} ({100 * cb / ceil:.0f}%) | {peer} "
                             f"{mb:.2f} ({100 * mb / ceil:.0f}%) |")
    if not lines:
        return
    print("### Against the memory ceiling, 2 ranks\n")
    print("| tool | size | copy_all GB/s | ceiling GB/s | Chorus busbw | peer busbw |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(lines))
    print()


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    mp, om = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
    for tool in TOOLS:
        a, b = load(mp, tool + "_np2"), load(om, tool + "_np2")
        if not a:
            continue
        # the small sizes come from their own run (more iterations)
        for doc, d in ((a, mp), (b, om)):
            small = load(d, tool + "_np2_small") if doc else None
            if small:
                doc["rows"] = small["rows"] + doc["rows"]
        rows_b = {r["size"]: r for r in b["rows"]} if b else {}
        print(f"### {tool}, 2 ranks\n")
        head = "| size | Chorus | MPICH | ratio |"
        sep = "|---:|---:|---:|---:|"
        if b:
            head += " Chorus | Open MPI | ratio |"
            sep += "---:|---:|---:|"
        print(head)
        print(sep)
        for r in a["rows"]:
            s = r["size"]
            cb, ct = chorus_of(a, r)
            if s <= 8:
                line = f"| {human(s)} (us) | {ct:.2f} | {r['mpi_time_us']:.2f} | " \
                       f"{r['mpi_time_us'] / ct:.2f}x |"
            else:
                line = f"| {human(s)} | {cb:.2f} | {r['mpi_busbw']:.2f} | {r['ratio']:.2f}x |"
            rb = rows_b.get(s)
            if b and rb:
                cb2, ct2 = chorus_of(b, rb)
                if s <= 8:
                    line += f" {ct2:.2f} | {rb['mpi_time_us']:.2f} | {rb['mpi_time_us'] / ct2:.2f}x |"
                else:
                    line += f" {cb2:.2f} | {rb['mpi_busbw']:.2f} | {rb['ratio']:.2f}x |"
            elif b:
                line += " - | - | - |"
            print(line)
        print()
    ceiling_table(mp, om)
    print("### More ranks than cores (2 cores), 8 B allreduce, time per call in us\n")
    print("| ranks | Chorus (next to MPICH) | MPICH | Chorus (next to Open MPI) | Open MPI |")
    print("|---:|---:|---:|---:|---:|")
    for np_ in (4, 8):
        a, b = load(mp, f"all_reduce_np{np_}"), load(om, f"all_reduce_np{np_}")
        if not a:
            continue
        r = a["rows"][0]
        line = f"| {np_} | {r['oop_time_us']:.1f} | {r['mpi_time_us']:.1f} |"
        if b:
            rb = b["rows"][0]
            line += f" {rb['oop_time_us']:.1f} | {rb['mpi_time_us']:.1f} |"
        else:
            line += " - | - |"
        print(line)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
