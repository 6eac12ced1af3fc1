"""The community VTAB-1k export (VPT, NOAH, SSF, ...): a folder per task with list files and images.

Layout (written by ZhangYuanhan-AI/NOAH `data/vtab-source/get_vtab1k.py`, read by NOAH `lib/datasets.py`):

    <root>/vtab-1k/<task>/train800.txt        800 lines "images/train800/000000.jpg <label>"
    <root>/vtab-1k/<task>/val200.txt          200 lines "images/val200/000000.jpg <label>"
    <root>/vtab-1k/<task>/train800val200.txt  1000 lines (the two above; its own copies of the images)
    <root>/vtab-1k/<task>/test.txt            the full VTAB test split
    <root>/vtab-1k/<task>/images/<split>/...  image files; list paths are relative to <task>/

`<root>` is --data-root or $EVALBENCH_DATA; the `vtab-1k/` level may be left out.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...errors import DataUnavailableError
from ..base import data_roots
from ..imagefiles import FilePool
from .tasks import OFFICIAL, vtab_task

LISTS = {"train800": 800, "val200": 200, "test": None}  # list file -> required line count
LAYOUT = "<root>/vtab-1k/<task>/{train800,val200,train800val200,test}.txt with lines '<relative image path> <label>'"


def export_roots(data_root: Optional[str]) -> list[Path]:
    """Folders that may hold the export's task folders, in search order."""
    return [p for r in data_roots(data_root) for p in (r / "vtab-1k", r)]


def read_list(path: Path, num_classes: int) -> tuple[list[Path], np.ndarray, bytes]:
    """Parse one list file: image paths (relative to its folder) and integer labels, checked."""
    text = path.read_bytes()
    paths, labels = [], []
    for n, line in enumerate(text.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)  # rsplit: image names may contain spaces, labels never do
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataUnavailableError(f"{path}:{n}: expected '<image path> <integer label>', got {line.strip()!r}")
        label = int(parts[1])
        if not 0 <= label < num_classes:
            raise DataUnavailableError(f"{path}:{n}: label {label} outside [0, {num_classes}) for this task")
        paths.append(path.parent / parts[0])
        labels.append(label)
    return paths, np.asarray(labels, dtype=np.int64), text


class Vtab1kExport:
    """One task of the community VTAB-1k export: pools train800, val200 and test (the official slices)."""

    def __init__(self, task: str, data_root: Optional[str] = None, image_size: Optional[int] = 224, **_: Any):
        self.task = vtab_task(task)
        self.data_root = data_root
        self.image_size = image_size

    def locate(self) -> Optional[str]:
        for root in export_roots(self.data_root):
            folder = root / self.task.folder
            if all((folder / f"{name}.txt").is_file() for name in LISTS):
                return str(folder)
        return None

    def identity(self) -> dict[str, Any]:
        return {"source": "vtab-1k", "name": self.task.folder, "split_variant": OFFICIAL,
                "image_size": self.image_size, "layout": "NOAH/VPT community export"}

    def missing_message(self) -> str:
        looked = ", ".join(str(r / self.task.folder) for r in export_roots(self.data_root)) or "(no --data-root or $EVALBENCH_DATA given)"
        return (f"VTAB-1k task {self.task.folder}: community export not found (looked in {looked}); expected {LAYOUT}; "
                f"`evalbench data prepare vtab --root DIR` explains how to get it")

    def load(self) -> dict[str, FilePool]:
        folder = self.locate()
        if folder is None:
            raise DataUnavailableError(self.missing_message())
        folder = Path(folder)
        classes = [str(i) for i in range(self.task.num_classes)]
        pools = {}
        for name, expected in LISTS.items():
            paths, labels, text = read_list(folder / f"{name}.txt", self.task.num_classes)
            if expected is not None and len(paths) != expected:
                raise DataUnavailableError(f"{folder / (name + '.txt')} lists {len(paths)} images; VTAB-1k's {name} has {expected}")
            if not paths:
                raise DataUnavailableError(f"{folder / (name + '.txt')} lists no images")
            pools[name] = FilePool(paths, labels, classes, self.image_size, identity_text=hashlib.sha256(text).digest())
        self._check_union(folder, pools)
        return pools

    def _check_union(self, folder: Path, pools: dict[str, FilePool]) -> None:
        """train800val200 must hold the labels of train800 then val200 (it has its own image copies)."""
        path = folder / "train800val200.txt"
        if not path.is_file():
            return  # some copies omit it; train800 + val200 carry the same samples
        _, labels, _ = read_list(path, self.task.num_classes)
        both = np.concatenate([pools["train800"].labels, pools["val200"].labels])
        if len(labels) != 1000 or not np.array_equal(np.sort(labels), np.sort(both)):
            raise DataUnavailableError(f"{path} does not match train800.txt + val200.txt (1000 labels expected); the export is inconsistent")
