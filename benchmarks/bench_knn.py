"""Benchmark: KNNProbe against bare faiss IndexFlatIP and scikit-learn's brute-force k-NN."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import faiss  # noqa: E402
from _synth import synthetic_features  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from evalbench.protocols.knn import KNNProbe, l2_normalize  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()

    X, y = synthetic_features(args.n_train + args.n_test, args.dim, args.classes, args.seed, separation=0.5)
    Xtr, ytr, Xte, yte = X[: args.n_train], y[: args.n_train], X[args.n_train:], y[args.n_train:]
    print(f"data: train {Xtr.shape} test {Xte.shape}, k={args.k}, faiss threads {faiss.omp_get_max_threads()}", flush=True)

    # Bare faiss: normalisation, index build and one search; nothing else.
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(args.dim)
    index.add(l2_normalize(Xtr))
    _, idx = index.search(l2_normalize(Xte), args.k)
    t_faiss = time.perf_counter() - t0

    t0 = time.perf_counter()
    probe = KNNProbe(k=args.k).fit(Xtr, ytr)
    pred = probe.predict(Xte)
    t_ours = time.perf_counter() - t0
    acc_ours = 100 * np.mean(pred == yte)

    t0 = time.perf_counter()
    multi = KNNProbe(k=args.k, ks=(10, 20, 100, 200)).fit(Xtr, ytr).scores_for_ks(Xte, yte)
    t_multi = time.perf_counter() - t0

    if args.skip_sklearn:
        t_sk, acc_sk = float("nan"), float("nan")
    else:
        t0 = time.perf_counter()
        sk = KNeighborsClassifier(n_neighbors=args.k, algorithm="brute", metric="cosine").fit(Xtr, ytr)
        acc_sk = 100 * sk.score(Xte, yte)
        t_sk = time.perf_counter() - t0

    print()
    print(f"{'':44}{'seconds':>9}{'top1':>8}{'vs faiss':>10}")
    print(f"{'bare faiss IndexFlatIP (normalise+add+search)':44}{t_faiss:>9.2f}{'':>8}{1.0:>9.2f}x")
    print(f"{'evalbench KNNProbe fit+predict (k=%d)' % args.k:44}{t_ours:>9.2f}{acc_ours:>8.2f}{t_ours / t_faiss:>9.2f}x")
    print(f"{'evalbench all of k=10,20,100,200, one search':44}{t_multi:>9.2f}{multi[20]['top1']:>8.2f}{t_multi / t_faiss:>9.2f}x")
    print(f"{'sklearn KNeighborsClassifier brute cosine':44}{t_sk:>9.2f}{acc_sk:>8.2f}{t_sk / t_faiss:>9.2f}x")
    print(f"sklearn / evalbench: {t_sk / t_ours:.2f}x   (sklearn uses uniform votes; evalbench exp(sim/0.07))")


if __name__ == "__main__":
    main()
