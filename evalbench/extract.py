"""Batched, streaming, resumable feature extraction into the cache, for one or several feature choices per pass.

The extraction contract: `extract_features(encoder, preprocess, choices, pool, indices, ...)` takes
the encoder, the preprocessing actually applied (a task may override the encoder's own) and the
feature choices to produce, and returns cached features per choice. One choice calls
`encoder.encode(x)`; several call the optional `encoder.encode_multi(x) -> {choice: (B, D)}` once
per batch, so `--pool cls,mean,last4` costs one forward pass.
"""
from __future__ import annotations

import logging
import os
import sys
import time
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
from .distributed import SINGLE, DistContext
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


class _ShardBatches(torch.utils.data.Dataset):
    """The batches of the shard ranges to encode, in order, as a map-style dataset: item i is
    (shard position, preprocessed batch). Batches never cross a shard boundary, so each shard's
    rows come out whole and in order whatever the worker count."""

    def __init__(self, pool: ImagePool, preprocess: Preprocess, indices: np.ndarray,
                 ranges: Sequence[tuple[int, int]], batch_size: int):
        self.pool, self.preprocess, self.indices = pool, preprocess, indices
        self.items = [(pos, s, min(s + batch_size, stop)) for pos, (start, stop) in enumerate(ranges)
                      for s in range(start, stop, batch_size)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        pos, start, stop = self.items[i]
        with torch.no_grad():  # inference tensors may not cross process boundaries; no_grad ones can
            return pos, self.preprocess(self.pool.batch(self.indices[start:stop]))


def default_num_workers() -> int:
    """DataLoader workers when not told: the CPU cores this process may use, less one for the main
    process, at most 8 (0, the in-process path, on one or two cores where workers only compete)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else min(8, cores - 1)


def _batches(dataset: _ShardBatches, num_workers: int, pin: bool):
    """Dataset items in order: in this process (0 workers) or from DataLoader workers with prefetch."""
    if num_workers <= 0 or len(dataset) <= 1:
        return (dataset[i] for i in range(len(dataset)))
    return iter(torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=num_workers,
                                            pin_memory=pin, prefetch_factor=4, persistent_workers=False))


def _check_batch(encoder: Encoder, got: Any, keys: list[Optional[str]], method: str, batch_idx: np.ndarray) -> dict:
    """{key: (B, D) float32} from what encode()/encode_multi() returned, or a one-line error naming the adapter."""
    if not isinstance(got, dict):
        raise UserCodeError(f"{encoder_origin(encoder)}: encode_multi() returned {type(got).__name__}; it must return "
                            "{choice: (B, D) features}")
    out = {}
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
        out[k] = feats
    return out


def _encode_ranges(encoder: Encoder, preprocess: Preprocess, pool: ImagePool, indices: np.ndarray,
                   ranges: Sequence[tuple[int, int]], keys: list[Optional[str]], batch_size: int, advance,
                   num_workers: int, on_shard) -> None:
    """Encode each range (one forward pass per batch serves every choice key) and hand each finished
    range's features to `on_shard(range, {key: (n, D)})`; at most one shard is held in memory."""
    dataset = _ShardBatches(pool, preprocess, indices, ranges, batch_size)
    pin = str(getattr(encoder, "device", "cpu")).startswith("cuda")
    parts: dict[Optional[str], list[np.ndarray]] = {k: [] for k in keys}
    for i, (pos, x) in enumerate(_batches(dataset, num_workers, pin)):
        _, start, stop = dataset.items[i]
        method = "encode" if keys == [None] else "encode_multi"
        with torch.inference_mode():
            got = call_encoder(encoder, method, x)
        got = {None: got} if keys == [None] else got
        for k, feats in _check_batch(encoder, got, keys, method, indices[start:stop]).items():
            parts[k].append(feats)
        advance(stop - start)
        if stop == ranges[pos][1]:
            on_shard(ranges[pos], {k: np.concatenate(v) for k, v in parts.items()})
            parts = {k: [] for k in keys}


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
    *,
    num_workers: int = 0,
    dist: DistContext = SINGLE,
    report_every: Optional[float] = None,
) -> dict[Optional[str], CachedFeatures]:
    """Features of `pool[indices]` for every choice, read from the cache or extracted into it.

    Args:
        preprocess: the preprocessing to apply (part of every cache key).
        choices: from `feature_choices`; all are produced by the same forward passes.
        dataset_identity: facts naming the data (source identity, pool name and digest).
        progress: a running rich Progress, or None.
        num_workers: DataLoader workers that read and preprocess batches (0: in this process).
            Features and their order do not depend on it.
        dist: under torchrun, this rank's place: each rank encodes its share of the shards, rank 0
            commits after a barrier, and every rank returns the committed entries. Call it on
            every rank with the same arguments.
        report_every: print a plain progress line to stderr every so many seconds (logs).

    Returns:
        {choice.key: CachedFeatures} with memory-mapped features; `extracted` counts the samples
        encoded in this call for that choice (by all ranks together).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    indices = np.asarray(indices, dtype=np.int64)
    labels = pool.labels[indices].astype(np.int64)
    keyed = [(c, *feature_key(c.fingerprint, preprocess.to_dict(), dataset_identity, indices)) for c in choices]
    ranges = [(s, min(s + shard_size(), len(indices))) for s in range(0, len(indices), shard_size())]
    options = dict(batch_size=batch_size, progress=progress, description=description, num_workers=num_workers,
                   report_every=report_every)
    with ExitStack() as locks:
        plan = None
        if dist.is_main:
            results = {c.key: hit for c, key, _ in keyed if (hit := cache.read(key, labels)) is not None}
            todo = [_Pending(c, key, material) for c, key, material in keyed if c.key not in results]
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
            plan = {p.key: sorted(cache.completed_shards(p.key)) for p in todo}
        # every rank works from rank 0's view of the cache, taken under its locks
        plan = dist.broadcast(plan)
        todo = [_Pending(c, key, material) for c, key, material in keyed if key in plan]
        if todo:
            done = {p.key: set(plan[p.key]) for p in todo}
            _encode_missing(encoder, preprocess, todo, done, pool, indices, ranges, cache, dist, options)
        dist.barrier()  # every rank's shards are on disk
        committed = _commit(todo, done if todo else {}, labels, ranges, cache, description) if dist.is_main and todo else {}
    dist.barrier()  # rank 0 has committed
    if dist.is_main:
        return {**results, **committed}
    out = {}
    for c, key, _ in keyed:
        hit = cache.read(key, labels)
        if hit is None:
            raise EvalbenchError(f"{description}: rank {dist.rank} cannot read cache entry {key[:12]} that rank 0 "
                                 "committed; do all ranks share the cache directory (--cache-dir)?")
        out[c.key] = hit
    return out


def shard_size() -> int:
    """Samples per shard: SHARD_SIZE, or $EVALBENCH_SHARD_SIZE (tests, tuning). Changing it only
    means an interrupted entry's finished shards are not reused."""
    return int(os.environ.get("EVALBENCH_SHARD_SIZE") or SHARD_SIZE)


