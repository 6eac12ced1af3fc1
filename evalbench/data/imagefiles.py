"""Lazily decoded image pools: image files (or any indexable image source) read with PIL on demand."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import DataUnavailableError

# How every file is turned into RGB; recorded in dataset identities so a change is a new cache key.
DECODE_POLICY = ("PIL; EXIF orientation applied; 16-bit and 32-bit grey scaled to 8 bit; palette/LA/RGBA/CMYK "
                 "converted to RGB (alpha dropped, as torchvision's default loader does); resized to SIZExSIZE "
                 "without crop (bilinear, antialiased)")


def to_rgb_array(img, size: Optional[int], where: str) -> np.ndarray:
    """A PIL image as a (H, W, 3) uint8 array in RGB, optionally resized to size x size (no crop)."""
    from PIL import Image, ImageOps

    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as exc:  # truncated, zero-byte or corrupt files
        raise DataUnavailableError(f"cannot decode image {where} ({exc}); re-extract or re-download it") from None
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # convert("L") clips 16-bit values at 255; scale by the full range of the mode instead
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.round(arr * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.round(arr.clip(0, 1) * 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode != "RGB":
        img = img.convert("RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def open_image(path: Path, size: Optional[int]) -> np.ndarray:
    """Decode one file to RGB uint8 (H, W, 3); a missing or unreadable file names itself."""
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            raise DataUnavailableError(f"image file {path} is empty (0 bytes); re-extract or re-download it")
        img = Image.open(path)
    except FileNotFoundError:
        raise DataUnavailableError(f"image file {path} is listed but missing; restore it (re-extract or re-download "
                                   "the dataset) or remove its line from the list file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataUnavailableError(f"cannot decode image {path} ({exc}); re-extract or re-download it") from None
    with img:
        return to_rgb_array(img, size, str(path))


def stack(arrays: Sequence[np.ndarray], where: str) -> torch.Tensor:
    """(B, 3, H, W) uint8 from same-sized (H, W, 3) arrays; mixed sizes need a pool `size`."""
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DataUnavailableError(f"{where}: images of different sizes {sorted(shapes)[:3]} in one batch; give the source an image_size")
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)))


class FilePool:
    """Image files listed with labels, decoded on demand (an ImagePool without the pixels in memory).

    Args:
        paths: one file per sample.
        labels: (N,) int64 in [0, len(classes)).
        classes: class names (the task's full class list, even when some have no sample here).
        size: resize every image to size x size without crop (VTAB's step), or None to keep sizes.
        identity_text: bytes that name the content (e.g. the list file); see digest().
    """

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, classes: Sequence[str], size: Optional[int],
                 identity_text: bytes = b""):
        self.paths = [Path(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.size = size
        self._identity_text = identity_text
        self._digest: Optional[str] = None

    def __len__(self) -> int:
        return len(self.paths)

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        return stack([open_image(self.paths[int(i)], self.size) for i in indices], "image files")

    def digest(self) -> str:
        """SHA-256 of the list text, every file's relative name and byte size, labels and the resize.

        Trade-off: reading every byte of a 20k-image test split on each run costs minutes; sizes catch
        a re-encoded (e.g. JPEG-recompressed) export, which changes sizes, at the price of missing an
        edit that keeps a file's size exactly. Modification times are left out on purpose, so a
        copied export keeps its cache entries.
        """
        if self._digest is None:
            h = hashlib.sha256(self._identity_text)
            h.update(f"|size={self.size}|{DECODE_POLICY}|".encode())
            for p in self.paths:
                try:
                    n = os.path.getsize(p)
                except OSError:
                    n = -1  # reported by batch() with the file's name when it is read
                h.update(f"{p.name}:{n};".encode())
            h.update(self.labels.tobytes())
            self._digest = h.hexdigest()
        return self._digest


class IndexedPool:
    """Samples of an indexable dataset (e.g. a torchvision dataset returning PIL images), decoded on demand."""

    def __init__(self, get_image: Callable[[int], Any], items: np.ndarray, labels: np.ndarray,
                 classes: Sequence[str], size: Optional[int], identity: str):
        self._get = get_image
        self.items = np.asarray(items, dtype=np.int64)  # positions in the underlying dataset
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.size = size
        self._identity = identity

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        arrays = [to_rgb_array(self._get(int(self.items[int(i)])), self.size, f"item {int(self.items[int(i)])}") for i in indices]
        return stack(arrays, self._identity)

    def digest(self) -> str:
        """Hash of the dataset's identity, the item positions and labels (the files are the loader's)."""
        h = hashlib.sha256(f"{self._identity}|size={self.size}|{DECODE_POLICY}|".encode())
        h.update(self.items.tobytes())
        h.update(self.labels.tobytes())
        return h.hexdigest()
