#!/usr/bin/python3
"""test_python_binding.py - the Python binding (python/chorus) on N ranks.

    CHORUS_LIBRARY=build/src/.libs/libchorus.so tests/test_python_binding.py --np 3

Starts N copies of itself (CHORUS_ROOT_ADDR/CHORUS_RANK/CHORUS_NRANKS, so
chorus.init_from_env() is tested too), kills them all if one fails or the
time runs out, and exits 0 only if every rank passed. Each rank runs every
collective, blocking and nonblocking, in place and out of place, on numpy
arrays of every numpy-representable Chorus type and on torch tensors of
every torch type (when torch is installed), with every op; then the
unique-id path, init_from_env with torchrun's variables (and the LOCAL_RANK
cross-check), split, torch.distributed.ReduceOp members, the DDP hook's
results and failures (a failing request must fail its future, not hang it),
and the errors (bad dtype, non-contiguous, wrong sizes, bad op, bad or
non-integer root/peer/counts, counts that disagree between ranks). Expected
values are computed here from every rank's inputs, not hard-coded.

The root's port is reserved, not just chosen: see reserve_port().
"""
import errno
import gc
import os
import socket
import subprocess
import sys
import threading
import time
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- launcher -----------------------------------------------------------------------
# Exit status of rank 0 when it cannot listen on the root port: launch() retries
# on this status only.
EXIT_PORT_IN_USE = errno.EADDRINUSE


