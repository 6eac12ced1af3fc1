"""In-memory image pools and the DataSource interface every dataset kind implements."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class ImagePool:
    """Images of one source split, held as uint8 arrays.

    images: (N, H, W) for grey or (N, H, W, C) with C in {1, 3}.
    labels: (N,) int64 in [0, len(classes)).
    class_subset: for a test pool covering only some classes (ImageNet-R / -A), the sorted class
        indices its predictions are restricted to; None: every class. Not part of the digest: it
        changes scoring, not features (a change comes with a task version bump).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: Sequence[str]
    _digest: list = field(default_factory=list, repr=False)
    class_subset: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        """uint8 tensor (B, C, H, W) of the given samples."""
        x = np.ascontiguousarray(self.images[indices])
        if x.ndim == 3:
            x = x[:, None]
        else:
            x = x.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(x))

    def digest(self) -> str:
        """SHA-256 of the pixel and label bytes: the pool's content identity in cache keys."""
        if not self._digest:
            h = hashlib.sha256()
            h.update(f"{self.images.shape}|{self.images.dtype}|".encode())
            h.update(np.ascontiguousarray(self.images).tobytes())
            h.update(np.ascontiguousarray(self.labels.astype(np.int64)).tobytes())
            self._digest.append(h.hexdigest())
        return self._digest[0]


class DataSource(Protocol):
    """A dataset kind (bundled arrays, IDX files, image folders, ...).

    identity(): JSON-able facts naming the data (source kind, dataset name, version, origin).
    locate(): where the data is on this machine, or None when it is absent (never downloads).
    load(): the named pools (e.g. {"train": ..., "test": ...}); may download when allowed, and
        raises DataUnavailableError with every way to obtain the data when it cannot.
    """

    def identity(self) -> dict[str, Any]: ...

    def locate(self) -> str | None: ...

    def load(self) -> dict[str, ImagePool]: ...


def data_roots(data_root: Optional[str]) -> list[Path]:
    """Where non-bundled data may live, in search order: --data-root, then $EVALBENCH_DATA."""
    return [Path(r).expanduser() for r in (data_root, os.environ.get("EVALBENCH_DATA")) if r]


def data_subroot(data_root: Optional[str], name: str) -> Optional[Path]:
    """<first data root>/<name>, where downloads go; None when no root is given."""
    roots = data_roots(data_root)
    return roots[0] / name if roots else None
