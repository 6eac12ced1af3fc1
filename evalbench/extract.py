"""Batched, streaming, resumable feature extraction into the cache, for one or several feature choices per pass.

The extraction contract: `extract_features(encoder, preprocess, choices, pool, indices, ...)` takes
the encoder, the preprocessing actually applied (a task may override the encoder's own) and the
feature choices to produce, and returns cached features per choice. One choice calls
`encoder.encode(x)`; several call the optional `encoder.encode_multi(x) -> {choice: (B, D)}` once
per batch, so `--pool cls,mean,last4` costs one forward pass.
"""
from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .adapters.base import Encoder, Preprocess
from .cache import CachedFeatures, FeatureCache, feature_key
from .data.base import ImagePool
from .errors import EvalbenchError

log = logging.getLogger(__name__)

SHARD_SIZE = 4096  # samples per resumable shard: bounds memory and the work lost to a crash


@dataclass(frozen=True)
class FeatureChoice:
    """One feature output of an encoder: its key in `encode_multi`'s dict (None: `encode()`), the model
    name its results carry, and the fingerprint that goes into its cache key."""

    key: Optional[str]
    name: str
    fingerprint: dict[str, Any]


def feature_choices(encoder: Encoder, name: str) -> list[FeatureChoice]:
    """The feature choices an encoder declares, each named and fingerprinted.

    An encoder declares several choices with a `pools` tuple and an `encode_multi` method; each
    choice is then named `name + encoder.feature_suffix(choice)` (default `@choice`) and its
    fingerprint carries `pool: choice`. Any other encoder has one choice: `encode()`, under `name`.
    """
    pools = tuple(getattr(encoder, "pools", ()) or ())
    fingerprint = encoder.fingerprint()
    if len(pools) <= 1 or not callable(getattr(encoder, "encode_multi", None)):
        return [FeatureChoice(None, name, fingerprint)]
    suffix = getattr(encoder, "feature_suffix", lambda p: f"@{p}")
    return [FeatureChoice(p, name + suffix(p), {**fingerprint, "pool": p}) for p in pools]


def _to_numpy(t: Any, encoder_name: str, n: int) -> np.ndarray:
    feats = t.detach().to("cpu", torch.float32).numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float32)
    if feats.ndim != 2 or feats.shape[0] != n:
        raise EvalbenchError(f"encoder {encoder_name} returned shape {feats.shape} for a batch of {n}; encode() must return (B, D)")
    return feats


def _encode_range(encoder: Encoder, preprocess: Preprocess, pool: ImagePool, indices: np.ndarray, keys: list[Optional[str]],
                  batch_size: int, advance) -> dict[Optional[str], np.ndarray]:
    """Features of `indices` for each choice key, from one forward pass per batch."""
    out: dict[Optional[str], list[np.ndarray]] = {k: [] for k in keys}
    for start in range(0, len(indices), batch_size):
        batch_idx = indices[start:start + batch_size]
        with torch.inference_mode():
            x = preprocess(pool.batch(batch_idx))
            got = {None: encoder.encode(x)} if keys == [None] else encoder.encode_multi(x)
        for k in keys:
            if k not in got:
                raise EvalbenchError(f"encoder {encoder.name}: encode_multi() returned {sorted(got)}, lacking {k!r}")
            feats = _to_numpy(got[k], encoder.name, len(batch_idx))
            bad = ~np.isfinite(feats).all(axis=1)
            if bad.any():
                raise EvalbenchError(
                    f"encoder {encoder.name} produced NaN or inf features for {int(bad.sum())} samples "
                    f"(first: sample {int(batch_idx[np.argmax(bad)])}); extract in float32 (--dtype fp32) or check the weights"
                )
            out[k].append(feats)
        advance(len(batch_idx))
    return {k: np.concatenate(v) for k, v in out.items()}


@dataclass
class _Pending:
    """A choice whose cache entry must be (finished and) committed in this call."""

    choice: FeatureChoice
    key: str
    material: dict


