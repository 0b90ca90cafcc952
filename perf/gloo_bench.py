#!/usr/bin/python3
# perf/gloo_bench.py - a gloo baseline for the Chorus perf tools: times
# torch.distributed collectives on the gloo backend (CPU tensors) over a range
# of sizes and prints the table of the perf tools / nccl-tests (size, count,
# type, redop, root, time, algbw, busbw, #wrong), so the numbers sit next to
# Chorus' own (perf/*_perf, docs/network.md).
#
# Run one process per rank with torchrun-style environment:
#   MASTER_ADDR, MASTER_PORT   rendezvous (TCPStore on rank 0)
#   RANK, WORLD_SIZE           this rank, number of ranks
#   GLOO_SOCKET_IFNAME         gloo's interface (eth0 inside tests/netns nodes)
# e.g. perf/run_multinode_gloo.sh, or by hand on one host:
#   for r in 0 1; do MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 RANK=$r WORLD_SIZE=2 \
#       /usr/bin/python3 perf/gloo_bench.py -c all_reduce & done; wait
#
# Interpreter: Debian's python3-torch (PyTorch 1.13, CPU, with gloo) is
# installed for /usr/bin/python3; a python3 earlier in PATH (pyenv etc.) may
# not have torch, hence the explicit path.
#
# Collectives (-c), as gloo in PyTorch 1.13 offers them for CPU tensors:
#   all_reduce  dist.all_reduce(t, SUM) on float32, in place (torch has no
#               out-of-place allreduce). busbw = algbw x 2(n-1)/n.
#   all_gather  dist.all_gather(list_of_n_views, t): the outputs are n views of
#               one contiguous tensor. all_gather_into_tensor (and
#               _all_gather_base) raise "no support for _allgather_base in
#               Gloo process group" in 1.13, so the list form is the only one;
#               gloo gathers into a flat buffer of its own and copies it out to
#               the n outputs. busbw = algbw x (n-1)/n.
#   alltoall    dist.all_to_all_single(out, in) with equal splits (gloo's
#               alltoall_base; the list form dist.all_to_all raises "ProcessGroup
#               gloo does not support alltoall" in 1.13). busbw = algbw x (n-1)/n.
# (reduce_scatter: "ProcessGroupGloo does not support reduce_scatter" in 1.13.)
#
# Sizes as in the perf tools: S from -b, times -f while <= -e; count = S /
# (4 x (n for all_gather and alltoall, else 1)) rounded down, S = count x 4 x
# (n or 1); a size that rounds to 0 or to the previous one is skipped. For
# all_gather and alltoall S is a rank's whole receive buffer and count the
# elements per rank (per block), like the perf tools and nccl-tests.
#
# Per size:
#   1. check (-C 1): one call on rank-dependent inputs, every element compared
#      with its exact expected value (small integers, exact in float32); the
#      sum over ranks of the differing elements is #wrong;
#   2. warm-up: -w calls, untimed;
#   3. timing: iters calls (iters = -n, but at most -B bytes / S and at least
#      -m, so large sizes take fewer), split into up to -r rounds, each round a
#      barrier and then a block of back-to-back calls timed with
#      time.perf_counter(); a rank's time is its block times summed / iters,
#      and the ranks' times are averaged (all_reduce of the times), as
#      nccl-tests' default. Timed calls run on zero-filled buffers (allreduce
#      in place would otherwise grow the values without bound).
# algbw = S / time, busbw = algbw x factor, GB = 1e9 B. Times include the
# Python call overhead of torch.distributed (some microseconds per call).
#
# Exit status: 0 ok, 1 wrong values, 2 bad options, 3 error (timeout etc.).
import argparse
import datetime
import json
import os
import platform
import shlex
import socket
import sys
import time


def parse_size(s):
    s = s.strip()
    mult = 1
    if s and s[-1] in "kKmMgG":
        mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[s[-1].lower()]
        s = s[:-1]
    v = int(float(s) * mult)
    if v <= 0:
        raise argparse.ArgumentTypeError("size must be > 0")
    return v


