"""Tiny ILSVRC-2012 copies (folder and torchvision layouts) and robustness folders generated for the ImageNet tests.

Every image of class i is one flat colour (class_colour(i)), so any encoder separates the classes and
a k-NN scores 100% exactly when train and val labels line up.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Optional, Sequence

import torch
from PIL import Image

#: Real ImageNet wnids (sorted): all but n01440764 are ImageNet-R classes, n01440764 is in neither R nor A,
#: n01498041 and n01531178 are also ImageNet-A classes; the robustness tests rely on these facts.
WNIDS = ("n01440764", "n01443537", "n01484850", "n01494475", "n01498041", "n01531178")


def class_colour(i: int) -> tuple[int, int, int]:
    """A distinct flat colour per class index (1000 classes: 10 x 10 x 10 levels; neighbouring classes far apart)."""
    j = (i * 337) % 1000  # a bijection of 0..999 that spreads consecutive classes over all three channels
    return (j % 10) * 25 + 5, ((j // 10) % 10) * 25 + 5, (j // 100) * 25 + 5


def _jpeg(i: int, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), class_colour(i)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def write_class_files(folder: Path, label: int, names: Iterable[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = _jpeg(label)
    for n in names:
        (folder / n).write_bytes(data)


def make_imagenet(root: Path, wnids: Sequence[str] = WNIDS, train_per_class: int = 4, val_per_class: int = 2,
                  layout: str = "folders", train_names: Optional[dict[str, list[str]]] = None) -> Path:
    """An ImageNet copy at root: train/<wnid>/<wnid>_<k>.JPEG and val/ in the given layout.

    layout: "folders" (val/<wnid>/), "torchvision" (meta.bin + val/<wnid>/), "torchvision-flat" (meta.bin +
    flat val/ILSVRC2012_val_NNNNNNNN.JPEG labelled by meta.bin's val_wnids, classes interleaved).
    train_names: the train file names per wnid (default <wnid>_<k>.JPEG, k = 1..train_per_class).
    """
    wnids = sorted(wnids)
    for i, w in enumerate(wnids):
        names = (train_names or {}).get(w) or [f"{w}_{k}.JPEG" for k in range(1, train_per_class + 1)]
        write_class_files(root / "train" / w, i, names)
    val_wnids = [w for _ in range(val_per_class) for w in reversed(wnids)]  # interleaved, not in class order
    if layout == "folders" or layout == "torchvision":
        for n, w in enumerate(val_wnids, start=1):
            write_class_files(root / "val" / w, wnids.index(w), [f"ILSVRC2012_val_{n:08d}.JPEG"])
    elif layout == "torchvision-flat":
        (root / "val").mkdir(parents=True, exist_ok=True)
        for n, w in enumerate(val_wnids, start=1):
            (root / "val" / f"ILSVRC2012_val_{n:08d}.JPEG").write_bytes(_jpeg(wnids.index(w)))
    else:
        raise ValueError(layout)
    if layout.startswith("torchvision"):
        # torchvision's meta.bin: (wnid -> class names, the val images' wnids in file-number order)
        torch.save(({w: (f"class {w}",) for w in wnids}, val_wnids), root / "meta.bin")
    return root


def make_robustness(data_root: Path, folder: str, classes: dict[str, int], per_class: int = 2, ext: str = "jpg") -> Path:
    """data_root/<folder>/<class folder>/<k>.<ext>; classes maps each class folder name to its ImageNet class index."""
    for name, label in classes.items():
        write_class_files(data_root / folder / name, label, [f"{name}_{k}.{ext}" for k in range(per_class)])
    return data_root / folder