def _encode_missing(encoder, preprocess, todo: list[_Pending], done: dict, pool, indices, ranges, cache: FeatureCache,
                    dist: DistContext, options: dict) -> None:
    """Encode this rank's shards that some pending choice lacks (resuming interrupted ones)."""
    needed = [r for r in dist.my_ranges(ranges) if any(r not in done[p.key] for p in todo)]
    total = sum(stop - start for start, stop in needed)
    progress, description = options["progress"], options["description"]
    if dist.active:
        description += f" [rank {dist.rank}/{dist.world_size}]"
    task_id = None
    if progress is not None:
        task_id = progress.add_task(description, total=total)
    ticker = PlainProgress(description, total, options["report_every"])

    def advance(n: int) -> None:
        if task_id is not None:
            progress.advance(task_id, n)
        ticker.advance(n)

    def on_shard(r: tuple[int, int], feats: dict) -> None:
        for p in todo:
            if r not in done[p.key]:
                cache.write_shard(p.key, r[0], r[1], feats[p.choice.key])

    _encode_ranges(encoder, preprocess, pool, indices, needed, [p.choice.key for p in todo], options["batch_size"],
                   advance, options["num_workers"], on_shard)
    ticker.finish()
    if task_id is not None:
        progress.update(task_id, visible=False)


def _commit(todo: list[_Pending], done: dict, labels, ranges, cache: FeatureCache,
            description: str) -> dict[Optional[str], CachedFeatures]:
    """Assemble and publish each pending entry from its shards (rank 0)."""
    out = {}
    for p in todo:
        entry = cache.commit(p.key, p.material, labels, ranges, {"encoder_name": p.choice.name})
        zero_rows = _zero_rows(entry.features)
        if zero_rows:
            log.warning("%s (%s): %d feature rows are all zero", description, p.choice.name, zero_rows)
        encoded = sum(stop - start for start, stop in ranges if (start, stop) not in done[p.key])
        out[p.choice.key] = CachedFeatures(entry.features, entry.labels, p.key, encoded)
    return out


def _zero_rows(features: np.ndarray) -> int:
    """All-zero rows, counted shard by shard: no temporary the size of the whole matrix."""
    step = shard_size()
    return sum(int((~features[s:s + step].any(axis=1)).sum()) for s in range(0, len(features), step))


class PlainProgress:
    """A plain progress line on stderr every `every` seconds (None: silent), for logs where no bar renders."""

    def __init__(self, description: str, total: int, every: Optional[float]):
        self.description, self.total, self.every = description, total, every
        self.done = 0
        self.t0 = self.last = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.every is not None and now - self.last >= self.every:
            self.last = now
            self._print(now)

    def finish(self) -> None:
        """A closing line for an extraction long enough to have reported (short ones stay quiet)."""
        if self.every is not None and self.total and self.last > self.t0:
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        elapsed = max(now - self.t0, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        print(f"{self.description}: {self.done}/{self.total} images, {rate:.1f}/s, elapsed {elapsed:.0f} s, "
              f"eta {eta:.0f} s", file=sys.stderr, flush=True)


def extract_one(encoder: Encoder, pool: ImagePool, indices: np.ndarray, dataset_identity: dict[str, Any],
                cache: FeatureCache, **options: Any) -> CachedFeatures:
    """The common case: one encoder, its own preprocessing, its only feature choice (`encode()`)."""
    choice = FeatureChoice(None, encoder.name, encoder.fingerprint())
    return extract_features(encoder, encoder.preprocess, [choice], pool, indices, dataset_identity, cache, **options)[None]
