"""VTAB tasks rebuilt from copies on the Hugging Face Hub (`datasets`), with seeded stratified 800/200 splits.

The route for the tasks torchvision cannot serve (Caltech101 with BACKGROUND_Google, RESISC45,
Retinopathy, DMLab, smallNORB azimuth / elevation) and a fallback after torchvision for a few more.
Like the torchvision route it cannot reproduce the official TFDS slices: results carry split_variant
"source-stratified". train800 and val200 are drawn stratified with the recorded seed from the copy's
train split (val200 from the train rows train800 did not take: these copies have no val split) and
the score comes from the copy's whole test split (evalbench.data.vtab.source.draw_1k). The exception
is Ramos-Ramos/smallnorb, which holds the whole smallNORB test set and is cut as VTAB cuts it (val200
from test[:50%], scored on test[50%:]; see below).

Downloads go through `datasets.load_dataset(id, split=..., cache_dir=<root>/vtab-hf)`; a marker file
<root>/vtab-hf/<id with / as __>/ready.json records a finished download, so finding data never touches
the network. HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) is honoured: only the cache is read then.

Hub ids, verified with the search tool (dataset pages and the code that built or reads them):
- clip-benchmark/wds_vtab-{caltech101, resisc45, diabetic_retinopathy, dmlab, smallnorb_label_azimuth,
  smallnorb_label_elevation, pcam, svhn, clevr_closest_object_distance}: LAION CLIP_benchmark's
  webdataset exports (huggingface.co/datasets/clip-benchmark/<id>: folders train/ and test/ of
  N.tar shards, classnames.txt). CLIP_benchmark (clip_benchmark/datasets/builder.py) built them from
  google-research/task_adaptation's data classes (Caltech101, Resisc45Data, RetinopathyData(config=
  "btgraham-300"), DmlabData, SmallNORBData(predicted_attribute=...), ...), so the `.cls` integers are
  VTAB's labels and the splits are VTAB's "train" and "test" (viewer: caltech101 2.75k / 6.09k,
  resisc45 18.9k / 6.3k, smallnorb 24.3k / 12.2k = TFDS train / test[50%:]). Each sample is
  <key>.webp (or .png/.jpg) + <key>.cls, which the `datasets` webdataset builder turns into columns
  "webp" (image) and "cls" (int). The viewer's counts for dmlab (55.9k / 22.7k) and retinopathy
  (17.3k / 17.3k) come from a partial parquet conversion and were not checked against TFDS.
- Ramos-Ramos/smallnorb (fallback for smallNORB): card lists image_lt, image_rt, category, instance,
  elevation (0..8), azimuth (raw 0, 2, ..., 34), lighting; train 24,300 / test 24,300 (the whole
  smallNORB test set). VTAB (task_adaptation/data/smallnorb.py, VAL_SPLIT_PERCENT = 50) defines
  train = TFDS train, val = test[:50%], test = test[50%:], so VTAB-1k's val200 comes from the first
  half of the test set and the score from the second; this copy is cut the same way by row
  (split_rows). TFDS orders its records by a hash of their keys, so the halves hold other rows than
  TFDS's: same definition, not the same images. The clip-benchmark copies already hold test[50%:] as
  their "test" and lack the val half, so their val200 still comes from the train rows train800 left.
- jonathan-roberts1/NWPU-RESISC45 (fallback for RESISC45): card lists image and label (ClassLabel,
  45 names airplane ... wetland in alphabetical order, as TFDS resisc45); one split "train" of all
  31,500 images, cut here 60/20/20 as VTAB cuts TFDS resisc45.
"""
from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlparse

import numpy as np

from ...env import env_flag
from ...errors import DataUnavailableError
from ..base import data_subroot
from ..imagefiles import IndexedPool
from .source import pools_1k
from .tasks import SOURCE_STRATIFIED, smallnorb_label, vtab_task

IMAGE_COLUMNS = ("webp", "png", "jpg", "jpeg", "image")


