"""Tiny community-export folders (NOAH layout) generated for the VTAB tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZES = {"train800": 800, "val200": 200}


def write_export_task(root: Path, folder: str, num_classes: int, test_size: int = 60, seed: int = 0,
                      classes_in_train: int | None = None, size: int = 6) -> Path:
    """<root>/vtab-1k/<folder>/ with list files and PNGs whose colour encodes the label.

    classes_in_train: restrict train800/val200 to the first k classes (Sun397-style coverage gaps).
    """
    rng = np.random.default_rng(seed)
    task = root / "vtab-1k" / folder
    lines_all = {}
    for split, n in {**SIZES, "test": test_size}.items():
        (task / "images" / split).mkdir(parents=True, exist_ok=True)
        k = classes_in_train if classes_in_train and split != "test" else num_classes
        labels = np.arange(n) % k
        lines = []
        for i, y in enumerate(labels):
            base = np.array([(37 * y) % 256, (91 * y) % 256, (151 * y) % 256], dtype=np.float64)
            img = np.clip(base + rng.normal(0, 12, (size + i % 3, size, 3)), 0, 255).astype(np.uint8)  # mixed sizes
            rel = f"images/{split}/{i:06d}.png"
            Image.fromarray(img).save(task / rel)
            lines.append(f"{rel} {int(y)}")
        lines_all[split] = lines
        (task / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (task / "train800val200.txt").write_text("\n".join(lines_all["train800"] + lines_all["val200"]) + "\n")
    return task
