"""Where a local ILSVRC-2012 copy is, which layout it has, and its train and val files (listed once per process).

Layouts (ROOT = --data-root / $EVALBENCH_DATA, or the folder below it named imagenet, ILSVRC2012, ...):

    folders       ROOT/train/<wnid>/*.JPEG and ROOT/val/<wnid>/*.JPEG (the common extracted layout)
    torchvision   ROOT/meta.bin (torchvision's parsed devkit) with ROOT/train/<wnid>/ and ROOT/val/, where val/
                  is either sorted into <wnid>/ folders (what torchvision.datasets.ImageNet leaves) or flat
                  (ILSVRC2012_val_00000001.JPEG ... as the val archive unpacks)

With meta.bin and class folders, the files are listed by torchvision.datasets.ImageNet itself (it runs
offline when meta.bin and the split folder exist; evalbench never lets it unpack an archive). A flat
val/ is read here, labelled by meta.bin's val_wnids: torchvision's class only sorts val into class
folders while unpacking the val archive, and lists a val/ folder it finds with ImageFolder, which
needs class folders. Class index = position of the wnid in sorted order (0..999), in every layout.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import DataUnavailableError
from ..base import data_roots
from ..imagefolder import _images_in, _stamp, _subdirs
from ..labelled import IMAGE_EXTENSIONS, file_sizes, hidden, resolve_location

#: Folder names under a data root that may hold the ILSVRC-2012 copy, in search order (then the data root itself).
ROOT_NAMES = ("imagenet", "ILSVRC2012", "imagenet-1k", "imagenet1k", "ilsvrc2012", "ImageNet")
META_FILE = "meta.bin"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
EXPECTED = {"train": 1_281_167, "val": 50_000}
WNID = re.compile(r"n\d{8}")
VAL_FILE = re.compile(r"ILSVRC2012_val_(\d{8})\.JPEG", re.IGNORECASE)
LAYOUT = ("ROOT/train/<wnid>/*.JPEG + ROOT/val/<wnid>/*.JPEG, or torchvision's ROOT/meta.bin + train/<wnid>/ + val/ "
          "(class folders or flat); ROOT = --data-root or its folder imagenet/ (or ILSVRC2012/, imagenet-1k/)")


@dataclass
class Listing:
    """One listed copy: per pool (paths, canonical names, labels, byte sizes); class order = sorted wnids."""

    root: Path
    layout: str
    classes: list[str]
    pools: dict[str, tuple[list[str], list[str], np.ndarray, np.ndarray]]
    class_names: Optional[dict[str, tuple[str, ...]]] = None  # wnid -> names, from meta.bin
    notes: list[str] = field(default_factory=list)
    file_pools: dict = field(default_factory=dict)  # (pool, image size) -> FileImagePool, made once (source.load)


def _looks_like_imagenet(d: Path) -> bool:
    if (d / META_FILE).is_file():
        return True
    train = d / "train"
    if not train.is_dir():
        return False
    with os.scandir(train) as it:
        return any(e.is_dir() and WNID.fullmatch(e.name) for e in it)


def find_root(data_root: Optional[str], root: Optional[str] = None) -> tuple[Optional[Path], list[Path]]:
    """(the ImageNet folder or None, every folder looked at). `root` (a task option) pins it."""
    if root is not None:
        p = resolve_location(root, data_root)
        return (p if p.is_dir() else None), [p]
    looked = []
    for base in data_roots(data_root):
        for d in [base / n for n in ROOT_NAMES] + [base]:
            looked.append(d)
            if d.is_dir() and _looks_like_imagenet(d):
                return d, looked
    return None, looked


def _wnid_dirs(folder: Path) -> list[Path]:
    dirs = _subdirs(folder)
    bad = [d.name for d in dirs if not WNID.fullmatch(d.name)]
    if bad:
        raise DataUnavailableError(f"{folder}: folders {', '.join(bad[:5])} are not WordNet ids (n########); "
                                   f"expected {LAYOUT}")
    return dirs


def _read_meta(root: Path) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    from torchvision.datasets.imagenet import load_meta_file

    try:
        wnid_to_classes, val_wnids = load_meta_file(str(root))
    except Exception as exc:  # a damaged or foreign meta.bin: torch.load's many error types
        raise DataUnavailableError(f"{root / META_FILE}: not torchvision's ImageNet meta file ({exc}); delete it or "
                                   "re-create it from the devkit (torchvision.datasets.imagenet.parse_devkit_archive)") from None
    return dict(wnid_to_classes), list(val_wnids)


def _torchvision_split(root: Path, split: str) -> tuple[list[str], list[str], np.ndarray]:
    """(paths, wnids, labels) of a split folder listed by torchvision.datasets.ImageNet (meta.bin and folder present)."""
    from torchvision.datasets import ImageNet as TorchvisionImageNet

    try:
        ds = TorchvisionImageNet(str(root), split=split)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataUnavailableError(f"{root / split}: torchvision.datasets.ImageNet cannot list it ({exc})") from None
    return [p for p, _ in ds.samples], list(ds.wnids), np.asarray(ds.targets, dtype=np.int64)


def _folder_split(folder: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(paths, wnids, labels) of <split>/<wnid>/ folders, in torchvision ImageFolder's order."""
    dirs = _wnid_dirs(folder)
    paths, labels, empty = [], [], []
    for i, d in enumerate(dirs):
        files = _images_in(d)
        if not files:
            empty.append(d.name)
        paths += [str(p) for p in files]
        labels.append(np.full(len(files), i, dtype=np.int64))
    if empty:
        raise DataUnavailableError(f"{folder}: class folders without images: {', '.join(empty[:5])}"
                                   f"{' ...' if len(empty) > 5 else ''}")
    return paths, [d.name for d in dirs], np.concatenate(labels) if labels else np.zeros(0, np.int64)


