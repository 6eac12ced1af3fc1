"""The raw-pixel baseline: resize, flatten. The classic lower bound for any encoder."""
from __future__ import annotations

import torch

from .base import Preprocess
from .naming import pixels_name

PIXELS_VERSION = "1"


class PixelsEncoder:
    """Features are the preprocessed pixels themselves, flattened (3 * size * size values in [0, 1]).

    Args:
        size: side length images are resized to (bilinear, antialiased; no crop).
        grayscale: average the channels first (size * size features), which suits grey datasets.
    """

    def __init__(self, size: int = 16, grayscale: bool = False):
        self.size = int(size)
        self.grayscale = bool(grayscale)
        self.name = pixels_name(self.size, self.grayscale)
        # keep_aspect=False resizes to size x size without cropping anything away
        self.preprocess = Preprocess(input_size=self.size, resize_size=self.size, keep_aspect=False)

    def fingerprint(self) -> dict:
        return {"adapter": "pixels", "adapter_version": PIXELS_VERSION, "size": self.size,
                "grayscale": self.grayscale, "dtype": "float32"}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if self.grayscale:
            x = x.mean(dim=1, keepdim=True)
        return x.flatten(1).contiguous()
