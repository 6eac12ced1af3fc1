"""Source kind `vtab`: picks a VTAB task's data route (export, procedural, source dataset, Hugging Face copy) and reports on it."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...errors import ConfigError, DataUnavailableError
from .dsprites import TASKS as DSPRITES_TASKS
from .dsprites import Dsprites
from .export import LAYOUT, Vtab1kExport, export_roots
from .hf import TASKS as HF_TASKS
from .hf import VtabHf, hf_root
from .source import VtabSource, source_root
from .tasks import VTAB_TASKS, vtab_task

ROUTES = ("export", "procedural", "source", "hf")


class Vtab:
    """The first available route, in order: the community export (official splits), evalbench's dSprites
    rendering (dSprites tasks only), the source dataset through torchvision, a Hugging Face Hub copy
    through `datasets` (evalbench.data.vtab.hf; the only source route for Caltech101, RESISC45,
    Retinopathy, DMLab and smallNORB).

    Args:
        task: the export's folder name (e.g. "cifar", "dsprites_loc").
        routes: the routes allowed, in order of preference (default: all four).
        seed, image_size, download: passed to the procedural and source routes.
    """

    def __init__(self, task: str, data_root: Optional[str] = None, routes: Optional[list[str]] = None, seed: int = 0,
                 image_size: Optional[int] = 224, download: bool = False, **_: Any):
        self.task = vtab_task(task)
        routes = list(routes or ROUTES)
        bad = [r for r in routes if r not in ROUTES]
        if bad:
            raise ConfigError(f"vtab route {bad[0]!r} is not one of {', '.join(ROUTES)}")
        self.candidates = []
        for r in routes:
            if r == "export":
                self.candidates.append(("export", Vtab1kExport(task, data_root=data_root, image_size=image_size)))
            elif r == "procedural" and task in DSPRITES_TASKS:
                self.candidates.append(("procedural", Dsprites(task, seed=seed, image_size=image_size)))
            elif r == "source" and task not in DSPRITES_TASKS:
                self.candidates.append(("source", VtabSource(task, data_root=data_root, seed=seed,
                                                             image_size=image_size, download=download)))
            elif r == "hf" and task in HF_TASKS:
                self.candidates.append(("hf", VtabHf(task, data_root=data_root, seed=seed, image_size=image_size,
                                                     download=download)))
        self._chosen = None

    def chosen(self):
        """(route, source) of the first route whose data is here, or None."""
        if self._chosen is None:
            for route, src in self.candidates:
                if src.locate() is not None:
                    self._chosen = (route, src)
                    break
        return self._chosen

    def locate(self) -> Optional[str]:
        c = self.chosen()
        return None if c is None else c[1].locate()

    def identity(self) -> dict[str, Any]:
        c = self.chosen()
        if c is None:
            return {"source": "vtab", "name": self.task.folder, "split_variant": None}
        return {**c[1].identity(), "route": c[0]}

    def missing_message(self) -> str:
        return "; ".join(src.missing_message() for _, src in self.candidates if hasattr(src, "missing_message"))

    def load(self):
        c = self.chosen()
        if c is None:
            downloadable = [(r, s) for r, s in self.candidates if r in ("source", "hf") and s.download and s.supported]
            errors = []
            for r, s in downloadable:  # allowed to download: the source routes may fetch it now, in order
                try:
                    pools = s.load()
                except DataUnavailableError as exc:
                    errors.append(str(exc))
                    continue
                self._chosen = (r, s)
                return pools
            if errors:
                raise DataUnavailableError("; ".join(errors))
            raise DataUnavailableError(self.missing_message() or f"VTAB task {self.task.folder}: no data route allowed")
        return c[1].load()


def status_rows(data_root: Optional[str], tasks: Optional[list[str]] = None) -> list[dict[str, Any]]:
    """One row per VTAB task: route, split variant, location, counts, class coverage and warnings."""
    rows = []
    for folder in tasks or list(VTAB_TASKS):
        t = VTAB_TASKS[folder]
        src = Vtab(folder, data_root=data_root)
        row = {"task": folder, "group": t.group, "classes": t.num_classes, "route": None, "variant": None,
               "where": None, "counts": {}, "coverage": {}, "warnings": [], "source_route": t.source}
        try:
            c = src.chosen()
            if c is None:  # the long per-route messages belong to `run`; status shows the table
                rows.append(row)
                continue
            pools = c[1].load()
        except DataUnavailableError as exc:
            row["warnings"].append(str(exc))
            rows.append(row)
            continue
        row.update(route=c[0], variant=c[1].identity()["split_variant"], where=c[1].locate())
        for name, pool in pools.items():
            present = len(np.unique(pool.labels))
            row["counts"][name] = len(pool)
            row["coverage"][name] = present
            if name in ("train800", "val200") and present < t.num_classes:
                row["warnings"].append(f"{name} covers {present} of {t.num_classes} classes")
        rows.append(row)
    return rows


def prepare(root: str, tasks: Optional[list[str]] = None) -> list[str]:
    """Download what torchvision can fetch into ROOT/vtab-source and what the Hugging Face route can fetch into
    ROOT/vtab-hf (tried when torchvision has no loader or its download fails); instructions for the rest.
    One line per dataset tried."""
    lines = [f"community export (official VTAB-1k splits, the default when present): build it with "
             f"ZhangYuanhan-AI/NOAH data/vtab-source/get_vtab1k.py (TFDS) or obtain a copy, and place it as {LAYOUT} "
             f"with <root> = {root}; evalbench looks in {', '.join(str(p) for p in export_roots(root))}"]
    for folder in tasks or list(VTAB_TASKS):
        if folder in DSPRITES_TASKS:
            lines.append(f"{folder}: nothing to download (rendered by evalbench when the export is absent)")
        elif Vtab1kExport(folder, data_root=root).locate():
            lines.append(f"{folder}: community export found; nothing to do")
        elif VtabSource(folder, data_root=root).supported:
            src = VtabSource(folder, data_root=root)
            lines.append(src.prepare())
            if folder in HF_TASKS and src.locate() is None:  # torchvision failed: try the Hub copy too
                lines.append(VtabHf(folder, data_root=root).prepare())
        elif folder in HF_TASKS:
            lines.append(VtabHf(folder, data_root=root).prepare())
        else:
            lines.append(VtabSource(folder, data_root=root).prepare())
    lines.append(f"source datasets go to {source_root(root)} (torchvision) and {hf_root(root)} (Hugging Face)")
    return lines
