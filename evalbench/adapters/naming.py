"""The model name and its `@…` suffixes: results of different features never share a results folder or row."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Optional

from .base import Preprocess

# Committed results and leaderboards use these names (pixels-16, effnet-lite0, ...): a change here
# moves results to new folders and rows, so every function below must keep its output stable.


def pixels_name(size: int, grayscale: bool) -> str:
    """`pixels-16`, `pixels-16-gray`."""
    return f"pixels-{size}" + ("-gray" if grayscale else "")


def torchvision_name(arch: str, weights_tag: Optional[str]) -> str:
    """`resnet50.imagenet1k_v2`, or `resnet50.random-init` without weights."""
    return f"{arch}.{weights_tag.lower()}" if weights_tag else f"{arch}.random-init"


def timm_name(arch: str, tag: Optional[str], random_init: bool) -> str:
    """`vit_small_patch16_224.augreg_in21k`, `test_vit.random-init` (timm's `arch.tag` convention)."""
    if random_init:
        return f"{arch}.random-init"
    return f"{arch}.{tag}" if tag else arch


def hf_name(model_id: str, local: bool) -> str:
    """A local directory's name, or the hub id with `/` as `--` (a path-safe name)."""
    return Path(model_id).name if local else model_id.replace("/", "--")


def checkpoint_name(path: Path | str, arch: str) -> str:
    """`checkpoint.resnet50` for `checkpoint.pth --arch torchvision:resnet50`."""
    return f"{Path(path).stem}.{arch.rpartition(':')[2]}"


def preprocess_suffix(old: Preprocess, new: Preprocess) -> str:
    """`@224px` for another input size; `@pp-<hash>` when resize, interpolation, mean or std differ too."""
    if new == old:
        return ""
    suffix = f"@{new.input_size}px" if new.input_size != old.input_size else ""
    # a new input size alone keeps the encoder's crop fraction; anything else needs the hash to stay apart
    same_crop = new.resize_size == int(math.floor(new.input_size / old.crop_pct))
    if (new.interpolation, new.mean, new.std) != (old.interpolation, old.mean, old.std) or not same_crop:
        suffix += "@pp-" + hashlib.sha256(repr(new).encode()).hexdigest()[:6]
    return suffix


def pool_suffix(pool: str, layer: Optional[str], default_pool: str) -> str:
    """`@layer3@avg`, `@mean`: a non-default feature choice; empty for the model's own default."""
    suffix = f"@{layer}" if layer else ""
    if pool != default_pool or layer:
        suffix += f"@{pool}"
    return suffix


def model_name(base: str, old: Preprocess, new: Preprocess, pool: Optional[str] = None,
               layer: Optional[str] = None, default_pool: Optional[str] = None) -> str:
    """The full name: backend name, preprocessing suffix, then the feature-choice suffix.

    Args:
        base: the backend's name (`pixels-16`, `effnet-lite0`, `r18.resnet18`).
        old, new: the encoder's own preprocessing and the one in effect after overrides.
        pool: the single feature choice, or None when there is none (or several: each
            variant then appends its own `pool_suffix`).
        layer, default_pool: the feature choice's layer and the model's default pool.
    """
    name = base + preprocess_suffix(old, new)
    if pool is not None:
        name += pool_suffix(pool, layer, default_pool or "")
    return name


__all__ = ["model_name", "preprocess_suffix", "pool_suffix", "pixels_name", "torchvision_name", "timm_name",
           "hf_name", "checkpoint_name"]