@dataclass(frozen=True)
class HfSpec:
    """One Hub copy of a VTAB task.

    pools: evalbench pool -> Hub split; "train" and "test" (optionally "val"), or a single "all" cut by
        `parts`. A split may carry a TFDS-style row slice, e.g. "test[:50%]" (see split_rows).
    image: the image column (None: the first of IMAGE_COLUMNS present).
    label: the label column; `to_vtab` maps its values to VTAB's labels (None: already VTAB's).
    """
    repo: str
    pools: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    image: Optional[str] = None
    label: str = "cls"
    to_vtab: Optional[Callable[[np.ndarray], np.ndarray]] = None
    parts: Optional[dict[str, float]] = None
    note: str = ""

    @property
    def sliced(self) -> bool:
        return any("[" in split for split in self.pools.values())


def split_rows(split: str, num_rows: int) -> tuple[str, np.ndarray]:
    """The Hub split name and the row indices a TFDS-style split string selects.

    "test" -> all rows; "test[:50%]", "test[50%:]", "train[:800]", "test[10:20]" -> a contiguous
    slice. Percent bounds are rounded as TFDS's default ("closest": round(pct * n / 100), in
    tensorflow_datasets/core/tfrecords_reader.py), so test[:50%] and test[50%:] always
    partition the split.

    Raises:
        ValueError: a malformed slice.
    """
    if "[" not in split:
        return split, np.arange(num_rows)
    name, _, rest = split.partition("[")
    if not rest.endswith("]") or rest.count(":") != 1:
        raise ValueError(f"bad split slice {split!r}: expected NAME[START:END]")
    start, end = (_bound(b, num_rows, split) for b in rest[:-1].split(":"))
    return name, np.arange(num_rows)[slice(start, end)]


def _bound(text: str, num_rows: int, split: str) -> Optional[int]:
    text = text.strip()
    if not text:
        return None
    try:
        if text.endswith("%"):
            return int(round(float(text[:-1]) * num_rows / 100.0))
        return int(text)
    except ValueError:
        raise ValueError(f"bad split slice {split!r}: bound {text!r} is neither an integer nor a percentage") from None


def _azimuth(raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.int64)
    if np.any(raw % 2):  # raw smallNORB azimuths are 0, 2, ..., 34; odd values mean an already halved column
        raise DataUnavailableError("smallNORB azimuth column holds odd values; expected the raw 0, 2, ..., 34")
    return smallnorb_label(raw_azimuth=raw)


def _elevation(raw: np.ndarray) -> np.ndarray:
    return smallnorb_label(raw_elevation=raw)


def _cb(name: str, note: str = "") -> HfSpec:
    return HfSpec(f"clip-benchmark/wds_vtab-{name}", note=note)


#: VTAB's smallNORB splits (task_adaptation/data/smallnorb.py): val = test[:50%], test = test[50%:].
SMALLNORB_POOLS = {"train": "train", "val": "test[:50%]", "test": "test[50%:]"}
SMALLNORB_NOTE = ("VTAB's slices by row: val200 from test[:50%], scored on test[50%:] (rows differ from TFDS's, "
                  "whose record order is hashed)")
CB_NOTE = "CLIP_benchmark export of task_adaptation's train / test splits, VTAB labels; images re-encoded in the export"
HF_SPECS: dict[str, list[HfSpec]] = {
    "caltech101": [_cb("caltech101", "TFDS caltech101 (102 classes incl. BACKGROUND_Google); " + CB_NOTE)],
    "resisc45": [_cb("resisc45", CB_NOTE),
                 HfSpec("jonathan-roberts1/NWPU-RESISC45", pools={"all": "train"}, image="image", label="label",
                        parts={"train": 0.6, "val": 0.2, "test": 0.2},
                        note="all 31,500 images, cut 60/20/20 (seeded, stratified) as VTAB's slices")],
    "diabetic_retinopathy": [_cb("diabetic_retinopathy", "TFDS diabetic_retinopathy_detection/btgraham-300, the "
                                 "preprocessing VTAB uses; " + CB_NOTE)],
    "dmlab": [_cb("dmlab", CB_NOTE)],
    "smallnorb_azi": [_cb("smallnorb_label_azimuth", "TFDS label_azimuth (raw / 2, 18 classes); VTAB's test = "
                          "TFDS test[50%:]; " + CB_NOTE),
                      HfSpec("Ramos-Ramos/smallnorb", pools=SMALLNORB_POOLS, image="image_lt", label="azimuth",
                             to_vtab=_azimuth, note="raw azimuth 0..34 halved; first camera; " + SMALLNORB_NOTE)],
    "smallnorb_ele": [_cb("smallnorb_label_elevation", "TFDS label_elevation (9 classes); VTAB's test = TFDS "
                          "test[50%:]; " + CB_NOTE),
                      HfSpec("Ramos-Ramos/smallnorb", pools=SMALLNORB_POOLS, image="image_lt", label="elevation",
                             to_vtab=_elevation, note="elevation 0..8; first camera; " + SMALLNORB_NOTE)],
    # fallbacks after torchvision
    "patch_camelyon": [_cb("pcam", CB_NOTE)],
    "svhn": [_cb("svhn", CB_NOTE)],
    "clevr_dist": [_cb("clevr_closest_object_distance", "test = CLEVR validation, as VTAB; " + CB_NOTE)],
}
TASKS = tuple(HF_SPECS)


