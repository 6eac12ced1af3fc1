"""Write a small ImageNet-shaped copy with photo-sized JPEGs, to time the imagenet suite with `--dry-run`.

128 train and 32 val images of 500x375 pixels (about 90 KB each, near ILSVRC-2012's average), in the
folder layout; `--dry-run` times one batch on them and scales to the complete dataset:
    python scripts/make_imagenet_timing_copy.py /tmp/imagenet-timing
    evalbench run --model torchvision:resnet50 --random-init --suite imagenet --tasks imagenet-knn imagenet-linear \
        --data-root /tmp/imagenet-timing --dry-run --device cpu      # or --device cuda
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="the data root to write (the copy goes to ROOT/imagenet)")
    ap.add_argument("--train-per-class", type=int, default=32, help="train images per class (4 classes)")
    ap.add_argument("--val-per-class", type=int, default=8, help="val images per class")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sizes, n_val = [], 0
    for split, per_class in (("train", args.train_per_class), ("val", args.val_per_class)):
        for w in WNIDS:
            folder = args.root / "imagenet" / split / w
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                # smooth colour fields plus grain: JPEG sizes and decode times like photographs, not like flat test images
                coarse = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).resize((500, 375), Image.BICUBIC)
                pixels = np.asarray(coarse).astype(np.int16) + rng.integers(-22, 23, (375, 500, 3))
                buf = io.BytesIO()
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
                if split == "val":
                    n_val += 1
                name = f"{w}_{k + 1}.JPEG" if split == "train" else f"ILSVRC2012_val_{n_val:08d}.JPEG"
                (folder / name).write_bytes(buf.getvalue())
                sizes.append(len(buf.getvalue()))
    print(f"wrote {len(sizes)} images under {args.root / 'imagenet'}, {np.mean(sizes) / 1000:.0f} KB on average")


if __name__ == "__main__":
    main()
