"""The feature cache: content-addressed keys, checksummed resumable shards, atomic commits, verified reads."""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import xxhash
from filelock import FileLock

from .errors import ConfigError, EvalbenchError, disk_full, is_no_space

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
LOCK_TIMEOUT_S = 6 * 3600  # a concurrent run extracting the same entry may take long; flock dies with its process
CHECKSUM = "xxh3_128"  # ~8 GB/s on one core: verifying every read costs a few ms per 50 MB (blake2b: ~0.6 GB/s)
_CHUNK = 4 << 20
_SPACE_MARGIN = 1 << 20  # file-system metadata and rounding on top of the payload


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


def file_checksum(path: Path | str) -> str:
    """The xxh3-128 hex digest of a file's bytes, read in chunks."""
    h = xxhash.xxh3_128()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def probe_writable(directory: Path | str, option: str) -> Path:
    """Check, before any work starts, that `directory` can be written: a probe file is written and removed in it, or
    in its nearest existing parent when it does not exist yet (nothing is created: a refused run leaves no trace).

    Raises:
        ConfigError: a file stands where the directory (or one of its parents) should be, or it cannot be written.
    """
    directory = Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{option} {directory} is a file, not a directory; pass a directory (it is created if missing)")
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"{option} {directory} cannot be created: {existing} is a file; pass a path under a directory")
    if existing is None:
        return directory
    probe = existing / f".evalbench-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as exc:
        how = "is not writable" if existing == directory else f"cannot be created in {existing}"
        raise ConfigError(f"{option} {directory} {how} ({exc.strerror or type(exc).__name__}); pass a directory you "
                          "can write to, or fix its permissions") from None
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    return directory


