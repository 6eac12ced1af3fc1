"""Source kind `imagefolder`: labelled images in class folders (torchvision ImageFolder), with or without split folders.

Layouts:

    ROOT/<split>/<class>/<image>   split folders train, val (or valid, validation), test (or testing)
    ROOT/<class>/<image>           one pool, "all", that the task cuts (seeded, stratified, recorded)

As torchvision's ImageFolder: the class index is the position of the class-folder name in sorted
order, images are found recursively inside each class folder (links followed) by extension
(IMAGE_EXTENSIONS, any case) and ordered by (class, folder, file name). Unlike it, hidden entries
(.ipynb_checkpoints, .DS_Store, __MACOSX) are ignored, an empty class folder is an error, and the
split folders must hold the same classes.
"""
from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import DataUnavailableError
from .labelled import (IMAGE_EXTENSIONS, SPLIT_ORDER, FileImagePool, canonical_split, content_digest, file_sizes,
                       folder_class_order, hidden, resolve_location)

log = logging.getLogger("evalbench")

LAYOUT = ("ROOT/<split>/<class>/<image> (split folders train, val, test) or ROOT/<class>/<image> "
          "(one folder per class, images inside)")


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(e for e in folder.iterdir() if e.is_dir() and not hidden(e.name))
    except OSError as exc:
        raise DataUnavailableError(f"cannot list {folder} ({exc.strerror})") from None


def _images_in(class_dir: Path) -> list[Path]:
    """Image files under one class folder, in torchvision's order (sorted walk, sorted names)."""
    walked = []
    for here, dirs, files in os.walk(class_dir, followlinks=True):
        dirs[:] = [d for d in dirs if not hidden(d)]
        walked.append((here, files))
    return [Path(here) / f for here, files in sorted(walked) for f in sorted(files)
            if not hidden(f) and f.lower().endswith(IMAGE_EXTENSIONS)]


def _split_folders(root: Path, dirs: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in dirs:
        split = canonical_split(d.name)
        if split is None:
            continue
        if split in found:
            raise DataUnavailableError(f"{root}: both {found[split].name}/ and {d.name}/ are {split} folders; keep one")
        found[split] = d
    if found:
        other = [d.name for d in dirs if canonical_split(d.name) is None]
        if other:
            log.warning("%s: folders %s are not split folders (train, val, test) and are ignored", root, ", ".join(other))
        if "train" not in found:
            raise DataUnavailableError(f"{root}: split folders {', '.join(d.name for d in found.values())} but no train/; "
                                       f"expected {LAYOUT}")
    return dict(sorted(found.items(), key=lambda kv: SPLIT_ORDER.index(kv[0])))


def _check_same_classes(root: Path, per_split: dict[str, list[str]]) -> None:
    reference = set(per_split["train"])
    problems = []
    for split, names in per_split.items():
        lacks, extra = sorted(reference - set(names)), sorted(set(names) - reference)
        if lacks:
            problems.append(f"{split}/ lacks {', '.join(lacks)}")
        if extra:
            problems.append(f"{split}/ has {', '.join(extra)} that train/ lacks")
    if problems:
        raise DataUnavailableError(f"{root}: the split folders hold different classes: {'; '.join(problems)} "
                                   "(every split needs the same class folders)")


def _stamp(root: Path) -> tuple:
    """Modification times of ROOT and the folders two levels below it: they change when entries come or go."""
    out = []
    for d in [root, *(c for c in root.iterdir() if c.is_dir())] if root.is_dir() else []:
        out.append((str(d), d.stat().st_mtime_ns))
        if d != root:
            out += [(str(c), c.stat().st_mtime_ns) for c in d.iterdir() if c.is_dir()]
    return tuple(out)


def scan(root: Path) -> tuple[str, dict[str, tuple[list[Path], np.ndarray]], list[str]]:
    """(layout, {pool: (files, class position per file)}, classes) of an image folder; every layout error here.

    Listed once per process while the folders' modification times stay the same (the ad-hoc task and
    the run both ask); file sizes are read afresh on every load.
    """
    return _scan(root, _stamp(root))


@lru_cache(maxsize=8)
def _scan(root: Path, _stamp: tuple) -> tuple[str, dict[str, tuple[list[Path], np.ndarray]], list[str]]:
    if not root.is_dir():
        raise DataUnavailableError(f"{root} is not a folder; an image folder dataset is {LAYOUT}")
    dirs = _subdirs(root)
    splits = _split_folders(root, dirs)
    tops = splits or {"all": root}
    per_pool_classes = {pool: _subdirs(folder) for pool, folder in tops.items()}
    if not any(per_pool_classes.values()):
        raise DataUnavailableError(f"{root} holds no class folders; expected {LAYOUT}")
    empty, files = [], {}
    for pool, class_dirs in per_pool_classes.items():
        if not class_dirs:
            raise DataUnavailableError(f"{tops[pool]} holds no class folders; expected {LAYOUT}")
        files[pool] = {d.name: _images_in(d) for d in class_dirs}
        empty += [str(d.relative_to(root)) for d in class_dirs if not files[pool][d.name]]
    if empty:
        raise DataUnavailableError(f"{root}: class folders without images: {', '.join(empty[:10])}"
                                   f"{' ...' if len(empty) > 10 else ''} (image extensions: {' '.join(IMAGE_EXTENSIONS)})")
    if splits:
        _check_same_classes(root, {pool: list(by_class) for pool, by_class in files.items()})
    classes = folder_class_order(list(files[next(iter(files))]), str(root))
    pools = {}
    for pool, by_class in files.items():
        paths = [p for c in classes for p in by_class[c]]
        labels = np.concatenate([np.full(len(by_class[c]), i, dtype=np.int64) for i, c in enumerate(classes)])
        pools[pool] = (paths, labels)
    return ("splits" if splits else "single"), pools, classes


class ImageFolder:
    """Source kind `imagefolder`.

    Args:
        root: the dataset folder; a relative path is looked for under --data-root / $EVALBENCH_DATA, then here.
        image_size: resize every image to N x N without crop when decoded (default: keep each image's size).
    """

    def __init__(self, root: str, data_root: Optional[str] = None, image_size: Optional[int] = None, **_: Any):
        self.root_text = str(root)
        self.data_root = data_root
        self.image_size = image_size
        self._pools: Optional[dict[str, FileImagePool]] = None

    @property
    def root(self) -> Path:
        return resolve_location(self.root_text, self.data_root)

    def locate(self) -> Optional[str]:
        return str(self.root) if self.root.is_dir() else None

    def pool_names(self) -> list[str]:
        return list(scan(self.root)[1])

    def identity(self) -> dict[str, Any]:
        layout, _, classes = scan(self.root)
        return {"source": "imagefolder", "layout": layout, "classes": classes,
                "class_index": "sorted class-folder names (torchvision ImageFolder)", "image_size": self.image_size}

    def provenance(self) -> dict[str, Any]:
        """Where the data was read and a digest of its listing: recorded in results, not in cache keys."""
        pools = self.load()
        return {"location": str(self.root), "files": {k: len(v) for k, v in pools.items()},
                "content_sha256": content_digest(pools)}

    def load(self) -> dict[str, FileImagePool]:
        if self._pools is None:
            root = self.root
            if not root.exists():
                raise DataUnavailableError(f"image folder {self.root_text} not found ({root} does not exist)")
            _, listed, classes = scan(root)
            self._pools = {}
            for pool, (paths, labels) in listed.items():
                names = [p.relative_to(root).as_posix() for p in paths]
                self._pools[pool] = FileImagePool(paths, names, file_sizes(paths), labels, classes, self.image_size)
        return self._pools
