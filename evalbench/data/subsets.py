"""File-name lists that select a subset of a pool (the split key `subset`): shipped lists by name, or your own file."""
from __future__ import annotations

import gzip
import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ConfigError, DataUnavailableError

#: Lists shipped inside the package: name -> file under evalbench/data/ (attribution beside each file).
SHIPPED = {
    "simclr-1pct": "imagenet/subsets/simclr-1pct.txt.gz",    # SimCLR 1% of ImageNet-1k train (12,811 images)
    "simclr-10pct": "imagenet/subsets/simclr-10pct.txt.gz",  # SimCLR 10% (128,116 images)
}


def subset_file(subset: str, base: Optional[Path] = None) -> Path:
    """Where a subset list is: a shipped name, or a path (relative ones from `base`, the task file's folder)."""
    if subset in SHIPPED:
        return Path(str(resources.files("evalbench.data").joinpath(SHIPPED[subset])))
    path = Path(subset).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        raise ConfigError(f"subset {subset!r}: not a shipped list ({', '.join(SHIPPED)}) and no file {path}")
    return path


@lru_cache(maxsize=4)
def _read(path: Path, stamp: tuple) -> tuple[tuple[str, ...], str]:
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    # one file name per line; a path is reduced to its file name (pools are matched by file name)
    names = tuple(Path(line.strip()).name for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return names, hashlib.sha256(text.encode()).hexdigest()


def read_subset(subset: str, base: Optional[Path] = None) -> tuple[tuple[str, ...], str]:
    """(file names, SHA-256 of the list text) of a shipped list or a list file (plain or gzip; `#` comments)."""
    path = subset_file(subset, base)
    st = path.stat()
    names, digest = _read(path, (st.st_size, st.st_mtime_ns))
    if not names:
        raise ConfigError(f"subset {subset!r}: {path} lists no file names")
    dup = len(names) - len(set(names))
    if dup:
        raise ConfigError(f"subset {subset!r}: {path} names {dup} file(s) twice (first: {_first_duplicate(names)})")
    return names, digest


def _first_duplicate(names: tuple[str, ...]) -> str:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return ""


def subset_indices(pool, pool_name: str, subset: str, base: Optional[Path] = None) -> np.ndarray:
    """Sorted indices of the pool's files named by the list, matched by file name.

    Raises:
        ConfigError: the pool has no file names (an in-memory pool), or a listed name matches two files.
        DataUnavailableError: listed files missing from the pool, with how many and the first few.
    """
    names, _ = read_subset(subset, base)
    pool_names = getattr(pool, "names", None)
    if pool_names is None:
        raise ConfigError(f"subset {subset!r}: pool {pool_name!r} is not read from files, so it cannot be selected by file name")
    where: dict[str, int] = {}
    clash = None
    for i, n in enumerate(pool_names):
        base_name = n.rsplit("/", 1)[-1]
        if base_name in where:
            clash = clash or base_name
        where[base_name] = i
    missing = [n for n in names if n not in where]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise DataUnavailableError(
            f"subset {subset}: {len(missing)} of {len(names)} listed images are missing from pool {pool_name!r} "
            f"({shown}); the list names files of the complete dataset: restore them (re-extract the archive) or point "
            "--data-root at a complete copy")
    if clash is not None and clash in set(names):
        raise ConfigError(f"subset {subset!r}: file name {clash} occurs twice in pool {pool_name!r}; the list cannot tell which")
    return np.sort(np.fromiter((where[n] for n in names), dtype=np.int64, count=len(names)))
