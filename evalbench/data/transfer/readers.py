"""Transfer datasets torchvision cannot read as Kornblith et al. defined them (or only after checksums of the
original archives): CIFAR, Birdsnap, SUN397 split 1, Caltech-101 with 102 classes, Flowers-102, VOC2007 classification."""
from __future__ import annotations

import hashlib
import io
import logging
import pickle
from pathlib import Path

import numpy as np

from ...errors import DataUnavailableError
from .listing import Arrays, Files, Listing, files

log = logging.getLogger("evalbench")


class _NumpyOnly(pickle.Unpickler):
    """Unpickles CIFAR's python batches (dicts of lists, bytes and numpy arrays) and nothing else: a pickle is
    code, and a data folder is not trusted to run any."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        return _NumpyOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataUnavailableError(f"{path}: not a readable CIFAR python batch ({exc}); re-extract it") from None


def _cifar_split(folder: Path, names: list[str], label_key: str) -> Arrays:
    images, labels = [], []
    for name in names:
        batch = _unpickle(folder / name)
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels += list(batch[label_key])
    pixels = np.ascontiguousarray(np.concatenate(images))
    return Arrays(pixels, np.asarray(labels, dtype=np.int64), hashlib.sha256(pixels.tobytes()).hexdigest())


def cifar10(root: Path) -> Listing:
    """cifar-10-batches-py/data_batch_1..5 (50,000 train) and test_batch (10,000), torchvision's layout."""
    folder = root / "cifar-10-batches-py"
    meta = _unpickle(folder / "batches.meta")
    return Listing([str(c) for c in meta["label_names"]],
                   {"train": _cifar_split(folder, [f"data_batch_{i}" for i in range(1, 6)], "labels"),
                    "test": _cifar_split(folder, ["test_batch"], "labels")})


def cifar100(root: Path) -> Listing:
    """cifar-100-python/train (50,000) and test (10,000), fine labels (100 classes), torchvision's layout."""
    folder = root / "cifar-100-python"
    meta = _unpickle(folder / "meta")
    return Listing([str(c) for c in meta["fine_label_names"]],
                   {"train": _cifar_split(folder, ["train"], "fine_labels"),
                    "test": _cifar_split(folder, ["test"], "fine_labels")})


def birdsnap(root: Path) -> Listing:
    """Birdsnap 1.1 (Berg et al. 2014) as its get_birdsnap.py leaves it: birdsnap/species.txt (500 species,
    tab-separated with a `dir` column), birdsnap/test_images.txt (the official 2,443 test images, one
    `<dir>/<file>` a line after a `path` header) and the downloaded birdsnap/download/images/<dir>/<file>.
    Train = every downloaded image not in the test list (many source URLs are dead, so copies differ;
    Kornblith et al. had 47,386 train images)."""
    base = root / "birdsnap"
    rows = [line.split("\t") for line in (base / "species.txt").read_text().splitlines() if line.strip()]
    header, rows = rows[0], rows[1:]
    if "dir" not in header or "id" not in header:
        raise DataUnavailableError(f"{base / 'species.txt'}: expected a tab-separated header with id and dir columns")
    rows.sort(key=lambda r: int(r[header.index("id")]))
    dirs = [r[header.index("dir")] for r in rows]
    test_list = [t.strip() for t in (base / "test_images.txt").read_text().splitlines()[1:] if t.strip()]
    test_set = set(test_list)
    images = base / "download" / "images"
    train_paths, train_labels, present = [], [], set()
    for label, d in enumerate(dirs):
        folder = images / d
        for f in sorted(folder.iterdir()) if folder.is_dir() else []:
            rel = f"{d}/{f.name}"
            if rel in test_set:
                present.add(rel)
            elif f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                train_paths.append(f)
                train_labels.append(label)
    by_dir = {d: i for i, d in enumerate(dirs)}
    test = [t for t in test_list if t in present]
    notes = [] if len(test) == len(test_list) else [f"{len(test_list) - len(test)} of {len(test_list)} listed test "
                                                    "images are not in this copy"]
    return Listing(dirs, {"train": files(train_paths, train_labels),
                          "test": files([images / t for t in test], [by_dir[t.split("/")[0]] for t in test])}, notes)


def _sun397_partition(base: Path, name: str) -> Path:
    for folder in (base, base / "Partitions", base.parent / "Partitions"):
        if (folder / name).is_file():
            return folder / name
    raise DataUnavailableError(f"SUN397: partition file {name} not found in {base} or {base / 'Partitions'} "
                               "(Partitions.zip from the SUN397 site)")


def sun397(root: Path) -> Listing:
    """SUN397 split 1 of the ten official partitions: Training_01.txt / Testing_01.txt (50 + 50 images per
    class, 19,850 each) over torchvision's SUN397 layout (SUN397/ClassName.txt, SUN397/a/abbey/*.jpg).
    Class order = ClassName.txt."""
    base = root / "SUN397"
    classes = [c.strip() for c in (base / "ClassName.txt").read_text().splitlines() if c.strip()]
    index = {c: i for i, c in enumerate(classes)}
    pools = {}
    for pool, name in (("train", "Training_01.txt"), ("test", "Testing_01.txt")):
        lines = [x.strip() for x in _sun397_partition(base, name).read_text().splitlines() if x.strip()]
        unknown = [x for x in lines if x.rsplit("/", 1)[0] not in index]
        if unknown:
            raise DataUnavailableError(f"SUN397 {name}: {unknown[0]} names a class missing from ClassName.txt")
        pools[pool] = files([base / x.lstrip("/") for x in lines], [index[x.rsplit("/", 1)[0]] for x in lines])
    return Listing([c.lstrip("/") for c in classes], pools)


