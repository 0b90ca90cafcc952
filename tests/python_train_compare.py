#!/usr/bin/python3
"""python_train_compare.py - checks two runs of a training example against each other.

    python_train_compare.py DIR A B [--rtol R] [--atol T]

reads DIR/A.log, DIR/A.params, DIR/B.log, DIR/B.params (written by
examples/train_mlp --dump or examples/ddp_train.py --out, and their stdout)
and fails unless
  - each log has at least two "epoch N loss X" lines, every loss finite, and
    the last loss below 90% of the first (the loss falls);
  - both runs wrote the same number of parameters (more than zero), equal
    within |a - b| <= atol + rtol * |b|;
  - where a run also wrote other ranks' parameters (DIR/A.params.rank<r>, as
    ddp_train.py --out does), every rank's equal rank 0's exactly: data
    parallelism keeps identical replicas.
Plain Python, no numpy: it also runs where only the C example is tested.
"""
import argparse
import glob
import math
import re
import sys


def losses(path):
    out = []
    with open(path) as f:
        for line in f:
            m = re.match(r"epoch (\d+) loss (\S+)", line)
            if m:
                out.append(float(m.group(2)))
    return out


def params(path):
    with open(path) as f:
        return [float(x) for x in f.read().split()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-6)
    args = p.parse_args()
    ok = True
    for name in (args.a, args.b):
        ls = losses("%s/%s.log" % (args.dir, name))
        print("%s: loss per epoch %s" % (name, " ".join("%.5g" % v for v in ls)))
        if len(ls) < 2 or not all(math.isfinite(v) for v in ls):
            print("FAIL %s: needs two or more finite epoch losses" % name)
            ok = False
        elif not ls[-1] < 0.9 * ls[0]:
            print("FAIL %s: the loss did not fall (%g -> %g)" % (name, ls[0], ls[-1]))
            ok = False
    pa = params("%s/%s.params" % (args.dir, args.a))
    pb = params("%s/%s.params" % (args.dir, args.b))
    for name, p0 in ((args.a, pa), (args.b, pb)):
        others = sorted(glob.glob("%s/%s.params.rank*" % (glob.escape(args.dir), glob.escape(name))))
        same = 0
        for path in others:
            pr = params(path)
            differ = sum(1 for x, y in zip(pr, p0) if not x == y) + abs(len(pr) - len(p0))
            if differ or not p0:
                print("FAIL %s: %s differs from rank 0's parameters in %d of %d values"
                      % (name, path.rsplit("/", 1)[-1], differ, len(p0)))
                ok = False
            else:
                same += 1
        if others:
            print("%s: %d of %d other ranks' parameters identical to rank 0's"
                  % (name, same, len(others)))
    if not pa or len(pa) != len(pb):
        print("FAIL: %d parameters in %s, %d in %s" % (len(pa), args.a, len(pb), args.b))
        return 1
    worst, where = 0.0, -1
    bad = 0
    for i, (x, y) in enumerate(zip(pa, pb)):
        d = abs(x - y)
        if not d <= args.atol + args.rtol * abs(y):
            bad += 1
        if d > worst or not math.isfinite(d):
            worst, where = d, i
    print("%d parameters: largest difference %.3g (at %d), %d outside atol %g + rtol %g"
          % (len(pa), worst, where, bad, args.atol, args.rtol))
    if bad:
        ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
