"""Batched, streaming, resumable feature extraction into the cache."""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import torch
from filelock import Timeout

from .adapters.base import Encoder
from .cache import CachedFeatures, FeatureCache, feature_key
from .data.base import ImagePool
from .errors import EvalbenchError

log = logging.getLogger(__name__)

SHARD_SIZE = 4096  # samples per resumable shard: bounds memory and the work lost to a crash


def _encode_range(encoder: Encoder, pool: ImagePool, indices: np.ndarray, batch_size: int, progress, task_id,
                  pools: Optional[list[str]] = None) -> dict[Optional[str], np.ndarray]:
    """Features of `indices`: {None: array}, or {pool: array} for each of `pools` from one forward pass."""
    out: dict[Optional[str], list[np.ndarray]] = {}
    for start in range(0, len(indices), batch_size):
        batch_idx = indices[start:start + batch_size]
        with torch.inference_mode():
            x = encoder.preprocess(pool.batch(batch_idx))
            got = ({p: t for p, t in encoder.encode_multi(x).items() if p in pools} if pools
                   else {None: encoder.encode(x)})
        for name, t in got.items():
            feats = t.detach().to("cpu", torch.float32).numpy()
            if feats.ndim != 2 or feats.shape[0] != len(batch_idx):
                raise EvalbenchError(f"encoder {encoder.name} returned shape {feats.shape} for a batch of {len(batch_idx)}; encode() must return (B, D)")
            bad = ~np.isfinite(feats).all(axis=1)
            if bad.any():
                raise EvalbenchError(
                    f"encoder {encoder.name} produced NaN or inf features for {int(bad.sum())} samples "
                    f"(first: sample {int(batch_idx[np.argmax(bad)])}); extract in float32 (--dtype fp32) or check the weights"
                )
            out.setdefault(name, []).append(feats)
        if progress is not None:
            progress.advance(task_id, len(batch_idx))
    return {k: np.concatenate(v) for k, v in out.items()}


def _sibling_entries(encoder: Encoder, cache: FeatureCache, dataset_identity: dict, indices: np.ndarray,
                     labels: np.ndarray) -> list[tuple[str, str, dict, Any]]:
    """Other feature choices of the same forward pass (--pool a,b) whose cache entries are missing and free.

    Their keys use the preprocessing actually applied here, so a task's preprocessing override is
    respected. A sibling another process is extracting (lock taken) is left to that process.
    """
    own = getattr(encoder, "pool", None)
    if own is None or not hasattr(encoder, "encode_multi"):
        return []
    entries = []
    for sib in getattr(encoder, "siblings", None) or []:
        name = getattr(sib, "pool", None)
        if name is None or name == own:
            continue
        key, material = feature_key(sib.fingerprint(), encoder.preprocess.to_dict(), dataset_identity, indices)
        if cache.read(key, labels) is not None:
            continue
        lock = cache.lock(key)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        entries.append((name, key, material, lock))
    return entries


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
        siblings = _sibling_entries(encoder, cache, dataset_identity, indices, labels)
        try:
            own = getattr(encoder, "pool", None) if siblings else None
            names = [own] + [s[0] for s in siblings] if siblings else None
            for start, stop in ranges:
                if (start, stop) in done:
                    continue
                feats = _encode_range(encoder, pool, indices[start:stop], batch_size, progress, task_id, names)
                cache.write_shard(key, start, stop, feats[own])
                for name, sib_key, _, _ in siblings:
                    cache.write_shard(sib_key, start, stop, feats[name])
                extracted += stop - start
            for name, sib_key, sib_material, _ in siblings:  # complete only when every shard exists
                sib_done = cache.completed_shards(sib_key)
                if all(r in sib_done for r in ranges):
                    cache.commit(sib_key, sib_material, labels, ranges, {"encoder_name": f"{encoder.name} ({name})"})
        finally:
            for *_, lock in siblings:
                lock.release()
        result = cache.commit(key, material, labels, ranges, {"encoder_name": encoder.name})
        zero_rows = int((np.abs(result.features).max(axis=1) == 0).sum()) if len(result.features) else 0
        if zero_rows:
            log.warning("%s: %d feature rows are all zero", description, zero_rows)
        if progress is not None and task_id is not None:
            progress.update(task_id, visible=False)
        return CachedFeatures(result.features, result.labels, key, extracted)
