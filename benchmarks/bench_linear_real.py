"""Benchmark: the linear protocol on raw pixels of real data (digits, Fashion-MNIST mini) next to sklearn."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from evalbench.protocols import get_protocol  # noqa: E402
from evalbench.protocols.contract import FeatureSplit, FeatureSplits  # noqa: E402


def digits_splits() -> FeatureSplits:
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return FeatureSplits(FeatureSplit(X[:1000], y[:1000]), FeatureSplit(X[1300:], y[1300:]), 10,
                         val=FeatureSplit(X[1000:1300], y[1000:1300]))


def fashion_splits() -> FeatureSplits:
    from evalbench.data.bundled import BundledArrays

    pools = BundledArrays("fashion-mnist-mini").load()

    def part(name):
        p = pools[name]
        return FeatureSplit((p.images.reshape(len(p.images), -1) / 255.0).astype(np.float32), p.labels)

    return FeatureSplits(part("train"), part("test"), 10, val=part("val"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="+", default=["digits", "fashion-mnist-mini"])
    ap.add_argument("--no-precondition", action="store_true", help="plain L-BFGS (precondition=False)")
    args = ap.parse_args()
    rows = []
    for name in args.datasets:
        s = digits_splits() if name == "digits" else fashion_splits()
        t0 = time.perf_counter()
        out = get_protocol("linear", {"precondition": not args.no_precondition}).evaluate(s, seed=0)
        t_ours = time.perf_counter() - t0
        C = out.params["C"]
        X = np.concatenate([s.train.X, s.val.X])
        y = np.concatenate([s.train.y, s.val.y])
        t0 = time.perf_counter()
        clf = LogisticRegression(C=C, max_iter=1000).fit(X, y)  # sklearn's defaults, tol=1e-4
        t_sk = time.perf_counter() - t0
        acc_sk = 100 * clf.score(s.test.X, s.test.y)
        print(f"{name}: train {s.train.X.shape} val {len(s.val)} test {len(s.test)}; C search path:", flush=True)
        for e in out.details["search_log"]:
            print(f"  C={e['C']:<10.4g} {e['stage']:<9} val={e['val_top1']:6.2f} iters={e['n_iter']:4d} "
                  f"evals={e['n_evals']:4d} stop={e['stop']:<11} {e['seconds']:6.2f}s")
        rows.append((name, t_ours, out.metrics["top1"], len(out.details["search_log"]) + 1, C, t_sk, acc_sk))
    print()
    print(f"{'':20}{'evalbench linear (search+refit+test)':>38}{'C':>10}{'sklearn fit at that C':>24}")
    print(f"{'':20}{'seconds':>12}{'fits':>6}{'top1':>20}{'':>10}{'seconds':>12}{'top1':>12}")
    for name, t, a, fits, C, ts, asf in rows:
        print(f"{name:20}{t:>12.2f}{fits:>6}{a:>20.2f}{C:>10.3g}{ts:>12.2f}{asf:>12.2f}")
    print("sklearn: LogisticRegression(lbfgs, max_iter=1000, tol=1e-4) fitted once on train+val at evalbench's C.")


if __name__ == "__main__":
    main()
