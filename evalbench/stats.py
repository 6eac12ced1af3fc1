"""Confidence intervals and paired tests on per-item results: bootstrap, Wilson, McNemar, Holm."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as _sps

from .errors import EvalbenchError

# Largest B x n block of bootstrap indices drawn at once (int64 indices plus the gathered
# float64 values: about 64 MiB). Chunking changes the random stream, so this is a constant,
# not an option: the same (seed, n, B) must give the same interval on every machine.
_MAX_DRAW = 1 << 22

Statistic = Callable[..., np.ndarray]


class StatsInputError(EvalbenchError, ValueError):
    """Per-item arrays or settings handed to a statistic are unusable (empty, mismatched, non-binary)."""


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with its interval; in percent for accuracies."""

    estimate: float
    low: float
    high: float
    method: str
    B: int | None
    seed: int | None
    level: float


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test: two-sided p and the discordant counts it was computed from."""

    p_value: float
    a_only: int  # items a got right and b got wrong (b10 in the usual 2x2 notation)
    b_only: int  # items b got right and a got wrong (b01)


# ---------------------------------------------------------------------------- validation


def _check_level(level: float) -> float:
    if not 0.0 < float(level) < 1.0:
        raise StatsInputError(f"confidence level must lie strictly between 0 and 1, got {level!r}")
    return float(level)


def _check_B(B: int) -> int:
    if isinstance(B, bool) or int(B) != B or B < 1:
        raise StatsInputError(f"number of bootstrap resamples B must be a positive integer, got {B!r}")
    return int(B)


def _rng(seed: int | np.random.Generator) -> tuple[np.random.Generator, int | None]:
    if isinstance(seed, np.random.Generator):
        return seed, None
    return np.random.default_rng(seed), int(seed)


def _values(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.size == 0:
        raise StatsInputError(f"{name} must be a non-empty 1-D array of per-item values, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.number):
        raise StatsInputError(f"{name} must be numeric or boolean, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise StatsInputError(f"{name} contains NaN or infinite values")
    return arr


def _correct(x, name: str) -> np.ndarray:
    arr = _values(x, name)
    if not np.all((arr == 0.0) | (arr == 1.0)):
        raise StatsInputError(f"{name} must hold per-item correctness (booleans or 0/1), found other values")
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise StatsInputError(f"{names} must be per-item arrays over the same test items, got {a.shape} and {b.shape}")


# ---------------------------------------------------------------------------- bootstrap core


def _resampled(values: np.ndarray, B: int, rng: np.random.Generator, statistic: Statistic) -> np.ndarray:
    """statistic(values[idx], axis=1) for B rows of n indices drawn with replacement, in chunks."""
    n = values.shape[0]
    chunk = max(1, _MAX_DRAW // n)
    out = np.empty(B, dtype=np.float64)
    for start in range(0, B, chunk):
        rows = min(chunk, B - start)
        idx = rng.integers(0, n, size=(rows, n))
        out[start:start + rows] = statistic(values[idx], axis=1)
    return out


def _percentile(replicates: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return float(low), float(high)


# ---------------------------------------------------------------------------- intervals


def bootstrap_ci(
    correct_or_values,
    B: int = 2000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
    statistic: Statistic = np.mean,
    scale: float = 100.0,
) -> ConfidenceInterval:
    """Percentile bootstrap CI of a statistic over test items (Efron & Tibshirani 1993, ch. 13).

    Args:
        correct_or_values: 1-D per-item values, e.g. booleans for correct/incorrect.
        B: number of resamples of the n items, drawn with replacement.
        seed: int for ``numpy.random.default_rng``, or a Generator to draw from.
        level: two-sided coverage of the interval.
        statistic: reduction called as ``statistic(samples, axis=1)``; the mean by default.
        scale: multiplier on the statistic; 100 reports 0/1 correctness in percent,
            pass 1 for values already on their reporting scale.

    Returns:
        ConfidenceInterval with the statistic of the full sample as estimate.
    """
    values = _values(correct_or_values, "correct_or_values")
    B, level = _check_B(B), _check_level(level)
    rng, seed_used = _rng(seed)
    reps = scale * _resampled(values, B, rng, statistic)
    low, high = _percentile(reps, level)
    estimate = float(scale * statistic(values[None, :], axis=1)[0])
    return ConfidenceInterval(estimate, low, high, "bootstrap-percentile", B, seed_used, level)


def wilson_ci(k: int, n: int, level: float = 0.95) -> ConfidenceInterval:
    """Wilson score interval for a proportion k/n (Wilson 1927; Agresti & Coull 1998), in percent.

    Args:
        k: number of successes (correct items), 0 <= k <= n.
        n: number of trials (test items), n >= 1.
        level: two-sided coverage.

    Returns:
        ConfidenceInterval with estimate 100*k/n; B and seed are None (no resampling).
    """
    level = _check_level(level)
    if int(n) != n or int(k) != k or n < 1 or not 0 <= k <= n:
        raise StatsInputError(f"Wilson interval needs integers 0 <= k <= n and n >= 1, got k={k!r}, n={n!r}")
    z = float(_sps.norm.ppf(0.5 + level / 2.0))
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # The bounds at k = 0 and k = n are exactly 0 and 1; rounding would leave 1 - 1e-16.
    low = 0.0 if k == 0 else float(centre - half)
    high = 1.0 if k == n else float(centre + half)
    return ConfidenceInterval(100.0 * p, 100.0 * low, 100.0 * high, "wilson", None, None, level)


def mean_per_class_ci(
    y_true,
    y_pred,
    B: int = 2000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> ConfidenceInterval:
    """Bootstrap CI for mean per-class accuracy (balanced accuracy; the CLIP/Kornblith metric), in percent.

    Resampling is stratified by true class: each class's items are resampled within that
    class, so every class keeps its test count in every replicate (a stratified bootstrap,
    Davison & Hinkley 1997, sec. 3.7). Classes are those present in ``y_true``.

    Args:
        y_true: 1-D true labels of the test items.
        y_pred: 1-D predicted labels, same length.
        B: number of resamples.
        seed: int for ``numpy.random.default_rng``, or a Generator to draw from.
        level: two-sided coverage.

    Returns:
        ConfidenceInterval; estimate = unweighted mean over classes of per-class accuracy.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.size == 0:
        raise StatsInputError(f"y_true must be a non-empty 1-D label array, got shape {y_true.shape}")
    _same_length(y_true, y_pred, "y_true and y_pred")
    B, level = _check_B(B), _check_level(level)
    rng, seed_used = _rng(seed)
    correct = (y_true == y_pred).astype(np.float64)
    classes = np.unique(y_true)
    total = np.zeros(B)
    per_class = np.empty(classes.size)
    for i, c in enumerate(classes):
        in_class = correct[y_true == c]
        per_class[i] = in_class.mean()
        total += _resampled(in_class, B, rng, np.mean)
    reps = 100.0 * total / classes.size
    low, high = _percentile(reps, level)
    estimate = float(100.0 * per_class.mean())
    return ConfidenceInterval(estimate, low, high, "stratified-bootstrap-percentile", B, seed_used, level)