def hf_root(data_root: Optional[str]) -> Optional[Path]:
    return data_subroot(data_root, "vtab-hf")


@lru_cache(maxsize=4)
def _probe(host: str) -> Optional[str]:
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return None
    except OSError as exc:
        return f"{host} unreachable ({type(exc).__name__})"


def hub_offline_reason() -> Optional[str]:
    """Why the Hub must not be asked (offline setting, no network), or None. Fails fast instead of
    letting huggingface_hub retry for half a minute."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if env_flag(var):
            return f"{var}=1"
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    return _probe(host)


@contextmanager
def _offline(on: bool):
    """Force cache-only loading (both `datasets` and huggingface_hub read the flag at import time)."""
    if not on:
        yield
        return
    import datasets.config
    import huggingface_hub.constants as hc

    old = (datasets.config.HF_HUB_OFFLINE, hc.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hc.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hc.HF_HUB_OFFLINE = old


def fetch_split(repo: str, split: str, cache_dir: str, offline: bool):
    """The one call into `datasets`: one split of a Hub dataset (downloaded unless `offline`)."""
    try:
        import datasets
    except ImportError:
        raise DataUnavailableError("the Hugging Face route needs `datasets` (pip install 'evalbench[hf]')") from None
    with _offline(offline):
        return datasets.load_dataset(repo, split=split, cache_dir=cache_dir)


def _column_values(ds, name: str) -> np.ndarray:
    return np.asarray(ds.select_columns([name]).with_format("numpy")[name])


def _marker(root: Path, repo: str) -> Path:
    return root / repo.replace("/", "__") / "ready.json"


class VtabHf:
    """Source kind `vtab-hf`: one VTAB task from a Hugging Face Hub copy, split variant source-stratified."""

    def __init__(self, task: str, data_root: Optional[str] = None, seed: int = 0, image_size: Optional[int] = 224,
                 download: bool = False, **_: Any):
        self.task = vtab_task(task)
        self.data_root, self.seed, self.image_size, self.download = data_root, int(seed), image_size, download
        self._spec: Optional[HfSpec] = None

    @property
    def specs(self) -> list[HfSpec]:
        return HF_SPECS.get(self.task.folder, [])

    @property
    def supported(self) -> bool:
        return bool(self.specs)

    def _ready(self) -> Optional[HfSpec]:
        root = hf_root(self.data_root)
        if root is None:
            return None
        return next((s for s in self.specs if _marker(root, s.repo).is_file()), None)

    def locate(self) -> Optional[str]:
        spec = self._ready()
        return None if spec is None else str(_marker(hf_root(self.data_root), spec.repo).parent)

    def identity(self) -> dict[str, Any]:
        spec = self._spec or self._ready() or (self.specs[0] if self.specs else None)
        return {"source": "vtab-hf", "name": self.task.folder, "split_variant": SOURCE_STRATIFIED, "seed": self.seed,
                "hf_dataset": spec.repo if spec else None, "loader": "datasets.load_dataset",
                "note": spec.note if spec else "", "image_size": self.image_size}

    def missing_message(self, reason: str = "") -> str:
        if not self.supported:
            return f"VTAB task {self.task.folder}: no Hugging Face route"
        where = hf_root(self.data_root) or "<root>/vtab-hf (no --data-root or $EVALBENCH_DATA given)"
        ids = " or ".join(s.repo for s in self.specs)
        why = f" ({reason})" if reason else ""
        return (f"VTAB task {self.task.folder}: Hugging Face dataset {ids} not downloaded in {where}{why}; "
                f"alternatives: the community export <root>/vtab-1k/{self.task.folder}/*.txt, or "
                f"`evalbench data prepare vtab --root DIR` while online")

    def _open(self, spec: HfSpec, root: Path, offline: bool) -> dict[str, tuple[Callable[[int], Any], np.ndarray]]:
        """{pool: (row -> image, labels)}; each Hub split is fetched once, even when two pools slice it."""
        fetched: dict[str, tuple[Any, str, np.ndarray]] = {}
        out = {}
        for pool, split in spec.pools.items():
            name = split.partition("[")[0]
            if name not in fetched:
                fetched[name] = self._fetch_checked(spec, name, root, offline)
            pixels, image, labels = fetched[name]
            _, rows = split_rows(split, len(labels))
            out[pool] = ((lambda i, d=pixels, c=image, r=rows: d[int(r[int(i)])][c]), labels[rows])
        return out

    def _fetch_checked(self, spec: HfSpec, split: str, root: Path, offline: bool) -> tuple[Any, str, np.ndarray]:
        """One Hub split: (its image column as a dataset, the column name, VTAB labels), checked."""
        ds = fetch_split(spec.repo, split, str(root), offline)
        image = spec.image or next((c for c in IMAGE_COLUMNS if c in ds.column_names), None)
        if image is None or image not in ds.column_names or spec.label not in ds.column_names:
            raise DataUnavailableError(f"{spec.repo} split {split}: expected an image column and {spec.label!r}, "
                                       f"found {ds.column_names}")
        raw = _column_values(ds, spec.label)
        labels = np.asarray(spec.to_vtab(raw) if spec.to_vtab else raw, dtype=np.int64)
        bad = labels[(labels < 0) | (labels >= self.task.num_classes)]
        if bad.size:
            raise DataUnavailableError(f"{spec.repo} split {split}: label {int(bad[0])} outside "
                                       f"[0, {self.task.num_classes}) for VTAB task {self.task.folder}")
        return ds.select_columns([image]), image, labels

    def _load_any(self, download: bool):
        root = hf_root(self.data_root)
        if root is None or not self.supported:
            raise DataUnavailableError(self.missing_message())
        offline = hub_offline_reason() if download else "download not allowed"
        errors = []
        for spec in self.specs:
            ready = _marker(root, spec.repo).is_file()
            if not ready and offline:
                errors.append(f"{spec.repo}: {offline}")
                continue
            try:
                loaded = self._open(spec, root, offline=ready and bool(offline))
            except DataUnavailableError as exc:
                errors.append(str(exc))
                continue
            except Exception as exc:  # ConnectionError, FileNotFoundError, DatasetNotFoundError, ...
                first = str(exc).splitlines()[0] if str(exc) else ""
                errors.append(f"{spec.repo}: {type(exc).__name__}: {first}"[:300])
                continue
            marker = _marker(root, spec.repo)
            if not ready:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(json.dumps({"repo": spec.repo, "splits": spec.pools,
                                              "rows": {k: int(len(v[1])) for k, v in loaded.items()}}, indent=1))
            self._spec = spec
            return spec, loaded
        raise DataUnavailableError(self.missing_message("; ".join(errors)))

    def load(self) -> dict[str, IndexedPool]:
        spec, loaded = self._load_any(self.download)
        ident = f"vtab-hf:{spec.repo}:{self.task.folder}"
        if spec.sliced:  # the rows behind each pool are part of what the features are of
            ident += ":" + ",".join(f"{pool}={split}" for pool, split in spec.pools.items())
        return pools_1k(loaded, self.seed, spec.parts, self.task.num_classes, self.image_size, ident)

    def prepare(self) -> str:
        """Download into <root>/vtab-hf; a one-line outcome (never raises for network trouble)."""
        try:
            spec, loaded = self._load_any(True)
        except DataUnavailableError as exc:
            return f"{self.task.folder}: manual step needed: Hugging Face download failed: {exc}"
        rows = ", ".join(f"{k} {len(v[1])}" for k, v in loaded.items())
        return f"{self.task.folder}: ready from Hugging Face {spec.repo} ({rows}) in {hf_root(self.data_root)}"
