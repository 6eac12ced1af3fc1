"""Synthetic frozen-encoder-like features for the benchmarks (fixed seed, no downloads)."""
from __future__ import annotations

import numpy as np


def synthetic_features(n: int, dim: int, classes: int, seed: int = 0, latent: int = 64,
                       separation: float = 1.0, noise: float = 1.0):
    """Class-clustered, non-negative, correlated features like a ReLU encoder's output.

    A latent Gaussian mixture (one mean per class) is lifted to `dim` features by a
    random linear map and a ReLU, plus isotropic noise; labels are balanced.

    Returns:
        (X float32 (n, dim), y int64 (n,)).
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, latent)) * separation
    lift = rng.normal(size=(latent, dim)).astype(np.float32) / np.sqrt(latent)
    y = np.arange(n) % classes
    rng.shuffle(y)
    z = (means[y] + rng.normal(size=(n, latent))).astype(np.float32)
    X = np.maximum(z @ lift, 0.0) + noise * rng.normal(size=(n, dim)).astype(np.float32)
    return X.astype(np.float32), y.astype(np.int64)