COLLS = {
    # name: (busbw factor as a function of n, whole_buffer, redop, label of the call)
    "all_reduce": (lambda n: 2.0 * (n - 1) / n, False, "sum", "dist.all_reduce (gloo, SUM, in place)"),
    "all_gather": (lambda n: (n - 1) / n, True, "none", "dist.all_gather (gloo, list of n views of one tensor)"),
    "alltoall": (lambda n: (n - 1) / n, True, "none", "dist.all_to_all_single (gloo alltoall_base, equal splits)"),
}
ALIASES = {"allreduce": "all_reduce", "allgather": "all_gather", "all_to_all": "alltoall",
           "all_to_all_single": "alltoall", "alltoall_single": "alltoall"}


def options(argv):
    p = argparse.ArgumentParser(
        prog="gloo_bench.py",
        description="Times torch.distributed gloo collectives (CPU, float32) in the table "
        "format of the Chorus perf tools / nccl-tests. One process per rank; environment "
        "MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE (and GLOO_SOCKET_IFNAME).",
        epilog="Sizes take K, M, G suffixes (powers of 1024). Exit status: 0 ok; 1 wrong "
        "values; 2 bad options; 3 error.")
    p.add_argument("-c", "--coll", default="all_reduce",
                   help="all_reduce, all_gather or alltoall (default all_reduce)")
    p.add_argument("-b", "--minbytes", type=parse_size, default=parse_size("8"), help="smallest size (default 8)")
    p.add_argument("-e", "--maxbytes", type=parse_size, default=parse_size("64M"), help="largest size (default 64M)")
    p.add_argument("-f", "--stepfactor", type=float, default=4.0, help="size factor per step (default 4)")
    p.add_argument("-n", "--iters", type=int, default=20, help="timed iterations per size (default 20)")
    p.add_argument("-B", "--iter-bytes", type=parse_size, default=parse_size("128M"),
                   help="at most this many bytes / S iterations per size (default 128M)")
    p.add_argument("-m", "--min-iters", type=int, default=5, help="but at least this many (default 5)")
    p.add_argument("-w", "--warmup", type=int, default=3,
                   help="untimed calls per size (default 3; at most iters)")
    p.add_argument("-r", "--rounds", type=int, default=5,
                   help="split the iterations into up to this many barrier-started blocks (default 5)")
    p.add_argument("-C", "--check", type=int, choices=(0, 1), default=1, help="check results (default 1)")
    p.add_argument("-t", "--threads", type=int, default=1,
                   help="torch.set_num_threads (default 1: one core per rank, as the perf tools)")
    p.add_argument("-T", "--timeout", type=float, default=300,
                   help="gloo timeout of init and of each collective in seconds (default 300)")
    p.add_argument("-J", "--json", help="write the rows as JSON to this file (rank 0)")
    o = p.parse_args(argv)
    o.coll = ALIASES.get(o.coll, o.coll)
    if o.coll not in COLLS:
        p.error("unknown collective '%s' (all_reduce, all_gather, alltoall)" % o.coll)
    if o.stepfactor <= 1 or o.iters < 1 or o.min_iters < 1 or o.warmup < 0 or o.rounds < 1:
        p.error("need -f > 1, -n >= 1, -m >= 1, -w >= 0, -r >= 1")
    if o.minbytes > o.maxbytes:
        p.error("-b larger than -e")
    return o


