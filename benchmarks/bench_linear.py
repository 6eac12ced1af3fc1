"""Benchmark: LinearProbe's C search against the same search done with scikit-learn."""
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

from evalbench.protocols.linear import LinearProbe  # noqa: E402
from evalbench.protocols.metrics import stratified_holdout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=20000, help="train rows (10%% held out to choose C)")
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--separation", type=float, default=0.35, help="class-mean scale of the synthetic data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sklearn-tol", type=float, default=1e-4, help="sklearn's tol (its default, as in CLIP_benchmark)")
    ap.add_argument("--sklearn-subsample", type=float, default=1.0,
                    help="time sklearn on this fraction of the C values only and extrapolate (1 = all)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--no-precondition", action="store_true", help="plain L-BFGS (LinearProbe(precondition=False))")
    args = ap.parse_args()

    X, y = synthetic_features(args.n_train + args.n_test, args.dim, args.classes, args.seed,
                              separation=args.separation)
    Xtr, ytr, Xte, yte = X[: args.n_train], y[: args.n_train], X[args.n_train:], y[args.n_train:]
    print(f"data: train {Xtr.shape} test {Xte.shape} classes {args.classes}; torch threads "
          f"{__import__('torch').get_num_threads()}", flush=True)

    t0 = time.perf_counter()
    probe = LinearProbe(C=None, dtype=args.dtype, random_state=args.seed, precondition=not args.no_precondition).fit(Xtr, ytr)
    t_ours = time.perf_counter() - t0
    t_ours_search = probe.search_setup_seconds_ + sum(e["seconds"] for e in probe.search_log_)
    acc_ours = 100 * probe.score(Xte, yte)
    print(f"evalbench search path (preconditioner setup {probe.search_setup_seconds_:.2f}s, counted in the search):")
    for e in probe.search_log_:
        print(f"  C={e['C']:<10.4g} {e['stage']:<9} val={e['val_top1']:6.2f}  iters={e['n_iter']:4d} "
              f"evals={e['n_evals']:4d} stop={e['stop']:<11} {e['seconds']:7.2f}s", flush=True)
    print(f"  final refit on train+val: iters={probe.fit_info_.n_iter} evals={probe.fit_info_.n_evals} "
          f"stop={probe.fit_info_.stop_reason}; total {t_ours:.1f}s", flush=True)

    # The same search with sklearn: the same C values, cold fits at sklearn's settings.
    fit_idx, hold_idx = stratified_holdout(ytr, 0.1, args.seed)
    cs = [e["C"] for e in probe.search_log_]
    rng = np.random.default_rng(args.seed)
    timed = cs if args.sklearn_subsample >= 1 else sorted(
        rng.choice(cs, max(1, round(args.sklearn_subsample * len(cs))), replace=False))
    sk_val, sk_time, sk_iter = {}, 0.0, {}
    print("sklearn, same C values, each fitted cold (no warm start: that is sklearn's C search as "
          "CLIP_benchmark runs it):")
    for c in timed:
        t0 = time.perf_counter()
        clf = LogisticRegression(C=c, max_iter=1000, tol=args.sklearn_tol).fit(Xtr[fit_idx], ytr[fit_idx])
        dt = time.perf_counter() - t0
        sk_time += dt
        sk_val[c] = 100 * clf.score(Xtr[hold_idx], ytr[hold_idx])
        sk_iter[c] = int(clf.n_iter_[0])
        print(f"  C={c:<10.4g} val={sk_val[c]:6.2f}  iters={sk_iter[c]:4d} {dt:7.2f}s", flush=True)
    extrapolated = len(timed) < len(cs)
    sk_search = sk_time * len(cs) / len(timed)
    c_sk = min(sk_val, key=lambda c: (-sk_val[c], c))
    t0 = time.perf_counter()
    final = LogisticRegression(C=c_sk, max_iter=1000, tol=args.sklearn_tol).fit(Xtr, ytr)
    sk_refit = time.perf_counter() - t0
    acc_sk = 100 * final.score(Xte, yte)
    agree = 100 * np.mean(final.predict(Xte) == probe.predict(Xte))
    # evalbench again after sklearn (A-B-A): other processes share these 2 cores, so the
    # ratio is reported against both evalbench runs.
    t0 = time.perf_counter()
    again = LinearProbe(C=None, dtype=args.dtype, random_state=args.seed, precondition=not args.no_precondition).fit(Xtr, ytr)
    t_again = time.perf_counter() - t0
    t_again_search = again.search_setup_seconds_ + sum(e["seconds"] for e in again.search_log_)
    print(f"evalbench rerun after sklearn: search {t_again_search:.1f}s, search + refit {t_again:.1f}s", flush=True)

    print()
    print(f"{'':28}{'evalbench':>14}{'sklearn':>14}{'ratio':>10}")
    print(f"{'C values fitted':28}{len(cs):>14}{len(cs):>14}")
    print(f"{'search seconds (run 1)':28}{t_ours_search:>14.1f}{sk_search:>14.1f}{sk_search / t_ours_search:>9.2f}x"
          + ("  (sklearn extrapolated)" if extrapolated else ""))
    print(f"{'search seconds (run 2)':28}{t_again_search:>14.1f}{sk_search:>14.1f}{sk_search / t_again_search:>9.2f}x")
    print(f"{'search + refit (run 1)':28}{t_ours:>14.1f}{sk_search + sk_refit:>14.1f}"
          f"{(sk_search + sk_refit) / t_ours:>9.2f}x")
    print(f"{'search + refit (run 2)':28}{t_again:>14.1f}{sk_search + sk_refit:>14.1f}"
          f"{(sk_search + sk_refit) / t_again:>9.2f}x")
    print(f"{'chosen C':28}{probe.C_:>14.4g}{c_sk:>14.4g}")
    print(f"{'best val top1':28}{max(probe.val_scores_.values()):>14.2f}{max(sk_val.values()):>14.2f}")
    print(f"{'test top1':28}{acc_ours:>14.2f}{acc_sk:>14.2f}{acc_ours - acc_sk:>+9.2f} pts")
    print(f"{'prediction agreement':28}{agree:>13.1f}%")
    print(f"settings: evalbench tol={probe.tol} {args.dtype} L-BFGS strong-Wolfe, warm starts, "
          f"patience={probe.patience}, precondition={probe.precondition}; sklearn lbfgs float64 tol={args.sklearn_tol} max_iter=1000, cold fits")


if __name__ == "__main__":
    main()