def reserve_port():
    """A socket bound to a free port, SO_REUSEADDR, never listening; keep it
    open until the ranks have joined. Binding and closing a socket to choose
    a port leaves a window in which another process may take the port before
    rank 0 listens (seen: "Address already in use"); while this socket holds
    it the kernel gives it to nobody else, but Chorus' root (which sets
    SO_REUSEADDR) can still listen there."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def launch(np_, timeout, attempts=3):
    deadline = time.time() + timeout
    for attempt in range(1, attempts + 1):
        with reserve_port() as res:
            port = res.getsockname()[1]
            rc = launch_once(np_, port, deadline)
        if rc != EXIT_PORT_IN_USE:
            break
        print("launcher: port %d was taken before rank 0 could listen on it (attempt %d of %d)%s"
              % (port, attempt, attempts, "; starting again on another port"
                 if attempt < attempts else ""), flush=True)
    print("launcher: %d ranks, %s" % (np_, "all passed" if rc == 0 else "FAILED (exit %d)" % rc))
    return rc


def launch_once(np_, port, deadline):
    procs = []
    for r in range(np_):
        env = dict(os.environ, CHORUS_ROOT_ADDR="127.0.0.1:%d" % port, CHORUS_RANK=str(r),
                   CHORUS_NRANKS=str(np_), CHORUS_PYTEST_WORKER="1")
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__)] + sys.argv[1:],
                                      env=env))
    rc = 0
    while procs and time.time() < deadline:
        for p in list(procs):
            if p.poll() is not None:
                procs.remove(p)
                if p.returncode != 0:
                    rc = rc or p.returncode
        if rc:
            break
        time.sleep(0.05)
    if procs:
        print("launcher: %s; killing the remaining ranks" % ("a rank failed" if rc else
                                                             "timed out"))
        for p in procs:
            p.kill()
            p.wait()
        rc = rc or 1
    return rc


# ---- worker ---------------------------------------------------------------------------
def worker():
    sys.path.insert(0, os.path.join(HERE, "..", "python"))
    import numpy as np
    try:
        import torch
    except ImportError:
        torch = None
    import chorus

    try:
        comm = chorus.init_from_env()
    except chorus.ChorusError as e:
        if os.environ.get("CHORUS_RANK") == "0" and "Address already in use" in str(e):
            print("rank 0: %s" % e, flush=True)
            return EXIT_PORT_IN_USE
        raise
    R, N = comm.rank, comm.size
    failures = []
    counts = {"checks": 0}

    def check(cond, what):
        counts["checks"] += 1
        if not cond:
            failures.append(what)
            print("rank %d: FAIL %s" % (R, what), flush=True)

    # -- arrays of each kind and type --
    NP_TYPES = ["int8", "uint8", "int32", "uint32", "int64", "uint64", "float16", "float32",
                "float64"]
    TORCH_TYPES = ["int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
    kinds = [("numpy", t) for t in NP_TYPES]
    if torch is not None:
        kinds += [("torch", t) for t in TORCH_TYPES]

    def make(kind, tname, values):
        if kind == "numpy":
            return np.array(values, dtype=tname)
        return torch.tensor(values, dtype=getattr(torch, tname))

    def empty(kind, tname, n):
        if kind == "numpy":
            return np.zeros(n, dtype=tname)
        return torch.zeros(n, dtype=getattr(torch, tname))

    def as_f64(a):
        if torch is not None and isinstance(a, torch.Tensor):
            return a.to(torch.float64).numpy()
        return np.asarray(a, dtype=np.float64)

    def same(got, want, tname, what):
        g, w = as_f64(got), np.asarray(want, dtype=np.float64)
        if g.shape != w.shape:
            check(False, "%s: shape %s, want %s" % (what, g.shape, w.shape))
            return
        if tname.startswith(("float", "bfloat")):
            tol = {"float16": 1e-2, "bfloat16": 2e-2, "float32": 1e-5}.get(tname, 1e-12)
            ok = np.allclose(g, w, rtol=tol, atol=tol)
        else:
            ok = np.array_equal(g, w)
        if not ok:
            bad = np.nonzero(~np.isclose(g, w))[0][:3]
            check(False, "%s: at %s got %s want %s" % (what, bad, g[bad], w[bad]))
        else:
            check(True, what)

    def val(rank, i, op):
        # small values: products of 3 ranks and sums fit every type exactly
        if op == "prod":
            return 1 + (rank + i) % 2
        return 1 + (rank * 3 + i * 5) % 7

    def reduce_ref(op, cols, tname):
        if op == "sum":
            return [sum(c) for c in cols]
        if op == "prod":
            out = []
            for c in cols:
                p = 1
                for v in c:
                    p *= v
                out.append(p)
            return out
        if op == "min":
            return [min(c) for c in cols]
        if op == "max":
            return [max(c) for c in cols]
        if tname.startswith(("float", "bfloat")):
            return [sum(c) / N for c in cols]
        return [sum(c) // N for c in cols]  # integers: truncated

    OPS = ["sum", "prod", "min", "max", "avg"]

    # -- allreduce --
    for kind, t in kinds:
        for n in (1, 1031):
            for op in OPS:
                cols = [[val(r, i, op) for r in range(N)] for i in range(n)]
                want = reduce_ref(op, cols, t)
                a = make(kind, t, [val(R, i, op) for i in range(n)])
                got = comm.allreduce(a, op=op)
                check(got is a, "allreduce returns its in-place tensor")
                same(a, want, t, "allreduce %s %s n=%d %s in place" % (kind, t, n, op))
                src = make(kind, t, [val(R, i, op) for i in range(n)])
                out = empty(kind, t, n)
                comm.allreduce(src, op, out=out)
                same(out, want, t, "allreduce %s %s n=%d %s out of place" % (kind, t, n, op))
                same(src, [val(R, i, op) for i in range(n)], t, "allreduce input unchanged")

    # -- allgather, alltoall, reduce_scatter, broadcast, reduce on every kind/type --
    n = 37
    for kind, t in kinds:
        mine = [val(R, i, "sum") for i in range(n)]
        full = [val(r, i, "sum") for r in range(N) for i in range(n)]
        out = empty(kind, t, N * n)
        comm.allgather(out, make(kind, t, mine))
        same(out, full, t, "allgather %s %s" % (kind, t))
        out = empty(kind, t, N * n)
        out[R * n:(R + 1) * n] = make(kind, t, mine)
        comm.allgather(out)
        same(out, full, t, "allgather %s %s in place" % (kind, t))

        # alltoall: element i of block p on rank r is 10*r + p + i%3
        def a2a_in(r):
            return [(10 * r + p + i % 3) % 100 for p in range(N) for i in range(n)]
        want = [(10 * q + R + i % 3) % 100 for q in range(N) for i in range(n)]
        out = empty(kind, t, N * n)
        comm.alltoall(out, make(kind, t, a2a_in(R)))
        same(out, want, t, "alltoall %s %s" % (kind, t))
        buf = make(kind, t, a2a_in(R))
        comm.alltoall(buf)
        same(buf, want, t, "alltoall %s %s in place" % (kind, t))

        for op in OPS:
            big = [[val(r, i, op) for i in range(N * n)] for r in range(N)]
            cols = [[big[r][R * n + i] for r in range(N)] for i in range(n)]
            want = reduce_ref(op, cols, t)
            out = empty(kind, t, n)
            comm.reduce_scatter(out, make(kind, t, big[R]), op)
            same(out, want, t, "reduce_scatter %s %s %s" % (kind, t, op))
            inp = make(kind, t, big[R])
            got = comm.reduce_scatter(None, inp, op)
            same(got, want, t, "reduce_scatter %s %s %s in place" % (kind, t, op))

        for root in range(N):
            data = [val(root, i, "sum") for i in range(n)]
            b = make(kind, t, data if R == root else [0] * n)
            comm.broadcast(b, root=root)
            same(b, data, t, "broadcast %s %s root %d" % (kind, t, root))
            out = empty(kind, t, n)
            comm.broadcast(make(kind, t, data if R == root else [0] * n), root, out=out)
            same(out, data, t, "broadcast %s %s root %d out of place" % (kind, t, root))
            for op in OPS:
                cols = [[val(r, i, op) for r in range(N)] for i in range(n)]
                want = reduce_ref(op, cols, t)
                a = make(kind, t, [val(R, i, op) for i in range(n)])
                got = comm.reduce(a, root=root, op=op)
                if R == root:
                    same(a, want, t, "reduce %s %s %s root %d" % (kind, t, op, root))
                else:
                    check(got is None, "reduce returns None off root")
                out = empty(kind, t, n) if R == root else None
                comm.reduce(make(kind, t, [val(R, i, op) for i in range(n)]), root, op, out=out)
                if R == root:
                    same(out, want, t, "reduce %s %s %s root %d out" % (kind, t, op, root))

    # -- alltoallv: rank r sends s(r, p) = r + p + 1 elements to p --
    def s(r, p):
        return r + p + 1
    for kind, t in kinds[:2] + kinds[-2:]:
        ins = [s(R, p) for p in range(N)]
        outs = [s(p, R) for p in range(N)]
        data = [(100 * R + p * 10 + i) % 120 for p in range(N) for i in range(s(R, p))]
        want = [(100 * q + R * 10 + i) % 120 for q in range(N) for i in range(s(q, R))]
        out = empty(kind, t, sum(outs))
        comm.alltoallv(out, make(kind, t, data), outs, ins)
        same(out, want, t, "alltoallv %s %s" % (kind, t))
        buf = make(kind, t, data)  # s is symmetric: the same splits both ways
        comm.alltoallv(buf, None, outs)
        same(buf, want, t, "alltoallv %s %s in place" % (kind, t))
        # explicit offsets with gaps
        out = empty(kind, t, sum(outs) + 2 * N)
        offs = [sum(outs[:p]) + 2 * p for p in range(N)]
        comm.alltoallv(out, make(kind, t, data), outs, ins, output_offsets=offs)
        got = as_f64(out)
        flat = [got[offs[p] + i] for p in range(N) for i in range(outs[p])]
        same(np.array(flat), want, t, "alltoallv %s %s with offsets" % (kind, t))
        if kind == "torch":
            out = empty(kind, t, sum(outs))
            comm.all_to_all_single(out, make(kind, t, data), outs, ins)
            same(out, want, t, "all_to_all_single (torch spelling)")

    # -- barrier, point to point --
    comm.barrier()
    comm.ibarrier().wait()
    for kind, t in (kinds[7], kinds[-1]):
        right, left = (R + 1) % N, (R - 1) % N
        got = empty(kind, t, 100)
        comm.sendrecv(make(kind, t, [R * 2 + i % 4 for i in range(100)]), right, got, left)
        same(got, [left * 2 + i % 4 for i in range(100)], t, "sendrecv ring %s %s" % (kind, t))
        if N >= 2:
            # even ranks send first, odd ranks receive first: no pair waits on itself
            for step in range(2):
                if (R % 2 == 0) == (step == 0):
                    if R + 1 < N or R % 2 == 1:
                        peer = R + 1 if R % 2 == 0 else R - 1
                        comm.send(make(kind, t, [R + i for i in range(64)]), peer)
                else:
                    if R % 2 == 1 or R + 1 < N:
                        peer = R - 1 if R % 2 == 1 else R + 1
                        r = empty(kind, t, 64)
                        comm.recv(r, peer)
                        same(r, [peer + i for i in range(64)], t, "send/recv %s %s" % (kind, t))

    # -- views: the pointer of a slice is its first element, not the base --
    base = np.zeros(50, dtype=np.float32)
    base[10:20] = R + 1
    comm.allreduce(base[10:20])
    same(base, [0] * 10 + [N * (N + 1) / 2] * 10 + [0] * 30, "float32", "allreduce of a numpy slice")
    if torch is not None:
        m = torch.zeros(4, 6)
        m[1] = R + 1
        comm.allreduce(m[1], "max")
        same(m.reshape(-1), [0] * 6 + [N] * 6 + [0] * 12, "float32", "allreduce of a tensor row")
        z = torch.tensor(float(R + 1))  # 0-dimensional
        comm.allreduce(z)
        same(z.reshape(1), [N * (N + 1) / 2], "float32", "allreduce of a 0-d tensor")
    comm.allreduce(np.zeros(0, dtype=np.float32))
    check(True, "allreduce of 0 elements")

    # -- nonblocking: several in flight, test() polling, outputs kept alive --
    reqs, wants = [], []
    for k in range(8):
        a = np.full(5000 + k, R + k, dtype=np.float64)
        reqs.append(comm.iallreduce(a, "sum"))
        wants.append(sum(r + k for r in range(N)))
    tries = 0
    while not all(r.test() for r in reqs):
        tries += 1
        time.sleep(0.001)
    for k, r in enumerate(reqs):
        same(r.wait(), [wants[k]] * (5000 + k), "float64", "iallreduce %d (polled with test)" % k)
    # the only reference to the buffers is the request's
    req = comm.iallreduce(np.full(100000, R + 1.0, dtype=np.float32), out=np.empty(100000, np.float32))
    gc.collect()
    same(req.wait(), [N * (N + 1) / 2] * 100000, "float32", "iallreduce keeps temporaries alive")
    check(req.test() and req.is_completed(), "test() after wait() is True")
    n = 21
    full = [val(r, i, "sum") for r in range(N) for i in range(n)]
    rq = [comm.iallgather(np.zeros(N * n, np.int32), np.array([val(R, i, "sum") for i in range(n)],
                                                                np.int32)),
          comm.ialltoall(np.zeros(N * n, np.int64), np.arange(N * n, dtype=np.int64) + 1000 * R),
          comm.ireduce_scatter(np.zeros(n, np.float32), np.ones(N * n, np.float32) * (R + 1), "max"),
          comm.ibroadcast(np.arange(n, dtype=np.uint8) if R == N - 1 else np.zeros(n, np.uint8),
                          root=N - 1),
          comm.ireduce(np.full(n, R + 1, np.int64), root=0, op="prod"),
          comm.ialltoallv(np.zeros(N, np.float64), np.full(N, float(R)), [1] * N, [1] * N)]
    same(rq[0].wait(), full, "int32", "iallgather")
    same(rq[1].wait(), [1000 * q + R * n + i for q in range(N) for i in range(n)], "int64",
         "ialltoall")
    same(rq[2].wait(), [N] * n, "float32", "ireduce_scatter max")
    same(rq[3].wait(), list(range(n)), "uint8", "ibroadcast from the last rank")
    got = rq[4].wait()
    prod = 1
    for r in range(N):
        prod *= r + 1
    if R == 0:
        same(got, [prod] * n, "int64", "ireduce prod")
    else:
        check(got is None, "ireduce returns None off root")
    same(rq[5].wait(), list(range(N)), "float64", "ialltoallv")
    if torch is not None:
        t_ = torch.full((3, 5), float(R + 1), dtype=torch.bfloat16)
        same(comm.iallreduce(t_, "avg").wait().reshape(-1), [(N + 1) / 2] * 15, "bfloat16",
             "iallreduce bfloat16 tensor avg")

    # -- nonblocking on every kind and type: each collective (every op), all in flight at
    #    once, completed in reverse order --
    n = 29
    for kind, t in kinds:
        pend = []  # (request, expected or None off root, what)
        for op in OPS:
            cols = [[val(r, i, op) for r in range(N)] for i in range(n)]
            pend.append((comm.iallreduce(make(kind, t, [val(R, i, op) for i in range(n)]), op),
                         reduce_ref(op, cols, t), "iallreduce %s %s %s" % (kind, t, op)))
        pend.append((comm.iallgather(empty(kind, t, N * n), make(kind, t, [val(R, i, "sum")
                                                                          for i in range(n)])),
                     [val(r, i, "sum") for r in range(N) for i in range(n)],
                     "iallgather %s %s" % (kind, t)))
        pend.append((comm.ialltoall(make(kind, t, [(10 * R + p + i % 3) % 100 for p in range(N)
                                                    for i in range(n)])),
                     [(10 * q + R + i % 3) % 100 for q in range(N) for i in range(n)],
                     "ialltoall %s %s in place" % (kind, t)))
        for op in ("min", "avg"):
            big = [[val(r, i, op) for i in range(N * n)] for r in range(N)]
            pend.append((comm.ireduce_scatter(empty(kind, t, n), make(kind, t, big[R]), op),
                         reduce_ref(op, [[big[r][R * n + i] for r in range(N)] for i in range(n)],
                                    t), "ireduce_scatter %s %s %s" % (kind, t, op)))
        data = [val(N - 1, i, "sum") for i in range(n)]
        pend.append((comm.ibroadcast(make(kind, t, data if R == N - 1 else [0] * n), root=N - 1),
                     data, "ibroadcast %s %s" % (kind, t)))
        for op in ("prod", "avg", "min"):
            cols = [[val(r, i, op) for r in range(N)] for i in range(n)]
            pend.append((comm.ireduce(make(kind, t, [val(R, i, op) for i in range(n)]), root=0,
                                      op=op),
                         reduce_ref(op, cols, t) if R == 0 else None,
                         "ireduce %s %s %s" % (kind, t, op)))
        ins = [1 + (R + p) % 2 for p in range(N)]
        outs = [1 + (p + R) % 2 for p in range(N)]
        pend.append((comm.ialltoallv(empty(kind, t, sum(outs)),
                                     make(kind, t, [R * 10 + p for p in range(N)
                                                    for _ in range(ins[p])]), outs, ins),
                     [q * 10 + R for q in range(N) for _ in range(outs[q])],
                     "ialltoallv %s %s" % (kind, t)))
        for req, want, what in reversed(pend):
            got = req.wait()
            if want is None:
                check(got is None, what + ": None off root")
            else:
                same(got.reshape(-1), want, t, what)

    # -- torch.distributed.ReduceOp members (and look-alikes of other torch versions) --
    fake_ops = [("sum", types.SimpleNamespace(name="SUM")),                 # torch < 1.13, >= 2
                ("min", types.SimpleNamespace(op=types.SimpleNamespace(name="MIN")))]  # 1.13
    if torch is not None:
        import torch.distributed as tdist
        RO = tdist.ReduceOp
        fake_ops += [("sum", RO.SUM), ("prod", RO.PRODUCT), ("min", RO.MIN), ("max", RO.MAX),
                     ("avg", RO.AVG)]
        if hasattr(RO, "RedOpType"):
            fake_ops += [("max", RO.RedOpType.MAX), ("avg", RO.RedOpType.AVG)]
    for name, member in fake_ops:
        cols = [[val(r, i, name) for r in range(N)] for i in range(7)]
        for kind, t in (("numpy", "int32"), ("torch", "float32")):
            if kind == "torch" and torch is None:
                continue
            a = make(kind, t, [val(R, i, name) for i in range(7)])
            comm.allreduce(a, op=member)
            same(a, reduce_ref(name, cols, t), t, "allreduce %s op=%r (%s)" % (kind, member, name))
        a = make("numpy", "float64", [val(R, i, name) for i in range(7)])
        same(comm.iallreduce(a, member).wait(), reduce_ref(name, cols, "float64"), "float64",
             "iallreduce op=%r (%s)" % (member, name))
        big = [[val(r, i, name) for i in range(N * 3)] for r in range(N)]
        same(comm.reduce_scatter(np.zeros(3), np.array(big[R], np.float64), member),
             reduce_ref(name, [[big[r][R * 3 + i] for r in range(N)] for i in range(3)],
                        "float64"), "float64", "reduce_scatter op=%r (%s)" % (member, name))

    # -- init_from_env with torchrun's variables (MASTER_ADDR, MASTER_PORT, RANK,
    #    WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), and the LOCAL_RANK cross-check --
    def torchrun_comm(local_rank, local_world_size):
        """A communicator made by init_from_env from torchrun's variables only, ranks
        reversed (RANK must be read); returns it and the warnings it gave."""
        port = np.zeros(1, np.int64)
        res = None
        if R == 0:
            res = reserve_port()  # rank 0 of the new communicator is our last rank
            port[0] = res.getsockname()[1]
        comm.broadcast(port, root=0)
        saved = {k: os.environ.pop(k, None) for k in ("CHORUS_ROOT_ADDR", "CHORUS_RANK",
                                                      "CHORUS_NRANKS")}
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(int(port[0])),
                          RANK=str(N - 1 - R), WORLD_SIZE=str(N), LOCAL_RANK=local_rank,
                          LOCAL_WORLD_SIZE=local_world_size)
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                c = chorus.init_from_env()
        finally:
            for k in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                      "LOCAL_WORLD_SIZE"):
                os.environ.pop(k, None)
            os.environ.update({k: v for k, v in saved.items() if v is not None})
        comm.barrier()  # every rank has joined: the reservation can go
        if res is not None:
            res.close()
        return c, [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]

    c3, warned = torchrun_comm(str(N - 1 - R), str(N))
    check(c3.rank == N - 1 - R and c3.size == N, "init_from_env (torchrun variables): rank %d "
          "of %d, want %d of %d" % (c3.rank, c3.size, N - 1 - R, N))
    a = np.array([c3.rank], np.int64)
    same(c3.allgather(np.zeros(N, np.int64), a), list(range(N)), "int64",
         "allgather on the torchrun-variables communicator")
    check(not warned, "LOCAL_RANK consistent with the host: no warning (got %r)" % warned)
    # every rank of this test runs on this host (one host id): chorus_comm_host
    check((c3.host, c3.nhosts, c3.local_rank, c3.local_size) == (0, 1, c3.rank, N),
          "host %d of %d, local rank %d of %d; want host 0 of 1, local rank %d of %d"
          % (c3.host, c3.nhosts, c3.local_rank, c3.local_size, c3.rank, N))
    c3.destroy()
    # every rank on this host, but LOCAL_WORLD_SIZE says the node has one more
    c3, warned = torchrun_comm(str(N - 1 - R), str(N + 1))
    if c3.rank == 0:  # the lowest rank of the host speaks for it
        check(len(warned) == 1 and "LOCAL_WORLD_SIZE" in warned[0] and "network" in warned[0],
              "LOCAL_WORLD_SIZE larger than the ranks on this host: one warning (got %r)" % warned)
    else:
        check(not warned, "LOCAL_WORLD_SIZE mismatch: warned by the host's first rank only")
    c3.destroy()
    c3, warned = torchrun_comm("x" if R == 0 else "0", "1")  # junk, and several agents per host
    if R == 0:
        check(any("LOCAL_RANK='x'" in w for w in warned), "LOCAL_RANK=x: a warning (got %r)"
              % warned)
    else:
        check(not warned, "several torchrun agents on one host: no warning (got %r)" % warned)
    c3.allreduce(np.ones(2))
    c3.destroy()

    # -- the DDP communication hook: results, and failures that complete the future --
    if torch is not None:
        import chorus.torch_hooks as hooks

        class Bucket:
            def __init__(self, t):
                self.t = t

            def buffer(self):
                return self.t

        def outcome(fut, timeout=20):
            """("value", v) / ("error", e), or ("hung", None): waited in a thread so that
            a future nobody completes fails the test instead of hanging it."""
            box = {}

            def w():
                try:
                    box["value"] = fut.wait()
                except BaseException as e:  # noqa: BLE001
                    box["error"] = e
            th = threading.Thread(target=w, daemon=True)
            th.start()
            th.join(timeout)
            return next(iter(box.items())) if box else ("hung", None)

        state = hooks.ChorusHookState(comm)
        kind_, v = outcome(hooks.allreduce_hook(state, Bucket(torch.full((1000,), R + 1.0))))
        check(kind_ == "value" and torch.equal(v, torch.full((1000,), (N + 1) / 2)),
              "DDP hook averages the bucket (%s)" % kind_)

        class FailingComm:
            """iallreduce returns a real request that fails when it runs: alltoallv
            counts that disagree between ranks (INVALID_USAGE on every rank)."""
            def iallreduce(self, tensor, op):
                sc, rc = [1] * N, [1] * N
                if R == 0:
                    sc[N - 1] = 2
                return comm.ialltoallv(np.zeros(N + 1, np.float32), np.zeros(N + 1, np.float32),
                                       rc, sc)
        bad = hooks.ChorusHookState(FailingComm())
        kind_, e = outcome(hooks.allreduce_hook(bad, Bucket(torch.zeros(4))))
        check(kind_ == "error" and isinstance(e, chorus.ChorusError)
              and e.code == chorus.INVALID_USAGE,
              "DDP hook: a request that fails fails its future (%s: %r)" % (kind_, e))

        class BrokenRequest:
            def wait(self):
                raise RuntimeError("not a ChorusError")
        fut = torch.futures.Future()
        state.submit(BrokenRequest(), fut, torch.zeros(1))
        kind_, e = outcome(fut)
        check(kind_ == "error" and "not a ChorusError" in str(e),
              "DDP hook: any exception while waiting fails the future (%s: %r)" % (kind_, e))
        kind_, v = outcome(hooks.allreduce_hook(state, Bucket(torch.full((8,), float(R)))))
        check(kind_ == "value" and torch.equal(v, torch.full((8,), (N - 1) / 2)),
              "DDP hook: the waiter thread survives a failure (%s)" % kind_)

        dead = comm.split(0)
        dead.destroy()
        kind_, e = outcome(hooks.allreduce_hook(hooks.ChorusHookState(dead), Bucket(torch.ones(2))))
        check(kind_ == "error" and "destroyed" in str(e),
              "DDP hook: an allreduce that cannot start fails the future (%s: %r)" % (kind_, e))
        state.close()
        kind_, e = outcome(hooks.allreduce_hook(state, Bucket(torch.ones(2))))
        check(kind_ == "error" and "closed" in str(e),
              "DDP hook after close(): a failed future, not a pending one (%s: %r)" % (kind_, e))
        bad.close()

    # -- errors --
    def raises(fn, what, code=chorus.INVALID_ARGUMENT, text=None, value_error=True):
        try:
            fn()
        except chorus.ChorusError as e:
            ok = e.code == code and bool(e.detail) and (text is None or text in str(e))
            if value_error:
                ok = ok and isinstance(e, ValueError)
            check(ok, "%s: raised code %d %r" % (what, e.code, str(e)))
            return
        except Exception as e:  # noqa: BLE001 - any other class is a failure
            check(False, "%s: raised %s %r, not ChorusError" % (what, type(e).__name__, e))
            return
        check(False, "%s: no exception" % what)

    raises(lambda: comm.allreduce(np.zeros(4, np.int16)), "numpy int16", text="int16")
    raises(lambda: comm.allreduce(np.zeros(4, bool)), "numpy bool", text="bool")
    raises(lambda: comm.allreduce(np.zeros(4, np.complex64)), "numpy complex64")
    raises(lambda: comm.allreduce(np.zeros(4, ">f4")), "numpy big-endian float32")
    raises(lambda: comm.allreduce([1.0, 2.0]), "a list", text="numpy array or a torch")
    raises(lambda: comm.allreduce(np.zeros((4, 4), np.float32).T), "numpy transposed",
           text="not contiguous")
    raises(lambda: comm.allreduce(np.zeros(8, np.float32)[::2]), "numpy strided",
           text="not contiguous")
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    raises(lambda: comm.allreduce(ro), "read-only in place", text="read-only")
    comm.allreduce(ro, out=np.zeros(4, np.float32))  # a read-only input is fine
    raises(lambda: comm.allreduce(np.zeros(4, np.float32), "xor"), "bad op", text="xor")
    raises(lambda: comm.allreduce(np.zeros(4, np.float32), out=np.zeros(5, np.float32)),
           "allreduce sizes", text="elements")
    raises(lambda: comm.allreduce(np.zeros(4, np.float32), out=np.zeros(4, np.float64)),
           "allreduce types", text="one type")
    raises(lambda: comm.allgather(np.zeros(N * 4 + 1, np.float32), np.zeros(4, np.float32)),
           "allgather sizes", text="ranks")
    raises(lambda: comm.alltoall(np.zeros(N * 4 + 1, np.float32)), "alltoall sizes")
    raises(lambda: comm.reduce_scatter(np.zeros(3, np.float32), np.zeros(N * 4, np.float32)),
           "reduce_scatter sizes")
    raises(lambda: comm.alltoallv(np.zeros(4, np.float32), np.zeros(4, np.float32), [1] * (N + 1)),
           "alltoallv split count")
    raises(lambda: comm.alltoallv(np.zeros(2, np.float32), np.zeros(9 * N, np.float32),
                                  [3] * N, [3] * N), "alltoallv splits past the end", text="reach")
    raises(lambda: chorus.init_rank(N, b"short", R), "a short unique id", text="bytes")
    raises(lambda: chorus.init_rank(N, bytes(128), 0.5), "init_rank: rank 0.5", text="rank")
    # ranks and counts must be integers: 0.7 must not quietly become rank 0
    x4 = np.zeros(4, np.float32)
    raises(lambda: comm.broadcast(x4, root=0.7), "broadcast root 0.7", text="root")
    raises(lambda: comm.broadcast(x4, root="0"), "broadcast root '0'", text="root")
    raises(lambda: comm.broadcast(x4, root=True), "broadcast root True", text="bool")
    raises(lambda: comm.broadcast(x4, root=2 ** 32), "broadcast root 2**32", text="out of range")
    raises(lambda: comm.ireduce(x4, root=0.0), "ireduce root 0.0", text="root")
    raises(lambda: comm.send(x4, 1.5), "send peer 1.5", text="peer")
    raises(lambda: comm.recv(x4, None), "recv peer None", text="peer")
    raises(lambda: comm.sendrecv(x4, 0.5, np.zeros(4, np.float32), 0), "sendrecv dest 0.5",
           text="dest")
    raises(lambda: comm.split(0.5), "split color 0.5", text="color")
    raises(lambda: comm.alltoallv(np.zeros(4 * N), np.zeros(4 * N), [1.5] * N),
           "alltoallv split 1.5", text="output_split_sizes[0]")
    raises(lambda: comm.alltoallv(np.zeros(4 * N), np.zeros(4 * N), ["a"] * N),
           "alltoallv split 'a'", text="output_split_sizes[0]")
    raises(lambda: comm.alltoallv(np.zeros(4 * N), np.zeros(4 * N), 4), "alltoallv splits 4",
           text="sequence")
    raises(lambda: comm.alltoallv(np.zeros(4 * N), np.zeros(4 * N), [1] * N,
                                  output_offsets=[0.0] * N), "alltoallv offsets 0.0",
           text="output_offsets[0]")
    # integer scalars of numpy and torch are integers
    b = np.full(3, float(R))
    comm.broadcast(b, root=np.int64(N - 1))
    same(b, [N - 1] * 3, "float64", "broadcast root numpy int64")
    if torch is not None:
        b = np.full(3, float(R))
        comm.broadcast(b, root=torch.tensor(N - 1))
        same(b, [N - 1] * 3, "float64", "broadcast root 0-d integer tensor")
        raises(lambda: comm.allreduce(torch.zeros(4), op=torch.distributed.ReduceOp.BAND),
               "ReduceOp.BAND", text="BAND")
    if torch is not None:
        raises(lambda: comm.allreduce(torch.zeros(4, dtype=torch.bool)), "torch bool", text="bool")
        raises(lambda: comm.allreduce(torch.zeros(4, dtype=torch.int16)), "torch int16")
        raises(lambda: comm.allreduce(torch.zeros(4, dtype=torch.complex64)), "torch complex")
        raises(lambda: comm.allreduce(torch.zeros(4, 4).t()), "torch transposed",
               text="not contiguous")
        raises(lambda: comm.allreduce(torch.zeros(4, 4)[:, 1]), "torch column",
               text="not contiguous")
        raises(lambda: comm.iallreduce(torch.zeros(4, 4).t()), "nonblocking, torch transposed")
    # refused by the library itself (same arguments on every rank, so no rank waits)
    raises(lambda: comm.broadcast(np.zeros(4, np.float32), root=N), "broadcast root out of range",
           text="root", value_error=False)
    raises(lambda: comm.send(np.zeros(4, np.float32), R), "send to itself",
           value_error=False)
    # counts that disagree between ranks: every rank learns it (invalid usage)
    sc = [1] * N
    rc = [1] * N
    if R == 0:
        sc[N - 1] = 2  # rank 0 sends 2 to the last rank, which expects 1
    raises(lambda: comm.alltoallv(np.zeros(N + 1, np.float32), np.zeros(N + 1, np.float32), rc, sc),
           "alltoallv counts disagree between ranks", code=chorus.INVALID_USAGE, value_error=False)
    # still usable after all that
    a = np.full(10, R + 1, np.int64)
    comm.allreduce(a)
    same(a, [N * (N + 1) // 2] * 10, "int64", "allreduce after the errors")

    # -- a second communicator from a unique id (sent over the first), and split --
    uid = np.zeros(128, np.uint8)
    if R == 0:
        uid[:] = np.frombuffer(chorus.get_unique_id(), np.uint8)
    comm.broadcast(uid, root=0)
    c2 = chorus.init_rank(N, uid.tobytes(), N - 1 - R)  # reversed ranks
    check(c2.rank == N - 1 - R and c2.size == N, "init_rank: rank and size")
    a = np.array([c2.rank], np.int32)
    c2.allgather(np.zeros(N, np.int32))
    out = c2.allgather(np.zeros(N, np.int32), a)
    same(out, list(range(N)), "int32", "allgather on the unique-id communicator")
    half = comm.split(R % 2)
    a = np.ones(3, np.int32)
    half.allreduce(a)
    same(a, [len(range(R % 2, N, 2))] * 3, "int32", "allreduce on a split communicator")
    half.destroy()
    check(comm.split(-1) is None or N < 0, "split with color -1 gives None")
    c2.destroy()
    raises(lambda: c2.allreduce(np.zeros(2, np.float32)), "use after destroy",
           code=chorus.INVALID_USAGE, text="destroyed", value_error=False)

    comm.destroy()
    print("rank %d of %d: %d checks, %d failed%s" % (R, N, counts["checks"], len(failures),
          "" if torch is not None else " (torch not installed: numpy only)"), flush=True)
    return 1 if failures else 0


def main():
    if os.environ.get("CHORUS_PYTEST_WORKER") == "1":
        return worker()
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--timeout", type=int, default=240)
    args, _ = p.parse_known_args()
    return launch(args.np, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
