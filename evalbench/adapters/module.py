"""A frozen torch.nn.Module wrapped as an Encoder: inference mode, feature choice, precision, fingerprint."""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Optional

import torch

from ..errors import ConfigError
from .base import FeatureOptions, Preprocess, hash_module
from .features import FeatureModule
from .naming import pool_suffix

log = logging.getLogger(__name__)

ADAPTER_VERSION = "1"
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
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


def _cpu_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX tiles)."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if callable(check))


def reduced_precision_cpu_warning(dtype: str) -> str:
    """The one-line warning for --dtype bf16/fp16 on a CPU (measured with benchmarks/bench_extract.py --dtype-compare)."""
    if dtype == "bf16" and _cpu_bf16_units():
        return ("--dtype bf16 on CPU: this CPU has bf16 units (AVX512-BF16/AMX), so autocast extraction can be faster "
                "than fp32 (1.8x measured for effnet-lite0 on a 2-core Xeon with AMX, none under heavy load), but the "
                "features move (median 7.5% relative L2 there) and probe scores with them (linear -0.35, k-NN +0.30 "
                "points on fashion-mnist-mini); fp32 stays the default, and caches never mix dtypes")
    return (f"--dtype {dtype} on CPU: autocast is typically far slower than fp32 (about 70x measured on CPUs without "
            f"bf16 units) and less exact; fp32 is the CPU default")


class ModuleEncoder:
    """An Encoder around a module; several feature choices (pools) can come from one forward pass.

    Args:
        name: short name for result paths and tables.
        module: the network, classifier head already removed.
        preprocess: how raw images become the module's input.
        fingerprint: identity facts beyond the weights that change the features (source, arch).
            Only these go into the cache key.
        features: layer, pools, dtype and optimize (FeatureOptions() = the model's default features,
            fp32, optimised). `optimize` is part of the fingerprint so caches never mix fused and plain features.
        device: where to run; CUDA when available.
        provenance: where the weights came from without changing them (file name, checkpoint layout,
            load mode); recorded with results, kept out of the cache key so equal weights share features.
    """

    def __init__(
        self,
        name: str,
        module: torch.nn.Module,
        preprocess: Preprocess,
        fingerprint: dict[str, Any],
        features: Optional[FeatureOptions] = None,
        device: Optional[str] = None,
        provenance: Optional[dict[str, Any]] = None,
    ):
        opts = features or FeatureOptions()
        self.name = name
        self.preprocess = preprocess
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if opts.dtype != "fp32" and self.device.type == "cpu":
            log.warning(reduced_precision_cpu_warning(opts.dtype))
        self.dtype = opts.dtype
        module = module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self._weights_hash = hash_module(module)
        feats = FeatureModule(module, opts.layer, opts.pool)
        self.pools = feats.pools
        self.default_pool = feats.access.default_pool if feats.access is not None else "avg"
        self.layer = opts.layer
        self._facts = {**fingerprint, **feats.record()}
        self._provenance = dict(provenance or {})
        self.optimize = opts.optimize
        if opts.optimize:
            if feats.kind == "cnn" and not opts.layer:  # fx fusion would bypass the hooks a --layer needs
                feats.model = fuse_conv_bn(feats.model)
            feats = feats.to(memory_format=torch.channels_last)
        self.module = feats.to(self.device)

    def fingerprint(self) -> dict[str, Any]:
        return {
            **self._facts,
            "weights_sha256": self._weights_hash,
            "adapter_version": ADAPTER_VERSION,
            "optimized": self.optimize,
            "dtype": _DTYPE_RECORD[self.dtype],
        }

    def provenance(self) -> dict[str, Any]:
        """Where the weights came from (file, layout, load mode); not part of the cache key."""
        return dict(self._provenance)

    @torch.inference_mode()
    def encode_multi(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every feature choice from one forward pass: {pool: (B, D) float32}."""
        x = images.to(self.device, torch.float32)
        if self.optimize:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = (torch.autocast(self.device.type, dtype=TORCH_DTYPES[self.dtype]) if self.dtype != "fp32"
               else contextlib.nullcontext())
        with ctx:
            out = self.module(x)
        return {k: v.float().cpu() for k, v in out.items()}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        if len(self.pools) > 1:
            raise ConfigError(f"encoder {self.name} extracts several feature choices ({', '.join(self.pools)}); "
                              "use encode_multi() (evalbench.extract.feature_choices names each choice)")
        return self.encode_multi(images)[self.pools[0]]

    def feature_suffix(self, pool: str) -> str:
        """The model-name suffix of one feature choice (the default pool keeps the plain name)."""
        return pool_suffix(pool, self.layer, self.default_pool)
