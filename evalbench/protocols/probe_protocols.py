"""The full-data protocols: linear (logistic regression), knn (DINO k-NN) and ridge (big_vision)."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..errors import ProtocolInputError
from .contract import FeatureSplit, FeatureSplits, ProtocolOutcome, TestSetOutcome, restrict_to_subset
from .knn import TOP5_FILL, TOP5_FILL_HELP, TOP5_RULES, KNNProbe
from .lbfgs import MAX_LS, REL_FTOL, STALL_ITERS
from .linear import CLIP_GRID, OBJECTIVE, LinearProbe
from .metrics import classification_metrics, full_scores, ranked_predictions
from .protocol_base import (
    Param, Protocol, Ticker, boolean, non_negative_int, one_of, positive_float,
    positive_float_list, positive_float_or_none, positive_int, positive_int_list,
)
from .ridge import RidgeProbe


def _scored(split: FeatureSplit, class_scores, num_classes: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metrics and ranked predictions of one test split from a fitted probe's class scores (restricted to
    the split's class subset, if it has one)."""
    scores = restrict_to_subset(class_scores(split.X), split.class_subset)
    return classification_metrics(scores, split.y, num_classes), ranked_predictions(scores)


def _score_test_sets(splits: FeatureSplits, class_scores) -> dict[str, TestSetOutcome]:
    """Every extra test set scored with the same fitted probe."""
    return {name: TestSetOutcome(*_scored(split, class_scores, splits.num_classes))
            for name, split in splits.test_sets.items()}


def _train_plus_val(splits: FeatureSplits) -> tuple[np.ndarray, np.ndarray]:
    if splits.val is None:
        return splits.train.X, splits.train.y
    return (np.concatenate([splits.train.X, splits.val.X]),
            np.concatenate([splits.train.y, splits.val.y]))


