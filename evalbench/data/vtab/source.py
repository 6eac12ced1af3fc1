"""VTAB tasks rebuilt from their source datasets through torchvision, with seeded stratified 800/200 splits.

The official VTAB-1k slices depend on TFDS record order, so this route cannot reproduce them: its
results carry split_variant "source-stratified" and never share a leaderboard table with the export's.
Labels follow VTAB's definitions (evalbench.data.vtab.tasks). train800 is drawn from the source's
train pool and val200 from its val pool (or from the rest of train when there is none), both
stratified with the recorded seed; the score comes from the full source test split, or from a seeded
stratified 20% of the data for datasets without one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ...errors import DataUnavailableError
from ..base import data_subroot
from ..imagefiles import IndexedPool
from ..splits import stratified_partition, stratified_sample
from .tasks import SOURCE_STRATIFIED, clevr_count_label, clevr_dist_label, kitti_dist_label, vtab_task

# A loader gets (root, download) and returns {pool: (get_image(i) -> PIL image, labels)} with pools
# "train" and "test", optionally "val"; or a single "all" pool that is partitioned here.
Loader = Callable[[str, bool], dict[str, tuple[Callable[[int], Any], np.ndarray]]]


def _tv(name: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, name)


def _image(ds) -> Callable[[int], Any]:
    return lambda i: ds[i][0]


def _cifar(root, download):
    out = {}
    for pool, train in (("train", True), ("test", False)):
        ds = _tv("CIFAR100")(root, train=train, download=download)
        out[pool] = (_image(ds), np.asarray(ds.targets))
    return out


def _splits(cls: str, mapping: dict[str, str], attr: str = "_labels", **kw) -> Loader:
    def load(root, download):
        out = {}
        for pool, split in mapping.items():
            ds = _tv(cls)(root, split=split, download=download, **kw)
            out[pool] = (_image(ds), np.asarray(getattr(ds, attr)))
        return out
    return load


def _single(cls: str, attr: str) -> Loader:
    def load(root, download):
        ds = _tv(cls)(root, download=download)
        return {"all": (_image(ds), np.asarray(getattr(ds, attr)))}
    return load


def _pcam(root, download):
    import h5py  # noqa: F401  (torchvision's PCAM needs it; fail here with its name)

    out = {}
    for pool, split in (("train", "train"), ("val", "val"), ("test", "test")):
        ds = _tv("PCAM")(root, split=split, download=download)
        with h5py.File(ds._base_folder / ds._FILES[split]["targets"][0]) as f:
            out[pool] = (_image(ds), np.asarray(f["y"][:, 0, 0, 0]))
    return out


def _clevr(task: str) -> Loader:
    def load(root, download):
        out = {}
        for pool, split in (("train", "train"), ("test", "val")):  # VTAB tests on CLEVR's validation split
            ds = _tv("CLEVRClassification")(root, split=split, download=download)
            if task == "clevr_count":
                labels = clevr_count_label(np.asarray(ds._labels))
            else:
                scenes = json.loads((ds._data_folder / "scenes" / f"CLEVR_{split}_scenes.json").read_text())["scenes"]
                depth = {s["image_filename"]: min(o["pixel_coords"][2] for o in s["objects"]) for s in scenes}
                labels = clevr_dist_label(np.asarray([depth[f.name] for f in ds._image_files]))
            out[pool] = (_image(ds), labels)
        return out
    return load


def _kitti(root, download):
    ds = _tv("Kitti")(root, train=True, download=download)
    types, depths = [], []
    for path in ds.targets:  # label files: type ... location x y z (columns 11-13), one object a line
        rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
        types.append([r[0] for r in rows])
        depths.append([float(r[13]) for r in rows])
    return {"all": (_image(ds), kitti_dist_label(types, depths))}


LOADERS: dict[str, Loader] = {
    "cifar": _cifar,
    "dtd": _splits("DTD", {"train": "train", "val": "val", "test": "test"}, partition=1),
    "oxford_flowers102": _splits("Flowers102", {"train": "train", "val": "val", "test": "test"}),
    "oxford_iiit_pet": _splits("OxfordIIITPet", {"train": "trainval", "test": "test"}),
    "svhn": _splits("SVHN", {"train": "train", "test": "test"}, attr="labels"),
    "sun397": _single("SUN397", "_labels"),
    "patch_camelyon": _pcam,
    "eurosat": _single("EuroSAT", "targets"),
    "clevr_count": _clevr("clevr_count"),
    "clevr_dist": _clevr("clevr_dist"),
    "kitti": _kitti,
}
SINGLE_POOL_PARTS = {"sun397": {"train": 0.8, "test": 0.2}, "eurosat": {"train": 0.6, "val": 0.2, "test": 0.2},
                     "kitti": {"train": 0.8, "test": 0.2}}


def source_root(data_root: Optional[str]) -> Optional[Path]:
    return data_subroot(data_root, "vtab-source")


def draw_1k(pools: dict[str, np.ndarray], seed: int, parts: Optional[dict] = None) -> dict[str, tuple[str, np.ndarray]]:
    """Stratified, seeded train800 / val200 / test index lists over the loader's pools.

    Args:
        pools: pool name -> labels ("train", "test", optional "val"; or a single "all").
        parts: fractions to partition a single "all" pool into train/(val)/test first.
    Returns:
        {"train800" | "val200" | "test": (pool name, sorted indices into that pool)}.
    """
    rng = np.random.default_rng(seed)
    if "all" in pools:
        cut = stratified_partition(pools["all"], parts, seed)
        named = {k: ("all", v) for k, v in cut.items()}
    else:
        named = {k: (k, np.arange(len(v))) for k, v in pools.items()}
    tr_pool, tr_idx = named["train"]
    pos = stratified_sample(pools[tr_pool][tr_idx], 800, rng)
    out = {"train800": (tr_pool, np.sort(tr_idx[pos]))}
    if "val" in named:
        va_pool, va_idx = named["val"]
    else:  # no val pool: val200 comes from the train samples that train800 did not take
        va_pool, va_idx = tr_pool, np.delete(tr_idx, pos)
    pos = stratified_sample(pools[va_pool][va_idx], 200, rng)
    out["val200"] = (va_pool, np.sort(va_idx[pos]))
    out["test"] = (named["test"][0], np.sort(named["test"][1]))
    return out


def pools_1k(loaded: dict, seed: int, parts, num_classes: int, image_size: Optional[int],
             ident: str) -> dict[str, IndexedPool]:
    """The VTAB-1k pools (train800, val200, ...) drawn by draw_1k from loaded {pool: (images, labels)}."""
    labels = {k: np.asarray(v[1], dtype=np.int64) for k, v in loaded.items()}
    chosen = draw_1k(labels, seed, parts)
    classes = [str(i) for i in range(num_classes)]
    return {name: IndexedPool(loaded[pool][0], idx, labels[pool][idx], classes, image_size, f"{ident}:{pool}")
            for name, (pool, idx) in chosen.items()}


_UNOPENED = object()


class VtabSource:
    """Source kind `vtab-source`: one VTAB task from its source dataset (torchvision), split variant source-stratified."""

    def __init__(self, task: str, data_root: Optional[str] = None, seed: int = 0, image_size: Optional[int] = 224,
                 download: bool = False, **_: Any):
        self.task = vtab_task(task)
        self.data_root, self.seed, self.image_size, self.download = data_root, int(seed), image_size, download
        self._here: Any = _UNOPENED  # the local dataset, opened once (CLEVR, KITTI, SUN397 read many files)

    @property
    def supported(self) -> bool:
        return self.task.folder in LOADERS

    def identity(self) -> dict[str, Any]:
        return {"source": "vtab-source", "name": self.task.folder, "split_variant": SOURCE_STRATIFIED,
                "seed": self.seed, "loader": self.task.source, "image_size": self.image_size}

    def _open(self, download: bool):
        root = source_root(self.data_root)
        if root is None or not self.supported:
            return None
        try:
            return LOADERS[self.task.folder](str(root), download)
        except Exception:  # torchvision raises RuntimeError/OSError/URLError/ImportError when files are absent or offline
            return None

    def _local(self):
        """The source dataset as found locally (opened at most once per object), or None."""
        if self._here is _UNOPENED:
            self._here = self._open(False)
        return self._here

    def locate(self) -> Optional[str]:
        return str(source_root(self.data_root)) if self._local() is not None else None

    def missing_message(self) -> str:
        if not self.supported:
            return f"VTAB task {self.task.folder}: no source-dataset route ({self.task.source})"
        where = source_root(self.data_root) or "<root>/vtab-source (no --data-root or $EVALBENCH_DATA given)"
        return (f"VTAB task {self.task.folder}: source dataset not found in {where} "
                f"({self.task.source}); run `evalbench data prepare vtab --root DIR`")

    def load(self) -> dict[str, IndexedPool]:
        loaded = self._local() or (self._open(True) if self.download else None)
        if loaded is None:
            raise DataUnavailableError(self.missing_message())
        return pools_1k(loaded, self.seed, SINGLE_POOL_PARTS.get(self.task.folder), self.task.num_classes,
                        self.image_size, f"vtab-source:{self.task.folder}")

    def prepare(self) -> str:
        """Download into <root>/vtab-source; a one-line outcome (never raises for network trouble)."""
        if not self.supported:
            return f"{self.task.folder}: manual step needed: {self.task.manual or self.task.source}"
        root = source_root(self.data_root)
        try:
            LOADERS[self.task.folder](str(root), True)
        except Exception as exc:  # offline, blocked, missing h5py, ...: report per dataset and go on
            return f"{self.task.folder}: download failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        return f"{self.task.folder}: ready in {root}"