#: TFDS caltech101 3.0.0 (tensorflow_datasets/image_classification/caltech.py): 30 images per class
#: to train, drawn with numpy's legacy seed 1234, the rest to test; 102 classes (with BACKGROUND_Google).
CALTECH_TRAIN_PER_CLASS = 30
CALTECH_SEED = 1234


def caltech101(root: Path) -> Listing:
    """Caltech-101 as TFDS (and so Kornblith et al.) splits it: the 102 folders of
    caltech101/101_ObjectCategories (torchvision's layout, BACKGROUND_Google included), classes in sorted
    lower-case order; per class in that order, numpy.random.RandomState(1234).choice(files, 30,
    replace=False) over the sorted file names is train, the rest test. TFDS walks the folders in
    listing order; this equals its split where the listing is sorted (as on GCS)."""
    base = root / "caltech101" / "101_ObjectCategories"
    dirs = sorted((d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    classes = sorted(d.name.lower() for d in dirs)
    rng = np.random.RandomState(CALTECH_SEED)
    split = {"train": ([], []), "test": ([], [])}
    for d in dirs:
        names = sorted(f.name for f in d.iterdir() if f.is_file())
        if len(names) < CALTECH_TRAIN_PER_CLASS:
            raise DataUnavailableError(f"Caltech-101 class {d.name} has {len(names)} images, fewer than "
                                       f"{CALTECH_TRAIN_PER_CLASS}")
        chosen = set(rng.choice(names, CALTECH_TRAIN_PER_CLASS, replace=False).tolist())
        for name in names:
            if name.endswith(".jpg"):  # TFDS keeps .jpg files only (case-sensitive)
                paths, labels = split["train" if name in chosen else "test"]
                paths.append(d / name)
                labels.append(classes.index(d.name.lower()))
    return Listing(classes, {k: files(*v) for k, v in split.items()})


def flowers102(root: Path) -> Listing:
    """Oxford Flowers-102 in torchvision's layout: flowers-102/setid.mat (trnid 1,020 / valid 1,020 /
    tstid 6,149), imagelabels.mat, jpg/image_NNNNN.jpg. Read here because torchvision checks the .mat
    files' MD5 against the originals."""
    from scipy.io import loadmat

    base = root / "flowers-102"
    labels = np.asarray(loadmat(base / "imagelabels.mat")["labels"]).ravel().astype(np.int64) - 1
    setid = loadmat(base / "setid.mat")
    pools = {}
    for pool, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        ids = np.asarray(setid[key]).ravel().astype(np.int64)
        pools[pool] = files([base / "jpg" / f"image_{i:05d}.jpg" for i in ids], labels[ids - 1])
    return Listing([str(i) for i in range(1, 103)], pools)


VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
#: VOC's classification ground truth values -> evalbench's multi-label entries (1 present, 0 absent,
#: -1 ignored): the devkit writes 0 for an image whose only objects of the class are "difficult".
VOC_VALUES = {"1": 1, "-1": 0, "0": -1}


def voc2007(root: Path) -> Listing:
    """PASCAL VOC2007 classification, torchvision's layout (VOCdevkit/VOC2007): the image lists
    ImageSets/Main/{train,val,test}.txt (2,501 / 2,510 / 4,952) and the per-class ground truth
    ImageSets/Main/<class>_<split>.txt; labels are (N, 20) multi-label entries."""
    base = root / "VOCdevkit" / "VOC2007"
    main = base / "ImageSets" / "Main"
    pools = {}
    for split in ("train", "val", "test"):
        ids = [x.strip() for x in (main / f"{split}.txt").read_text().splitlines() if x.strip()]
        Y = np.zeros((len(ids), len(VOC_CLASSES)), dtype=np.int64)
        row = {i: r for r, i in enumerate(ids)}
        for k, cls in enumerate(VOC_CLASSES):
            path = main / f"{cls}_{split}.txt"
            seen = 0
            for line in path.read_text().splitlines():
                parts = line.split()
                if not parts:
                    continue
                if parts[0] not in row or len(parts) != 2 or parts[1] not in VOC_VALUES:
                    raise DataUnavailableError(f"{path}: bad line {line!r} (expected `<image id> 1|-1|0` for an image "
                                               f"of {split}.txt)")
                Y[row[parts[0]], k] = VOC_VALUES[parts[1]]
                seen += 1
            if seen != len(ids):
                raise DataUnavailableError(f"{path}: {seen} images, {split}.txt lists {len(ids)}")
        pools[split] = Files([base / "JPEGImages" / f"{i}.jpg" for i in ids], Y)
    return Listing(list(VOC_CLASSES), pools)
