"""The Encoder protocol every adapter satisfies, and the Preprocess spec that travels with it."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Optional, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from ..errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
DTYPES = ("fp32", "bf16", "fp16")
_POOL_RE = re.compile(r"^(cls|mean|cls\+mean|avg|native|pooled|last(\d+)(\+avg)?)$")


@dataclass(frozen=True)
class Preprocess:
    """How raw images become the encoder's input tensor.

    Images are converted to RGB (grey channels repeated), scaled to [0, 1], resized so the
    shorter side is `resize_size` (or to exactly `resize_size` x `resize_size` when `keep_aspect`
    is False, VTAB style), centre-cropped to `input_size`, then normalised with `mean`/`std`.
    """

    input_size: int
    resize_size: int
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    keep_aspect: bool = True
    antialias: bool = True

    def __post_init__(self):
        if self.interpolation not in _INTERPOLATIONS:
            raise ConfigError(
                f"interpolation {self.interpolation!r} is not one of {', '.join(_INTERPOLATIONS)}"
            )
        if self.input_size <= 0 or self.resize_size < self.input_size:
            raise ConfigError(
                f"preprocess needs 0 < input_size <= resize_size, got input_size={self.input_size}, "
                f"resize_size={self.resize_size}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"mean and std need 3 values each and std > 0, got {self.mean}, {self.std}")

    @property
    def crop_pct(self) -> float:
        return self.input_size / self.resize_size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["image_mode"] = "RGB"
        return d

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Map a uint8 batch (B, C, H, W) with C in {1, 3} to the float input (B, 3, S, S)."""
        if images.dtype != torch.uint8:
            raise ConfigError(f"preprocess expects uint8 images, got {images.dtype}")
        x = images.float().div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        if self.keep_aspect:
            scale = self.resize_size / min(h, w)
            size = (max(self.input_size, round(h * scale)), max(self.input_size, round(w * scale)))
        else:
            size = (self.resize_size, self.resize_size)
        if (h, w) != size:
            x = F.interpolate(
                x,
                size=size,
                mode=self.interpolation,
                align_corners=False if self.interpolation != "nearest" else None,
                antialias=self.antialias and self.interpolation != "nearest",
            )
            if self.interpolation == "bicubic":
                x = x.clamp_(0.0, 1.0)  # bicubic overshoots; PIL clamps too
        top = (x.shape[-2] - self.input_size) // 2
        left = (x.shape[-1] - self.input_size) // 2
        x = x[..., top : top + self.input_size, left : left + self.input_size]
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()


def parse_pools(text: Any) -> Optional[tuple[str, ...]]:
    """`"cls,mean,last4"` (or a sequence of names) -> ("cls", "mean", "last4"); None when not given.

    Raises:
        ConfigError: a name outside the pool grammar (cls, mean, cls+mean, lastN, lastN+avg, avg, pooled, native).
    """
    if text is None or text == "":
        return None
    parts = str(text).split(",") if isinstance(text, str) else [str(p) for p in text]
    pools = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    for p in pools:
        m = _POOL_RE.match(p)
        if not m or (m.group(2) is not None and int(m.group(2)) < 1):
            raise ConfigError(f"--pool {p!r} is not one of cls, mean, cls+mean, lastN, lastN+avg (e.g. last4), avg, "
                              "pooled, native; separate several with commas")
    return pools or None


@dataclass(frozen=True)
class FeatureOptions:
    """Which features a network encoder extracts, and how; validated once, passed to every backend.

    layer: an intermediate block (`blocks.8` on ViTs, `layer3` on ResNets); None = the final output.
    pool: feature choices, e.g. ("cls",) or ("cls", "mean", "last4"); None = the model's default.
    dtype: fp32, or bf16/fp16 autocast for extraction.
    optimize: conv-BN fusion and channels_last on CPU (features equal up to float rounding).
    Whether a layer or pool exists is checked against the model itself (features.FeatureModule).
    """

    layer: Optional[str] = None
    pool: Optional[tuple[str, ...]] = None
    dtype: str = "fp32"
    optimize: bool = True

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.pool is not None and parse_pools(self.pool) != self.pool:
            raise ConfigError(f"pool must be a tuple of distinct pool names, got {self.pool!r}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "FeatureOptions":
        """From load_encoder's keyword options: `pool` may be text ("cls,mean"), None means the default."""
        optimize = options.get("optimize")
        return cls(layer=options.get("layer") or None, pool=parse_pools(options.get("pool")),
                   dtype=options.get("dtype") or "fp32", optimize=True if optimize is None else bool(optimize))

    def given(self) -> list[str]:
        """The feature-choice flags set away from their defaults, for backends they do not apply to."""
        return [flag for flag, v in (("--layer", self.layer), ("--pool", self.pool),
                                     ("--dtype", None if self.dtype == "fp32" else self.dtype)) if v is not None]


@runtime_checkable
class Encoder(Protocol):
    """What evalbench needs from a model. Duck-typed: plugins need no base class.

    name: a short human-readable name (used in result paths and leaderboards).
    preprocess: the Preprocess that turns raw images into `encode`'s input.
    fingerprint(): JSON-able dict of everything that changes the features (weights hash,
        architecture, layer, pooling, dtype). It is part of the feature-cache key.
    encode(images): float (B, 3, H, W) -> float32 (B, D) features.
    provenance() (optional): JSON-able dict of where the weights came from without changing the
        features (file name, checkpoint layout, load mode). Recorded in results, never in the cache key.

    Optional, for several feature choices from one forward pass (`--pool cls,mean`):
    pools: tuple of choice names; encode_multi(images) -> {choice: (B, D)} for every name in
    `pools`; feature_suffix(choice) -> the suffix of that choice's model name (default `@choice`).
    Each choice is cached, named and reported as its own model (evalbench.extract.feature_choices).
    """

    name: str
    preprocess: Preprocess

    def fingerprint(self) -> dict: ...

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...


def hash_state_dict(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over parameter names, shapes, dtypes and bytes, in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{key}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def hash_module(module: torch.nn.Module) -> str:
    """Weights hash of a module: its parameters and buffers."""
    return hash_state_dict(module.state_dict())


def check_encoder(obj: Any, origin: str) -> Encoder:
    """Raise a clear error when `obj` (from `origin`) does not satisfy the Encoder protocol."""
    missing = [a for a in ("name", "preprocess", "fingerprint", "encode") if not hasattr(obj, a)]
    if missing:
        raise ConfigError(
            f"{origin} returned {type(obj).__name__}, which lacks {', '.join(missing)}; "
            "an encoder needs name, preprocess, fingerprint() and encode() (see README, 'Writing an adapter')"
        )
    if not isinstance(obj.preprocess, Preprocess):
        raise ConfigError(f"{origin}: encoder.preprocess must be an evalbench.Preprocess, got {type(obj.preprocess).__name__}")
    return obj

