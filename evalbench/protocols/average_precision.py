"""Average precision for multi-label scores: the VOC2007 11-point AP, the standard (non-interpolated) AP, their means and bootstrap intervals.

Labels are per class 1 (positive), 0 (negative) or -1 (ignored: PASCAL VOC's "difficult only"
images, which its devkit leaves out of that class's AP). Every function takes optional per-item
counts (`weights`): a bootstrap resample is the same items with multiplicities, so the intervals
need no re-sorting per draw.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ..errors import ProtocolInputError

IGNORED = -1

#: The recall levels of the VOC2007 devkit's VOCevalcls.m (t = 0:0.1:1), as tenths: recall >= k/10 is
#: tested exactly as 10 * tp >= k * positives. Floating-point ports (np.arange(0, 1.1, 0.1)) hold
#: 0.30000000000000004 for 0.3 and so miss a recall of exactly 3/10; counts are integers, so the
#: exact test has no such edge.
RECALL_TENTHS = np.arange(11)


def _ranked(scores: np.ndarray, y: np.ndarray):
    """(score, is-positive, item index) of the non-ignored items, by decreasing score (ties: item order)."""
    items = np.flatnonzero(np.asarray(y) != IGNORED)
    s = np.asarray(scores, dtype=np.float64)[items]
    order = np.argsort(-s, kind="stable")  # the devkit's MATLAB sort(-confidence) is stable too
    return s[order], np.asarray(y)[items[order]] == 1, items[order]


def _ap11_ranked(pos: np.ndarray, w: np.ndarray) -> float:
    n_pos = float(w[pos].sum())
    if n_pos == 0:
        return float("nan")
    keep = w > 0  # items absent from a bootstrap resample are no rank at all
    pos, w = pos[keep], w[keep]
    tp = np.cumsum(np.where(pos, w, 0.0))
    fp = np.cumsum(np.where(pos, 0.0, w))
    precision = tp / (tp + fp)
    # highest precision at recall >= t: a running maximum from the end, read at the first rank reaching t
    best_after = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(10.0 * tp, RECALL_TENTHS * n_pos, side="left")
    got = np.where(first < len(tp), best_after[np.minimum(first, len(tp) - 1)], 0.0)
    return float(got.mean())


def _ap_ranked(s: np.ndarray, pos: np.ndarray, w: np.ndarray) -> float:
    n_pos = float(w[pos].sum())
    if n_pos == 0:
        return float("nan")
    tp = np.cumsum(np.where(pos, w, 0.0))
    fp = np.cumsum(np.where(pos, 0.0, w))
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # the end of each run of equal scores
    tp, fp = tp[last], fp[last]
    seen = (tp + fp) > 0
    precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=seen)
    return float(np.sum(np.diff(np.r_[0.0, tp / n_pos]) * precision))


def _weights(items: np.ndarray, weights: Optional[np.ndarray]) -> np.ndarray:
    return np.ones(len(items)) if weights is None else np.asarray(weights, dtype=np.float64)[items]


def ap11(scores: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
    """PASCAL VOC2007 11-point interpolated AP (VOCdevkit VOCevalcls.m) of one class, in [0, 1].

    Items ranked by decreasing score (equal scores in item order, as MATLAB's stable sort); at
    each rank precision = tp / (tp + fp) and recall = tp / positives; AP = mean over
    t in {0, 0.1, ..., 1} of the highest precision at recall >= t (0 when none). Ignored items
    count neither as hits nor as false alarms. NaN when the class has no positive.
    """
    _, pos, items = _ranked(scores, y)
    return _ap11_ranked(pos, _weights(items, weights))


def average_precision(scores: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
    """Non-interpolated AP of one class, in [0, 1]: sum over score thresholds of (R_n - R_{n-1}) * P_n,
    equal scores forming one threshold (scikit-learn's average_precision_score, with sample_weight).
    Ignored items are left out. NaN when the class has no positive."""
    s, pos, items = _ranked(scores, y)
    return _ap_ranked(s, pos, _weights(items, weights))


def check_multilabel(y: np.ndarray, num_classes: Optional[int] = None, where: str = "labels") -> np.ndarray:
    """y as an int64 (N, K) array of 1 / 0 / -1.

    Raises:
        ProtocolInputError: another shape or other values.
    """
    y = np.asarray(y)
    if y.ndim != 2 or (num_classes is not None and y.shape[1] != num_classes):
        want = f"(N, {num_classes})" if num_classes is not None else "(N, K)"
        raise ProtocolInputError(f"{where} must be multi-label {want} arrays of 1 / 0 / -1, got shape {y.shape}")
    bad = ~np.isin(y, (1, 0, IGNORED))
    if bad.any():
        raise ProtocolInputError(f"{where} hold {np.unique(y[bad])[:5].tolist()}; multi-label entries are 1 (present), "
                                 "0 (absent) or -1 (ignored, e.g. VOC difficult)")
    return y.astype(np.int64)


def per_class(scores: np.ndarray, Y: np.ndarray, kind: str = "map11",
              weights: Optional[np.ndarray] = None) -> np.ndarray:
    """AP of every class (NaN for classes without a positive); kind "map11" or "map"."""
    fn = ap11 if kind == "map11" else average_precision
    return np.array([fn(scores[:, k], Y[:, k], weights) for k in range(Y.shape[1])])


def mean_ap(scores: np.ndarray, Y: np.ndarray, kind: str = "map11", weights: Optional[np.ndarray] = None) -> float:
    """Mean AP in percent over the classes with at least one positive.

    Raises:
        ProtocolInputError: no class has a positive.
    """
    aps = per_class(scores, Y, kind, weights)
    if np.isnan(aps).all():
        raise ProtocolInputError("no class has a positive example: mean average precision is undefined")
    return float(100.0 * np.nanmean(aps))


def multilabel_metrics(scores: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    """`map11` (VOC2007 11-point mAP, the headline) and `map` (non-interpolated mAP), in percent."""
    return {"map11": mean_ap(scores, Y, "map11"), "map": mean_ap(scores, Y, "map")}


def _draws_ap(s: np.ndarray, pos: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(11-point AP, AP) of one ranked class under each row of item weights W (draws, items); NaN
    where a draw took no positive. Vectorised _ap11_ranked / _ap_ranked, read at the ranks of the
    positives only: the best precision at recall >= t is always reached at a positive's rank, and
    only runs of equal scores holding a positive add to the AP sum. An item a draw did not take
    repeats the previous rank's point, which changes neither."""
    if not pos.any():  # no positive at all: AP undefined in every draw
        return np.full(len(W), np.nan), np.full(len(W), np.nan)
    tp = np.cumsum(W * pos, axis=1)
    fp = np.cumsum(W * ~pos, axis=1)
    n_pos = tp[:, -1:]
    cols = np.flatnonzero(pos)
    tpp, fpp = tp[:, cols], fp[:, cols]
    precision = np.divide(tpp, tpp + fpp, out=np.zeros_like(tpp), where=(tpp + fpp) > 0)
    best_after = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    # recall is non-decreasing along a row: the first rank reaching k/10 is a count of ranks below it
    first = np.stack([(10.0 * tpp < k * n_pos).sum(axis=1) for k in RECALL_TENTHS], axis=1)
    reached = first < len(cols)
    ap11s = np.where(reached, np.take_along_axis(best_after, np.minimum(first, len(cols) - 1), axis=1), 0.0).mean(axis=1)
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    ends = np.unique(ends[np.searchsorted(ends, cols)])  # the run of equal scores each positive sits in
    tpl, fpl = tp[:, ends], fp[:, ends]
    prec = np.divide(tpl, tpl + fpl, out=np.ones_like(tpl), where=(tpl + fpl) > 0)
    gained = np.diff(np.c_[np.zeros(len(W)), tpl], axis=1)  # runs without positives gain nothing
    with np.errstate(invalid="ignore", divide="ignore"):
        aps = np.sum(gained * prec, axis=1) / n_pos[:, 0]
    none = n_pos[:, 0] == 0
    ap11s[none], aps[none] = np.nan, np.nan
    return ap11s, aps


def bootstrap_map(scores: np.ndarray, Y: np.ndarray, B: int = 2000, seed: int = 0,
                  level: float = 0.95, chunk: int = 100) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of `map11` and `map` over test images (images resampled with
    replacement, all their labels together), B draws from default_rng(seed). Each class is ranked
    once; a draw only reweights the ranked items by how often it took them."""
    rng = np.random.default_rng(seed)
    n, k = Y.shape
    ranked = [_ranked(scores[:, c], Y[:, c]) for c in range(k)]
    reps = {"map11": [], "map": []}
    for start in range(0, B, chunk):
        rows = min(chunk, B - start)
        idx = rng.integers(0, n, size=(rows, n))
        offsets = (np.arange(rows)[:, None] * n + idx).ravel()
        counts = np.bincount(offsets, minlength=rows * n).reshape(rows, n).astype(np.float64)
        per = [_draws_ap(s, pos, counts[:, items]) for s, pos, items in ranked]
        for j, kind in enumerate(("map11", "map")):
            values = np.stack([p[j] for p in per], axis=1)  # (rows, classes)
            with warnings.catch_warnings():  # a draw without any positive: NaN, left out below
                warnings.simplefilter("ignore", RuntimeWarning)
                reps[kind].append(100.0 * np.nanmean(values, axis=1))
    tail = 100.0 * (1.0 - level) / 2.0
    return {kind: [float(v) for v in np.nanpercentile(np.concatenate(r), [tail, 100.0 - tail])]
            for kind, r in reps.items()}