def extract_features(
    encoder: Encoder,
    preprocess: Preprocess,
    choices: Sequence[FeatureChoice],
    pool: ImagePool,
    indices: np.ndarray,
    dataset_identity: dict[str, Any],
    cache: FeatureCache,
    batch_size: int = 64,
    progress=None,
    description: str = "extract",
) -> dict[Optional[str], CachedFeatures]:
    """Features of `pool[indices]` for every choice, read from the cache or extracted into it.

    Args:
        preprocess: the preprocessing to apply (part of every cache key).
        choices: from `feature_choices`; all are produced by the same forward passes.
        dataset_identity: facts naming the data (source identity, pool name and digest).
        progress: a running rich Progress, or None.

    Returns:
        {choice.key: CachedFeatures} with memory-mapped features; `extracted` counts the samples
        encoded in this call for that choice.
    """
    indices = np.asarray(indices, dtype=np.int64)
    labels = pool.labels[indices].astype(np.int64)
    keyed = [(c, *feature_key(c.fingerprint, preprocess.to_dict(), dataset_identity, indices)) for c in choices]
    results = {c.key: hit for c, key, _ in keyed if (hit := cache.read(key, labels)) is not None}
    todo = [_Pending(c, key, material) for c, key, material in keyed if c.key not in results]
    if not todo:
        return results
    with ExitStack() as locks:
        for p in sorted(todo, key=lambda p: p.key):  # one global order: two runs never deadlock
            locks.enter_context(cache.lock(p.key))
        for p in list(todo):  # another process may have finished some while we waited
            hit = cache.read(p.key, labels)
            if hit is not None:
                results[p.choice.key] = hit
                todo.remove(p)
        if todo:
            results.update(_extract_pending(encoder, preprocess, todo, pool, indices, labels, cache, batch_size,
                                            progress, description))
    return results


def _extract_pending(encoder, preprocess, todo: list[_Pending], pool, indices, labels, cache: FeatureCache,
                     batch_size: int, progress, description: str) -> dict[Optional[str], CachedFeatures]:
    """Encode the shards any pending choice lacks (resuming interrupted ones), then commit each entry."""
    ranges = [(s, min(s + SHARD_SIZE, len(indices))) for s in range(0, len(indices), SHARD_SIZE)]
    done = {p.key: cache.completed_shards(p.key) for p in todo}
    needed = [r for r in ranges if any(r not in done[p.key] for p in todo)]
    task_id = None
    if progress is not None:
        task_id = progress.add_task(description, total=len(indices),
                                    completed=len(indices) - sum(stop - start for start, stop in needed))
    advance = (lambda n: progress.advance(task_id, n)) if task_id is not None else (lambda n: None)
    keys = [p.choice.key for p in todo]
    for start, stop in needed:
        feats = _encode_range(encoder, preprocess, pool, indices[start:stop], keys, batch_size, advance)
        for p in todo:
            if (start, stop) not in done[p.key]:
                cache.write_shard(p.key, start, stop, feats[p.choice.key])
    out = {}
    for p in todo:
        entry = cache.commit(p.key, p.material, labels, ranges, {"encoder_name": p.choice.name})
        zero_rows = int((np.abs(entry.features).max(axis=1) == 0).sum()) if len(entry.features) else 0
        if zero_rows:
            log.warning("%s (%s): %d feature rows are all zero", description, p.choice.name, zero_rows)
        encoded = sum(stop - start for start, stop in needed if (start, stop) not in done[p.key])
        out[p.choice.key] = CachedFeatures(entry.features, entry.labels, p.key, encoded)
    if task_id is not None:
        progress.update(task_id, visible=False)
    return out


def extract_one(encoder: Encoder, pool: ImagePool, indices: np.ndarray, dataset_identity: dict[str, Any],
                cache: FeatureCache, **options: Any) -> CachedFeatures:
    """The common case: one encoder, its own preprocessing, its only feature choice (`encode()`)."""
    choice = FeatureChoice(None, encoder.name, encoder.fingerprint())
    return extract_features(encoder, encoder.preprocess, [choice], pool, indices, dataset_identity, cache, **options)[None]
