"""Benchmark: LinearProbe's C search against the same search done with scikit-learn.

Both sides fit the same C values (the ones evalbench's CLIP-style search visits) on the same
train/held-out split; sklearn fits each C cold at its defaults, as CLIP_benchmark-style
scripts do. Reports the time ratio and, for "no less accurate", three comparisons:
the test top1 of the two final models with a paired 95% CI, the objective each solver
reaches at the same C (lower = closer to the optimum both minimise), and evalbench refit
at sklearn's chosen C against sklearn's own final model.
"""
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


def sklearn_objective(coef: np.ndarray, intercept: np.ndarray, X: np.ndarray, y: np.ndarray, C: float) -> float:
    """C * sum(log loss) + 0.5 * ||W||^2 in float64: what sklearn's lbfgs minimises (bias unpenalised)."""
    Z = X.astype(np.float64) @ coef.T + intercept
    Z -= Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return float(-C * logp[np.arange(len(y)), y].sum() + 0.5 * (coef ** 2).sum())


def paired_diff_ci(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, float]:
    """Mean of a - b in points and the half-width of its normal-approximation 95% CI."""
    d = correct_a.astype(np.float64) - correct_b.astype(np.float64)
    return 100 * d.mean(), 100 * 1.96 * d.std(ddof=1) / np.sqrt(len(d))


def timed_search(Xtr, ytr, args, seed):
    t0 = time.perf_counter()
    probe = LinearProbe(C=None, dtype=args.dtype, random_state=seed, precondition=not args.no_precondition).fit(Xtr, ytr)
    total = time.perf_counter() - t0
    search = probe.search_setup_seconds_ + sum(e["seconds"] for e in probe.search_log_)
    return probe, search, total


def run_once(seed: int, args) -> dict:
    X, y = synthetic_features(args.n_train + args.n_test, args.dim, args.classes, seed, separation=args.separation)
    Xtr, ytr, Xte, yte = X[: args.n_train], y[: args.n_train], X[args.n_train:], y[args.n_train:]
    print(f"\n=== seed {seed}: train {Xtr.shape} test {Xte.shape} classes {args.classes}; torch threads "
          f"{__import__('torch').get_num_threads()}", flush=True)

    probe, t_search, t_total = timed_search(Xtr, ytr, args, seed)
    print(f"evalbench search path (preconditioner setup {probe.search_setup_seconds_:.2f}s, counted in the search):")
    for e in probe.search_log_:
        print(f"  C={e['C']:<10.4g} {e['stage']:<9} val={e['val_top1']:6.2f}  iters={e['n_iter']:4d} "
              f"evals={e['n_evals']:4d} stop={e['stop']:<11} {e['seconds']:7.2f}s", flush=True)
    print(f"  final refit on train+val: iters={probe.fit_info_.n_iter} evals={probe.fit_info_.n_evals} "
          f"stop={probe.fit_info_.stop_reason}; total {t_total:.1f}s", flush=True)

    # The same search with sklearn: the same C values, cold fits at sklearn's settings.
    fit_idx, hold_idx = stratified_holdout(ytr, 0.1, seed)
    cs = [e["C"] for e in probe.search_log_]
    rng = np.random.default_rng(seed)
    timed = cs if args.sklearn_subsample >= 1 else sorted(
        rng.choice(cs, max(1, round(args.sklearn_subsample * len(cs))), replace=False))
    sk_val, sk_time = {}, 0.0
    print("sklearn, same C values, each fitted cold (no warm start: that is sklearn's C search as "
          "CLIP_benchmark runs it):")
    for c in timed:
        t0 = time.perf_counter()
        clf = LogisticRegression(C=c, max_iter=1000, tol=args.sklearn_tol).fit(Xtr[fit_idx], ytr[fit_idx])
        dt = time.perf_counter() - t0
        sk_time += dt
        sk_val[c] = 100 * clf.score(Xtr[hold_idx], ytr[hold_idx])
        print(f"  C={c:<10.4g} val={sk_val[c]:6.2f}  iters={int(clf.n_iter_[0]):4d} {dt:7.2f}s", flush=True)
    sk_search = sk_time * len(cs) / len(timed)
    c_sk = min(sk_val, key=lambda c: (-sk_val[c], c))
    t0 = time.perf_counter()
    final = LogisticRegression(C=c_sk, max_iter=1000, tol=args.sklearn_tol).fit(Xtr, ytr)
    sk_refit = time.perf_counter() - t0

    # evalbench again after sklearn (A-B-A): other processes may share the cores.
    _, t_search2, t_total2 = timed_search(Xtr, ytr, args, seed)
    print(f"evalbench rerun after sklearn: search {t_search2:.1f}s, search + refit {t_total2:.1f}s", flush=True)

    # Solver accuracy at the same C: evalbench refit at sklearn's chosen C, on train+val.
    same_c = LinearProbe(C=c_sk, dtype=args.dtype, precondition=not args.no_precondition).fit(Xtr, ytr)
    pred_ours, pred_sk, pred_same = probe.predict(Xte), final.predict(Xte), same_c.predict(Xte)
    diff, half = paired_diff_ci(pred_ours == yte, pred_sk == yte)
    return {
        "seed": seed, "n_cs": len(cs), "extrapolated": len(timed) < len(cs),
        "t_search": t_search, "t_search2": t_search2, "t_total": t_total, "t_total2": t_total2,
        "sk_search": sk_search, "sk_total": sk_search + sk_refit,
        "speedup": sk_search / ((t_search + t_search2) / 2),  # sklearn / mean of the two evalbench runs
        "C_ours": probe.C_, "C_sk": c_sk,
        "val_ours": max(probe.val_scores_.values()), "val_sk": max(sk_val.values()),
        "test_ours": 100 * np.mean(pred_ours == yte), "test_sk": 100 * np.mean(pred_sk == yte),
        "diff": diff, "diff_half": half, "agree": 100 * np.mean(pred_ours == pred_sk),
        "same_c_test": 100 * np.mean(pred_same == yte), "same_c_agree": 100 * np.mean(pred_same == pred_sk),
        "obj_ours": sklearn_objective(same_c.coef_, same_c.intercept_, Xtr, ytr, c_sk),
        "obj_sk": sklearn_objective(final.coef_, final.intercept_, Xtr, ytr, c_sk),
    }


