"""Source kind `hf`: a Hugging Face `datasets` dataset (Hub id, a save_to_disk folder, or local files through a builder).

    dataset: {source: hf, id: food101}                                  Hub id (config, revision optional)
    dataset: {source: hf, path: /data/flowers_saved}                    a folder written by save_to_disk
    dataset: {source: hf, path: /data/flowers, builder: imagefolder}    local files through a datasets builder

The image column is the first `Image` feature and the label column the first `ClassLabel` (else a
column named label, labels, class or target), unless given. ClassLabel names are the classes in their
own order; plain integer labels are classes in numeric order, strings in sorted order (recorded).
Split names map to train / val / test (validation, valid, dev -> val); a split whose labels are all
-1 (unlabelled, as some test splits) is left out with a warning. HF_DATASETS_OFFLINE / HF_HUB_OFFLINE
(or an unreachable Hub) mean the local cache only.
The data's identity is the Hub id (or builder), config, revision and each split's `datasets`
fingerprint, never the image bytes.
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigError, DataUnavailableError
from .imagefiles import DECODE_POLICY, to_rgb_array
from .labelled import SPLIT_ORDER, canonical_split, content_digest, label_order, resolve_location
from .ragged import stack_or_ragged

log = logging.getLogger("evalbench")

BUILDERS = ("imagefolder", "parquet", "arrow", "webdataset", "csv", "json")
LABEL_NAMES = ("label", "labels", "class", "target", "fine_label", "category")


@contextmanager
def _quiet(datasets):
    """No `datasets` progress bars inside an evalbench run (its own bars report progress)."""
    was = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            datasets.utils.logging.enable_progress_bar()


def open_datasets(*, id: Optional[str] = None, path: Optional[str] = None, builder: Optional[str] = None,
                  config: Optional[str] = None, revision: Optional[str] = None, cache_dir: Optional[str] = None,
                  offline: bool = False) -> dict[str, Any]:
    """The one call into `datasets`: {split name: Dataset} ("all" for a saved single Dataset).

    load_from_disk for a save_to_disk folder (path, no builder); load_dataset(builder, data_dir=path)
    for local files; load_dataset(id, config, revision=...) for the Hub (cache only when `offline`).
    """
    try:
        import datasets
    except ImportError:
        raise DataUnavailableError("Hugging Face datasets need `datasets` (pip install 'evalbench[hf]')") from None
    from .vtab.hf import _offline

    with _offline(offline), _quiet(datasets):
        if path is not None and builder is None:
            got = datasets.load_from_disk(path)
        elif path is not None:
            where = {"data_dir": path} if Path(path).is_dir() else {"data_files": path}
            got = datasets.load_dataset(builder, cache_dir=cache_dir, **where)
        else:
            got = datasets.load_dataset(id, config, revision=revision, cache_dir=cache_dir)
    return dict(got) if isinstance(got, datasets.DatasetDict) else {"all": got}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _detect_builder(path: Path) -> Optional[str]:
    """None for a save_to_disk folder, else the builder its files call for."""
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return None
    if path.is_file():
        return {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".json": "json", ".jsonl": "json"}.get(
            path.suffix.lower(), "imagefolder")
    return "parquet" if next(path.rglob("*.parquet"), None) is not None else "imagefolder"


class HfPool:
    """Rows of one split, images decoded on demand through `datasets` (PIL images -> RGB, as image files)."""

    def __init__(self, ds, image_column: str, labels: np.ndarray, classes: list[str], size: Optional[int],
                 identity_text: str, where: str):
        self._ds = ds.select_columns([image_column])
        self._column = image_column
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = classes
        self.size = size
        self._identity_text = identity_text
        self._where = where
        self._digest: Optional[str] = None

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: np.ndarray):
        rows = [int(i) for i in indices]
        try:
            images = self._ds[rows][self._column]
        except (OSError, ValueError, SyntaxError) as exc:  # a corrupt or missing image inside the dataset
            raise DataUnavailableError(f"{self._where} rows {rows[0]}..{rows[-1]}: cannot decode an image "
                                       f"({_first_line(exc)})") from None
        return stack_or_ragged([to_rgb_array(img, self.size, f"{self._where} row {r}") for img, r in zip(images, rows, strict=True)])

    def digest(self) -> str:
        """The dataset's identity and `datasets` fingerprint, the labels and the decoding: no image is read."""
        if self._digest is None:
            h = hashlib.sha256(f"{self._identity_text}|size={self.size}|{DECODE_POLICY}|".encode())
            h.update(self.labels.tobytes())
            self._digest = h.hexdigest()
        return self._digest


