"""What a transfer-dataset reader returns: class names and, per official split, image files (or arrays) with labels."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np


@dataclass(frozen=True)
class Files:
    """Image files of one split and their labels: (N,) class indices, or (N, K) multi-label entries."""

    paths: list[Path]
    labels: np.ndarray


@dataclass(frozen=True)
class Arrays:
    """Decoded images of one split, (N, H, W, 3) uint8, and their labels (CIFAR's pickled batches)."""

    images: np.ndarray
    labels: np.ndarray
    digest: str  # SHA-256 of the pixel bytes: the content's identity


@dataclass(frozen=True)
class Listing:
    """A dataset as its official files define it: classes and {split: Files | Arrays}."""

    classes: list[str]
    pools: dict[str, Union[Files, Arrays]]
    notes: list[str] = field(default_factory=list)  # e.g. listed images missing from this copy


def files(paths: Sequence[Any], labels: Sequence[int]) -> Files:
    return Files([Path(p) for p in paths], np.asarray(labels, dtype=np.int64))
