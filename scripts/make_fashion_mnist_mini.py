"""Build evalbench/data/bundled/fashion_mnist_mini.npz from the official Fashion-MNIST IDX files.

Stratified and seeded, so anyone can rebuild the identical file:
    python scripts/make_fashion_mnist_mini.py --root /usr/share/datasets/fashion-mnist
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from evalbench.data.idx import IdxDataset
from evalbench.data.splits import stratified_sample

SEED = 0
SIZES = {"train": 5000, "val": 1000, "test": 2000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "evalbench/data/bundled/fashion_mnist_mini.npz"))
    args = ap.parse_args()
    pools = IdxDataset("fashion-mnist", data_root=args.root, download=False).load()
    rng = np.random.default_rng(SEED)
    # train and val come from the official train split, disjoint; test from the official test split
    train_val = stratified_sample(pools["train"].labels, SIZES["train"] + SIZES["val"], rng)
    val_pos = stratified_sample(pools["train"].labels[train_val], SIZES["val"], rng)
    val = np.sort(train_val[val_pos])
    train = np.setdiff1d(train_val, val)
    test = stratified_sample(pools["test"].labels, SIZES["test"], rng)
    arrays = {}
    for name, pool, idx in (("train", pools["train"], train), ("val", pools["train"], val), ("test", pools["test"], test)):
        arrays[f"{name}_images"] = pool.images[idx]
        arrays[f"{name}_labels"] = pool.labels[idx].astype(np.uint8)
        arrays[f"{name}_source_index"] = idx.astype(np.int32)  # provenance: rows of the official file
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: " + ", ".join(f"{k}={len(arrays[k + '_labels'])}" for k in SIZES))


if __name__ == "__main__":
    main()