class HfDataset:
    """Source kind `hf`.

    Args:
        id: a Hub dataset id (user/name); or
        path: a local folder (save_to_disk output, or files for `builder`; detected when not given).
        builder: imagefolder, parquet, ... for local files at `path`.
        config, revision: Hub config name and revision (branch, tag or commit).
        splits: {train|val|test: the dataset's split name}, when the names are not the usual ones.
        image_column, label_column: when detection from the features is not wanted.
        cache_dir: `datasets`' cache (default: its own, $HF_DATASETS_CACHE).
        image_size: resize every image to N x N without crop when decoded (default: keep sizes).
    """

    def __init__(self, id: Optional[str] = None, path: Optional[str] = None, builder: Optional[str] = None,
                 config: Optional[str] = None, revision: Optional[str] = None, splits: Optional[dict] = None,
                 image_column: Optional[str] = None, label_column: Optional[str] = None,
                 cache_dir: Optional[str] = None, image_size: Optional[int] = None,
                 data_root: Optional[str] = None, **_: Any):
        if (id is None) == (path is None):
            raise ConfigError("dataset source 'hf' needs exactly one of id (a Hub id) or path (a local folder)")
        if builder is not None and builder not in BUILDERS:
            raise ConfigError(f"hf builder {builder!r} is not one of {', '.join(BUILDERS)}")
        self.id, self.path_text, self.builder = id, path, builder
        self.config, self.revision, self.cache_dir = config, revision, cache_dir
        self.splits = dict(splits) if splits else None
        self.image_column, self.label_column = image_column, label_column
        self.image_size, self.data_root = image_size, data_root
        self._loaded: Optional[tuple] = None
        self._pools: Optional[dict[str, HfPool]] = None

    @property
    def path(self) -> Optional[Path]:
        return None if self.path_text is None else resolve_location(self.path_text, self.data_root)

    @property
    def name(self) -> str:
        return self.id or f"{self.builder or 'save_to_disk'}:{self.path}"

    def _builder(self) -> Optional[str]:
        return self.builder if self.builder or self.path is None else _detect_builder(self.path)

    @property
    def download(self) -> bool:
        """A Hub dataset is downloaded on first use when online (`evalbench tasks` says so)."""
        return self.path is None

    def locate(self) -> Optional[str]:
        if self.path is not None:
            return str(self.path) if self.path.exists() else None
        cached = Path(self._cache_dir()) / self.id.replace("/", "___")  # datasets' cache layout for Hub ids
        return str(cached) if cached.is_dir() else None

    def _cache_dir(self) -> str:
        if self.cache_dir:
            return str(self.cache_dir)
        try:
            import datasets.config

            return str(datasets.config.HF_DATASETS_CACHE)
        except ImportError:
            return "$HF_DATASETS_CACHE"

    def _open(self) -> dict[str, Any]:
        if self.path is not None:
            if not self.path.exists():
                raise DataUnavailableError(f"Hugging Face dataset folder {self.path_text} not found ({self.path} does not exist)")
            try:
                return open_datasets(path=str(self.path), builder=self._builder(), cache_dir=self.cache_dir)
            except DataUnavailableError:
                raise
            except Exception as exc:  # FileNotFoundError, DatasetGenerationError, ...: one line, never a traceback
                raise DataUnavailableError(f"{self.path}: `datasets` cannot read it as "
                                           f"{self._builder() or 'a save_to_disk folder'} ({_first_line(exc)})") from None
        from .vtab.hf import hub_offline_reason

        reason = hub_offline_reason()
        try:
            return open_datasets(id=self.id, config=self.config, revision=self.revision, cache_dir=self.cache_dir,
                                 offline=bool(reason))
        except DataUnavailableError:
            raise
        except Exception as exc:  # ConnectionError, DatasetNotFoundError, FileNotFoundError, ...
            rev = f"@{self.revision}" if self.revision else ""
            if reason:
                raise DataUnavailableError(f"Hugging Face dataset {self.id}{rev} is not in the cache {self._cache_dir()} "
                                           f"and {reason} rules out downloading it; run once online to cache it") from None
            raise DataUnavailableError(f"Hugging Face dataset {self.id}{rev} could not be loaded ({_first_line(exc)})") from None

    def _split_map(self, dsets: dict[str, Any]) -> dict[str, str]:
        if self.splits:
            bad = [k for k in self.splits if k not in SPLIT_ORDER]
            absent = [v for v in self.splits.values() if v not in dsets]
            if bad or absent:
                raise ConfigError(f"hf splits {self.splits}: keys must be train, val, test and values splits of "
                                  f"{self.name} ({', '.join(dsets)})")
            return dict(self.splits)
        out: dict[str, str] = {}
        for name in dsets:
            pool = canonical_split(name)
            if pool is None or pool in out:
                log.warning("%s: split %r is not train, val or test and is left out (name it in `splits`)", self.name, name)
                continue
            out[pool] = name
        if not out and len(dsets) == 1:
            out["all"] = next(iter(dsets))
        if not out:
            raise DataUnavailableError(f"{self.name}: no split is train, val or test ({', '.join(dsets)}); name them with "
                                       "splits: {train: ..., test: ...}")
        return out

    def _columns(self, ds) -> tuple[str, str, Optional[list[str]]]:
        import datasets

        feats = ds.features
        image = self.image_column or next((k for k, f in feats.items() if isinstance(f, datasets.Image)), None)
        label = self.label_column or next((k for k, f in feats.items() if isinstance(f, datasets.ClassLabel)), None) \
            or next((k for k in LABEL_NAMES if k in feats), None)
        described = ", ".join(f"{k}: {type(f).__name__}" for k, f in feats.items())
        for what, col in (("image", image), ("label", label)):
            if col is None or col not in feats:
                raise DataUnavailableError(f"{self.name}: no {what} column{f' {col!r}' if col else ''} (features: {described}); "
                                           f"name it with {what}_column")
        names = feats[label].names if isinstance(feats[label], datasets.ClassLabel) else None
        return image, label, names

    def _load(self) -> tuple:
        if self._loaded is None:
            dsets = self._open()
            split_map = self._split_map(dsets)
            image, label, names = self._columns(dsets[next(iter(split_map.values()))])
            raw = {pool: list(dsets[s].select_columns([label])[label]) for pool, s in split_map.items()}
            for pool in list(raw):
                if names is not None and raw[pool] and all(v == -1 for v in raw[pool]):
                    log.warning("%s: split %r has no labels (all -1) and is left out", self.name, split_map[pool])
                    del raw[pool], split_map[pool]
                elif names is not None and any(v == -1 for v in raw[pool]):
                    n = sum(v == -1 for v in raw[pool])
                    raise DataUnavailableError(f"{self.name}: split {split_map[pool]!r} has {n} unlabelled rows (label -1)")
            if names is not None:
                classes, order = list(names), f"ClassLabel names of column {label!r}"
                labels = {p: np.asarray(v, dtype=np.int64) for p, v in raw.items()}
            else:
                classes, order = label_order([str(v) for vs in raw.values() for v in vs])
                index = {c: i for i, c in enumerate(classes)}
                labels = {p: np.array([index[str(v)] for v in vs], dtype=np.int64) for p, vs in raw.items()}
            self._loaded = (dsets, split_map, image, label, classes, order, labels)
        return self._loaded

    def pool_names(self) -> list[str]:
        split_map = self._load()[1]
        return [p for p in (*SPLIT_ORDER, "all") if p in split_map]

    def identity(self) -> dict[str, Any]:
        _, split_map, image, label, classes, order, _ = self._load()
        return {"source": "hf", "dataset": self.id, "builder": self._builder(), "config": self.config,
                "revision": self.revision, "splits": split_map, "image_column": image, "label_column": label,
                "classes": classes, "class_index": order, "loader": "datasets", "image_size": self.image_size}

    def provenance(self) -> dict[str, Any]:
        dsets, split_map, *_ = self._load()
        pools = self.load()
        return {"location": str(self.path) if self.path is not None else f"Hugging Face Hub {self.id}",
                "fingerprints": {p: dsets[s]._fingerprint for p, s in split_map.items()},
                "rows": {p: len(v) for p, v in pools.items()}, "content_sha256": content_digest(pools)}

    def load(self) -> dict[str, HfPool]:
        if self._pools is None:
            self._pools = self._make_pools()
        return self._pools

    def _make_pools(self) -> dict[str, HfPool]:
        dsets, split_map, image, _, classes, _, labels = self._load()
        ident = json.dumps(self.identity(), sort_keys=True)
        return {pool: HfPool(dsets[s], image, labels[pool], classes, self.image_size,
                             f"{ident}|{s}|{dsets[s]._fingerprint}", f"{self.name} split {s}")
                for pool, s in split_map.items()}
