"""Classification metrics in percent and the label checks every protocol shares."""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
from sklearn.utils.multiclass import check_classification_targets

from ..errors import ProtocolInputError


def ranked_classes(scores: np.ndarray, top: int) -> np.ndarray:
    """Indices of the `top` highest scores per row; equal scores rank the smaller class first.

    A stable sort of the negated scores gives that order deterministically.
    """
    top = min(top, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :top]


def ranked_predictions(scores: np.ndarray, suffix: str = "", floor: Optional[float] = None) -> dict[str, np.ndarray]:
    """Per-item predictions from class scores: `y_pred` (N,) and the ranked `top5` (N, <=5) labels.

    floor: as in `topk_accuracy`; a top-5 slot scored <= floor is stored as -1 (never a hit).
    """
    ranked = ranked_classes(scores, min(5, scores.shape[1]))
    top5 = ranked.astype(np.int64)
    if floor is not None:
        top5[np.take_along_axis(scores, ranked, axis=1) <= floor] = -1
    return {f"y_pred{suffix}": ranked[:, 0].astype(np.int64), f"top5{suffix}": top5}


def topk_accuracy(scores: np.ndarray, y: np.ndarray, k: int, floor: Optional[float] = None) -> float:
    """Percentage of rows whose true class is among the k best-scored classes.

    floor: when given, a true class scored <= floor is never a hit, even when fewer than k
        classes score above it (k-NN vote shares with floor 0: a class without a vote does
        not fill the top k; see evalbench.protocols.knn.TOP5_FILL).
    """
    if len(y) == 0:
        raise ProtocolInputError("cannot score an empty split")
    ranked = ranked_classes(scores, k)
    hit = (ranked == y[:, None]).any(axis=1)
    if floor is not None:
        hit &= scores[np.arange(len(y)), y] > floor
    return float(100.0 * np.mean(hit))


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in percent from predicted labels."""
    if len(y) == 0:
        raise ProtocolInputError("cannot score an empty split")
    return float(100.0 * np.mean(pred == y))


def mean_per_class(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean over the classes present in y of the per-class recall, in percent."""
    classes = np.unique(y)
    recalls = [np.mean(pred[y == c] == c) for c in classes]
    return float(100.0 * np.mean(recalls))


def classification_metrics(
    scores: np.ndarray, y: np.ndarray, num_classes: int, per_class: bool = True,
    top5_floor: Optional[float] = None,
) -> dict[str, float]:
    """top1, top5 (when num_classes > 5) and mean_per_class from (N, num_classes) scores.

    Ties between classes go to the smaller class index, for top-1 and top-5 alike.
    top5_floor: see topk_accuracy's floor.
    """
    pred = ranked_classes(scores, 1)[:, 0]
    out = {"top1": accuracy(pred, y)}
    if num_classes > 5:
        out["top5"] = topk_accuracy(scores, y, 5, floor=top5_floor)
    if per_class:
        out["mean_per_class"] = mean_per_class(pred, y)
    return out


def full_scores(scores: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Spread scores over the columns `classes` of an (N, num_classes) matrix; other columns -inf.

    A class absent from the training data can never be predicted, but still counts as a
    class for top-5 and per-class metrics.
    """
    out = np.full((scores.shape[0], num_classes), -np.inf, dtype=np.float64)
    out[:, np.asarray(classes, dtype=np.int64)] = scores
    return out


def check_min_per_class(
    y: np.ndarray, need: int, classes: np.ndarray, split: str, what: str
) -> None:
    """Raise when any of `classes` has fewer than `need` examples in y.

    Raises:
        ProtocolInputError: listing every short class with its count.
    """
    counts = np.bincount(y, minlength=int(classes.max()) + 1 if len(classes) else 0)
    short = [(int(c), int(counts[c])) for c in classes if counts[c] < need]
    if short:
        shown = ", ".join(f"class {c}: {n}" for c, n in short[:20])
        more = f" and {len(short) - 20} more" if len(short) > 20 else ""
        raise ProtocolInputError(
            f"{what} needs at least {need} {split} examples per class; "
            f"{len(short)} classes have fewer ({shown}{more})"
        )


def stratified_holdout(
    y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of y into (fit, held_out), holding out `fraction` of each class.

    Each class with at least 2 examples gives round(fraction * n) examples, at least 1;
    classes with a single example stay in the fit part. Randomness: default_rng(seed).

    Returns:
        Sorted index arrays (fit, held_out).
    """
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < 2:
            continue
        n = min(len(idx) - 1, max(1, int(round(fraction * len(idx)))))
        held.append(rng.permutation(idx)[:n])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[held_out] = False
    return np.flatnonzero(mask), held_out


def mean_std_ci(values: list[float]) -> dict[str, float]:
    """Mean, sample std (ddof=1; 0 for one value) and 1.96*std/sqrt(n)."""
    a = np.asarray(values, dtype=np.float64)
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return {"mean": float(a.mean()), "std": std, "ci95": float(1.96 * std / np.sqrt(len(a)))}



def check_n_features(estimator, X: np.ndarray) -> None:
    """Raise when X has another number of columns than the fit data.

    The message is scikit-learn's (sklearn.utils.validation.validate_data with reset=False),
    which its estimator checks match; done here so that any scikit-learn version works.

    Raises:
        ValueError: "X has 3 features, but RidgeProbe is expecting 4 features as input."
    """
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
                         f"{estimator.n_features_in_} features as input.")


def check_class_labels(y) -> None:
    """sklearn's classification-target check, without its "more than 50% unique classes"
    warning: few-shot sets have one or two examples per class by design."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        check_classification_targets(y)
