"""Benchmark: few-shot linear and episodic protocols against plain scikit-learn loops, same seeds."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _synth import synthetic_features  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from evalbench.protocols import get_protocol  # noqa: E402
from evalbench.protocols.contract import FeatureSplit, FeatureSplits  # noqa: E402
from evalbench.protocols.fewshot import ONE_SHOT_C, _kshot_sets  # noqa: E402
from evalbench.protocols.knn import l2_normalize  # noqa: E402
from evalbench.protocols.sampling import sample_episodes, stratified_folds  # noqa: E402


def sklearn_fewshot_linear(splits, shots, seeds, seed, grid, folds_max=5):
    """The fewshot-linear protocol written as a plain sklearn loop (same K-shot sets and folds)."""
    accs = []
    for s, idx in _kshot_sets(splits, shots, seeds, seed):
        X, y = splits.train.X[idx], splits.train.y[idx]
        rng = np.random.default_rng([seed, s, 1])
        if shots == 1:
            C = ONE_SHOT_C
        else:
            folds = min(folds_max, shots)
            fold = stratified_folds(y, folds, rng)
            cv = {c: np.mean([LogisticRegression(C=c, max_iter=1000).fit(X[fold != f], y[fold != f])
                              .score(X[fold == f], y[fold == f]) for f in range(folds)]) for c in grid}
            C = min(cv, key=lambda c: (-cv[c], c))
        clf = LogisticRegression(C=C, max_iter=1000).fit(X, y)
        accs.append(100 * clf.score(splits.test.X, splits.test.y))
    return float(np.mean(accs))


def sklearn_episodic_logreg(splits, ways, shots, queries, episodes, seed):
    """rfs's per-episode loop: LogisticRegression(C=1) on L2-normalised features; also returns predictions."""
    _, sup, qry = sample_episodes(splits.test.y, ways, shots, queries, episodes, seed)
    Z = l2_normalize(splits.test.X)
    ys, yq = np.repeat(np.arange(ways), shots), np.repeat(np.arange(ways), queries)
    accs = []
    for e in range(episodes):
        pred = LogisticRegression(C=1.0, max_iter=1000).fit(Z[sup[e].ravel()], ys).predict(Z[qry[e].ravel()])
        accs.append(100 * np.mean(pred == yq))
    return float(np.mean(accs)), np.array(accs)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--seeds", type=int, default=3, help="few-shot linear tries")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-fewshot-linear", action="store_true")
    args = ap.parse_args()

    X, y = synthetic_features(args.n_train + args.n_test, args.dim, args.classes, args.seed, separation=0.5)
    splits = FeatureSplits(FeatureSplit(X[: args.n_train], y[: args.n_train]),
                           FeatureSplit(X[args.n_train:], y[args.n_train:]), args.classes)
    print(f"data: train {splits.train.X.shape} test {splits.test.X.shape} classes {args.classes}", flush=True)
    rows = []
    for shots in args.shots:
        if not args.skip_fewshot_linear:
            proto = get_protocol("fewshot-linear", {"shots": shots, "seeds": args.seeds})
            ours, t_ours = timed(lambda proto=proto: proto.evaluate(splits, seed=args.seed))
            ref, t_ref = timed(lambda proto=proto, shots=shots: sklearn_fewshot_linear(
                splits, shots, args.seeds, args.seed, proto.params["c_grid"]))
            rows.append((f"fewshot-linear {shots}-shot x{args.seeds} seeds", t_ours, ours.metrics["top1"],
                         t_ref, ref))
        proto = get_protocol("episodic-logreg", {"shots": shots, "episodes": args.episodes})
        ours, t_ours = timed(lambda proto=proto: proto.evaluate(splits, seed=args.seed))
        (ref, _), t_ref = timed(lambda shots=shots: sklearn_episodic_logreg(splits, 5, shots, 15, args.episodes, args.seed))
        rows.append((f"episodic-logreg 5-way {shots}-shot x{args.episodes}", t_ours, ours.metrics["top1"], t_ref, ref))
        print(f"  done {shots}-shot", flush=True)

    print()
    print(f"{'':40}{'evalbench s':>12}{'top1':>8}{'sklearn s':>11}{'top1':>8}{'speed-up':>10}")
    for name, t_o, a_o, t_r, a_r in rows:
        print(f"{name:40}{t_o:>12.2f}{a_o:>8.2f}{t_r:>11.2f}{a_r:>8.2f}{t_r / t_o:>9.1f}x")
    print("sklearn side: LogisticRegression(lbfgs, C, max_iter=1000, tol=1e-4) fitted per fold / per episode, "
          "the same K-shot sets, folds and episodes as evalbench.")


if __name__ == "__main__":
    main()