def _ensure_space(directory: Path, needed: int, what: str) -> None:
    """Refuse a write that cannot fit before starting it (a write that fails half-way wastes the work before it)."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if free < needed + _SPACE_MARGIN:
        raise disk_full(directory, needed, what, free)


def write_atomic(path: Path, chunks: Iterable[bytes], size: int, what: str, check_space: bool = True) -> str:
    """Write `chunks` to a temporary name, fsync, rename into place; returns the checksum of what was written.

    A failure (a full disk included) removes the temporary file and leaves `path` as it was.
    `check_space` refuses up front when the payload and a 1 MiB margin do not fit (cache entries,
    which are large); small files (result records) skip it and rely on the write's own error.
    """
    where = path.parent.parent if ".tmp-" in path.parent.name else path.parent  # name no directory that will vanish
    if check_space:
        _ensure_space(where, size, what)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    h = xxhash.xxh3_128()
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                h.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if is_no_space(exc):
            raise disk_full(where, size, what) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return h.hexdigest()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
    return buf.getvalue()


#: A temporary file older than this is debris of a killed process; a younger one may be another
#: rank's write in progress (torchrun ranks write shards of one entry side by side, on other hosts too)
DEBRIS_AGE_S = 600


def _stale(paths: Iterable[Path]) -> list[Path]:
    now = time.time()
    out = []
    for p in paths:
        try:
            if now - p.stat().st_mtime > DEBRIS_AGE_S:
                out.append(p)
        except FileNotFoundError:
            pass  # its writer renamed or removed it meanwhile
    return out


def _remove_debris(paths: Iterable[Path]) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


@dataclass(frozen=True)
class CachedFeatures:
    features: np.ndarray  # (N, D) float32, memory-mapped read-only
    labels: np.ndarray  # (N,) int64
    key: str
    extracted: int  # samples encoded in this call (0 on a cache hit)


class FeatureCache:
    """Features on disk under `root/features/<key[:2]>/<key>/` as .npy files plus manifest.json.

    An entry directory only ever appears complete: it is assembled under a temporary name and
    renamed into place; its manifest records an xxh3-128 checksum of each file, verified on every
    read. Work in progress lives in `<key>.partial/` as index-range shards whose names carry their
    own checksum, so an interrupted extraction resumes where it stopped and never trusts a damaged
    shard. Writes of an entry happen under its lock, so any temporary file of that entry found then is
    debris of a killed process and is removed.
    """

    verify_checksums = True  # the benchmark in benchmarks/bench_cache_verify.py turns it off to measure the cost

    def __init__(self, root: Optional[Path | str] = None):
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.features_dir = self.root / "features"

    def entry_dir(self, key: str) -> Path:
        return self.features_dir / key[:2] / key

    def partial_dir(self, key: str) -> Path:
        return self.features_dir / key[:2] / f"{key}.partial"

    def lock_path(self, key: str) -> Path:
        return self.features_dir / key[:2] / f"{key}.lock"

    def lock(self, key: str, timeout: Optional[float] = None) -> FileLock:
        """The entry's inter-process lock (flock: released by the kernel when its holder dies, even by kill -9)."""
        path = self.lock_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path), timeout=LOCK_TIMEOUT_S if timeout is None else timeout)

    def check_writable(self) -> None:
        """Fail now, naming the directory, if the cache cannot be written (before a model is loaded)."""
        probe_writable(self.root, "--cache-dir")

    # reading

    def inspect(self, key: str, expected_labels: Optional[np.ndarray] = None) -> tuple[Optional[str], Any]:
        """(problem, (features, labels, manifest)): problem is None for a sound entry, else what is wrong."""
        entry = self.entry_dir(key)
        try:
            manifest = json.loads((entry / "manifest.json").read_text())
            problem = _manifest_problem(manifest, key) or (self._checksum_problem(entry, manifest) if self.verify_checksums else None)
            if problem:
                return problem, None
            features = np.load(entry / "features.npy", mmap_mode="r", allow_pickle=False)
            labels = np.load(entry / "labels.npy", allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            return f"unreadable ({type(exc).__name__}: {exc})", None
        return _content_problem(manifest, features, labels, expected_labels), (features, labels, manifest)

    @staticmethod
    def _checksum_problem(entry: Path, manifest: dict) -> Optional[str]:
        sums = manifest["checksums"]
        for name in ("features.npy", "labels.npy"):
            if file_checksum(entry / name) != sums.get(name):
                return f"{name} changed since it was written ({CHECKSUM} checksum mismatch)"
        return None

    def read(self, key: str, expected_labels: np.ndarray) -> Optional[CachedFeatures]:
        """The entry if present and sound; a damaged or mismatching entry is removed and reads as a miss."""
        entry = self.entry_dir(key)
        if not (entry / "manifest.json").is_file():
            return None
        problem, arrays = self.inspect(key, expected_labels)
        if problem:
            log.warning("cache entry %s is damaged (%s); recomputing it", entry, problem)
            shutil.rmtree(entry, ignore_errors=True)
            return None
        try:
            os.utime(entry)  # last use, for `evalbench cache prune --older-than`
        except OSError:
            pass
        return CachedFeatures(arrays[0], arrays[1], key, extracted=0)

    # writing (callers hold the entry's lock)

    def completed_shards(self, key: str, verify: bool = True) -> dict[tuple[int, int], Path]:
        """Finished shards of an interrupted extraction, by (start, stop) sample range.

        With `verify`, a shard whose bytes no longer match the checksum in its name is removed (it
        is extracted again) rather than used.
        """
        part = self.partial_dir(key)
        shards = {}
        if part.is_dir():
            for p in sorted(part.glob("shard-*.npy")):
                parsed = _parse_shard_name(p)
                if parsed is None:
                    continue  # a shard of an older format: extracted again
                start, stop, checksum = parsed
                if verify and file_checksum(p) != checksum:
                    log.warning("cache shard %s is damaged (checksum mismatch); extracting it again", p)
                    p.unlink(missing_ok=True)
                    continue
                shards[(start, stop)] = p
        return shards

    def write_shard(self, key: str, start: int, stop: int, features: np.ndarray) -> Path:
        part = self.partial_dir(key)
        part.mkdir(parents=True, exist_ok=True)
        _remove_debris(_stale(part.glob("*.tmp-*")))
        blob = _npy_bytes(np.ascontiguousarray(features, dtype=np.float32))
        checksum = xxhash.xxh3_128(blob).hexdigest()
        path = part / f"shard-{start:09d}-{stop:09d}-{checksum}.npy"
        try:
            write_atomic(path, [blob], len(blob), f"feature shard {start}-{stop} of entry {key[:12]}")
        except BaseException:
            if part.is_dir() and not any(part.iterdir()):
                part.rmdir()  # nothing finished yet: leave no empty directory behind
            raise
        return path

    def commit(self, key: str, material: dict, labels: np.ndarray, shard_ranges: list[tuple[int, int]], extra: dict) -> CachedFeatures:
        """Assemble the shards into one entry, streaming (one shard in memory at a time), and publish it atomically.

        Plain writes, not a memory map: a full disk is then an error (ENOSPC) rather than SIGBUS.
        """
        shards = self.completed_shards(key, verify=False)  # verified as they are read below
        missing = [r for r in shard_ranges if r not in shards]
        if missing:
            raise EvalbenchError(f"cache entry {key[:12]}: shards {missing[:3]} are missing; rerun to extract them")
        dim = int(np.load(shards[shard_ranges[0]], mmap_mode="r").shape[1])
        n = int(labels.shape[0])
        final = self.entry_dir(key)
        _remove_debris(final.parent.glob(f"{key}.tmp-*"))
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True)
        try:
            header = _npy_header((n, dim), np.float32)
            what = f"cache entry {key[:12]} ({n} x {dim} features)"
            sums = {"algorithm": CHECKSUM,
                    "features.npy": write_atomic(tmp / "features.npy", self._stream(header, shards, shard_ranges, dim),
                                                  len(header) + 4 * n * dim, what)}
            blob = _npy_bytes(labels.astype(np.int64))
            sums["labels.npy"] = write_atomic(tmp / "labels.npy", [blob], len(blob), what)
            manifest = {"key": key, "shape": [n, dim], "dtype": "float32", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "checksums": sums, "key_material": material, **extra}
            text = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
            write_atomic(tmp / "manifest.json", [text], len(text), what)
            if (final / "manifest.json").is_file():  # another process won the race with identical content; keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(final, ignore_errors=True)  # leftovers of an entry that never completed
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # the shards stay: a rerun resumes from them
            raise
        shutil.rmtree(self.partial_dir(key), ignore_errors=True)
        cached = self.read(key, labels)
        if cached is None:
            raise EvalbenchError(f"cache entry {final} failed verification right after writing; check the disk "
                                 "(`evalbench cache verify`) and rerun")
        return cached

    @staticmethod
    def _stream(header: bytes, shards: dict[tuple[int, int], Path], ranges: list[tuple[int, int]], dim: int):
        """The entry's bytes: the .npy header, then each shard's rows, each shard checked against its checksum."""
        yield header
        for start, stop in ranges:
            path = shards[(start, stop)]
            blob = path.read_bytes()
            if xxhash.xxh3_128(blob).hexdigest() != _parse_shard_name(path)[2]:
                path.unlink(missing_ok=True)
                raise EvalbenchError(f"cache shard {path} changed on disk during extraction (checksum mismatch) and was "
                                     "removed; rerun to extract it again")
            rows = np.load(io.BytesIO(blob), allow_pickle=False)
            if rows.shape != (stop - start, dim) or rows.dtype != np.float32:
                raise EvalbenchError(f"cache shard {path} holds {rows.shape} {rows.dtype}, expected ({stop - start}, {dim}) float32")
            yield rows.tobytes()


def _parse_shard_name(path: Path) -> Optional[tuple[int, int, str]]:
    parts = path.stem.split("-")
    if len(parts) != 4 or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2]), parts[3]


def _manifest_problem(manifest: Any, key: str) -> Optional[str]:
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return "manifest key differs"
    sums = manifest.get("checksums")
    if not isinstance(sums, dict) or sums.get("algorithm") != CHECKSUM:
        return "no checksums in the manifest (written by an older evalbench)"
    return None


def _content_problem(manifest: dict, features: np.ndarray, labels: np.ndarray,
                     expected_labels: Optional[np.ndarray]) -> Optional[str]:
    if features.shape != tuple(manifest["shape"]) or str(features.dtype) != manifest["dtype"]:
        return f"features are {features.shape} {features.dtype}, manifest says {manifest['shape']} {manifest['dtype']}"
    if labels.shape[0] != features.shape[0]:
        return f"{labels.shape[0]} labels for {features.shape[0]} feature rows"
    if expected_labels is not None and not np.array_equal(labels, expected_labels):
        return "labels differ from the dataset's"
    if not np.isfinite(features).all():
        return "features contain NaN or inf"
    return None
