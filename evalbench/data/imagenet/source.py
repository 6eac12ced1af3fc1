"""Source kind `imagenet`: a local ILSVRC-2012 copy (train, val) and the robustness test sets found beside it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ...errors import DataUnavailableError
from ..base import data_roots
from ..labelled import FileImagePool, content_digest
from .layout import EXPECTED, LAYOUT, ROOT_NAMES, Listing, find_root, list_imagenet
from .robustness import ROBUSTNESS_SETS, RobustnessListing, find_test_set, list_test_set

CLASS_INDEX = "sorted wnids (the standard ILSVRC-2012 order, 0..999)"


class ImageNet:
    """Source kind `imagenet`. Pools: train, val, and imagenet-v2, imagenet-sketch, imagenet-r, imagenet-a when
    their folders are under the ImageNet folder or a data root (see `layout` and `robustness`).

    Args:
        root: the ImageNet folder (default: looked for under --data-root / $EVALBENCH_DATA as imagenet/, ILSVRC2012/, ...).
        image_size: resize every image to N x N without crop when decoded (default: keep sizes; the encoder's own
            resize and crop apply).

    ImageNet-R and -A pools carry `class_subset`: the indices of their 200 classes, to which predictions are
    restricted. Labels are always in the full class space.
    """

    def __init__(self, data_root: Optional[str] = None, root: Optional[str] = None, image_size: Optional[int] = None,
                 **_: Any):
        self.data_root = data_root
        self.root_option = root
        self.image_size = image_size
        self._pools: Optional[dict[str, FileImagePool]] = None

    def find(self) -> tuple[Optional[Path], list[Path]]:
        return find_root(self.data_root, self.root_option)

    def locate(self) -> Optional[str]:
        root, _ = self.find()
        return str(root) if root else None

    def listing(self) -> Listing:
        """The train/val listing of the copy found.

        Raises:
            DataUnavailableError: no copy found (with where it was looked for), or a layout error.
        """
        root, looked = self.find()
        if root is None:
            if not looked:
                raise DataUnavailableError("ImageNet (ILSVRC-2012) is never downloaded: pass --data-root DIR (or set "
                                           f"$EVALBENCH_DATA) where DIR or DIR/imagenet holds it; expected {LAYOUT}")
            where = (f"{self.root_option}" if self.root_option else
                     f"{looked[-1]} and its folders {', '.join(n + '/' for n in ROOT_NAMES)}")
            raise DataUnavailableError(f"ImageNet (ILSVRC-2012) not found in {where}; expected {LAYOUT}; "
                                       "`evalbench data status imagenet --data-root DIR` shows what is found")
        return list_imagenet(root)

    def test_set_search(self, listing: Listing) -> list[Path]:
        """Where robustness test-set folders are looked for: the ImageNet folder, then the data roots."""
        return list(dict.fromkeys([listing.root, *data_roots(self.data_root)]))

    def robustness(self, listing: Listing) -> dict[str, RobustnessListing]:
        """The robustness test sets whose folders are present, listed against the copy's classes."""
        found = {}
        for test in ROBUSTNESS_SETS:
            folder = find_test_set(test, self.test_set_search(listing))
            if folder is not None:
                found[test.pool] = list_test_set(test, folder, tuple(listing.classes))
        return found

    def pool_names(self) -> list[str]:
        return list(self.load())

    def full_scale(self) -> dict[str, Any]:
        """The complete datasets' image counts per pool and ImageNet's class count: what `--dry-run` scales a
        partial copy (or a test fixture) to."""
        return {"pools": {**EXPECTED, **{t.pool: t.expected for t in ROBUSTNESS_SETS}}, "classes": 1000}

    def identity(self) -> dict[str, Any]:
        listing = self.listing()
        return {"source": "imagenet", "name": "ILSVRC-2012", "classes": listing.classes, "class_index": CLASS_INDEX,
                "image_size": self.image_size}

    def provenance(self) -> dict[str, Any]:
        """Where the copy is, its layout and counts, a digest of train + val and one per test set (not cache-key material).

        content_sha256 covers train and val only, which every ImageNet task reads: adding a test-set folder
        later does not invalidate their results.
        """
        pools = self.load()
        listing = self.listing()
        core = {k: pools[k] for k in ("train", "val")}
        tests = {k: {"sha256": p.digest(), "files": len(p), "location": str(self._robust[k].folder)}
                 for k, p in pools.items() if k not in core}
        return {"location": str(listing.root), "layout": listing.layout, "files": {k: len(v) for k, v in pools.items()},
                "content_sha256": content_digest(core), "test_pools": tests}

    def load(self) -> dict[str, FileImagePool]:
        if self._pools is None:
            listing = self.listing()
            self._robust = self.robustness(listing)
            pools = {name: _file_pool(listing, name, listing.pools[name], self.image_size) for name in listing.pools}
            for name, r in self._robust.items():
                pools[name] = _file_pool(r, name, (r.paths, r.names, r.labels, r.sizes), self.image_size,
                                         listing.classes, r.class_subset)
            self._pools = pools
        return self._pools


def _file_pool(owner, name: str, files: tuple, image_size: Optional[int], classes: Optional[list[str]] = None,
               class_subset=None) -> FileImagePool:
    """One pool of a (cached) listing, made once per process and image size: every ImageNet task of a run shares
    it, so 1.28M train files are digested once, not once per task."""
    made = owner.file_pools
    if (name, image_size) not in made:
        paths, names, labels, sizes = files
        pool = FileImagePool(paths, names, sizes, labels, classes or owner.classes, image_size)
        if class_subset is not None:
            pool.class_subset = class_subset  # predictions on this test set are restricted to these classes
        made[(name, image_size)] = pool
    return made[(name, image_size)]