def main(argv):
    o = options(argv)
    for v in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        if v not in os.environ:
            print("gloo_bench.py: %s not set (torchrun-style environment needed)" % v, file=sys.stderr)
            return 2

    import torch
    import torch.distributed as dist

    torch.set_num_threads(o.threads)
    if not dist.is_gloo_available():
        print("gloo_bench.py: this torch has no gloo backend", file=sys.stderr)
        return 3
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=o.timeout))
    rank, n = dist.get_rank(), dist.get_world_size()
    factor_fn, whole, redop, call_label = COLLS[o.coll]
    factor = factor_fn(n)
    per = 4 * (n if whole else 1)

    # the sizes
    sizes, req, last = [], o.minbytes, 0
    while req <= o.maxbytes:
        count = req // per
        if count > 0 and count * per != last:
            sizes.append((count * per, count))
            last = count * per
        nxt = int(req * o.stepfactor)
        req = nxt if nxt > req else req + 1

    def iters_for(size):
        return max(o.min_iters, min(o.iters, o.iter_bytes // size))

    # buffers, allocated once at the largest size and viewed per size
    maxcount = max((c for _, c in sizes), default=1)
    if o.coll == "all_reduce":
        buf_a = torch.zeros(maxcount, dtype=torch.float32)
        buf_b = None
    else:
        buf_a = torch.zeros(maxcount * n, dtype=torch.float32)  # receive
        buf_b = torch.zeros(maxcount * (n if o.coll == "alltoall" else 1), dtype=torch.float32)  # send

    def make_call(count):
        if o.coll == "all_reduce":
            t = buf_a[:count]
            return (lambda: dist.all_reduce(t, op=dist.ReduceOp.SUM)), t, None
        if o.coll == "all_gather":
            out = buf_a[:count * n]
            outs = list(out.split(count))
            inp = buf_b[:count]
            return (lambda: dist.all_gather(outs, inp)), out, inp
        out = buf_a[:count * n]
        inp = buf_b[:count * n]
        return (lambda: dist.all_to_all_single(out, inp)), out, inp

    # Exact small integers (< 2^24) so float32 holds inputs and results exactly.
    def check(count):
        call, out, inp = make_call(count)
        idx = torch.arange(count, dtype=torch.int64)
        if o.coll == "all_reduce":
            out.copy_(((idx % 1021) * (rank + 1) + rank).to(torch.float32))
            call()
            s = n * (n + 1) // 2
            expect = ((idx % 1021) * s + n * (n - 1) // 2).to(torch.float32)
        elif o.coll == "all_gather":
            out.fill_(-1.0)
            inp.copy_((rank * 4096 + idx % 4096).to(torch.float32))
            call()
            src = torch.arange(n, dtype=torch.int64).repeat_interleave(count)
            expect = (src * 4096 + torch.arange(count, dtype=torch.int64).repeat(n) % 4096).to(torch.float32)
        else:
            # block p of rank r's input goes to rank p: value (r*n + p)*1024 + i%1024
            out.fill_(-1.0)
            dst = torch.arange(n, dtype=torch.int64).repeat_interleave(count)
            k = torch.arange(count, dtype=torch.int64).repeat(n) % 1024
            inp.copy_(((rank * n + dst) * 1024 + k).to(torch.float32))
            call()
            src = dst  # block p of the output came from rank p
            expect = ((src * n + rank) * 1024 + k).to(torch.float32)
        wrong = int((out != expect).sum().item())
        out.zero_()
        if inp is not None:
            inp.zero_()
        return wrong

    # header
    info = {"rank": rank, "pid": os.getpid(), "host": socket.gethostname(),
            "node": os.environ.get("CHORUS_HOSTID", "-"),
            "cpu": -1}
    try:
        with open("/proc/self/stat") as f:
            info["cpu"] = int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        pass
    infos = [None] * n
    dist.all_gather_object(infos, info)

    cmdline = " ".join(shlex.quote(a) for a in [sys.argv[0]] + argv)
    envkeys = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "GLOO_SOCKET_IFNAME",
               "OMP_NUM_THREADS")
    env_txt = " ".join("%s=%s" % (k, os.environ[k]) for k in envkeys if k in os.environ)
    env_txt += "".join(" %s=%s" % (k, v) for k, v in sorted(os.environ.items())
                       if k not in envkeys and k.startswith(("CHORUS_", "GLOO_", "TORCH_")))
    if rank == 0:
        print("# gloo_bench.py: %s vs (nothing: baseline for the Chorus perf tools)" % call_label)
        print("# Command: %s" % cmdline)
        print("# PyTorch %s (%s), backend gloo, torch threads %d | Python %s, %s" % (
            torch.__version__, torch.__file__.rsplit("/", 2)[0], torch.get_num_threads(),
            platform.python_version(), sys.executable))
        print("# nRanks %d  minBytes %d  maxBytes %d  step: %g(factor)  warmup iters: %d  iters: %d"
              " (at most %d B / size, at least %d)  rounds: %d  validation: %d  time: avg over ranks" % (
                  n, o.minbytes, o.maxbytes, o.stepfactor, o.warmup, o.iters, o.iter_bytes,
                  o.min_iters, o.rounds, o.check))
        print("# Environment: %s" % env_txt)
        print("#\n# Using ranks:")
        for r in infos:
            print("#  Rank %3d  Pid %7d  cpu %3d  on %s %s" % (r["rank"], r["pid"], r["cpu"], r["host"], r["node"]))
        print("#")
        print("# size: S in bytes (%s); count: %s;" % (
            "a rank's whole receive buffer" if whole else "count x typesize",
            "elements per rank (per block)" if whole else "elements"))
        print("# algbw = S / time; busbw = algbw x %s (GB = 1e9 B); #wrong: elements that differ" % (
            "2(n-1)/n" if o.coll == "all_reduce" else "(n-1)/n"))
        print("# from the expected value (summed over ranks); iters: timed calls of the row.")
        print("#%51s%s" % ("", "gloo".center(34)))
        print("#%11s  %12s  %8s  %6s  %6s  %8s  %6s  %6s  %6s  %6s" % (
            "size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "iters"))
        print("#%11s  %12s  %8s  %6s  %6s  %8s  %6s  %6s  %6s  %6s" % (
            "(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", ""))
        sys.stdout.flush()

    rows, total_wrong, busbw_sum = [], 0, 0.0
    for size, count in sizes:
        wrong = check(count) if o.check else 0
        call, _, _ = make_call(count)
        iters = iters_for(size)
        for _ in range(min(o.warmup, iters)):
            call()
        rounds = min(o.rounds, iters)
        elapsed = 0.0
        for k in range(rounds):
            m = iters // rounds + (1 if k < iters % rounds else 0)
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(m):
                call()
            elapsed += time.perf_counter() - t0
        agg = torch.tensor([elapsed / iters, float(wrong)], dtype=torch.float64)
        dist.all_reduce(agg, op=dist.ReduceOp.SUM)
        secs = agg[0].item() / n
        wrong_all = int(agg[1].item())
        total_wrong += wrong_all
        algbw = size / secs / 1e9 if secs > 0 else 0.0
        busbw = algbw * factor
        busbw_sum += busbw
        row = {"size": size, "count": count, "type": "float", "op": redop, "root": -1,
               "time_us": secs * 1e6, "algbw": algbw, "busbw": busbw,
               "wrong": wrong_all if o.check else None, "iters": iters}
        rows.append(row)
        if rank == 0:
            us = secs * 1e6
            ts = "%.2f" % us if us < 1e5 else "%.1f" % us if us < 1e6 else "%.0f" % us
            print("%12d  %12d  %8s  %6s  %6d  %8s  %6.3f  %6.3f  %6s  %6d" % (
                size, count, "float", redop, -1, ts, algbw, busbw,
                str(wrong_all) if o.check else "N/A", iters))
            sys.stdout.flush()

    if rank == 0:
        if o.check:
            print("# Wrong values         : %d %s" % (total_wrong, "OK" if total_wrong == 0 else "FAILED"))
        print("# Avg bus bandwidth    : %g " % (busbw_sum / len(rows) if rows else 0.0))
        print("#")
        if o.json:
            doc = {"tool": "gloo_bench.py", "collective": call_label, "backend": "gloo",
                   "torch_version": torch.__version__, "command": cmdline, "environment": env_txt,
                   "hostname": socket.gethostname(), "nranks": n, "type": "float", "op": redop,
                   "iters": o.iters, "iter_bytes": o.iter_bytes, "min_iters": o.min_iters,
                   "warmup": o.warmup, "rounds": o.rounds, "check": o.check, "threads": o.threads,
                   "average": "avg", "busbw_factor": factor, "ranks": infos, "rows": rows}
            with open(o.json, "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
        sys.stdout.flush()
    dist.barrier()
    dist.destroy_process_group()
    return 1 if total_wrong else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
    except RuntimeError as e:  # gloo timeouts and connection errors
        print("gloo_bench.py: rank %s: error: %s" % (os.environ.get("RANK", "?"), e), file=sys.stderr)
        sys.stdout.flush()
        os._exit(3)
