"""Shared by the own-data sources (image folders, file lists): split names, class order, lazily decoded file pools."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import DataUnavailableError
from .imagefiles import DECODE_POLICY, open_image
from .ragged import stack_or_ragged

log = logging.getLogger("evalbench")

# folder or column values that name a split, mapped to evalbench's split (pool) names
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
SPLIT_ORDER = ("train", "val", "test")
# torchvision's IMG_EXTENSIONS (ImageFolder's default), compared case-insensitively
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def hidden(name: str) -> bool:
    """Names every source skips: dot files and folders (.ipynb_checkpoints, .DS_Store) and macOS archive debris."""
    return name.startswith(".") or name == "__MACOSX"


def canonical_split(name: str) -> Optional[str]:
    return SPLIT_ALIASES.get(str(name).strip().lower())


def folder_class_order(names: Sequence[str], where: str) -> list[str]:
    """Class index = sorted folder names (torchvision ImageFolder); a warning when that is not numeric order."""
    classes = sorted(set(names))
    if len(classes) > 1 and all(c.isdigit() for c in classes) and classes != sorted(classes, key=int):
        shown = ", ".join(f"{c}->{i}" for i, c in enumerate(classes[:6]))
        log.warning("%s: class folders have numeric names; as torchvision's ImageFolder does, they are sorted as text, "
                    "so a folder's number is not its class index (%s, ...); the order is recorded in each result "
                    "(task.dataset.classes)", where, shown)
    return classes


def label_order(values: Sequence[str]) -> tuple[list[str], str]:
    """Classes of a list's label values: numeric order when every value is an integer, else sorted text."""
    unique = set(values)
    try:
        ints = sorted(unique, key=lambda v: int(v))
        if len({int(v) for v in unique}) == len(unique):
            return ints, "integer labels in numeric order"
    except ValueError:
        pass
    return sorted(unique), "label strings in sorted (code point) order"


def file_sizes(paths: Sequence[Path]) -> np.ndarray:
    """Byte size of every file (-1 where it cannot be read); one stat per file, no reading."""
    out = np.empty(len(paths), dtype=np.int64)
    for i, p in enumerate(paths):
        try:
            out[i] = os.stat(p).st_size
        except OSError:
            out[i] = -1
    return out


class FileImagePool:
    """Labelled image files decoded on demand; images of different sizes come back as a RaggedBatch.

    Args:
        paths: one file per sample; `names` are their relative names (the identity, never the location).
        sizes: byte size of each file, taken when listed.
        size: resize every image to size x size without crop when decoded, or None to keep sizes.
        where: names a sample in error messages (a list file's line, say), given its index.
    """

    def __init__(self, paths: Sequence[Path], names: Sequence[str], sizes: np.ndarray, labels: np.ndarray,
                 classes: Sequence[str], size: Optional[int] = None, where=None):
        self.paths = list(paths)
        self.names = list(names)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.size = size
        self._where = where
        self._digest: Optional[str] = None

    def __len__(self) -> int:
        return len(self.paths)

    def _open(self, i: int) -> np.ndarray:
        try:
            return open_image(self.paths[i], self.size)
        except DataUnavailableError as exc:
            if self._where is None:
                raise
            raise DataUnavailableError(f"{self._where(i)}: {exc}") from None

    def batch(self, indices: np.ndarray):
        return stack_or_ragged([self._open(int(i)) for i in indices])

    def digest(self) -> str:
        """SHA-256 of the ordered relative names with their byte sizes, the labels, class names and decoding.

        Cheap at any scale (the sizes come from the listing's stat calls; no image is read). A
        re-encoded file changes size; an edit that keeps every size exactly is not detected.
        """
        if self._digest is None:
            h = hashlib.sha256(f"size={self.size}|{DECODE_POLICY}|{self.classes}|".encode())
            for name, n in zip(self.names, self.sizes.tolist(), strict=True):
                h.update(f"{name}\0{n};".encode())
            h.update(self.labels.tobytes())
            self._digest = h.hexdigest()
        return self._digest


def content_digest(pools: dict) -> str:
    """One SHA-256 over every pool's digest: what a result records to notice changed data."""
    h = hashlib.sha256()
    for name in sorted(pools):
        h.update(f"{name}:{pools[name].digest()};".encode())
    return h.hexdigest()


def resolve_location(text: str, data_root: Optional[str]) -> Path:
    """An absolute path as is; a relative one under --data-root or $EVALBENCH_DATA if it exists there, else from here."""
    from .base import data_roots

    p = Path(text).expanduser()
    if p.is_absolute():
        return p
    for root in data_roots(data_root):
        if (root / p).exists():
            return (root / p).resolve()
    return p.resolve()
