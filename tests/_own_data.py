"""Builders of small own-data fixtures on disk: image folders, lists and datasets, all from the same images."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog", "owl")
COUNTS = {"train": 12, "val": 4, "test": 6}
# every decoding path a folder may hold: grey, RGBA, palette, 16-bit, CMYK JPEG, EXIF-rotated JPEG, plain RGB
MODES = ("RGB", "L", "RGBA", "P", "I;16", "CMYK", "EXIF")


def _pixels(c: int, i: int, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = np.zeros((h, w, 3))
    base[..., c] = 160.0  # class c is brightest in channel c
    base[: h // 2, :, (c + 1) % 3] += 60.0 * (i % 2)
    return np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)


def write_image(path: Path, c: int, i: int, rng: np.random.Generator) -> None:
    """One image of class c in the i-th mode of MODES, its size varying with i."""
    h, w = (12, 16, 14)[i % 3], (16, 12, 14)[(i // 3) % 3]
    rgb = Image.fromarray(_pixels(c, i, rng, h, w))
    mode = MODES[i % len(MODES)]
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        rgb.save(path.with_suffix(".png"))
    elif mode == "L":
        rgb.convert("L").save(path.with_suffix(".png"))
    elif mode == "RGBA":
        rgba = rgb.convert("RGBA")
        rgba.putalpha(200)
        rgba.save(path.with_suffix(".png"))
    elif mode == "P":
        rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path.with_suffix(".png"))
    elif mode == "I;16":
        grey = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
        Image.fromarray(grey).save(path.with_suffix(".png"))
    elif mode == "CMYK":
        rgb.convert("CMYK").save(path.with_suffix(".jpg"), quality=95)
    else:  # stored rotated, with the EXIF orientation that undoes it
        exif = Image.Exif()
        exif[0x0112] = 6
        rgb.transpose(Image.Transpose.ROTATE_90).save(path.with_suffix(".jpg"), quality=95, exif=exif)


def image_folder(root: Path, splits: bool = True, seed: int = 0) -> Path:
    """ROOT/<split>/<class>/<image> (splits) or ROOT/<class>/<image>, plus hidden debris that must be ignored."""
    rng = np.random.default_rng(seed)
    for split, n in (COUNTS.items() if splits else [("", sum(COUNTS.values()))]):
        for c, name in enumerate(CLASSES):
            for i in range(n):
                write_image(root / split / name / f"img{i:03d}", c, i, rng)
        (root / split / ".ipynb_checkpoints").mkdir(parents=True, exist_ok=True)
        (root / split / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (root / split / CLASSES[0] / "notes.txt").write_text("not an image")
    return root


def listing(root: Path) -> list[tuple[str, str, str]]:
    """(relative path, class, split) of a folder written by image_folder, in ImageFolder's order."""
    out = []
    split_dirs = [d for d in ("train", "val", "test") if (root / d).is_dir()] or [""]
    for split in split_dirs:
        for name in CLASSES:
            for p in sorted((root / split / name).iterdir()):
                if p.suffix in (".png", ".jpg"):
                    out.append((p.relative_to(root).as_posix(), name, split))
    return out


def csv_list(root: Path, path: Path, with_split: bool = True, delimiter: str = ",") -> Path:
    """A CSV (string labels) naming the images of `root` relative to the list's folder."""
    rel = Path(*[".."] * len(path.parent.relative_to(root.parent).parts)) / root.name if path.parent != root else Path(".")
    with path.open("w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(["filepath", "category", "split"] if with_split else ["filepath", "category"])
        for p, name, split in listing(root):
            w.writerow([(rel / p).as_posix(), name, split] if with_split else [(rel / p).as_posix(), name])
    return path


def saved_dataset(root: Path, out: Path) -> Path:
    """The images of an image folder as a `datasets` DatasetDict (Image + ClassLabel), written by save_to_disk."""
    import datasets

    feats = datasets.Features({"img": datasets.Image(), "animal": datasets.ClassLabel(names=list(CLASSES))})
    by_split: dict[str, datasets.Dataset] = {}
    rows = listing(root)
    for split in dict.fromkeys(s for _, _, s in rows):
        mine = [(p, n) for p, n, s in rows if s == split]
        by_split[{"val": "validation"}.get(split, split or "train")] = datasets.Dataset.from_dict(
            {"img": [str(root / p) for p, _ in mine], "animal": [CLASSES.index(n) for _, n in mine]}, features=feats)
    datasets.disable_progress_bars()
    datasets.DatasetDict(by_split).save_to_disk(str(out))
    return out
