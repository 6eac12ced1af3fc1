"""`evalbench data status imagenet`: what a data root holds of ImageNet, its test sets and the subset lists, with counts."""
from __future__ import annotations

from typing import Any, Optional

from ...errors import DataUnavailableError
from ..subsets import SHIPPED, read_subset
from .layout import EXPECTED, LAYOUT
from .robustness import ROBUSTNESS_SETS, find_test_set, list_test_set, shipped_wnids
from .source import ImageNet

FULL_CLASSES = 1000


def _count_note(found: int, expected: int) -> str:
    if found == expected:
        return ""
    return (f"{found:,} images where the complete set has {expected:,} ({found - expected:+,}): a partial or modified copy, "
            "so scores are not comparable with published ones")


def _row(pool: str, n: int, expected: int, classes: int, of: int, where: str, notes: list[str]) -> dict[str, Any]:
    return {"pool": pool, "images": n, "expected": expected, "classes": f"{classes}/{of}", "where": where,
            "notes": [x for x in notes if x]}


def status(data_root: Optional[str], root: Optional[str] = None) -> dict[str, Any]:
    """What the run would find: {root, layout, looked, error, pools: [rows], subsets: [rows]}; never raises for missing data."""
    source = ImageNet(data_root=data_root, root=root)
    found, looked = source.find()
    out: dict[str, Any] = {"root": str(found) if found else None, "layout": None, "looked": [str(p) for p in looked],
                           "error": None, "pools": [], "subsets": [], "notes": []}
    if found is None:
        out["error"] = f"not found; expected {LAYOUT}"
        return out
    try:
        listing = source.listing()
    except DataUnavailableError as exc:
        out["error"] = str(exc)
        return out
    out["layout"], out["notes"] = listing.layout, list(listing.notes)
    n_classes = len(listing.classes)
    if n_classes != FULL_CLASSES:
        out["notes"].append(f"{n_classes} classes where ILSVRC-2012 has {FULL_CLASSES}")
    for pool in ("train", "val"):
        _, _, labels, _ = listing.pools[pool]
        out["pools"].append(_row(pool, len(labels), EXPECTED[pool], len(set(labels.tolist())), n_classes,
                                 str(listing.root / pool), [_count_note(len(labels), EXPECTED[pool])]))
    search = source.test_set_search(listing)
    for test in ROBUSTNESS_SETS:
        folder = find_test_set(test, search)
        covers = len(shipped_wnids(test.wnid_list)) if test.wnid_list else FULL_CLASSES
        if folder is None:
            out["pools"].append(_row(test.pool, 0, test.expected, 0, covers, "not found (its column is skipped)",
                                     [f"looked for {', '.join(test.folders)} under {', '.join(map(str, search))}"]))
            continue
        try:
            r = list_test_set(test, folder, tuple(listing.classes))
        except DataUnavailableError as exc:
            out["pools"].append(_row(test.pool, 0, test.expected, 0, covers, str(folder), [f"error: {exc}"]))
            continue
        notes = [_count_note(len(r.labels), test.expected)]
        if r.class_subset is not None:
            notes.append(f"scored over its {len(r.class_subset)} classes (logits restricted)")
        if test.folder_is == "index" and n_classes != FULL_CLASSES:
            notes.append("its folders are class indices, which match wnids only on a complete 1000-class copy")
        out["pools"].append(_row(test.pool, len(r.labels), test.expected, r.covered, covers, str(folder), notes))
    names = {n.rsplit("/", 1)[-1] for n in listing.pools["train"][1]}
    for name in SHIPPED:
        listed, _ = read_subset(name)
        missing = [n for n in listed if n not in names]
        out["subsets"].append({"subset": name, "listed": len(listed), "present": len(listed) - len(missing),
                               "first_missing": missing[:3]})
    return out

