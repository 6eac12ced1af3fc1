"""Benchmark: KNNProbe (faiss and torch backends) against bare faiss, bare torch and scikit-learn's brute k-NN."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from _synth import synthetic_features  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from evalbench.protocols.faiss_setup import import_faiss  # noqa: E402
from evalbench.protocols.knn import KNNProbe, l2_normalize  # noqa: E402

# Bare faiss gets the same OpenBLAS kernel pinning as evalbench (without it the wheel's
# OpenBLAS runs a generic kernel on CPUs newer than it, ~5x slower; see faiss_setup).
faiss = import_faiss()


AUTO = "KNNProbe backend=auto (faiss) fit+predict"
TORCH = "KNNProbe backend=torch fit+predict"
MULTI = "KNNProbe k=10,20,100,200 one search (auto)"


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

    def bare_faiss():  # normalisation, index build and one search; nothing else
        index = faiss.IndexFlatIP(args.dim)
        index.add(l2_normalize(Xtr))
        return index.search(l2_normalize(Xte), args.k)

    def bare_torch(block=1024):  # normalisation, blocked matmul + topk; nothing else
        T, Q = torch.from_numpy(l2_normalize(Xtr)), torch.from_numpy(l2_normalize(Xte))
        return [torch.topk(Q[i:i + block] @ T.T, args.k, dim=1) for i in range(0, len(Q), block)]

    def probe(backend):
        pred = KNNProbe(k=args.k, backend=backend).fit(Xtr, ytr).predict(Xte)
        return 100 * np.mean(pred == yte), pred

    rows = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        rows.setdefault(name, []).append(time.perf_counter() - t0)
        print(f"  {name:46}{rows[name][-1]:8.2f}s", flush=True)
        return out

    # Interleaved, twice (A-B-A-B): other processes share the cores, so each side gets the
    # same conditions on average; the tables use the faster (less disturbed) of the two runs.
    accs, preds = {}, {}
    for _ in range(2):
        timed("bare faiss IndexFlatIP", bare_faiss)
        timed("bare torch mm + topk", bare_torch)
        accs["faiss"], preds["faiss"] = timed(AUTO, lambda: probe("auto"))
        accs["torch"], preds["torch"] = timed(TORCH, lambda: probe("torch"))
    multi = timed(MULTI,
                  lambda: KNNProbe(k=args.k, ks=(10, 20, 100, 200)).fit(Xtr, ytr).scores_for_ks(Xte, yte))
    if not args.skip_sklearn:
        def sk():
            clf = KNeighborsClassifier(n_neighbors=args.k, algorithm="brute", metric="cosine").fit(Xtr, ytr)
            return 100 * clf.score(Xte, yte)
        acc_sk = timed("sklearn KNeighborsClassifier brute cosine", sk)
        timed(AUTO, lambda: probe("auto"))

    best = {name: min(ts) for name, ts in rows.items()}
    f, t, ours = best["bare faiss IndexFlatIP"], best["bare torch mm + topk"], best[AUTO]
    print()
    print(f"{'(best of runs)':46}{'seconds':>9}{'top1':>8}{'vs faiss':>10}{'vs torch':>10}")
    top1 = {AUTO: accs["faiss"], TORCH: accs["torch"], MULTI: multi[20]["top1"]}
    if not args.skip_sklearn:
        top1["sklearn KNeighborsClassifier brute cosine"] = acc_sk
    for name, sec in best.items():
        a = top1.get(name)
        print(f"{name:46}{sec:>9.2f}{'' if a is None else f'{a:.2f}':>8}{sec / f:>9.2f}x{sec / t:>9.2f}x")
    if not args.skip_sklearn:
        print(f"sklearn / evalbench (auto): {best['sklearn KNeighborsClassifier brute cosine'] / ours:.2f}x   "
              "(sklearn uses uniform votes; evalbench exp(sim/0.07))")
    print(f"evalbench (auto) / bare faiss: {ours / f:.2f}x;  evalbench (auto) / bare torch: {ours / t:.2f}x")
    print(f"torch and faiss backends: same top1 {accs['torch'] == accs['faiss']}, "
          f"identical predictions {np.array_equal(preds['torch'], preds['faiss'])}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} (faiss's bundled OpenBLAS kernel); "
          f"threads: torch {torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}; "
          f"faiss blas threshold {faiss.cvar.distance_compute_blas_threshold}")

if __name__ == "__main__":
    main()
