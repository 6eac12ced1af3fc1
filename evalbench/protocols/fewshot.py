"""Per-class K-shot protocols: a linear probe and a k-NN on K examples per class, over seeds."""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .contract import FeatureSplits, ProtocolOutcome
from .knn import TOP5_FILL, TOP5_FILL_HELP, TOP5_RULES, KNNProbe
from .linear import CLIP_GRID, OBJECTIVE, LinearProbe
from .metrics import classification_metrics, full_scores, mean_std_ci, ranked_predictions
from .protocol_base import (
    Param, Protocol, Ticker, boolean, one_of, positive_float, positive_float_list,
    positive_float_or_none, positive_int,
)
from .sampling import kshot_indices, stratified_folds

#: C used when K == 1: cross-validation on one example per class is impossible. 1.0 is
#: scikit-learn's default and the value rfs uses for its few-shot logistic regression.
ONE_SHOT_C = 1.0


def _kshot_sets(splits: FeatureSplits, shots: int, seeds: int, seed: int):
    """Yield (s, indices into train) for every try s; validation data is never used."""
    classes = np.unique(np.concatenate([splits.train.y, splits.test.y])).astype(np.int64)
    for s in range(seeds):
        rng = np.random.default_rng([seed, s])
        yield s, kshot_indices(splits.train.y, shots, rng, classes)


def _summarise(per_seed: list[dict[str, float]]) -> dict[str, float]:
    top1 = mean_std_ci([m["top1"] for m in per_seed])
    out = {"top1": top1["mean"], "top1_std": top1["std"], "top1_ci95": top1["ci95"]}
    if "top5" in per_seed[0]:
        out["top5"] = mean_std_ci([m["top5"] for m in per_seed])["mean"]
    return out


_SAMPLING = ("K examples per class from train only, drawn with numpy default_rng([seed, try]) "
             "per try; classes in increasing order, rng.choice without replacement")


def _run_tries(self_name: str, splits: FeatureSplits, shots: int, seeds: int, seed: int,
               progress: Any, fit_score: Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple],
               top5_floor: Optional[float] = None):
    """Fit and score every try; per-try metrics, fit facts and per-item predictions (`y_pred@seedN`)."""
    ticker = Ticker(progress, f"{self_name} {shots}-shot", seeds)
    per_seed, extra, predictions = [], [], {}
    for s, idx in _kshot_sets(splits, shots, seeds, seed):
        scores, info = fit_score(splits.train.X[idx], splits.train.y[idx], np.random.default_rng([seed, s, 1]))
        m = classification_metrics(scores, splits.test.y, splits.num_classes, per_class=False, top5_floor=top5_floor)
        per_seed.append(m)
        extra.append(info)
        predictions.update(ranked_predictions(scores, suffix=f"@seed{s}", floor=top5_floor))
        ticker.advance()
    ticker.done()
    return per_seed, extra, predictions


