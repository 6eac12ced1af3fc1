"""`evalbench data status|prepare transfer`: what each transfer dataset has here, and fetching what torchvision can."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...errors import DataUnavailableError
from .catalog import DATASETS
from .source import Transfer, download_root


def status_rows(data_root: Optional[str], names: Optional[list[str]] = None) -> list[dict[str, Any]]:
    """One row per dataset: where it was found, split sizes, classes covered per split, split definitions, problems."""
    rows = []
    for key in names or list(DATASETS):
        spec = DATASETS[key]
        src = Transfer(key, data_root=data_root)
        row = {"dataset": key, "title": spec.title, "metric": spec.metric, "classes": spec.num_classes,
               "where": src.locate(), "counts": {}, "coverage": {}, "problems": [],
               "splits": {"train": spec.train, "val": spec.val, "test": spec.test}}
        if row["where"] is None:
            row["problems"].append(src.missing_message())
            rows.append(row)
            continue
        try:
            pools = src.load()
        except DataUnavailableError as exc:
            row["problems"].append(str(exc))
            rows.append(row)
            continue
        row["problems"] += src.provenance()["notes"] + size_problems(spec, {k: len(v) for k, v in pools.items()})
        for name, pool in pools.items():
            row["counts"][name] = len(pool)
            labels = np.asarray(pool.labels)
            present = int((labels == 1).any(axis=0).sum()) if labels.ndim == 2 else len(np.unique(labels))
            row["coverage"][name] = present
            if present < spec.num_classes:
                row["problems"].append(f"{name} covers {present} of {spec.num_classes} classes")
        rows.append(row)
    return rows


def size_problems(spec, counts: dict[str, int]) -> list[str]:
    """Where this copy's split sizes differ from the full official dataset's (a partial copy, another version)."""
    if not spec.sizes:
        return []
    train, val, test = spec.sizes
    have = {"train": counts["train"] + (counts["val"] if val is None else 0), "val": counts["val"], "test": counts["test"]}
    what = {"train": "train" if val is not None else "train + val (official train)", "val": "val", "test": "test"}
    return [f"{what[k]} has {have[k]:,} images; the official split has {want:,}"
            for k, want in (("train", train), ("val", val), ("test", test)) if want is not None and have[k] != want]


def prepare(root: str, names: Optional[list[str]] = None) -> list[str]:
    """Download every dataset torchvision can fetch into ROOT/transfer; one line per dataset (never raises for the network)."""
    from .tvreaders import download

    lines = []
    target = download_root(root)
    for key in names or list(DATASETS):
        spec = DATASETS[key]
        if Transfer(key, data_root=root).locate():
            lines.append(f"{key}: found; nothing to do")
        elif not spec.can_download:
            lines.append(f"{key}: manual step needed: {spec.download}")
        else:
            try:
                download(key, target)
            except Exception as exc:  # offline, blocked, a moved file: report and go on with the next dataset
                first = str(exc).splitlines()[0] if str(exc) else ""
                lines.append(f"{key}: download failed ({type(exc).__name__}: {first})")
                continue
            lines.append(f"{key}: ready in {target}")
    return lines
