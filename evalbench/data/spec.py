"""`--dataset SPEC` on the command line: an image folder, `list:FILE`, or `hf:...`, turned into a source kind and its options."""
from __future__ import annotations

import re
from typing import Any, Optional

from ..errors import DataUnavailableError
from .hf import BUILDERS
from .imagefolder import LAYOUT
from .labelled import resolve_location

LIST_SUFFIXES = (".csv", ".tsv", ".txt", ".lst")
FORMS = ("an image folder (" + LAYOUT + "), list:FILE.csv (or .tsv, or `path label` lines), "
         "hf:ID (Hub; hf:ID:CONFIG@REVISION to pin), hf:DIR (save_to_disk folder or local files), hf:imagefolder:DIR, hf:parquet:DIR")


def slug(text: str) -> str:
    """A task-name-safe form: lower case, runs of other characters as one '-'."""
    return re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-._") or "dataset"


def _hf(rest: str, data_root: Optional[str]) -> tuple[dict[str, Any], str]:
    head, _, tail = rest.partition(":")
    if head in BUILDERS and tail:
        path = resolve_location(tail, data_root)
        return {"path": str(path), "builder": head}, path.name
    local = resolve_location(rest, data_root)
    if rest.startswith((".", "/", "~")) or local.exists():
        return {"path": str(local)}, local.name
    ident, _, revision = rest.partition("@")
    ident, _, config = ident.partition(":")
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", ident):
        raise DataUnavailableError(f"hf:{rest}: not a Hub id (user/name) and no such folder; expected {FORMS}")
    options: dict[str, Any] = {"id": ident}
    if config:
        options["config"] = config
    if revision:
        options["revision"] = revision
    return options, ident.replace("/", "-") + (f"-{config}" if config else "")


def parse_dataset_spec(spec: str, data_root: Optional[str] = None) -> tuple[str, dict[str, Any], str]:
    """(source kind, options, default task name) for a --dataset SPEC; local paths become absolute.

    Raises:
        DataUnavailableError: the path does not exist or is not a dataset, with the forms accepted.
    """
    text = spec.strip()
    if text.startswith("hf:"):
        options, stem = _hf(text[3:], data_root)
        return "hf", options, f"data-{slug(stem)}"
    if text.startswith("list:"):
        path = resolve_location(text[5:], data_root)
        if not path.is_file():
            raise DataUnavailableError(f"{spec}: file list {path} does not exist")
        return "filelist", {"file": str(path)}, f"data-{slug(path.stem)}"
    path = resolve_location(text, data_root)
    if path.is_dir():
        return "imagefolder", {"root": str(path)}, f"data-{slug(path.name)}"
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        return "filelist", {"file": str(path)}, f"data-{slug(path.stem)}"
    what = "is a file, not a dataset" if path.exists() else "does not exist"
    shown = "" if str(path) == text else f" ({path})"
    raise DataUnavailableError(f"{spec}{shown} {what}; --dataset takes {FORMS}")
