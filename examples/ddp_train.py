#!/usr/bin/python3
"""ddp_train.py - PyTorch DistributedDataParallel training on synthetic data,
with gradients averaged by gloo (DDP's own allreduce) or by Chorus (a DDP
communication hook, chorus.torch_hooks).

    /usr/bin/python3 examples/ddp_train.py --comm chorus        # starts 2 processes
    /usr/bin/python3 examples/ddp_train.py --comm gloo

Started by torchrun (or any launcher setting MASTER_ADDR, MASTER_PORT, RANK,
WORLD_SIZE) it runs as one of its ranks instead:

    torchrun --nproc_per_node 2 examples/ddp_train.py --comm chorus

but not with Debian 12's python3-torch (1.13) on Python 3.11: its torchrun
(and python3 -m torch.distributed.run) fails at start with
"AttributeError: 'NoneType' object has no attribute 'get'" in
elastic/multiprocessing/api.py, an upstream incompatibility (docs/python.md).
There, let the script start its processes itself (the first two commands):
it sets the same variables as torchrun.

Switching a DDP job to Chorus takes three lines after the model is wrapped:

    import chorus, chorus.torch_hooks
    state = chorus.torch_hooks.ChorusHookState(chorus.init_from_torch())
    model.register_comm_hook(state, chorus.torch_hooks.allreduce_hook)

Every rank trains on its own shard of a regression data set made from a
fixed "teacher" network, so the loss falls steadily; the model starts from the
same seed everywhere. Prints the mean loss over all ranks per epoch and the
time per training step. At the end every rank compares its parameters with
every other rank's (all_gather): they must be identical, bit for bit, or the
run fails (exit 1). --out FILE writes the final parameters, one per line:
rank 0's to FILE, rank r's to FILE.rank<r>.
"""
import argparse
import errno
import os
import socket
import subprocess
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--comm", choices=["chorus", "gloo"], default="chorus",
                   help="gradient allreduce through the Chorus hook or gloo (default chorus)")
    p.add_argument("--nproc", type=int, default=2, help="processes to start (default 2)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="steps per epoch")
    p.add_argument("--batch", type=int, default=64, help="samples per rank per step")
    p.add_argument("--width", type=int, default=512, help="hidden layer width")
    p.add_argument("--depth", type=int, default=3, help="hidden layers")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bucket-mb", type=float, default=0.25,
                   help="DDP bucket size (several buckets: communication overlaps backward)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--out", help="write the final parameters here (rank 0, one per line; "
                   "rank r: FILE.rank<r>)")
    return p.parse_args(argv)


IN_DIM, OUT_DIM = 32, 8


def mlp(width, depth):
    layers, d = [], IN_DIM
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.Tanh()]
        d = width
    layers.append(nn.Linear(d, OUT_DIM))
    return nn.Sequential(*layers)


def shard(args, rank):
    """This rank's samples: inputs from its own generator, targets from a
    teacher network that every rank builds from the same seed."""
    g = torch.Generator().manual_seed(1000 + args.seed)
    teacher = mlp(64, 1)
    with torch.no_grad():
        for prm in teacher.parameters():
            prm.copy_(torch.randn(prm.shape, generator=g) * 0.5)
    g = torch.Generator().manual_seed(args.seed * 7919 + rank)
    x = torch.randn(args.steps * args.batch, IN_DIM, generator=g)
    with torch.no_grad():
        y = teacher(x)
    return x, y


# Exit status of a rank that could not listen on MASTER_PORT: launch() retries
# with another port on this status only.
EXIT_PORT_IN_USE = errno.EADDRINUSE


