"""VTAB tasks rebuilt from their source datasets through torchvision, with seeded stratified 800/200 splits.

The official VTAB-1k slices depend on TFDS record order, so this route cannot reproduce them: its
results carry split_variant "source-stratified" and never share a leaderboard table with the export's.
Labels follow VTAB's definitions (evalbench.data.vtab.tasks). train800 is drawn from the source's
train pool and val200 from its val pool (or from the rest of train when there is none), both
stratified with the recorded seed; the score comes from the full source test split, or from a seeded
stratified 20% of the data for datasets without one. KITTI is the exception to per-image cuts: its
frames come from driving videos, so it is split by drive as TFDS does (kitti_video_split).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

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


#: The KITTI object devkit (same server as torchvision's Kitti files); its mapping/ folder says which
#: raw drive each training image comes from. torchvision's Kitti downloads images and labels only.
KITTI_DEVKIT_URL = "https://s3.eu-central-1.amazonaws.com/avg-kitti/devkit_object.zip"
KITTI_MAPPING = ("mapping/train_rand.txt", "mapping/train_mapping.txt")
#: TFDS kitti 3.1.0 (tensorflow_datasets/object_detection/kitti.py): share of videos in validation
#: and in test (each at least 1), drawn with numpy's legacy seed 123.
KITTI_SPLIT_PERCENT_VIDEOS = 10
KITTI_SPLIT_SEED = 123


def kitti_image_drives(train_rand: str, train_mapping: str) -> list[str]:
    """Drive (video) of each object-benchmark training image, indexed by image id (000123.png -> 123).

    train_rand.txt holds one comma-separated, 1-based line number of train_mapping.txt per image;
    a mapping line reads "2011_09_26 2011_09_26_drive_0005_sync 0000000109" (date, drive, frame).
    """
    lines = train_mapping.splitlines()
    ids = [int(x) - 1 for x in train_rand.replace("\n", ",").split(",") if x.strip()]
    return [lines[i].split(" ")[1] for i in ids]


def kitti_video_split(drives: Sequence[str]) -> dict[str, np.ndarray]:
    """TFDS kitti 3.1.0's train / validation / test cut by video (`_build_splits`), reproduced exactly.

    VTAB's KITTI-Dist (task_adaptation/data/kitti.py) reads those TFDS splits, so frames of one
    drive never sit on both sides of train and test. Of the sorted drive names, 10% (at least 1)
    go to test, then 10% of the rest to validation, chosen by numpy.random.choice without
    replacement after seed 123 (RandomState(123) gives the same draws).

    Args:
        drives: drive name of each image.
    Returns:
        {"train" | "val" | "test": sorted image positions}.
    """
    videos = sorted(set(drives))
    count = max(1, KITTI_SPLIT_PERCENT_VIDEOS * len(videos) // 100)
    rng = np.random.RandomState(KITTI_SPLIT_SEED)
    test = set(rng.choice(videos, count, replace=False).tolist())
    val = set(rng.choice(sorted(set(videos) - test), count, replace=False).tolist())
    side = np.array(["test" if d in test else "val" if d in val else "train" for d in drives])
    return {name: np.flatnonzero(side == name) for name in ("train", "val", "test")}


def _kitti_mapping_texts(raw: Path, download: bool) -> tuple[str, str]:
    """The devkit's two mapping files, from <raw>/devkit_object.zip or an extracted devkit_object/ or
    mapping/ folder; the zip is downloaded when allowed.

    Raises:
        DataUnavailableError: not found (no principled split by drive without them).
    """
    for folder in (raw / "devkit_object", raw):
        if all((folder / name).is_file() for name in KITTI_MAPPING):
            return tuple((folder / name).read_text() for name in KITTI_MAPPING)
    archive = raw / "devkit_object.zip"
    if not archive.is_file() and download:
        from torchvision.datasets.utils import download_url

        download_url(KITTI_DEVKIT_URL, str(raw))
    if archive.is_file():
        with zipfile.ZipFile(archive) as z:
            return tuple(z.read(name).decode() for name in KITTI_MAPPING)
    raise DataUnavailableError(
        f"VTAB task kitti: torchvision's Kitti has no drive ids, and VTAB splits KITTI by drive (TFDS kitti "
        f"3.1.0), never by frame; put the object devkit ({KITTI_DEVKIT_URL}: {', '.join(KITTI_MAPPING)}) in "
        f"{raw} as devkit_object.zip (`evalbench data prepare vtab` downloads it), or use the community "
        f"export <root>/vtab-1k/kitti")


def _kitti_labels(label_files: Sequence[str]) -> np.ndarray:
    types, depths = [], []
    for path in label_files:  # label files: type ... location x y z (columns 11-13), one object a line
        rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
        types.append([r[0] for r in rows])
        depths.append([float(r[13]) for r in rows])
    return kitti_dist_label(types, depths)


def _kitti(root, download):
    ds = _tv("Kitti")(root, train=True, download=download)
    mapping = _kitti_mapping_texts(Path(ds._raw_folder), download)
    # torchvision lists the image folder in os.listdir order; sort by file name (= image id)
    order = sorted(range(len(ds.images)), key=lambda i: Path(ds.images[i]).name)
    drive_of = kitti_image_drives(*mapping)
    ids = [int(Path(ds.images[i]).stem) for i in order]
    if max(ids, default=-1) >= len(drive_of):
        raise DataUnavailableError(f"VTAB task kitti: image {max(ids):06d}.png is not in the devkit's mapping "
                                   f"({len(drive_of)} images)")
    labels = _kitti_labels([ds.targets[i] for i in order])
    out = {}
    for pool, pos in kitti_video_split([drive_of[i] for i in ids]).items():
        members = [order[p] for p in pos]
        out[pool] = ((lambda j, m=members: ds[m[j]][0]), labels[pos])
    return out


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
SINGLE_POOL_PARTS = {"sun397": {"train": 0.8, "test": 0.2}, "eurosat": {"train": 0.6, "val": 0.2, "test": 0.2}}


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
        self._unusable = ""  # why data that is present cannot serve VTAB's definition (KITTI without the devkit)

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
        except DataUnavailableError as exc:  # present but unusable as VTAB defines the task: say why
            self._unusable = str(exc)
            return None
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
        if self._unusable:
            return self._unusable
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
