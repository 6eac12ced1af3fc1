"""The contract between the runner and every protocol: feature splits in, metrics and settings out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..errors import ProtocolInputError


@dataclass(frozen=True)
class FeatureSplit:
    """Features (N, D) float32 and integer labels (N,) of one split.

    class_subset: for a test split that covers only some of the task's classes (ImageNet-R and -A:
        200 of 1,000), the sorted class indices predictions are restricted to; None: all classes.
    """

    X: np.ndarray
    y: np.ndarray
    class_subset: Optional[np.ndarray] = None

    def __post_init__(self):
        if self.X.ndim != 2:
            raise ProtocolInputError(f"features must be 2-D (N, D), got shape {self.X.shape}")
        if self.X.shape[0] != self.y.shape[0]:
            raise ProtocolInputError(
                f"feature/label count mismatch: {self.X.shape[0]} feature rows but {self.y.shape[0]} labels"
            )

    def __len__(self) -> int:
        return int(self.X.shape[0])


@dataclass(frozen=True)
class FeatureSplits:
    """The splits a protocol sees. `val` is None when the task has no validation split.

    test_sets: extra named test splits (the task's `test_sets`), scored by protocols whose
        `scores_test_sets` is true with the same fit as `test`.
    """

    train: FeatureSplit
    test: FeatureSplit
    num_classes: int
    val: Optional[FeatureSplit] = None
    test_sets: dict[str, FeatureSplit] = field(default_factory=dict)

    def __post_init__(self):
        named = [("train", self.train), ("val", self.val), ("test", self.test), *self.test_sets.items()]
        for name, split in named:
            if split is None:
                continue
            if len(split) and (split.y.min() < 0 or split.y.max() >= self.num_classes):
                raise ProtocolInputError(
                    f"{name} labels must lie in [0, {self.num_classes}), "
                    f"found [{split.y.min()}, {split.y.max()}]; check the task's label mapping"
                )
            if not np.isfinite(split.X).all():
                raise ProtocolInputError(
                    f"{name} features contain NaN or inf; re-extract in float32 (--dtype fp32)"
                )


@dataclass
class ProtocolOutcome:
    """What one protocol run produced.

    metrics: scores in percent (``top1`` always; ``top5`` when there are more than 5 classes;
        ``mean_per_class``), plus any protocol-specific numbers (std, ci95, per-k scores).
    params: every setting that changes the score, including values chosen during the run (``C``).
    details: diagnostics worth keeping (validation accuracy of every C tried, iteration counts).
    predictions: per-item test predictions, stored beside the result so metrics, intervals and
        paired comparisons can be recomputed without features. Names: ``y_pred`` (N,) the headline
        predicted labels and ``top5`` (N, <=5) ranked labels; variants carry a suffix
        (``y_pred@k10``, ``top5@k10``; ``y_pred@seed0``); ``episode_top1`` (E,) per-episode
        accuracy for episodic protocols. The runner adds ``y_true`` and ``test_index``.
    """

    metrics: dict[str, float]
    params: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    test_sets: dict[str, "TestSetOutcome"] = field(default_factory=dict)


@dataclass
class TestSetOutcome:
    """Metrics and per-item predictions of one extra test set, scored with the protocol's one fit."""

    metrics: dict[str, float]
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


def restrict_to_subset(scores: np.ndarray, class_subset: Optional[np.ndarray], floor: float = -np.inf) -> np.ndarray:
    """Class scores with every class outside `class_subset` set to `floor`, so it is never predicted
    (ImageNet-R / -A: the 1,000-way prediction restricted to their 200 classes); unchanged for None."""
    if class_subset is None:
        return scores
    out = np.full_like(scores, floor)
    cols = np.asarray(class_subset, dtype=np.int64)
    out[:, cols] = scores[:, cols]
    return out
