"""Metrics and intervals computed from per-item test predictions: at write time, by `rescore`, by `compare`."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import stats
from .protocols.average_precision import bootstrap_map, multilabel_metrics
from .protocols.metrics import accuracy, mean_per_class

BOOTSTRAP_B = 2000
LEVEL = 0.95


def correct(arrays: dict[str, np.ndarray], suffix: str = "") -> np.ndarray:
    """Per-item correctness (bool) of the headline predictions (or of a `@variant`)."""
    return np.asarray(arrays[f"y_pred{suffix}"]) == np.asarray(arrays["y_true"])


def variants(arrays: dict[str, np.ndarray]) -> list[str]:
    """The suffixes of every stored prediction set: "" for the headline, "@k10", "@seed0", ..."""
    return sorted(k[len("y_pred"):] for k in arrays if k.startswith("y_pred"))


def metrics_from_predictions(arrays: dict[str, np.ndarray], num_classes: int) -> dict[str, float]:
    """top1, top5 (more than 5 classes), mean_per_class and per-variant top1 recomputed from predictions.

    Variant names map to the metric names protocols report: `@k10` -> `top1_k10`; the few-shot
    `@seedN` variants give `top1` as their mean (the headline over seeds).
    """
    y = np.asarray(arrays["y_true"])
    if "scores" in arrays and y.ndim == 2:  # multi-label: mean average precision from the class scores
        return multilabel_metrics(np.asarray(arrays["scores"]), y)
    out: dict[str, float] = {}
    seeds = [v for v in variants(arrays) if v.startswith("@seed")]
    if "y_pred" in arrays:
        out["top1"] = accuracy(arrays["y_pred"], y)
        if num_classes > 5 and "top5" in arrays:
            out["top5"] = float(100.0 * np.mean((arrays["top5"] == y[:, None]).any(axis=1)))
        out["mean_per_class"] = mean_per_class(arrays["y_pred"], y)
    elif seeds:
        out["top1"] = float(np.mean([accuracy(arrays[f"y_pred{s}"], y) for s in seeds]))
    for v in variants(arrays):
        if v.startswith("@k"):
            out[f"top1_{v[1:]}"] = accuracy(arrays[f"y_pred{v}"], y)
    return out


def intervals(arrays: dict[str, np.ndarray], metrics: dict[str, Any], seed: int = 0, B: int = BOOTSTRAP_B,
              level: float = LEVEL) -> dict[str, Any]:
    """The record's `uncertainty`: intervals for top1 and mean per-class accuracy.

    With headline predictions: percentile bootstrap over test items (mean per class: stratified by
    class), B draws from `seed`. Few-shot and episodic protocols report their own interval over
    seeds or episodes (mean +- 1.96 std / sqrt(n)): it is shown as it is. Multi-label predictions
    (`scores` with (N, K) `y_true`) get intervals for map11 and map, resampling test images.
    """
    if arrays and "scores" in arrays and np.asarray(arrays["y_true"]).ndim == 2:
        y = np.asarray(arrays["y_true"])
        return {**bootstrap_map(np.asarray(arrays["scores"]), y, B=B, seed=seed, level=level),
                "method": "percentile bootstrap over test images (each image with all its labels)",
                "B": B, "seed": seed, "level": level, "n_test": int(len(y))}
    if arrays and "y_pred" in arrays:
        y = np.asarray(arrays["y_true"])
        top1 = stats.bootstrap_ci(correct(arrays), B=B, seed=seed, level=level)
        mpc = stats.mean_per_class_ci(y, arrays["y_pred"], B=B, seed=seed, level=level)
        return {"top1": [top1.low, top1.high], "mean_per_class": [mpc.low, mpc.high],
                "method": "percentile bootstrap over test items (mean per class: resampled within each class)",
                "B": B, "seed": seed, "level": level, "n_test": int(len(y))}
    ci = metrics.get("top1_ci95", metrics.get("ci95"))
    if ci is not None and metrics.get("top1") is not None:
        return {"top1": [metrics["top1"] - ci, metrics["top1"] + ci],
                "method": "the protocol's own: mean +- 1.96 std / sqrt(n) over seeds or episodes", "level": 0.95}
    return {}


def suite_interval(per_task: list[dict[str, np.ndarray]], seed: int = 0, B: int = BOOTSTRAP_B,
                   level: float = LEVEL) -> Optional[stats.ConfidenceInterval]:
    """Bootstrap interval of the unweighted mean top1 over tasks (items resampled within each task)."""
    if not per_task or any("y_pred" not in a for a in per_task):
        return None
    return stats.suite_mean_ci([correct(a) for a in per_task], B=B, seed=seed, level=level)
