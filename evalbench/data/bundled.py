"""Datasets that ship with evalbench or scikit-learn, so the quick suite never downloads anything."""
from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from ..errors import DataUnavailableError, UnknownNameError
from .base import ImagePool

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
BUNDLED = {
    # name -> (file in evalbench/data/bundled, class names, attribution)
    "fashion-mnist-mini": ("fashion_mnist_mini.npz", FASHION_CLASSES,
                           "Fashion-MNIST, Zalando Research (MIT license), arXiv:1708.07747; stratified subset"),
}


class SklearnDigits:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 16 grey levels scaled to 0-255)."""

    def __init__(self, **_: Any):
        pass

    def identity(self) -> dict[str, Any]:
        import sklearn

        return {"source": "sklearn-digits", "name": "digits", "origin": f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})"}

    def locate(self) -> str:
        return "bundled with scikit-learn"

    def load(self) -> dict[str, ImagePool]:
        from sklearn.datasets import load_digits

        d = load_digits()
        # values are 0..16; scale to the full uint8 range so preprocessing sees ordinary images
        images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
        return {"all": ImagePool(images, d.target.astype(np.int64), [str(c) for c in d.target_names])}


class BundledArrays:
    """A compressed array file inside the evalbench package (pools named in the file)."""

    def __init__(self, name: str, **_: Any):
        if name not in BUNDLED:
            raise UnknownNameError("bundled dataset", name, BUNDLED)
        self.name = name
        self.filename, self.classes, self.attribution = BUNDLED[name]

    def _path(self):
        return resources.files("evalbench.data").joinpath("bundled", self.filename)

    def identity(self) -> dict[str, Any]:
        return {"source": "bundled", "name": self.name, "file": self.filename, "attribution": self.attribution}

    def locate(self) -> str | None:
        p = self._path()
        return str(p) if p.is_file() else None

    def load(self) -> dict[str, ImagePool]:
        if self.locate() is None:
            raise DataUnavailableError(f"bundled file {self.filename} is missing from the evalbench package; reinstall evalbench")
        with self._path().open("rb") as f, np.load(f, allow_pickle=False) as z:
            pools = sorted({k.split("_", 1)[0] for k in z.files if k.endswith("_images")})
            return {p: ImagePool(z[f"{p}_images"], z[f"{p}_labels"].astype(np.int64), self.classes) for p in pools}
