"""The feature cache: content-addressed keys, resumable sharded writes, atomic commits, verified reads."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from filelock import FileLock

from .errors import EvalbenchError

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
LOCK_TIMEOUT_S = 6 * 3600  # a concurrent run extracting the same entry may take long; flock dies with its process


def default_cache_dir() -> Path:
    """$EVALBENCH_HOME/cache, else $XDG_CACHE_HOME/evalbench, else ~/.cache/evalbench."""
    if os.environ.get("EVALBENCH_HOME"):
        return Path(os.environ["EVALBENCH_HOME"]).expanduser() / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "evalbench"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def indices_digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()


def feature_key(encoder_fingerprint: dict, preprocess: dict, dataset: dict, indices: np.ndarray) -> tuple[str, dict]:
    """The cache key and the material it hashes: everything that changes a feature value."""
    material = {
        "format_version": CACHE_FORMAT_VERSION,
        "encoder": encoder_fingerprint,
        "preprocess": preprocess,
        "dataset": dataset,
        "count": int(len(indices)),
        "indices_sha256": indices_digest(indices),
    }
    return hashlib.sha256(canonical_json(material).encode()).hexdigest(), material


@dataclass(frozen=True)
class CachedFeatures:
    features: np.ndarray  # (N, D) float32, memory-mapped read-only
    labels: np.ndarray  # (N,) int64
    key: str
    extracted: int  # samples encoded in this call (0 on a cache hit)


def _write_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FeatureCache:
    """Features on disk under `root/features/<key[:2]>/<key>/` as .npy files plus manifest.json.

    An entry directory only ever appears complete: it is assembled under a temporary name and
    renamed into place. Work in progress lives in `<key>.partial/` as index-range shards, so an
    interrupted extraction resumes where it stopped.
    """

    def __init__(self, root: Optional[Path | str] = None):
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.features_dir = self.root / "features"

    def entry_dir(self, key: str) -> Path:
        return self.features_dir / key[:2] / key

    def partial_dir(self, key: str) -> Path:
        return self.features_dir / key[:2] / f"{key}.partial"

    def lock(self, key: str) -> FileLock:
        path = self.features_dir / key[:2] / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path), timeout=LOCK_TIMEOUT_S)

    def read(self, key: str, expected_labels: np.ndarray) -> Optional[CachedFeatures]:
        """The entry if present and sound; a damaged or mismatching entry is removed and reads as a miss."""
        entry = self.entry_dir(key)
        manifest_path = entry / "manifest.json"
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            features = np.load(entry / "features.npy", mmap_mode="r", allow_pickle=False)
            labels = np.load(entry / "labels.npy", allow_pickle=False)
            problem = None
            if manifest.get("key") != key:
                problem = "manifest key differs"
            elif features.shape != tuple(manifest["shape"]) or str(features.dtype) != manifest["dtype"]:
                problem = f"features are {features.shape} {features.dtype}, manifest says {manifest['shape']} {manifest['dtype']}"
            elif labels.shape[0] != features.shape[0] or not np.array_equal(labels, expected_labels):
                problem = "labels differ from the dataset's"
            elif not np.isfinite(features).all():
                problem = "features contain NaN or inf"
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        if problem:
            log.warning("cache entry %s is damaged (%s); recomputing it", entry, problem)
            shutil.rmtree(entry, ignore_errors=True)
            return None
        return CachedFeatures(features, labels, key, extracted=0)

    def completed_shards(self, key: str) -> dict[tuple[int, int], Path]:
        """Finished shards of an interrupted extraction, by (start, stop) sample range."""
        part = self.partial_dir(key)
        shards = {}
        if part.is_dir():
            for p in part.glob("shard-*.npy"):
                _, start, stop = p.stem.split("-")
                shards[(int(start), int(stop))] = p
        return shards

    def write_shard(self, key: str, start: int, stop: int, features: np.ndarray) -> Path:
        part = self.partial_dir(key)
        part.mkdir(parents=True, exist_ok=True)
        path = part / f"shard-{start:09d}-{stop:09d}.npy"
        _write_npy_atomic(path, np.ascontiguousarray(features, dtype=np.float32))
        return path

    def commit(self, key: str, material: dict, labels: np.ndarray, shard_ranges: list[tuple[int, int]], extra: dict) -> CachedFeatures:
        """Assemble the shards into one entry, streaming (one shard in memory at a time), and publish it atomically."""
        shards = self.completed_shards(key)
        missing = [r for r in shard_ranges if r not in shards]
        if missing:
            raise EvalbenchError(f"cache entry {key[:12]}: shards {missing[:3]} are missing; rerun to extract them")
        first = np.load(shards[shard_ranges[0]], mmap_mode="r")
        n, dim = int(labels.shape[0]), int(first.shape[1])
        final = self.entry_dir(key)
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        out = np.lib.format.open_memmap(tmp / "features.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        for start, stop in shard_ranges:
            out[start:stop] = np.load(shards[(start, stop)], allow_pickle=False)
        out.flush()
        del out
        _write_npy_atomic(tmp / "labels.npy", labels.astype(np.int64))
        manifest = {"key": key, "shape": [n, dim], "dtype": "float32", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "key_material": material, **extra}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        if (final / "manifest.json").is_file():  # another process won the race with identical content; keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(final, ignore_errors=True)  # leftovers of an entry that never completed
            os.replace(tmp, final)
        shutil.rmtree(self.partial_dir(key), ignore_errors=True)
        cached = self.read(key, labels)
        if cached is None:
            raise EvalbenchError(f"cache entry {final} failed verification right after writing; is the disk full?")
        return cached
