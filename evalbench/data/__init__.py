"""Dataset sources by kind; tasks name a kind and its options, the runner builds it here."""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError, UnknownNameError
from .base import DataSource, ImagePool
from .bundled import BundledArrays, SklearnDigits
from .filelist import FileList
from .hf import HfDataset
from .imagefolder import ImageFolder
from .imagenet import ImageNet
from .vtab.dsprites import Dsprites
from .idx import IdxDataset
from .transfer import Transfer
from .vtab import Vtab
from .vtab.export import Vtab1kExport
from .vtab.source import VtabSource

SOURCES = {
    "sklearn-digits": SklearnDigits,
    "bundled": BundledArrays,
    "idx": IdxDataset,
    "vtab": Vtab,                 # VTAB-1k: the first available of the three routes below
    "vtab-1k": Vtab1kExport,      # the community export (official train800/val200/test)
    "vtab-source": VtabSource,    # source datasets via torchvision, seeded stratified 800/200
    "dsprites": Dsprites,         # dSprites rendered in evalbench
    "imagefolder": ImageFolder,   # your own data: ROOT/<split>/<class>/<image> or ROOT/<class>/<image>
    "filelist": FileList,         # your own data: a CSV/TSV (path, label, split) or `path label` lines
    "hf": HfDataset,              # your own data: a Hugging Face datasets dataset (Hub, save_to_disk, builders)
    "transfer": Transfer,         # Kornblith et al. 2019 linear transfer suite (12 datasets, official splits)
    "imagenet": ImageNet,         # a local ILSVRC-2012 copy (+ ImageNet-V2, -Sketch, -R, -A beside it)
}


def make_source(kind: str, options: dict[str, Any], data_root: str | None = None) -> DataSource:
    """Instantiate the source `kind` with the task's options (and the user's --data-root)."""
    if kind not in SOURCES:
        raise UnknownNameError("dataset source", kind, SOURCES)
    try:
        return SOURCES[kind](data_root=data_root, **options)
    except TypeError as exc:
        raise ConfigError(f"dataset source {kind!r}: bad options {sorted(options)} ({exc})") from None


__all__ = ["DataSource", "ImagePool", "SOURCES", "make_source"]