class LinearProtocol(Protocol):
    """CLIP-style logistic-regression probe with C chosen on validation data."""

    name = "linear"
    # 2: stops at the float resolution instead of burning line searches (scores may move slightly)
    # 3: Gram-preconditioned L-BFGS by default (same objective and stopping test; far fewer
    #    iterations, so float32 fits stop at slightly different points)
    # 4: coarse fits may start from the path extrapolated in log10(C) (lower objective wins);
    #    class-major GEMMs (same objective; float32 fits stop at slightly different points)
    # 5: two classes fit sklearn's binary model (one weight vector, sigmoid loss) instead of two
    #    softmax columns, which equalled sklearn at twice the C; Gram preconditioning from
    #    N*D*K >= 1e7 (was 1e8) when N > D: plain warm-started float32 fits stopped at the rounding
    #    floor after 1-3 iterations on some BLAS kernels and not on others, so the chosen C
    #    depended on the CPU; float64 validation logits for the C choice; a float32 final fit
    #    that stops short of tol continues in float64 (polish); `reference` names CoOp lpclip
    #    (CLIP_benchmark trains an AdamW head instead)
    # 6: preconditioner scale follows the penalty, c = min(1/K, 0.1*lam/median feature variance),
    #    one factorisation per search, used whenever D <= 2N (and the factorisation is cheap); the
    #    float64 polish is preconditioned too; mid-sized CPU fits evaluate the objective on two fixed
    #    row blocks in parallel threads (same objective; fits stop at slightly different points, so a
    #    chosen C on a flat validation curve can move: pixels-16 digits 5.6 -> 3162)
    # 7: MKL's strict CNR mode makes multi-threaded GEMMs independent of the thread count, so CPU fits
    #    from N*D*K = 2e6 run on all intra-op threads instead of one thread or two row blocks; the
    #    preconditioner's maps run class-major and its centred data is stored column-major (faster
    #    GEMMs); full sums run in fixed chunks and the L-BFGS loop on one thread (numbers independent of
    #    the core count at every size). Same objective and stopping rules; fits stop at slightly
    #    different points
    version = "7"
    scores_test_sets = True
    accepts_multilabel = True
    description = ("L2 logistic regression (L-BFGS; multinomial, binary for 2 classes), C searched on val (CLIP A.3), "
                   "refit on train+val")
    params_spec = (
        Param("C", None, positive_float_or_none, "fixed C, or null to search it"),
        Param("max_iter", 1000, positive_int),
        Param("tol", 1e-6, positive_float),
        Param("dtype", "float32", one_of("float32", "float64")),
        Param("standardize", False, boolean),
        Param("l2_normalize", False, boolean),
        Param("c_grid", CLIP_GRID, positive_float_list),
        Param("bisection_steps", 8, non_negative_int),
        Param("patience", 2, non_negative_int),
        Param("holdout_fraction", 0.1, lambda v: _fraction(v)),
        Param("device", "auto", lambda v: _device(v)),
        Param("precondition", True, boolean, "L-BFGS in Gram-whitened coordinates (same objective)"),
        Param("polish", True, boolean, "final fit: continue in float64 when float32 stops short of tol"),
    )

    def evaluate(self, splits: FeatureSplits, seed: int = 0, progress: Any = None) -> ProtocolOutcome:
        if splits.multilabel:  # PASCAL VOC2007: the linear probe of a multi-label task is one-vs-rest
            return _multilabel_outcome(self.params, splits, seed, progress)
        p = self.params
        searching = p["C"] is None
        n_fits = (len(p["c_grid"]) + p["bisection_steps"] + 1) if searching else 1
        ticker = Ticker(progress, "linear probe: C search" if searching else "linear probe", n_fits)
        probe = LinearProbe(
            C=p["C"], max_iter=p["max_iter"], tol=p["tol"], dtype=p["dtype"],
            standardize=p["standardize"], l2_normalize=p["l2_normalize"], device=p["device"],
            c_grid=p["c_grid"], bisection_steps=p["bisection_steps"], patience=p["patience"],
            holdout_fraction=p["holdout_fraction"], random_state=seed, precondition=p["precondition"],
            polish=p["polish"],
        )
        t0 = time.perf_counter()
        val = splits.val
        probe.fit(splits.train.X, splits.train.y,
                  None if val is None else val.X, None if val is None else val.y,
                  progress=ticker.advance)
        fit_seconds = time.perf_counter() - t0
        ticker.done()

        def class_scores(X: np.ndarray) -> np.ndarray:
            return full_scores(probe.class_scores(X), probe.classes_, splits.num_classes)

        metrics, predictions = _scored(splits.test, class_scores, splits.num_classes)
        params = dict(p)
        params.update(
            C=probe.C_,
            C_selection=("given" if not searching else
                         "val split" if val is not None else
                         f"stratified {p['holdout_fraction']:.0%} hold-out of train (seed {seed})"),
            c_search=("coarse grid in increasing C with warm starts, stop after `patience` values "
                      "below the best, then `bisection_steps` bracketing bisections in log10(C) "
                      "around the best; ties -> smaller C") if searching else None,
            warm_starts=("bisection: the two bracketing solutions interpolated in log10(C); coarse: the "
                         "previous solution or the path extrapolated in log10(C) from the last two, "
                         "whichever has the lower objective; final fit: the chosen C's solution")
                        if searching else None,
            fit_on="train+val",
            objective=OBJECTIVE,
            solver="L-BFGS (history 30, torch's strong-Wolfe line search), full batch, torch"
                   + ("; preconditioned: W = M V, b = u/sqrt(c) - mu.W with M = L^-T, L L^T = c*G + lam*I, "
                      "G the centred Gram of the fit data, c = min(1/K, 0.1*lam/median feature variance) (1/4 for "
                      "2 classes); exact reparametrisation, one factorisation per search; used when D <= 2N and "
                      "D^2 <= 600*N*K" if p["precondition"] else "")
                   + "; on CPU, fits with N*D*K >= 2e6 use all intra-op threads (MKL strict CNR mode: GEMMs "
                     "independent of the thread count; without it, one thread below N*D*K = 1e8), smaller fits one "
                     "thread",
            convergence=f"max|grad of mean-loss objective| <= tol, or no lower loss found by the line "
                        f"search (max {MAX_LS} evaluations), or {STALL_ITERS} iterations in a row with relative "
                        f"loss decrease <= {REL_FTOL[torch.float32 if p['dtype'] == 'float32' else torch.float64]:.3g}"
                        f" (the dtype's resolution), or max_iter"
                        + ("; a float32 final fit stopped short of tol continues in float64 (polish)" if p["polish"] else ""),
            device=str(probe.device_),
            reference="CLIP appendix A.3 C search (as in CoOp lpclip/linear_probe.py), scikit-learn's objective, "
                      "tighter tol; see docs/protocols.md",
            seed=seed,
        )
        details = {
            "val_top1_by_C": [{"C": e["C"], "val_top1": e["val_top1"]} for e in probe.search_log_],
            "search_log": probe.search_log_,
            "final_fit": _final_fit(probe),
            "search_setup_seconds": probe.search_setup_seconds_,
            "fit_seconds": round(fit_seconds, 3),
        }
        return ProtocolOutcome(metrics=metrics, params=params, details=details, predictions=predictions,
                               test_sets=_score_test_sets(splits, class_scores))


