"""Batches of images of different sizes: the pools return them ragged, the preprocessing runs per size group."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

# Above this many pixels a batch is preprocessed in slices: 64 photos of 12 MP would otherwise need
# about 9 GB of float32 at once. Preprocessing is per image, so slicing never changes a value.
MAX_PIXELS_PER_CALL = 1 << 24


class RaggedBatch(list):
    """A batch whose images differ in size: a list of uint8 (C, H, W) tensors, in batch order."""


def stack_or_ragged(arrays: Sequence[np.ndarray]) -> torch.Tensor | RaggedBatch:
    """(B, 3, H, W) uint8 when every (H, W, 3) array has one size, else a RaggedBatch of (3, H, W) tensors."""
    if len({a.shape for a in arrays}) <= 1:
        return torch.from_numpy(np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)))
    return RaggedBatch(torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))) for a in arrays)


def _sliced(preprocess: Any, images: torch.Tensor) -> torch.Tensor:
    per_image = max(1, int(images.shape[-2]) * int(images.shape[-1]))
    step = max(1, MAX_PIXELS_PER_CALL // per_image)
    if images.shape[0] <= step:
        return preprocess(images)
    return torch.cat([preprocess(images[i:i + step]) for i in range(0, images.shape[0], step)])


class PerImagePreprocess:
    """Wraps an encoder's preprocessing so it also accepts a RaggedBatch.

    Images of one size are preprocessed together and the results put back in batch order; since
    resizing, cropping and normalising act on each image alone, every image gets exactly the values
    it would get in a batch of its own size (checked in tests). A plain tensor batch goes straight
    through (in slices when it is very large). Everything else (to_dict, input_size, ...) is the
    wrapped object's, so cache keys do not change.
    """

    def __init__(self, inner: Any):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, images) -> torch.Tensor:
        if not isinstance(images, RaggedBatch):
            return _sliced(self.inner, images)
        groups: dict[tuple, list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(tuple(img.shape), []).append(i)
        out: list[Any] = [None] * len(images)
        for members in groups.values():
            done = _sliced(self.inner, torch.stack([images[i] for i in members]))
            for row, i in zip(done, members, strict=True):
                out[i] = row
        return torch.stack(out)


def per_image(preprocess: Any) -> Any:
    """`preprocess`, able to take ragged batches (idempotent)."""
    return preprocess if isinstance(preprocess, PerImagePreprocess) else PerImagePreprocess(preprocess)