def suite_mean_ci(
    per_task_correct: Sequence,
    B: int = 2000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> ConfidenceInterval:
    """Bootstrap CI for the unweighted mean accuracy over tasks (the VTAB headline; Zhai et al. 2019).

    Each task's test items are resampled independently (tasks share no items); replicate b
    is the mean over tasks of the task accuracies in resample b.

    Args:
        per_task_correct: one 1-D per-item correctness array per task.
        B: number of resamples.
        seed: int for ``numpy.random.default_rng``, or a Generator to draw from.
        level: two-sided coverage.

    Returns:
        ConfidenceInterval in percent; estimate = mean of the task accuracies.
    """
    tasks = [_correct(t, f"per_task_correct[{i}]") for i, t in enumerate(per_task_correct)]
    if not tasks:
        raise StatsInputError("suite_mean_ci needs at least one task")
    B, level = _check_B(B), _check_level(level)
    rng, seed_used = _rng(seed)
    total = np.zeros(B)
    for task in tasks:
        total += _resampled(task, B, rng, np.mean)
    reps = 100.0 * total / len(tasks)
    low, high = _percentile(reps, level)
    estimate = float(100.0 * np.mean([t.mean() for t in tasks]))
    return ConfidenceInterval(estimate, low, high, "bootstrap-percentile-suite-mean", B, seed_used, level)


# ---------------------------------------------------------------------------- paired comparisons


def paired_bootstrap_diff(
    correct_a,
    correct_b,
    B: int = 2000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> ConfidenceInterval:
    """Paired bootstrap CI of accuracy(a) - accuracy(b) in points (Koehn 2004; Efron & Tibshirani 1993).

    Items are resampled jointly: one index draw picks the same test items for both models,
    so the interval reflects only their disagreement, not the test set's difficulty.

    Args:
        correct_a: 1-D per-item correctness of model a.
        correct_b: 1-D per-item correctness of model b on the same items, same order.
        B: number of resamples.
        seed: int for ``numpy.random.default_rng``, or a Generator to draw from.
        level: two-sided coverage.

    Returns:
        ConfidenceInterval of the difference in percentage points (positive: a is better).
    """
    a, b = _correct(correct_a, "correct_a"), _correct(correct_b, "correct_b")
    _same_length(a, b, "correct_a and correct_b")
    return replace(bootstrap_ci(a - b, B=B, seed=seed, level=level), method="paired-bootstrap-percentile")


def paired_suite_mean_diff(
    per_task_a: Sequence,
    per_task_b: Sequence,
    B: int = 2000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> ConfidenceInterval:
    """Paired bootstrap CI of the difference of unweighted suite means (a - b), in points.

    Within each task the items are resampled jointly for both models (paired); tasks are
    resampled independently; replicate b is the mean over tasks of the per-task differences.

    Args:
        per_task_a, per_task_b: per task, 1-D per-item scores in [0, 1] (correctness, or a
            per-item accuracy averaged over seeds) of the two models on the same items.

    Returns:
        ConfidenceInterval in percentage points; estimate = mean over tasks of the differences.
    """
    if len(per_task_a) != len(per_task_b) or not per_task_a:
        raise StatsInputError("paired_suite_mean_diff needs the same, non-zero number of tasks for both models")
    B, level = _check_B(B), _check_level(level)
    rng, seed_used = _rng(seed)
    total, estimate = np.zeros(B), 0.0
    for i, (a, b) in enumerate(zip(per_task_a, per_task_b, strict=True)):
        a, b = _values(a, f"per_task_a[{i}]"), _values(b, f"per_task_b[{i}]")
        _same_length(a, b, f"task {i} of a and b")
        total += _resampled(a - b, B, rng, np.mean)
        estimate += float(np.mean(a - b))
    reps = 100.0 * total / len(per_task_a)
    low, high = _percentile(reps, level)
    return ConfidenceInterval(100.0 * estimate / len(per_task_a), low, high, "paired-bootstrap-percentile-suite-mean",
                              B, seed_used, level)


def mcnemar(correct_a, correct_b) -> McNemarResult:
    """Exact McNemar test: two-sided binomial test of the discordant pairs at p = 1/2 (McNemar 1947).

    The exact conditional form is used for every count (Fagerland, Lydersen & Laake 2013
    discuss its conservatism); p = 1.0 when the models never disagree.

    Args:
        correct_a: 1-D per-item correctness of model a.
        correct_b: 1-D per-item correctness of model b on the same items, same order.

    Returns:
        McNemarResult(p_value, a_only, b_only).
    """
    a, b = _correct(correct_a, "correct_a"), _correct(correct_b, "correct_b")
    _same_length(a, b, "correct_a and correct_b")
    a_only = int(np.sum((a == 1) & (b == 0)))
    b_only = int(np.sum((a == 0) & (b == 1)))
    if a_only + b_only == 0:
        return McNemarResult(1.0, 0, 0)
    p = _sps.binomtest(a_only, a_only + b_only, 0.5, alternative="two-sided").pvalue
    return McNemarResult(float(min(1.0, p)), a_only, b_only)


def holm(pvalues, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm-Bonferroni step-down correction (Holm 1979; as statsmodels' multipletests 'holm').

    Args:
        pvalues: 1-D p-values of the m comparisons, in any order.
        alpha: family-wise error rate.

    Returns:
        (p_adjusted, reject) in the input order: p_adjusted[(i)] = max_{j<=i} min(1, (m-j+1) p_(j))
        over the sorted p-values (monotone, capped at 1); reject[(i)] is True while every
        p_(j) <= alpha / (m-j+1) for j <= i.
    """
    p = _values(pvalues, "pvalues")
    if np.any((p < 0) | (p > 1)):
        raise StatsInputError("p-values must lie in [0, 1]")
    if not 0.0 < alpha < 1.0:
        raise StatsInputError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    m = p.size
    order = np.argsort(p, kind="stable")
    factors = m - np.arange(m)
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
    reject_sorted = np.logical_and.accumulate(p[order] <= alpha / factors)
    adjusted, reject = np.empty(m), np.empty(m, dtype=bool)
    adjusted[order], reject[order] = adjusted_sorted, reject_sorted
    return adjusted, reject


def verdict(diff_ci: ConfidenceInterval, p_adjusted: float, alpha: float = 0.05) -> str:
    """Three-way call for a paired comparison of a against b.

    "better"/"worse" only when both the paired-bootstrap CI of a - b excludes 0 on that side
    and the multiplicity-adjusted (Holm) McNemar p-value is <= alpha; otherwise the two
    models are reported as "not separable".

    Args:
        diff_ci: result of ``paired_bootstrap_diff(a, b)``.
        p_adjusted: Holm-adjusted p-value of ``mcnemar(a, b)``.
        alpha: family-wise error rate.

    Returns:
        "better", "worse" or "not separable".
    """
    if p_adjusted <= alpha and diff_ci.low > 0:
        return "better"
    if p_adjusted <= alpha and diff_ci.high < 0:
        return "worse"
    return "not separable"
