"""Seeded, stratified sample selection: the exact index lists that define every split."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ConfigError
from .subsets import subset_indices


def stratified_sample(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of `size` samples whose class proportions follow `labels` (largest remainder)."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    if not 0 < size <= n:
        raise ConfigError(f"cannot draw {size} samples from {n}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (size / n)
    take = np.floor(exact).astype(int)
    # hand the leftover samples to the classes with the largest fractional parts (ties: class order)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: size - take.sum()]] += 1
    chosen = []
    for cls, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == cls)
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


def stratified_partition(labels: np.ndarray, sizes: dict[str, float | int], seed: int) -> dict[str, np.ndarray]:
    """Split all samples into disjoint named parts of the given sizes (fractions summing to 1, or counts).

    Parts are drawn in the order given, each stratified on what remains; the last part takes
    exactly what is left when fractions are used.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    names = list(sizes)
    values = [sizes[k] for k in names]
    if all(isinstance(v, float) for v in values):
        if abs(sum(values) - 1.0) > 1e-6:
            raise ConfigError(f"split fractions must sum to 1, got {values}")
        counts = [int(round(v * n)) for v in values[:-1]]
        counts.append(n - sum(counts))
    else:
        counts = [int(v) for v in values]
        if sum(counts) > n:
            raise ConfigError(f"split sizes {dict(zip(names, counts, strict=True))} need {sum(counts)} samples; only {n} exist")
    rng = np.random.default_rng(seed)
    remaining = np.arange(n)
    parts = {}
    for name, count in zip(names, counts, strict=True):
        if count == len(remaining):
            pos = np.arange(len(remaining))
        else:
            pos = stratified_sample(labels[remaining], count, rng)
        parts[name] = remaining[pos]
        remaining = np.delete(remaining, pos)
    return parts


def resolve_splits(splits: dict, pools: dict, where: str) -> dict[str, tuple[str, np.ndarray]]:
    """Turn a task's `splits` block into {split: (pool name, sorted sample indices)}.

    A split is a whole pool, a seeded stratified sample of it (`size`, `seed`), the files a list
    names (`subset`: a shipped list such as simclr-1pct, or a file), or a partition of one pool.

    Raises:
        ConfigError: a split names a pool the source does not have, or asks for too many samples.
        DataUnavailableError: files a `subset` list names are missing from the pool.
    """
    def pool_of(name: str):
        if name not in pools:
            raise ConfigError(f"{where}: pool {name!r} not provided by the dataset (it has {', '.join(pools)})")
        return pools[name]

    if "partition" in splits:
        part = splits["partition"]
        pool = pool_of(part["pool"])
        parts = stratified_partition(pool.labels, part["sizes"], int(part.get("seed", 0)))
        return {name: (part["pool"], np.sort(idx)) for name, idx in parts.items()}
    # a relative subset list is read from the task file's folder
    base = Path(where).parent if Path(where).is_file() else None
    return {name: (spec["pool"], _indices(spec, pool_of(spec["pool"]), base)) for name, spec in splits.items()}


def _indices(spec: dict, pool, base: Optional[Path] = None) -> np.ndarray:
    """The sample indices one split spec ({pool, size?, seed?} or {pool, subset}) takes from its pool."""
    if spec.get("subset") is not None:
        return subset_indices(pool, spec["pool"], str(spec["subset"]), base)
    if spec.get("size") is None:
        return np.arange(len(pool))
    return stratified_sample(pool.labels, int(spec["size"]), np.random.default_rng(int(spec.get("seed", 0))))


def resolve_test_sets(test_sets: dict, pools: dict) -> tuple[dict[str, tuple[str, np.ndarray]], list[str]]:
    """A task's extra test sets whose pools the data provides, as {name: (pool, indices)}, and the names of
    those it does not (their folders are absent: they are skipped, not an error)."""
    found, absent = {}, []
    for name, spec in test_sets.items():
        if spec["pool"] in pools:
            found[name] = (spec["pool"], _indices(spec, pools[spec["pool"]]))
        else:
            absent.append(name)
    return found, absent
