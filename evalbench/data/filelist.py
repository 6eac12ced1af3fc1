"""Source kind `filelist`: images named in a CSV / TSV file (path, label, optional split) or VTAB-style `path label` lines.

    path,label,split            .csv (comma) or .tsv (tab), a header row naming the columns
    images/cat/001.jpg,cat,train
    images/dog/007.jpg,dog,test

    images/001.jpg 3            any other extension: `<path> <label>` per line (image names may hold spaces)

Columns are found by name (path: path, file, filename, filepath, image, image_path; label: label, class,
category, target; split: split, subset, fold) or given explicitly. Paths are relative to the list's
folder (or `root`). Labels may be integers (classes in numeric order) or any strings (classes in sorted
order); the order is recorded. Without a split column the list is one pool, "all", that the task cuts.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import DataUnavailableError
from .labelled import SPLIT_ORDER, FileImagePool, canonical_split, content_digest, file_sizes, label_order, resolve_location

PATH_COLUMNS = ("path", "file", "filename", "filepath", "file_path", "image", "image_path", "img")
LABEL_COLUMNS = ("label", "class", "category", "target", "class_name", "y")
SPLIT_COLUMNS = ("split", "subset", "fold")


@dataclass(frozen=True)
class Row:
    line: int
    path: str
    label: str
    split: str


def _column(header: list[str], given: Optional[str], names: tuple[str, ...], what: str, where: Path,
            required: bool = True) -> Optional[int]:
    lower = [h.strip().lower() for h in header]
    if given is not None:
        if given.strip().lower() not in lower:
            raise DataUnavailableError(f"{where}: no column {given!r} (the header has {', '.join(header)})")
        return lower.index(given.strip().lower())
    for n in names:
        if n in lower:
            return lower.index(n)
    if required:
        raise DataUnavailableError(f"{where}: no {what} column (looked for {', '.join(names)}; the header has "
                                   f"{', '.join(header)}); name it with {what}_column")
    return None


def _csv_rows(path: Path, text: str, delimiter: str, columns: dict[str, Optional[str]]) -> list[Row]:
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise DataUnavailableError(f"{path} is empty; expected a header row such as path{delimiter}label")
    ip = _column(header, columns["path"], PATH_COLUMNS, "path", path)
    il = _column(header, columns["label"], LABEL_COLUMNS, "label", path)
    isp = _column(header, columns["split"], SPLIT_COLUMNS, "split", path, required=False)
    rows = []
    for n, record in enumerate(reader, 2):
        if not any(cell.strip() for cell in record):
            continue
        need = max(i for i in (ip, il, isp) if i is not None)
        if len(record) <= need:
            raise DataUnavailableError(f"{path} line {n}: {len(record)} fields, the header has {len(header)}")
        cells = [record[i].strip() if i is not None else "" for i in (ip, il, isp)]
        if not cells[0] or not cells[1]:
            raise DataUnavailableError(f"{path} line {n}: empty {'path' if not cells[0] else 'label'}")
        rows.append(Row(n, *cells))
    return rows


def _line_rows(path: Path, text: str) -> list[Row]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.strip().rsplit(maxsplit=1)  # image names may contain spaces, labels never do
        if len(parts) != 2:
            raise DataUnavailableError(f"{path} line {n}: expected '<image path> <label>', got {line.strip()!r}")
        rows.append(Row(n, parts[0], parts[1], ""))
    return rows


class FileList:
    """Source kind `filelist`.

    Args:
        file: the list (.csv, .tsv, or `path label` lines); relative paths as for `imagefolder`'s root.
        root: the folder image paths are relative to (default: the list's folder).
        path_column, label_column, split_column: column names when the defaults do not find them.
        image_size: resize every image to N x N without crop when decoded (default: keep sizes).
    """

    def __init__(self, file: str, data_root: Optional[str] = None, root: Optional[str] = None,
                 path_column: Optional[str] = None, label_column: Optional[str] = None,
                 split_column: Optional[str] = None, image_size: Optional[int] = None, **_: Any):
        self.file_text, self.root_text, self.data_root = str(file), root, data_root
        self.columns = {"path": path_column, "label": label_column, "split": split_column}
        self.image_size = image_size
        self._parsed: Optional[tuple] = None
        self._pools: Optional[dict[str, FileImagePool]] = None

    @property
    def file(self) -> Path:
        return resolve_location(self.file_text, self.data_root)

    @property
    def format(self) -> str:
        suffix = self.file.suffix.lower()
        return "csv" if suffix == ".csv" else "tsv" if suffix == ".tsv" else "lines"

    def _base(self) -> Path:
        return resolve_location(self.root_text, self.data_root) if self.root_text else self.file.parent

    def locate(self) -> Optional[str]:
        return str(self.file) if self.file.is_file() else None

    def _parse(self) -> tuple[list[Row], bytes, list[str], str]:
        if self._parsed is None:
            path = self.file
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise DataUnavailableError(f"file list {self.file_text} cannot be read ({exc.strerror}: {path})") from None
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise DataUnavailableError(f"{path} is not UTF-8 text; a file list is a CSV/TSV or `path label` lines") from None
            fmt = self.format
            rows = _line_rows(path, text) if fmt == "lines" else _csv_rows(path, text, "," if fmt == "csv" else "\t", self.columns)
            if not rows:
                raise DataUnavailableError(f"{path} lists no images")
            classes, order = label_order([r.label for r in rows])
            self._parsed = (rows, raw, classes, order)
        return self._parsed

    def _pool_of(self, row: Row) -> str:
        if not row.split:
            if self._has_split():
                raise DataUnavailableError(f"{self.file} line {row.line}: empty split (use train, val or test)")
            return "all"
        split = canonical_split(row.split)
        if split is None:
            raise DataUnavailableError(f"{self.file} line {row.line}: split {row.split!r} is not train, val (valid, "
                                       "validation) or test")
        return split

    def _has_split(self) -> bool:
        return any(r.split for r in self._parse()[0])

    def pool_names(self) -> list[str]:
        found = {self._pool_of(r) for r in self._parse()[0]}
        return [p for p in (*SPLIT_ORDER, "all") if p in found]

    def identity(self) -> dict[str, Any]:
        _, _, classes, order = self._parse()
        return {"source": "filelist", "format": self.format, "classes": classes, "class_index": order,
                "image_size": self.image_size}

    def provenance(self) -> dict[str, Any]:
        pools = self.load()
        return {"location": str(self.file), "images_under": str(self._base()),
                "files": {k: len(v) for k, v in pools.items()}, "content_sha256": content_digest(pools)}

    def load(self) -> dict[str, FileImagePool]:
        if self._pools is None:
            rows, _, classes, _ = self._parse()
            base, index = self._base(), {c: i for i, c in enumerate(classes)}
            paths = [Path(r.path) if Path(r.path).is_absolute() else base / r.path for r in rows]
            sizes = file_sizes(paths)
            bad = np.flatnonzero(sizes <= 0)
            if bad.size:
                r, p = rows[int(bad[0])], paths[int(bad[0])]
                why = "is empty (0 bytes)" if sizes[bad[0]] == 0 else "does not exist or cannot be read"
                more = f" (and {bad.size - 1} more rows)" if bad.size > 1 else ""
                raise DataUnavailableError(f"{self.file} line {r.line}: image {p} {why}{more}")
            by_pool: dict[str, list[int]] = {}
            for i, r in enumerate(rows):
                by_pool.setdefault(self._pool_of(r), []).append(i)
            self._pools = {}
            for pool in self.pool_names():
                members = by_pool[pool]
                lines = [rows[i].line for i in members]
                self._pools[pool] = FileImagePool(
                    [paths[i] for i in members], [rows[i].path for i in members], sizes[members],
                    np.array([index[rows[i].label] for i in members], dtype=np.int64), classes, self.image_size,
                    where=lambda j, lines=lines: f"{self.file} line {lines[j]}")
        return self._pools
