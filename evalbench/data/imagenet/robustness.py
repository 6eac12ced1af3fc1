"""The ImageNet robustness test sets (ImageNet-V2, -Sketch, -R, -A): where their folders are and their files, labelled in
ImageNet's class space, with the class subset a classifier is restricted to on ImageNet-R and -A."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import DataUnavailableError
from ..imagefolder import _images_in, _stamp, _subdirs
from ..labelled import file_sizes


@dataclass(frozen=True)
class RobustnessSet:
    """One robustness test set: its pool name, the folder names it is found under, its size, how folders name classes."""

    pool: str
    folders: tuple[str, ...]
    expected: int
    folder_is: str  # "wnid": class folders named by wnid; "index": by class index 0..999 (ImageNetV2)
    wnid_list: Optional[str] = None  # shipped list of the classes it covers (evalbench/data/imagenet/wnids/)
    reference: str = ""


ROBUSTNESS_SETS = (
    RobustnessSet("imagenet-v2", ("imagenetv2-matched-frequency-format-val", "ImageNetV2-matched-frequency",
                            "imagenetv2-matched-frequency", "imagenet-v2"), 10_000, "index",
            reference="Recht et al. 2019, MatchedFrequency (imagenetv2-b-33); folders 0..999 are class indices"),
    RobustnessSet("imagenet-sketch", ("sketch", "imagenet-sketch", "ImageNet-Sketch"), 50_889, "wnid",
            reference="Wang et al. 2019, ImageNet-Sketch"),
    RobustnessSet("imagenet-r", ("imagenet-r",), 30_000, "wnid", "imagenet-r.txt",
            reference="Hendrycks et al. 2021, ImageNet-R (200 classes)"),
    RobustnessSet("imagenet-a", ("imagenet-a",), 7_500, "wnid", "imagenet-a.txt",
            reference="Hendrycks et al. 2021, ImageNet-A (200 classes)"),
)
BY_POOL = {t.pool: t for t in ROBUSTNESS_SETS}


def shipped_wnids(name: str) -> list[str]:
    """A shipped class list (imagenet-r.txt, imagenet-a.txt): one wnid per line."""
    text = resources.files("evalbench.data.imagenet").joinpath("wnids", name).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def find_test_set(test: RobustnessSet, search: list[Path]) -> Optional[Path]:
    """The first folder named as the test set's under any of `search` (the ImageNet folder, then the data roots)."""
    for base in search:
        for name in test.folders:
            if (base / name).is_dir():
                return base / name
    return None


@dataclass
class RobustnessListing:
    """A test set's files: paths, canonical names, labels in ImageNet's class space, byte sizes, class subset."""

    folder: Path
    paths: list[str]
    names: list[str]
    labels: np.ndarray
    sizes: np.ndarray
    class_subset: Optional[np.ndarray]
    covered: int  # class folders found
    file_pools: dict = field(default_factory=dict)  # (pool, image size) -> FileImagePool, made once (source.load)


def list_test_set(test: RobustnessSet, folder: Path, classes: tuple[str, ...]) -> RobustnessListing:
    """List a test set's folder against the ImageNet classes (listed once per process while unchanged).

    Raises:
        DataUnavailableError: a class folder that is not an ImageNet class (or not one the set covers),
            an empty class folder.
    """
    return _list(test, folder, classes, _stamp(folder))


@lru_cache(maxsize=8)
def _list(test: RobustnessSet, folder: Path, classes: tuple[str, ...], _stamp_: tuple) -> RobustnessListing:
    index = {w: i for i, w in enumerate(classes)}
    dirs = _subdirs(folder)
    if test.folder_is == "index":
        bad = [d.name for d in dirs if not (d.name.isdigit() and int(d.name) < len(classes))]
        if bad:
            raise DataUnavailableError(f"{folder}: folders {', '.join(bad[:5])} are not class indices 0..{len(classes) - 1} "
                                       f"({test.pool} names its class folders by ImageNet class index)")
        labelled = sorted((int(d.name), d) for d in dirs)
    else:
        allowed = set(shipped_wnids(test.wnid_list)) if test.wnid_list else set(classes)
        bad = [d.name for d in dirs if d.name not in index or d.name not in allowed]
        if bad:
            what = f"one of {test.pool}'s {len(allowed)} classes" if test.wnid_list else "an ImageNet class of this copy"
            raise DataUnavailableError(f"{folder}: class folders {', '.join(bad[:5])} are not {what}")
        labelled = sorted((index[d.name], d) for d in dirs)
    if not labelled:
        raise DataUnavailableError(f"{folder} holds no class folders; expected {folder}/<{test.folder_is}>/<image>")
    paths, names, labels, empty = [], [], [], []
    for label, d in labelled:
        files = _images_in(d)
        if not files:
            empty.append(d.name)
        paths += [str(p) for p in files]
        names += [f"{test.pool}/{d.name}/{p.name}" for p in files]
        labels.append(np.full(len(files), label, dtype=np.int64))
    if empty:
        raise DataUnavailableError(f"{folder}: class folders without images: {', '.join(empty[:5])}")
    subset = None
    if test.wnid_list:
        subset = np.asarray(sorted(index[w] for w in shipped_wnids(test.wnid_list) if w in index), dtype=np.int64)
    return RobustnessListing(folder, paths, names, np.concatenate(labels), file_sizes(paths), subset, len(labelled))