def _multilabel_outcome(p: dict[str, Any], splits: FeatureSplits, seed: int, progress: Any) -> ProtocolOutcome:
    """`linear` on multi-label (N, K) labels: the `multilabel-linear` probe (one-vs-rest logistic regression, C
    chosen on val 11-point mAP) with the same settings, so a transfer table keeps VOC2007 in its linear column."""
    from .multilabel import MultiLabelLinearProtocol

    for option in ("standardize", "l2_normalize"):
        if p[option]:
            raise ProtocolInputError(f"linear: {option}: true is not supported on a multi-label task; leave it false")
    shared = {k: v for k, v in p.items() if k not in ("standardize", "l2_normalize")}
    outcome = MultiLabelLinearProtocol(shared).evaluate(splits, seed=seed, progress=progress)
    outcome.params.update(standardize=False, l2_normalize=False,
                          multilabel=f"labels are multi-label: the multilabel-linear probe (v{MultiLabelLinearProtocol.version}) ran")
    return outcome


def _final_fit(probe: LinearProbe) -> dict[str, Any]:
    """The final fit's stop, and whether it reached the tolerance (after the float64 polish, if one ran)."""
    def facts(info) -> dict[str, Any]:
        return {"n_iter": info.n_iter, "n_evals": info.n_evals, "stop": info.stop_reason, "grad_max": info.grad_max}

    out = {**facts(probe.fit_info_), "converged": probe.converged_}
    if probe.polish_info_ is not None:
        out["float64_polish"] = facts(probe.polish_info_)
    if not probe.converged_:
        last = probe.polish_info_ or probe.fit_info_
        out["not_converged_because"] = (f"stopped by {last.stop_reason} with max|grad| {last.grad_max:.3g} > tol "
                                        f"{probe.tol:g}")
    return out


