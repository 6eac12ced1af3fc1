"""The MNIST family in IDX files (Fashion-MNIST, MNIST), found locally or downloaded by torchvision."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import DataUnavailableError, UnknownNameError
from .base import ImagePool, data_roots
from .bundled import FASHION_CLASSES

DATASETS = {
    # name -> (torchvision class, folder names we look for, Debian package path, class names)
    "fashion-mnist": ("FashionMNIST", ("fashion-mnist", "FashionMNIST/raw", "FashionMNIST"),
                      "/usr/share/datasets/fashion-mnist", FASHION_CLASSES),
    "mnist": ("MNIST", ("mnist", "MNIST/raw", "MNIST"), None, [str(i) for i in range(10)]),
}
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataUnavailableError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataUnavailableError(f"{path} is truncated: header says {shape}, found {body.size} values")
    return body.reshape(shape)


def _find(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


class IdxDataset:
    """An MNIST-family dataset: official train (60,000) and test (10,000) pools.

    Looked for, in order: `data_root` (the --data-root option), $EVALBENCH_DATA, the Debian package
    path; otherwise torchvision downloads it into the first writable of those roots when `download`.
    """

    def __init__(self, name: str, data_root: Optional[str] = None, download: bool = True, **_: Any):
        if name not in DATASETS:
            raise UnknownNameError("IDX dataset", name, DATASETS)
        self.name = name
        self.tv_class, self.folders, self.system_path, self.classes = DATASETS[name]
        self.data_root = data_root
        self.download = download

    def _roots(self) -> list[Path]:
        return data_roots(self.data_root)

    def _candidates(self) -> list[Path]:
        out = []
        for root in self._roots():
            out += [root] + [root / f for f in self.folders]
        if self.system_path:
            out.append(Path(self.system_path))
        return out

    def locate(self) -> Optional[str]:
        for folder in self._candidates():
            if all(_find(folder, stem) for pair in FILES.values() for stem in pair):
                return str(folder)
        return None

    def identity(self) -> dict[str, Any]:
        return {"source": "idx", "name": self.name}

    def _download(self) -> Optional[str]:
        import torchvision

        target = self._roots()[0] if self._roots() else Path.home() / ".cache" / "evalbench" / "data"
        try:
            getattr(torchvision.datasets, self.tv_class)(str(target), train=True, download=True)
            getattr(torchvision.datasets, self.tv_class)(str(target), train=False, download=True)
        except Exception:  # offline or blocked: report every way to get the data instead
            return None
        return self.locate() or str(target / self.tv_class / "raw")

    def load(self) -> dict[str, ImagePool]:
        folder = self.locate() or (self._download() if self.download else None)
        if folder is None:
            places = ", ".join(str(p) for p in self._candidates()) or "(none given)"
            apt = " or `apt-get install dataset-fashion-mnist`" if self.name == "fashion-mnist" else ""
            raise DataUnavailableError(
                f"dataset {self.name} not found (looked in {places}) and could not be downloaded; "
                f"pass --data-root DIR holding {FILES['train'][0]}[.gz] and the other IDX files, set $EVALBENCH_DATA{apt}"
            )
        pools = {}
        for split, (img_stem, lbl_stem) in FILES.items():
            images = read_idx(_find(Path(folder), img_stem))
            labels = read_idx(_find(Path(folder), lbl_stem)).astype(np.int64)
            if images.shape[0] != labels.shape[0]:
                raise DataUnavailableError(f"{folder}: {split} has {images.shape[0]} images but {labels.shape[0]} labels")
            pools[split] = ImagePool(images, labels, self.classes)
        return pools
