"""Inspect and maintain a feature cache: list entries, sizes, verify checksums (and repair), prune."""
from __future__ import annotations

import fnmatch
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from filelock import Timeout

from .cache import FeatureCache, _parse_shard_name, file_checksum
from .errors import ConfigError


@dataclass(frozen=True)
class Item:
    """One thing under `features/`: a committed entry, an unfinished extraction, temporary debris or a lock file."""

    kind: str  # "entry" | "partial" | "debris" | "lock"
    key: str
    path: Path
    bytes: int
    mtime: float  # last use for entries (reads touch the directory), last write otherwise
    manifest: Optional[dict[str, Any]] = None

    @property
    def model(self) -> str:
        return str((self.manifest or {}).get("encoder_name", "?"))

    @property
    def dataset(self) -> str:
        ds = ((self.manifest or {}).get("key_material") or {}).get("dataset") or {}
        name = ds.get("name") or ds.get("source") or "?"
        return f"{name}/{ds['pool']}" if ds.get("pool") else str(name)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _classify(path: Path) -> tuple[str, str]:
    name = path.name
    if ".tmp-" in name:
        return "debris", name.split(".tmp-")[0]
    if name.endswith(".partial"):
        return "partial", name[: -len(".partial")]
    if name.endswith(".lock"):
        return "lock", name[: -len(".lock")]
    return "entry", name


def open_cache(cache_dir: Optional[str]) -> FeatureCache:
    """The cache at `cache_dir` (default location when None); a file there is an error."""
    cache = FeatureCache(cache_dir)
    if cache.root.exists() and not cache.root.is_dir():
        raise ConfigError(f"--cache-dir {cache.root} is a file, not a cache directory")
    return cache


def scan(cache: FeatureCache) -> list[Item]:
    """Everything in the cache, sorted by kind then last use (newest first)."""
    items = []
    if not cache.features_dir.is_dir():
        return items
    for path in sorted(cache.features_dir.glob("*/*")):
        kind, key = _classify(path)
        manifest = None
        if kind == "entry":
            try:
                manifest = json.loads((path / "manifest.json").read_text())
            except (OSError, ValueError):
                manifest = None
        try:
            items.append(Item(kind, key, path, _size(path), path.stat().st_mtime, manifest))
        except OSError:  # removed while scanning (another process committed or pruned it)
            continue
    return sorted(items, key=lambda i: (i.kind, -i.mtime))


def summary(items: list[Item]) -> dict[str, tuple[int, int]]:
    """{kind: (count, bytes)}."""
    out: dict[str, tuple[int, int]] = {}
    for i in items:
        n, b = out.get(i.kind, (0, 0))
        out[i.kind] = (n + 1, b + i.bytes)
    return out


def _locked(cache: FeatureCache, key: str):
    """The entry's lock taken without waiting, or None when a running process holds it."""
    lock = cache.lock(key, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


def verify(cache: FeatureCache, repair: bool = False) -> Iterator[tuple[Item, Optional[str], bool]]:
    """Check every entry (manifest, checksums, shapes, finite values) and every unfinished shard.

    Yields (item, problem or None, removed). With `repair`, damaged entries and shards and
    temporary debris are removed (the next run recomputes them); entries in use are skipped.
    """
    for item in scan(cache):
        if item.kind == "lock":
            continue
        problem = _problem(cache, item)
        removed = False
        if problem and repair:
            removed = _remove(cache, item)
        yield item, problem, removed


def _problem(cache: FeatureCache, item: Item) -> Optional[str]:
    if item.kind == "debris":
        return "temporary files of an interrupted write"
    if item.kind == "partial":
        bad = [p.name for p in sorted(item.path.glob("shard-*.npy"))
               if (parsed := _parse_shard_name(p)) is None or file_checksum(p) != parsed[2]]
        return f"damaged shards: {', '.join(bad[:3])}" if bad else None
    if not (item.path / "manifest.json").is_file():
        return "no manifest (never completed)"
    return cache.inspect(item.key)[0]


def _remove(cache: FeatureCache, item: Item) -> bool:
    lock = _locked(cache, item.key)
    if lock is None:
        return False
    try:
        if item.kind == "partial":
            for p in item.path.glob("shard-*.npy"):
                parsed = _parse_shard_name(p)
                if parsed is None or file_checksum(p) != parsed[2]:
                    p.unlink(missing_ok=True)
        elif item.path.is_dir():
            shutil.rmtree(item.path, ignore_errors=True)
        else:
            item.path.unlink(missing_ok=True)
    finally:
        lock.release()
    return True


def select(items: list[Item], older_than_days: Optional[float], model: Optional[str], partial: bool,
           everything: bool) -> list[Item]:
    """What `cache prune` removes: always debris and orphaned lock files; entries by age and/or model name (all with
    `everything`); unfinished extractions with `partial` (they hold finished shards a rerun would resume from)."""
    now = time.time()
    live = {i.key for i in items if i.kind in ("entry", "partial")}
    chosen = []
    for i in items:
        if i.kind == "debris" or (i.kind == "lock" and i.key not in live):
            chosen.append(i)
        elif i.kind == "partial":
            if everything or partial:
                chosen.append(i)
        elif i.kind == "entry":
            old = older_than_days is not None and now - i.mtime > older_than_days * 86400
            named = model is not None and fnmatch.fnmatchcase(i.model, model)
            if everything or (old and model is None) or (named and older_than_days is None) or (old and named):
                chosen.append(i)
    return chosen


def prune(cache: FeatureCache, chosen: list[Item]) -> tuple[list[Item], list[Item]]:
    """Remove the chosen items (with their lock files) unless a running process holds them: (removed, in use)."""
    removed, busy = [], []
    for item in chosen:
        lock = _locked(cache, item.key)
        if lock is None:
            busy.append(item)
            continue
        try:
            if item.path.is_dir():
                shutil.rmtree(item.path, ignore_errors=True)
            else:
                item.path.unlink(missing_ok=True)
            if not cache.entry_dir(item.key).exists() and not cache.partial_dir(item.key).exists():
                # a process already waiting on this file still ends up consistent: every write is atomic
                cache.lock_path(item.key).unlink(missing_ok=True)
        finally:
            lock.release()
        removed.append(item)
    return removed, busy