def worker(rank, world, args):
    torch.set_num_threads(args.threads)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    except RuntimeError as e:
        if rank == 0 and "Address already in use" in str(e) and os.environ.get("DDP_TRAIN_LAUNCHED"):
            print("rank 0: cannot listen on MASTER_PORT %s: %s" % (os.environ.get("MASTER_PORT"), e),
                  file=sys.stderr, flush=True)
            return EXIT_PORT_IN_USE
        raise
    torch.manual_seed(args.seed)  # the same initial model on every rank
    model = nn.parallel.DistributedDataParallel(mlp(args.width, args.depth),
                                                bucket_cap_mb=args.bucket_mb)
    state = None
    if args.comm == "chorus":
        try:
            import chorus
        except ImportError:  # running from the source tree, not installed
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "..", "python"))
            import chorus
        import chorus.torch_hooks
        state = chorus.torch_hooks.ChorusHookState(chorus.init_from_torch())
        model.register_comm_hook(state, chorus.torch_hooks.allreduce_hook)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    x, y = shard(args, rank)
    loss_fn = nn.MSELoss()
    step_times = []
    for epoch in range(args.epochs):
        total = torch.zeros(1)
        for s in range(args.steps):
            xb = x[s * args.batch:(s + 1) * args.batch]
            yb = y[s * args.batch:(s + 1) * args.batch]
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()  # DDP averages the gradients here, bucket by bucket
            opt.step()
            step_times.append(time.perf_counter() - t0)
            total += loss.detach()
        dist.all_reduce(total)  # for the printout only
        if rank == 0:
            print("epoch %d loss %.6f" % (epoch, total.item() / (args.steps * world)), flush=True)
    # the first epoch warms up (allocations, connections): time the others
    timed = step_times[args.steps:] if args.epochs > 1 else step_times
    ms = torch.tensor([1e3 * sum(timed) / len(timed)])
    dist.all_reduce(ms)
    if rank == 0:
        nparams = sum(p.numel() for p in model.parameters())
        print("comm %s ranks %d params %d: %.3f ms per step (mean over ranks, %s)"
              % (args.comm, world, nparams, ms.item() / world,
                 "epochs 1..%d" % (args.epochs - 1) if args.epochs > 1 else "epoch 0"),
              flush=True)
    rc = check_identical(model, rank, world)
    if args.out:
        path = args.out if rank == 0 else "%s.rank%d" % (args.out, rank)
        with open(path, "w") as f:
            for prm in model.parameters():
                for v in prm.detach().reshape(-1).tolist():
                    f.write("%.9g\n" % v)
    if state is not None:
        state.close()
        state.comm.destroy()
    dist.destroy_process_group()
    return rc


def check_identical(model, rank, world):
    """Every rank must hold the same parameters, bit for bit: DDP applies the
    same averaged gradient everywhere. Returns 0, or 1 (on every rank) if not."""
    mine = torch.cat([prm.detach().reshape(-1) for prm in model.parameters()])
    every = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(every, mine)
    bad = []
    for r in range(1, world):
        differ = (every[r] != every[0]).sum().item()  # exact, NaNs included
        if differ:
            bad.append("rank %d differs from rank 0 in %d of %d values (largest difference %.3g)"
                       % (r, differ, mine.numel(), (every[r] - every[0]).abs().max().item()))
    if rank == 0:
        if bad:
            print("FAIL: parameters not identical on all ranks: " + "; ".join(bad), flush=True)
        else:
            print("parameters identical on all %d ranks (%d values each)" % (world, mine.numel()),
                  flush=True)
    return 1 if bad else 0


def reserve_port():
    """A port for MASTER_PORT, held until the job ends.

    Choosing a free port by binding and closing a socket leaves a window
    before rank 0's TCPStore binds it, in which any other process may take
    it ("Address already in use", seen under load). So the socket stays
    bound, with SO_REUSEADDR and without listening: the kernel hands the
    port to nobody else (ephemeral ports skip it, plain binds fail), while
    rank 0's TCPStore, which also sets SO_REUSEADDR, can still listen on it.
    """
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def launch(args, attempts=3):
    """Starts --nproc copies of this script with torchrun's variables (like
    torchrun --standalone, without its agent); returns the first failure.
    If rank 0 still finds the port taken (EXIT_PORT_IN_USE), starts again on
    a new port, at most `attempts` times in all; any other failure is returned."""
    for attempt in range(1, attempts + 1):
        with reserve_port() as res:
            port = res.getsockname()[1]
            rc = run_ranks(args, port)
        if rc != EXIT_PORT_IN_USE:
            return rc
        print("launch: port %d was taken before rank 0 could listen on it (attempt %d of %d)%s"
              % (port, attempt, attempts, "; starting again on another port"
                 if attempt < attempts else ""), file=sys.stderr, flush=True)
    return rc


def run_ranks(args, port):
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               WORLD_SIZE=str(args.nproc), LOCAL_WORLD_SIZE=str(args.nproc),
               DDP_TRAIN_LAUNCHED="1")
    procs = [subprocess.Popen([sys.executable] + sys.argv,
                              env=dict(env, RANK=str(r), LOCAL_RANK=str(r)))
             for r in range(args.nproc)]
    rc = 0
    while procs:
        for p in list(procs):
            if p.poll() is not None:
                procs.remove(p)
                rc = rc or p.returncode
        if rc:  # one rank failed: the others would wait for it forever
            for p in procs:
                p.kill()
                p.wait()
            break
        time.sleep(0.05)
    return rc


def main():
    args = parse_args()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun or launch() started us
        return worker(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), args)
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
