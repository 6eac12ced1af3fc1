"""A frozen torch.nn.Module wrapped as an Encoder: inference mode, feature choice, precision, fingerprint."""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Optional

import torch

from ..errors import ConfigError
from .base import Preprocess, hash_module
from .features import FeatureModule, pool_suffix

log = logging.getLogger(__name__)

ADAPTER_VERSION = "1"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_DTYPE_RECORD = {"fp32": "float32", "bf16": "bfloat16-autocast", "fp16": "float16-autocast"}


def fuse_conv_bn(module: torch.nn.Module) -> torch.nn.Module:
    """Fold BatchNorm into the preceding convolution where torch.fx can trace the model.

    Inference-only and numerically equivalent up to float rounding; measured 1.5-1.8x faster
    extraction on CPU. Models that do not trace are returned unchanged.
    """
    try:
        from torch.fx.experimental.optimization import fuse

        return fuse(module, inplace=False)
    except Exception as exc:  # tracing failures are many and varied; fusion is only an optimisation
        log.debug("conv-BN fusion skipped: %s", exc)
        return module


class ModuleEncoder:
    """An Encoder around a module; several feature choices (pools) can come from one forward pass.

    Args:
        name: short name for result paths and tables.
        module: the network, classifier head already removed.
        preprocess: how raw images become the module's input.
        fingerprint: identity facts beyond the weights (source, arch, layout).
        optimize: fuse conv-BN and use channels_last on CPU for speed (features are equal up to
            float rounding; the flag is part of the fingerprint so caches never mix them).
        layer: an intermediate block (`blocks.8` on ViTs) or module name (`layer3` on ResNets).
        pool: feature choices, e.g. ("cls",), ("cls", "mean", "last4"); None = the model's default.
        dtype: fp32 (default), or bf16/fp16 autocast for extraction.
    """

    def __init__(
        self,
        name: str,
        module: torch.nn.Module,
        preprocess: Preprocess,
        fingerprint: dict[str, Any],
        optimize: bool = True,
        device: Optional[str] = None,
        layer: Optional[str] = None,
        pool: Optional[tuple[str, ...]] = None,
        dtype: Optional[str] = None,
    ):
        self.name = name
        self.preprocess = preprocess
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or "fp32"
        if dtype not in DTYPES:
            raise ConfigError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        if dtype != "fp32" and self.device.type == "cpu":
            log.warning("--dtype %s on CPU: autocast is typically far slower than fp32 (about 70x measured on CPUs "
                        "without bf16 units) and less exact; fp32 is the CPU default", dtype)
        self.dtype = dtype
        module = module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self._weights_hash = hash_module(module)
        features = FeatureModule(module, layer, pool)
        self.pools = features.pools
        self.default_pool = features.access.default_pool if features.access is not None else "avg"
        self.layer = layer
        self._facts = {**fingerprint, **features.record()}
        self.optimize = optimize
        if optimize:
            if features.kind == "cnn" and not layer:  # fx fusion would bypass the hooks a --layer needs
                features.model = fuse_conv_bn(features.model)
            features = features.to(memory_format=torch.channels_last)
        self.module = features.to(self.device)

    def fingerprint(self) -> dict[str, Any]:
        return {
            **self._facts,
            "weights_sha256": self._weights_hash,
            "adapter_version": ADAPTER_VERSION,
            "optimized": self.optimize,
            "dtype": _DTYPE_RECORD[self.dtype],
        }

    def feature_suffix(self, pool: str) -> str:
        return pool_suffix(pool, self.layer, self.default_pool)

    @torch.inference_mode()
    def encode_multi(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every feature choice from one forward pass: {pool: (B, D) float32}."""
        x = images.to(self.device, torch.float32)
        if self.optimize:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = (torch.autocast(self.device.type, dtype=DTYPES[self.dtype]) if self.dtype != "fp32"
               else contextlib.nullcontext())
        with ctx:
            out = self.module(x)
        return {k: v.float().cpu() for k, v in out.items()}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        if len(self.pools) > 1:
            raise ConfigError(f"encoder {self.name} extracts several feature choices ({', '.join(self.pools)}); "
                              "use encode_multi() (evalbench.extract.feature_choices names each choice)")
        return self.encode_multi(images)[self.pools[0]]
