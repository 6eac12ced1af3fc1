"""Source kind `transfer`: one dataset of the Kornblith et al. linear transfer suite, with its official splits and
the val split that chooses C (official, or a seeded stratified hold-out of train)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ...errors import DataUnavailableError
from ..base import data_roots
from ..imagefiles import IndexedPool
from ..labelled import FileImagePool, content_digest, file_sizes
from ..splits import stratified_sample
from .catalog import HOLDOUT_SEED, TransferDataset, transfer_dataset
from .listing import Arrays, Files, Listing

log = logging.getLogger("evalbench")

#: Sub-folder of a data root that holds the suite (downloads go there); the root itself is searched too,
#: so a folder of torchvision datasets can be used as it is.
SUBDIR = "transfer"


def search_roots(data_root: Optional[str]) -> list[Path]:
    """<root>/transfer, then <root>, for --data-root and $EVALBENCH_DATA in that order."""
    return [p for r in data_roots(data_root) for p in (r / SUBDIR, r)]


def download_root(data_root: Optional[str]) -> Optional[Path]:
    roots = data_roots(data_root)
    return roots[0] / SUBDIR if roots else None


def hold_out(train: Union[Files, Arrays], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train positions, val positions): a stratified `fraction` of the official train split, sorted."""
    labels = train.labels
    val = stratified_sample(labels, int(round(fraction * len(labels))), np.random.default_rng(seed))
    return np.setdiff1d(np.arange(len(labels)), val), val


class Transfer:
    """Source kind `transfer`: pools train / val / test of one suite dataset (evalbench.data.transfer.catalog).

    Args:
        dataset: the catalog key (food101, cifar10, ..., voc2007).
        download: fetch it with torchvision into <first data root>/transfer when it is not found (only
            where torchvision can; `evalbench data prepare transfer` does the same up front).
    """

    def __init__(self, dataset: str, data_root: Optional[str] = None, download: bool = False, **_: Any):
        self.spec: TransferDataset = transfer_dataset(dataset)
        self.data_root, self.download = data_root, bool(download)
        self._pools: Optional[dict[str, Any]] = None
        self._listing: Optional[Listing] = None
        self._where: Optional[Path] = None

    def _root(self) -> Optional[Path]:
        for root in search_roots(self.data_root):
            if all((root / rel).exists() for rel in self.spec.needs):
                return root
        return None

    def locate(self) -> Optional[str]:
        root = self._root()
        return None if root is None else str(root)

    def pool_names(self) -> list[str]:
        return ["train", "val", "test"]

    def identity(self) -> dict[str, Any]:
        """Facts that name the data in cache keys (the pools' digests add the files and labels)."""
        s = self.spec
        return {"source": "transfer", "name": s.key,
                "holdout": None if s.holdout is None else {"fraction": round(s.holdout, 6), "seed": HOLDOUT_SEED,
                                                           "stratified": True},
                "multilabel": s.multilabel}

    def provenance(self) -> dict[str, Any]:
        """Where the data was read, the split definitions in words, image counts and a digest of the listing
        (recorded in results, not in cache keys: rewording a definition must not invalidate features)."""
        pools = self.load()
        return {"location": str(self._where), "train": self.spec.train, "val": self.spec.val, "test": self.spec.test,
                "files": {k: len(v) for k, v in pools.items()}, "content_sha256": content_digest(pools),
                "notes": list(self._listing.notes)}

    def missing_message(self) -> str:
        roots = search_roots(self.data_root)
        if not roots:
            return (f"transfer dataset {self.spec.key} ({self.spec.title}): no --data-root or $EVALBENCH_DATA given; "
                    f"it needs {', '.join(self.spec.needs)} under DIR/{SUBDIR} or DIR")
        best = roots[0]
        missing = [rel for rel in self.spec.needs if not (best / rel).exists()]
        where = " or ".join(str(r) for r in roots)
        get = ("`evalbench data prepare transfer --root DIR` downloads it" if self.spec.can_download
               else f"get it by hand: {self.spec.download}")
        return (f"transfer dataset {self.spec.key} ({self.spec.title}) not found in {where}: missing "
                f"{', '.join(missing)} under {best}; {get}")

    def _read(self) -> Listing:
        root = self._root()
        if root is None and self.download and self.spec.can_download:
            target = download_root(self.data_root)
            if target is not None:
                from .tvreaders import download

                try:
                    download(self.spec.key, target)
                except Exception as exc:  # offline, blocked, gone: report the dataset as missing, with the reason
                    raise DataUnavailableError(f"{self.missing_message()} (download failed: {type(exc).__name__})") from None
                root = self._root()
        if root is None:
            raise DataUnavailableError(self.missing_message())
        self._where = root
        try:
            return self.spec.reader(root)
        except DataUnavailableError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, IndexError) as exc:  # torchvision / scipy on bad files
            raise DataUnavailableError(f"transfer dataset {self.spec.key}: cannot read {root} ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''}); check the layout "
                                       f"({', '.join(self.spec.needs)})") from None

    def load(self) -> dict[str, Any]:
        """{"train", "val", "test"}: lazily decoded pools (image files) or CIFAR's arrays.

        Raises:
            DataUnavailableError: not found (one line listing the missing files), or unreadable.
        """
        if self._pools is None:
            listing = self._listing = self._read()
            for note in listing.notes:
                log.warning("transfer dataset %s: %s", self.spec.key, note)
            parts = dict(listing.pools)
            if "val" not in parts:
                train = parts["train"]
                fit, val = hold_out(train, self.spec.holdout, HOLDOUT_SEED)
                parts = {"train": _subset(train, fit), "val": _subset(train, val), "test": parts["test"]}
            self._pools = {name: self._pool(name, part, listing.classes) for name, part in parts.items()}
        return self._pools

    def _pool(self, name: str, part: Union[Files, Arrays], classes: list[str]):
        if isinstance(part, Arrays):
            from PIL import Image

            images = part.images
            return IndexedPool(lambda i: Image.fromarray(images[i]), np.arange(len(images)), part.labels, classes,
                               None, f"transfer:{self.spec.key}:{name}:{part.digest}")
        names = [p.relative_to(self._where).as_posix() for p in part.paths]
        return FileImagePool(part.paths, names, file_sizes(part.paths), part.labels, classes, None,
                             where=lambda i, paths=part.paths: f"transfer dataset {self.spec.key} {name} image {paths[i]}")


def _subset(part: Union[Files, Arrays], idx: np.ndarray) -> Union[Files, Arrays]:
    if isinstance(part, Arrays):
        import hashlib

        images = np.ascontiguousarray(part.images[idx])
        return Arrays(images, part.labels[idx], hashlib.sha256(images.tobytes()).hexdigest())
    return Files([part.paths[i] for i in idx], part.labels[idx])