class KNNProtocol(Protocol):
    """DINO weighted k-NN on L2-normalised features, several k from one search."""

    name = "knn"
    # 2: top5_fill "none" by default: a class without a vote no longer fills an empty top-5
    #    slot (v1 filled them by class index: up to +1.1 top-5 points at k=10 on 10 classes);
    #    top1 and mean_per_class unchanged
    version = "2"
    scores_test_sets = True
    description = "DINO weighted k-NN (cosine, T=0.07), k=20 headline plus k in {10,20,100,200}, fit on train+val"
    params_spec = (
        Param("k", 20, positive_int, "headline k"),
        Param("ks", (10, 20, 100, 200), positive_int_list),
        Param("temperature", 0.07, positive_float),
        Param("normalize", True, boolean),
        Param("top5_fill", "none", one_of(*TOP5_FILL), TOP5_FILL_HELP),
    )

    def evaluate(self, splits: FeatureSplits, seed: int = 0, progress: Any = None) -> ProtocolOutcome:
        p = self.params
        ticker = Ticker(progress, "k-NN", 1)
        X, y = _train_plus_val(splits)
        probe = KNNProbe(k=p["k"], temperature=p["temperature"], ks=p["ks"], normalize=p["normalize"],
                         top5_fill=p["top5_fill"]).fit(X, y)
        search = f"exact, {probe.backend_} backend" + (" (blocked torch.mm + topk)" if probe.backend_ == "torch" else " (faiss IndexFlatIP)")
        metrics, by_k, predictions = _knn_scored(probe, splits.test, p, splits.num_classes)
        ticker.advance()
        ticker.done()
        test_sets = {name: TestSetOutcome(*_knn_scored(probe, split, p, splits.num_classes)[::2])
                     for name, split in splits.test_sets.items()}
        params = dict(p)
        params.update(
            ks_effective={k: min(k, len(y)) for k in p["ks"]},
            fit_on="train+val",
            similarity=("inner product of L2-normalised float32 features" if p["normalize"]
                        else "raw inner product") + f" ({search})",
            vote="sum of exp(sim / T) per class",
            ties="equal similarity -> smaller train index first; equal votes -> smaller class",
            top5=TOP5_RULES[p["top5_fill"]],
            reference="facebookresearch/dino eval_knn.py",
            seed=seed,
        )
        return ProtocolOutcome(metrics=metrics, params=params, details={"by_k": by_k}, predictions=predictions,
                               test_sets=test_sets)


def _knn_scored(probe: KNNProbe, split: FeatureSplit, p: dict[str, Any],
                num_classes: int) -> tuple[dict[str, float], dict[int, dict[str, float]], dict[str, np.ndarray]]:
    """(headline metrics, scores by k, per-item predictions) of one test split from one k-NN search."""
    predictions: dict[str, np.ndarray] = {}
    by_k = probe.scores_for_ks(split.X, split.y, predictions=predictions, class_subset=split.class_subset)
    predictions.update({"y_pred": predictions[f"y_pred@k{p['k']}"], "top5": predictions[f"top5@k{p['k']}"]})
    head = by_k[p["k"]]
    metrics = {"top1": head["top1"]}
    if num_classes > 5:
        metrics["top5"] = head["top5"]
    metrics["mean_per_class"] = head["mean_per_class"]
    for k in p["ks"]:
        metrics[f"top1_k{k}"] = by_k[k]["top1"]
    return metrics, by_k, predictions


class RidgeProtocol(Protocol):
    """big_vision closed-form ridge regression on standardised features."""

    name = "ridge"
    version = "2"  # 2: `reference` names the file big_vision's ridge lives in (fewshot_lsr.py); same numbers
    scores_test_sets = True
    description = "big_vision closed-form ridge regression onto +-1 one-hot targets, L2=2^10, fit on train+val"
    params_spec = (Param("l2", 2.0 ** 10, positive_float),)

    def evaluate(self, splits: FeatureSplits, seed: int = 0, progress: Any = None) -> ProtocolOutcome:
        X, y = _train_plus_val(splits)
        probe = RidgeProbe(l2=self.params["l2"]).fit(X, y)

        def class_scores(X: np.ndarray) -> np.ndarray:
            return full_scores(probe.class_scores(X), probe.classes_, splits.num_classes)

        metrics, predictions = _scored(splits.test, class_scores, splits.num_classes)
        params = dict(self.params)
        params.update(
            fit_on="train+val",
            preprocessing="standardise with train+val mean and std + 1e-5, append constant feature 100 (bias)",
            targets="2*onehot - 1", solver="float64 closed form (primal or dual, whichever is smaller)",
            reference="google-research/big_vision big_vision/evaluators/fewshot_lsr.py", seed=seed,
        )
        return ProtocolOutcome(metrics=metrics, params=params, predictions=predictions,
                               test_sets=_score_test_sets(splits, class_scores))


def _fraction(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        raise ValueError("must be a number strictly between 0 and 1")
    return float(v)


def _device(v: Any) -> str:
    if not isinstance(v, str) or not (v in ("auto", "cpu") or v.startswith("cuda")):
        raise ValueError("must be 'auto', 'cpu' or 'cuda[:N]'")
    return v
