"""Feature choice: which layer and pooling turn a backbone's activations into feature vectors."""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any, Optional

import torch
from torch import nn

from ..errors import ConfigError, UnknownNameError
from .base import parse_pools

VIT_POOLS = ("cls", "mean", "cls+mean", "lastN", "lastN+avg", "native")
CNN_POOLS = ("avg", "native")


class _Stop(Exception):
    """Raised by a hook to end the forward pass once the requested layer has run."""


class TokenAccess(ABC):
    """Uniform access to a ViT's token sequence: final tokens and the outputs of chosen blocks.

    Subclasses know one backend (timm, torchvision, Hugging Face). `norm` is the model's final norm,
    applied to intermediate blocks as DINO's `get_intermediate_layers` does; `post` is applied after
    pooling (timm's fc_norm).
    """

    num_prefix: int = 1
    has_cls: bool = True
    default_pool: str = "cls"

    def __init__(self, model: nn.Module):
        self.model = model

    @property
    @abstractmethod
    def blocks(self) -> list[nn.Module]:
        """The transformer blocks, in order."""

    @abstractmethod
    def final_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the last block (before the final norm)."""

    def norm(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def post(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def native(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def run(self, x: torch.Tensor, want: set[int], need_final: bool) -> tuple[Optional[torch.Tensor], dict[int, torch.Tensor]]:
        """Final tokens (if needed) and the normed outputs of the blocks in `want`, in one forward pass."""
        got: dict[int, torch.Tensor] = {}
        blocks = self.blocks
        last = max(want) if want else -1

        def hook(i):
            def fn(_mod, _inp, out):
                got[i] = out[0] if isinstance(out, tuple) else out
                if not need_final and i == last:
                    raise _Stop
            return fn

        handles = [blocks[i].register_forward_hook(hook(i)) for i in want]
        final = None
        try:
            final = self.final_tokens(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        return final, {i: self.norm(t) for i, t in got.items()}


class TimmViT(TokenAccess):
    def __init__(self, model):
        super().__init__(model)
        self.num_prefix = int(model.num_prefix_tokens)
        self.has_cls = getattr(model, "cls_token", None) is not None
        gp = getattr(model, "global_pool", "token")
        self.default_pool = {"token": "cls", "avg": "mean"}.get(gp, "native")

    @property
    def blocks(self):
        return list(self.model.blocks)

    def final_tokens(self, x):
        return self.model.forward_features(x)

    def norm(self, t):
        return self.model.norm(t)

    def post(self, t):
        return self.model.fc_norm(t) if hasattr(self.model, "fc_norm") else t


class TorchvisionViT(TokenAccess):
    @property
    def blocks(self):
        return list(self.model.encoder.layers)

    def final_tokens(self, x):
        m = self.model
        x = m._process_input(x)
        x = torch.cat([m.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return m.encoder(x)

    def norm(self, t):
        return self.model.encoder.ln(t)


def token_access(model: nn.Module) -> Optional[TokenAccess]:
    """The TokenAccess for a ViT-like model, or None (then it is treated as a CNN)."""
    if hasattr(model, "token_access"):  # adapters (Hugging Face) provide their own
        return model.token_access()
    if all(hasattr(model, a) for a in ("blocks", "forward_features", "num_prefix_tokens", "norm")):
        return TimmViT(model)
    if hasattr(model, "class_token") and hasattr(model, "encoder") and hasattr(model.encoder, "layers"):
        return TorchvisionViT(model)
    return None


def _block_index(layer: str, n: int) -> int:
    m = re.match(r"^blocks\.(-?\d+)$", layer)
    if not m or not -n <= int(m.group(1)) < n:
        raise ConfigError(f"--layer {layer!r}: on this ViT use blocks.N with N in 0..{n - 1} (negative counts from the end)")
    return int(m.group(1)) % n


def _spatial_mean(t: torch.Tensor) -> torch.Tensor:
    if t.ndim == 4:
        return t.mean(dim=(2, 3))
    if t.ndim == 3:  # token sequences (B, N, D)
        return t.mean(dim=1)
    return t.flatten(1)


class FeatureModule(nn.Module):
    """Maps images to {pool name: (B, D) features}, computing every requested pool in one forward pass."""

    def __init__(self, model: nn.Module, layer: Optional[str], pools: Optional[tuple[str, ...]]):
        super().__init__()
        self.model = model
        self.layer = layer
        self.access = token_access(model)
        if self.access is not None:
            self.kind = "vit"
            self.pools = pools or (self.access.default_pool,)
            n = len(self.access.blocks)
            self.block = _block_index(layer, n) if layer else None
            self._check_vit_pools(n)
        else:
            self.kind = "cnn"
            self.pools = pools or ("avg",)
            bad = [p for p in self.pools if p not in CNN_POOLS]
            if bad:
                raise ConfigError(f"--pool {bad[0]!r} needs a ViT; this convolutional model supports {', '.join(CNN_POOLS)}")
            if layer:
                modules = dict(model.named_modules())
                if layer not in modules or layer == "":
                    known = [n for n, _ in model.named_children()] + [n for n in modules if n.count(".") == 1]
                    raise UnknownNameError("--layer", layer, known, hint="a module name such as layer3 or stages.2")
                self._layer_module = modules[layer]

    def _check_vit_pools(self, n: int) -> None:
        for p in self.pools:
            if p == "avg":
                raise ConfigError("--pool avg is for convolutional models; on a ViT use mean (patch tokens) or cls")
            if p == "pooled" and not getattr(self.access, "has_pooler", False):
                raise ConfigError("--pool pooled needs a Hugging Face model with a pooler")
            if p.startswith("last"):
                k = int(re.match(r"last(\d+)", p).group(1))
                if self.layer:
                    raise ConfigError(f"--pool {p} takes the last blocks itself; leave out --layer")
                if k > n:
                    raise ConfigError(f"--pool {p}: the model has only {n} blocks")
            if p in ("cls", "cls+mean") or p.startswith("last"):
                if not self.access.has_cls:
                    raise ConfigError(f"--pool {p} needs a class token, which this ViT lacks; use mean")
            if p == "native" and self.layer:
                raise ConfigError("--pool native is the model's own output; it cannot come from --layer")

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"pool": ",".join(self.pools)}
        if self.layer:
            rec["layer"] = self.layer
        return rec

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.kind == "cnn":
            return self._forward_cnn(x)
        return self._forward_vit(x)

    def _forward_cnn(self, x):
        if not self.layer:
            out = _spatial_mean(self.model(x))
            return {p: out for p in self.pools}
        got = {}

        def fn(_mod, _inp, out):
            got["t"] = out
            raise _Stop  # nothing after the chosen layer is needed

        handle = self._layer_module.register_forward_hook(fn)
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        out = _spatial_mean(got["t"])
        return {p: out for p in self.pools}

    def _forward_vit(self, x):
        a = self.access
        n = len(a.blocks)
        want: set[int] = set()
        for p in self.pools:
            m = re.match(r"last(\d+)", p)
            if m:
                want.update(range(n - int(m.group(1)), n))
        if self.block is not None:
            want.add(self.block)
        need_final = self.block is None and any(not p.startswith("last") for p in self.pools if p not in ("native", "pooled"))
        final, blocks = a.run(x, want, need_final)
        tokens = blocks[self.block] if self.block is not None else final
        prefix = a.num_prefix
        out: dict[str, torch.Tensor] = {}
        for p in self.pools:
            if p == "native":
                out[p] = _spatial_mean(a.native(x))
            elif p == "pooled":
                out[p] = a.pooled(x)
            elif p == "cls":
                out[p] = a.post(tokens[:, 0])
            elif p == "mean":
                out[p] = a.post(tokens[:, prefix:].mean(dim=1))
            elif p == "cls+mean":
                out[p] = torch.cat([a.post(tokens[:, 0]), a.post(tokens[:, prefix:].mean(dim=1))], dim=-1)
            else:  # lastN[+avg], as in DINO's eval_linear: CLS of each of the last N blocks, then the patch mean
                k = int(re.match(r"last(\d+)", p).group(1))
                parts = [blocks[i][:, 0] for i in range(n - k, n)]
                if p.endswith("+avg"):
                    parts.append(blocks[n - 1][:, prefix:].mean(dim=1))
                out[p] = torch.cat(parts, dim=-1)
        return out


__all__ = ["FeatureModule", "parse_pools", "token_access", "TokenAccess"]
