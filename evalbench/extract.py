"""Batched, streaming, resumable feature extraction into the cache."""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import torch

from .adapters.base import Encoder
from .cache import CachedFeatures, FeatureCache, feature_key
from .data.base import ImagePool
from .errors import EvalbenchError

log = logging.getLogger(__name__)

SHARD_SIZE = 4096  # samples per resumable shard: bounds memory and the work lost to a crash


def _encode_range(encoder: Encoder, pool: ImagePool, indices: np.ndarray, batch_size: int, progress, task_id) -> np.ndarray:
    out = []
    for start in range(0, len(indices), batch_size):
        batch_idx = indices[start:start + batch_size]
        with torch.inference_mode():
            feats = encoder.encode(encoder.preprocess(pool.batch(batch_idx)))
        feats = feats.detach().to("cpu", torch.float32).numpy()
        if feats.ndim != 2 or feats.shape[0] != len(batch_idx):
            raise EvalbenchError(f"encoder {encoder.name} returned shape {feats.shape} for a batch of {len(batch_idx)}; encode() must return (B, D)")
        bad = ~np.isfinite(feats).all(axis=1)
        if bad.any():
            raise EvalbenchError(
                f"encoder {encoder.name} produced NaN or inf features for {int(bad.sum())} samples "
                f"(first: sample {int(batch_idx[np.argmax(bad)])}); extract in float32 or check the weights"
            )
        out.append(feats)
        if progress is not None:
            progress.advance(task_id, len(batch_idx))
    return np.concatenate(out)


def extract_features(
    encoder: Encoder,
    pool: ImagePool,
    indices: np.ndarray,
    dataset_identity: dict[str, Any],
    cache: FeatureCache,
    batch_size: int = 64,
    progress=None,
    description: str = "extract",
) -> CachedFeatures:
    """Features of `pool[indices]`, read from the cache or extracted into it.

    Args:
        dataset_identity: facts naming the data (source identity, pool name and digest).
        progress: a running rich Progress, or None.

    Returns:
        CachedFeatures with memory-mapped features; `extracted` counts the samples encoded now.
    """
    indices = np.asarray(indices, dtype=np.int64)
    labels = pool.labels[indices].astype(np.int64)
    key, material = feature_key(encoder.fingerprint(), encoder.preprocess.to_dict(), dataset_identity, indices)
    hit = cache.read(key, labels)
    if hit is not None:
        return hit
    with cache.lock(key):
        hit = cache.read(key, labels)  # another process may have finished it while we waited
        if hit is not None:
            return hit
        ranges = [(s, min(s + SHARD_SIZE, len(indices))) for s in range(0, len(indices), SHARD_SIZE)]
        done = cache.completed_shards(key)
        task_id = None
        if progress is not None:
            resumed = sum(stop - start for (start, stop) in ranges if (start, stop) in done)
            task_id = progress.add_task(description, total=len(indices), completed=resumed)
        extracted = 0
        for start, stop in ranges:
            if (start, stop) in done:
                continue
            feats = _encode_range(encoder, pool, indices[start:stop], batch_size, progress, task_id)
            cache.write_shard(key, start, stop, feats)
            extracted += stop - start
        zero_rows = 0
        result = cache.commit(key, material, labels, ranges, {"encoder_name": encoder.name})
        zero_rows = int((np.abs(result.features).max(axis=1) == 0).sum()) if len(result.features) else 0
        if zero_rows:
            log.warning("%s: %d feature rows are all zero", description, zero_rows)
        if progress is not None and task_id is not None:
            progress.update(task_id, visible=False)
        return CachedFeatures(result.features, result.labels, key, extracted)