def _flat_val(folder: Path, val_wnids: list[str], classes: list[str]) -> tuple[list[str], np.ndarray]:
    """(paths, labels) of a flat val/ folder, labelled by meta.bin's val_wnids, ordered by (class, file name)."""
    index = {w: i for i, w in enumerate(classes)}
    rows = []
    for name in sorted(os.listdir(folder)):
        if hidden(name) or not name.lower().endswith(IMAGE_EXTENSIONS):
            continue
        m = VAL_FILE.fullmatch(name)
        if m is None or not 1 <= int(m.group(1)) <= len(val_wnids):
            raise DataUnavailableError(f"{folder / name}: not an ILSVRC2012_val_NNNNNNNN.JPEG file that meta.bin labels "
                                       f"(it labels {len(val_wnids)} val images)")
        wnid = val_wnids[int(m.group(1)) - 1]
        if wnid not in index:
            raise DataUnavailableError(f"{folder / name}: meta.bin labels it {wnid}, which train/ has no folder for")
        rows.append((index[wnid], name))
    rows.sort()
    return [str(folder / n) for _, n in rows], np.asarray([c for c, _ in rows], dtype=np.int64)


def _has_class_folders(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(e.is_dir() and not hidden(e.name) for e in it)


def _canonical_names(pool: str, paths: list[str], labels: np.ndarray, classes: list[str]) -> list[str]:
    """<pool>/<wnid>/<file name>: the same images give the same names (so the same cache keys) in every layout."""
    return [f"{pool}/{classes[c]}/{os.path.basename(p)}" for p, c in zip(paths, labels.tolist(), strict=True)]


def _check_split_folders(root: Path) -> None:
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        archives = [a for a in ARCHIVES if (root / a).is_file()]
        fix = (f"unpack {', '.join(archives)} first (torchvision.datasets.ImageNet(ROOT, split=...) does it, in place)"
               if archives else f"expected {LAYOUT}")
        raise DataUnavailableError(f"ImageNet at {root}: no {' or '.join(s + '/' for s in missing)} folder; {fix}")


def list_imagenet(root: Path) -> Listing:
    """The train and val files of the copy at `root` (listed once per process while its folders are unchanged)."""
    return _list(root, _stamp(root))


@lru_cache(maxsize=2)
def _list(root: Path, _stamp_: tuple) -> Listing:
    _check_split_folders(root)
    has_meta = (root / META_FILE).is_file()
    val_foldered = _has_class_folders(root / "val")
    notes = []
    if has_meta:
        wnid_to_classes, val_wnids = _read_meta(root)
        train_paths, classes, train_labels = _torchvision_split(root, "train")
        if val_foldered:
            val_paths, val_classes, val_labels = _torchvision_split(root, "val")
            _same_classes(root, classes, val_classes)
        else:
            val_paths, val_labels = _flat_val(root / "val", val_wnids, classes)
            notes.append("val/ is flat: labels from meta.bin (the devkit's ground truth)")
        unknown = [w for w in classes if w not in wnid_to_classes]
        if unknown:
            raise DataUnavailableError(f"{root / 'train'}: {', '.join(unknown[:5])} are not ILSVRC-2012 classes in meta.bin")
        layout, names = "torchvision", wnid_to_classes
    else:
        if not val_foldered:
            devkit = (f"; {DEVKIT} is here: python -c \"from torchvision.datasets.imagenet import parse_devkit_archive; "
                      f"parse_devkit_archive('{root}')\" writes it") if (root / DEVKIT).is_file() else ""
            raise DataUnavailableError(f"{root / 'val'} has no class folders and there is no {META_FILE} to label its images: "
                                       f"sort val/ into <wnid>/ folders or add torchvision's {META_FILE}{devkit}")
        train_paths, classes, train_labels = _folder_split(root / "train")
        val_paths, val_classes, val_labels = _folder_split(root / "val")
        _same_classes(root, classes, val_classes)
        layout, names = "folders", None
    pools = {}
    for pool, paths, labels in (("train", train_paths, train_labels), ("val", val_paths, val_labels)):
        if not paths:
            raise DataUnavailableError(f"{root / pool} holds no images (extensions {' '.join(IMAGE_EXTENSIONS)})")
        pools[pool] = (paths, _canonical_names(pool, paths, labels, classes), labels, file_sizes(paths))
    return Listing(root, layout, classes, pools, names, notes)


def _same_classes(root: Path, train: list[str], val: list[str]) -> None:
    if train != val:
        lacks, extra = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        raise DataUnavailableError(f"ImageNet at {root}: train/ and val/ hold different classes (val/ lacks "
                                   f"{', '.join(lacks[:5]) or 'none'}; has {', '.join(extra[:5]) or 'none'} that train/ lacks)")
