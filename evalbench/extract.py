"""Batched, streaming, resumable feature extraction into the cache, for one or several feature choices per pass.

The extraction contract: `extract_features(encoder, preprocess, choices, pool, indices, ...)` takes
the encoder, the preprocessing actually applied (a task may override the encoder's own) and the
feature choices to produce, and returns cached features per choice. One choice calls
`encoder.encode(x)`; several call the optional `encoder.encode_multi(x) -> {choice: (B, D)}` once
per batch, so `--pool cls,mean,last4` costs one forward pass.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
from filelock import Timeout

from .adapters.base import Encoder, Preprocess
from .cache import CachedFeatures, FeatureCache, feature_key
from .data.base import ImagePool
from .errors import ConfigError, EvalbenchError, UserCodeError, describe_exception

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
    fingerprint = call_encoder(encoder, "fingerprint")
    if not isinstance(fingerprint, Mapping):
        raise UserCodeError(f"{encoder_origin(encoder)}: fingerprint() returned {type(fingerprint).__name__}; it must "
                            "return a dict of everything that changes the features")
    fingerprint = dict(fingerprint)
    if len(pools) <= 1 or not callable(getattr(encoder, "encode_multi", None)):
        return [FeatureChoice(None, name, fingerprint)]
    suffix = getattr(encoder, "feature_suffix", None)
    return [FeatureChoice(p, name + (call_encoder(encoder, "feature_suffix", p) if callable(suffix) else f"@{p}"),
                          {**fingerprint, "pool": p}) for p in pools]


def encoder_origin(encoder: Any) -> str:
    """How an error names the encoder: its model spec when it was built from one."""
    spec = getattr(encoder, "spec", None)
    return f"model {spec!r}" if spec else f"encoder {getattr(encoder, 'name', type(encoder).__name__)!r}"


def call_encoder(encoder: Any, method: str, *args: Any) -> Any:
    """Call a method of an encoder (adapter code, often the user's): its exception becomes one clear line.

    The original exception stays attached as the cause; `evalbench --debug` prints its traceback.
    """
    try:
        return getattr(encoder, method)(*args)
    except EvalbenchError:
        raise
    except Exception as exc:
        fix = ("lower --batch-size" if "out of memory" in str(exc).lower()
               else "fix the adapter, or rerun with --debug for the traceback")
        raise UserCodeError(f"{encoder_origin(encoder)}: {method}() raised {describe_exception(exc)}; {fix}") from exc


def _to_numpy(t: Any, encoder: Encoder, method: str, n: int) -> np.ndarray:
    """(n, D) float32 from a tensor or a numpy array (a natural thing for an adapter to return), else a clear error."""
    bad = f"{encoder_origin(encoder)}: {method}() returned {type(t).__name__}, not a (B, D) tensor or numpy array"
    if not isinstance(t, (torch.Tensor, np.ndarray)) and not hasattr(t, "__array__"):
        raise UserCodeError(bad)
    try:
        feats = t.detach().to("cpu", torch.float32).numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UserCodeError(f"{bad} of numbers ({describe_exception(exc)})") from exc
    if feats.ndim != 2 or feats.shape[0] != n:
        raise UserCodeError(f"{encoder_origin(encoder)}: {method}() returned shape {tuple(feats.shape)} for a batch of {n}; "
                            "it must return (B, D)")
    return feats


def _nan_fix(encoder: Encoder) -> str:
    """What to try about NaN features: fp32 only when the run is not already fp32."""
    dtype = getattr(encoder, "dtype", None)
    if dtype in ("bf16", "fp16"):
        return f"extract in float32 (--dtype fp32 instead of {dtype}) or check the weights"
    if dtype == "fp32":
        return "the run is already float32: check the weights (a diverged or damaged checkpoint) and --mean/--std"
    return "check the encoder's weights and its encode()"


def _encode_range(encoder: Encoder, preprocess: Preprocess, pool: ImagePool, indices: np.ndarray, keys: list[Optional[str]],
                  batch_size: int, advance) -> dict[Optional[str], np.ndarray]:
    """Features of `indices` for each choice key, from one forward pass per batch."""
    out: dict[Optional[str], list[np.ndarray]] = {k: [] for k in keys}
    for start in range(0, len(indices), batch_size):
        batch_idx = indices[start:start + batch_size]
        with torch.inference_mode():
            x = preprocess(pool.batch(batch_idx))
            method = "encode" if keys == [None] else "encode_multi"
            got = call_encoder(encoder, method, x)
        got = {None: got} if keys == [None] else got
        if not isinstance(got, dict):
            raise UserCodeError(f"{encoder_origin(encoder)}: encode_multi() returned {type(got).__name__}; it must return "
                                "{choice: (B, D) features}")
        for k in keys:
            if k not in got:
                raise UserCodeError(f"{encoder_origin(encoder)}: encode_multi() returned {sorted(map(str, got))}, lacking {k!r}")
            feats = _to_numpy(got[k], encoder, method, len(batch_idx))
            bad = ~np.isfinite(feats).all(axis=1)
            if bad.any():
                raise EvalbenchError(
                    f"{encoder_origin(encoder)} produced NaN or inf features for {int(bad.sum())} samples "
                    f"(first: sample {int(batch_idx[np.argmax(bad)])}); {_nan_fix(encoder)}"
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    indices = np.asarray(indices, dtype=np.int64)
    labels = pool.labels[indices].astype(np.int64)
    keyed = [(c, *feature_key(c.fingerprint, preprocess.to_dict(), dataset_identity, indices)) for c in choices]
    results = {c.key: hit for c, key, _ in keyed if (hit := cache.read(key, labels)) is not None}
    todo = [_Pending(c, key, material) for c, key, material in keyed if c.key not in results]
    if not todo:
        return results
    with ExitStack() as locks:
        for p in sorted(todo, key=lambda p: p.key):  # one global order: two runs never deadlock
            lock = cache.lock(p.key)
            try:
                locks.enter_context(lock)
            except Timeout:
                raise EvalbenchError(f"cache entry {cache.entry_dir(p.key)} stayed locked by another evalbench process "
                                     f"for {lock.timeout:g} s; wait for that run to finish, or stop it") from None
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
