"""Benchmark: k-NN at ImageNet scale (synthetic 1.28M x 384 train features, 10,000 queries): peak memory and time
of KNNProbe's search (query blocks x train chunks), each backend in its own process."""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(backend: str, n_train: int, n_query: int, dim: int, classes: int) -> None:
    from evalbench.protocols.knn import KNNProbe

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    y = rng.integers(0, classes, n_train)
    X = np.empty((n_train, dim), np.float32)
    for s in range(0, n_train, 65536):  # generated in chunks: no float64 copy of the whole matrix
        X[s:s + 65536] = centres[y[s:s + 65536]] + 2.0 * rng.standard_normal((min(65536, n_train - s), dim), dtype=np.float32)
    yq = rng.integers(0, classes, n_query)
    Q = centres[yq] + 2.0 * rng.standard_normal((n_query, dim), dtype=np.float32)
    data_mb = _rss_mb()
    t0 = time.perf_counter()
    probe = KNNProbe(backend=backend).fit(X, y)
    t1 = time.perf_counter()
    scores = probe.scores_for_ks(Q, yq)
    t2 = time.perf_counter()
    print(f"{backend}: fit {t1 - t0:.1f} s, search (k=10,20,100,200) {t2 - t1:.1f} s; peak RSS {_rss_mb():.0f} MB "
          f"(train + queries alone {data_mb:.0f} MB; train matrix {X.nbytes / 1e6:.0f} MB); top1@20 {scores[20]['top1']:.2f}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=1_281_167)
    ap.add_argument("--n-query", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--backends", nargs="+", default=["torch", "auto"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.n_train, args.n_query, args.dim, args.classes)
    print(f"k-NN, {args.n_train} x {args.dim} train, {args.n_query} queries, {args.classes} classes:", flush=True)
    for b in args.backends:
        subprocess.run([sys.executable, __file__, "--child", b, "--n-train", str(args.n_train), "--n-query",
                        str(args.n_query), "--dim", str(args.dim), "--classes", str(args.classes)], check=True)


if __name__ == "__main__":
    main()