def report(r: dict) -> None:
    print()
    print(f"{'seed ' + str(r['seed']):28}{'evalbench':>14}{'sklearn':>14}{'ratio':>10}")
    print(f"{'C values fitted':28}{r['n_cs']:>14}{r['n_cs']:>14}")
    for run, ts in ((1, r["t_search"]), (2, r["t_search2"])):
        print(f"{f'search seconds (run {run})':28}{ts:>14.1f}{r['sk_search']:>14.1f}{r['sk_search'] / ts:>9.2f}x"
              + ("  (sklearn extrapolated)" if r["extrapolated"] else ""))
    for run, tt in ((1, r["t_total"]), (2, r["t_total2"])):
        print(f"{f'search + refit (run {run})':28}{tt:>14.1f}{r['sk_total']:>14.1f}{r['sk_total'] / tt:>9.2f}x")
    print(f"{'search speed-up':28}{r['speedup']:>37.2f}x  (sklearn / mean of the two evalbench runs; target >= 5x)")
    print(f"{'chosen C':28}{r['C_ours']:>14.4g}{r['C_sk']:>14.4g}")
    print(f"{'best val top1':28}{r['val_ours']:>14.2f}{r['val_sk']:>14.2f}")
    print(f"{'test top1 (own search)':28}{r['test_ours']:>14.2f}{r['test_sk']:>14.2f}"
          f"{r['diff']:>+9.2f} pts  (paired 95% CI +-{r['diff_half']:.2f})")
    print(f"{'prediction agreement':28}{r['agree']:>13.1f}%")
    print(f"{'at sklearn C: test top1':28}{r['same_c_test']:>14.2f}{r['test_sk']:>14.2f}"
          f"{r['same_c_test'] - r['test_sk']:>+9.2f} pts  (agreement {r['same_c_agree']:.1f}%)")
    rel = (r["obj_ours"] - r["obj_sk"]) / abs(r["obj_sk"])
    print(f"{'at sklearn C: objective':28}{r['obj_ours']:>14.6g}{r['obj_sk']:>14.6g}{rel:>+10.1e} relative"
          f"  (C*sum logloss + |W|^2/2 on train+val; lower is closer to the optimum)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=20000, help="train rows (10%% held out to choose C)")
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--separation", type=float, default=0.35, help="class-mean scale of the synthetic data")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="one synthetic data set (and hold-out split) per seed; several give a mean ratio")
    ap.add_argument("--sklearn-tol", type=float, default=1e-4, help="sklearn's tol (its default, as in CLIP_benchmark)")
    ap.add_argument("--sklearn-subsample", type=float, default=1.0,
                    help="time sklearn on this fraction of the C values only and extrapolate (1 = all)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--no-precondition", action="store_true", help="plain L-BFGS (LinearProbe(precondition=False))")
    args = ap.parse_args()

    runs = []
    for seed in args.seeds:
        runs.append(run_once(seed, args))
        report(runs[-1])
    if len(runs) > 1:
        ratios = [r["speedup"] for r in runs]
        diffs = [r["diff"] for r in runs]
        print(f"\nover seeds {args.seeds}: search speed-up (sklearn / mean of the two evalbench runs) "
              f"{' '.join(f'{x:.2f}x' for x in ratios)}, mean {np.mean(ratios):.2f}x; "
              f"test top1 evalbench - sklearn {' '.join(f'{d:+.2f}' for d in diffs)}, mean {np.mean(diffs):+.2f} pts")
    print(f"settings: evalbench tol={LinearProbe().tol} {args.dtype} L-BFGS strong-Wolfe, warm starts, "
          f"patience={LinearProbe().patience}, precondition={not args.no_precondition}; "
          f"sklearn lbfgs (on the float32 features as given) tol={args.sklearn_tol} max_iter=1000, cold fits")


if __name__ == "__main__":
    main()