class FewShotLinearProtocol(Protocol):
    """K-shot logistic regression; C by cross-validation on the K-shot set alone."""

    name = "fewshot-linear"
    # 2: two classes fit sklearn's binary model (LinearProbe; linear protocol v5); 3+ classes unchanged
    version = "2"
    description = "K-shot-per-class logistic regression over seeds; C by CV on the K-shot set (K=1: C=1)"
    params_spec = (
        Param("shots", 5, positive_int, "examples per class (one K; the runner expands lists)"),
        Param("seeds", 5, positive_int, "number of sampling tries"),
        Param("C", None, positive_float_or_none, "fixed C, or null for cross-validation"),
        Param("cv_folds", 5, positive_int),
        Param("c_grid", CLIP_GRID, positive_float_list),
        Param("one_shot_C", ONE_SHOT_C, positive_float),
        Param("max_iter", 1000, positive_int),
        Param("tol", 1e-6, positive_float),
        Param("dtype", "float32", one_of("float32", "float64")),
        Param("l2_normalize", False, boolean),
        Param("standardize", False, boolean),
        Param("polish", True, boolean, "continue a float32 fit that stops short of tol in float64"),
    )

    def _probe(self, C: float) -> LinearProbe:
        p = self.params
        return LinearProbe(C=C, max_iter=p["max_iter"], tol=p["tol"], dtype=p["dtype"],
                           l2_normalize=p["l2_normalize"], standardize=p["standardize"], polish=p["polish"])

    def _choose_c(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[float, Optional[dict]]:
        """C from the grid with the best mean CV accuracy (ties -> smaller C)."""
        p, shots = self.params, self.params["shots"]
        if p["C"] is not None:
            return p["C"], None
        if shots == 1:
            return p["one_shot_C"], None
        folds = min(p["cv_folds"], shots)
        fold = stratified_folds(y, folds, rng)
        cv = {}
        for C in p["c_grid"]:
            accs = []
            for f in range(folds):
                tr, te = fold != f, fold == f
                accs.append(100.0 * self._probe(C).fit(X[tr], y[tr]).score(X[te], y[te]))
            cv[C] = float(np.mean(accs))
        best = min(cv, key=lambda c: (-cv[c], c))
        return best, cv

    def evaluate(self, splits: FeatureSplits, seed: int = 0, progress: Any = None) -> ProtocolOutcome:
        p = self.params

        def fit_score(X, y, rng):
            C, cv = self._choose_c(X, y, rng)
            probe = self._probe(C).fit(X, y)
            scores = full_scores(probe.class_scores(splits.test.X), probe.classes_, splits.num_classes)
            return scores, {"C": C, "cv_top1_by_C": cv}

        per_seed, extra, predictions = _run_tries(self.name, splits, p["shots"], p["seeds"], seed, progress, fit_score)
        params = dict(p)
        params.update(
            C_selection=("given" if p["C"] is not None else
                         f"fixed one_shot_C={p['one_shot_C']} (K=1: no cross-validation possible)"
                         if p["shots"] == 1 else
                         f"stratified {min(p['cv_folds'], p['shots'])}-fold CV on the K-shot set, best mean accuracy, ties -> smaller C"),
            C_per_seed=[e["C"] for e in extra],
            sampling=_SAMPLING, val_used=False, seed=seed,
            objective=OBJECTIVE + "; torch L-BFGS",
            reference="CLIP / big_vision few-shot linear evaluation; no val leakage (CLIP_benchmark issue 125)",
        )
        details = {"per_seed": per_seed, "per_seed_fit": extra}
        return ProtocolOutcome(metrics=_summarise(per_seed), params=params, details=details, predictions=predictions)


class FewShotKNNProtocol(Protocol):
    """K-shot weighted k-NN (DINOv2 few-shot k-NN)."""

    name = "fewshot-knn"
    # 2: top5_fill "none" by default, as the knn protocol v2 (top1 unchanged)
    version = "2"
    description = "K-shot-per-class weighted k-NN over seeds (DINOv2 style; k capped at the K-shot set size)"
    params_spec = (
        Param("shots", 5, positive_int),
        Param("seeds", 5, positive_int),
        Param("k", 20, positive_int),
        Param("temperature", 0.07, positive_float),
        Param("normalize", True, boolean),
        Param("top5_fill", "none", one_of(*TOP5_FILL), TOP5_FILL_HELP),
    )

    def evaluate(self, splits: FeatureSplits, seed: int = 0, progress: Any = None) -> ProtocolOutcome:
        p = self.params

        def fit_score(X, y, rng):
            probe = KNNProbe(k=p["k"], temperature=p["temperature"], normalize=p["normalize"]).fit(X, y)
            return full_scores(probe.predict_proba(splits.test.X), probe.classes_, splits.num_classes), \
                {"k_effective": min(p["k"], len(y))}

        # vote shares are > 0 exactly for the classes that got a vote (unseen classes: -inf)
        floor = 0.0 if p["top5_fill"] == "none" else None
        per_seed, extra, predictions = _run_tries(self.name, splits, p["shots"], p["seeds"], seed, progress, fit_score, floor)
        params = dict(p)
        params.update(k_effective=extra[0]["k_effective"], sampling=_SAMPLING, val_used=False, seed=seed,
                      ties="equal similarity -> smaller train index; equal votes -> smaller class",
                      top5=TOP5_RULES[p["top5_fill"]],
                      reference="facebookresearch/dinov2 eval/knn.py few-shot (n per class, mean over tries)")
        return ProtocolOutcome(metrics=_summarise(per_seed), params=params, details={"per_seed": per_seed},
                               predictions=predictions)
