"""Load a state-dict file safely and into an architecture, refusing anything that would not match."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import CheckpointError
from .arch import build_arch
from .base import FeatureOptions, Preprocess, hash_state_dict
from .heads import find_head, head_keys, strip_head
from .layouts import Backbone, detect
from .module import ModuleEncoder
from .naming import checkpoint_name
from .safeload import TRUST_FLAG, read_checkpoint

__all__ = ["read_checkpoint", "extract_state_dict", "load_into", "build_arch", "load", "TRUST_FLAG"]

def extract_state_dict(obj: dict[str, Any], path: Path | str = "checkpoint",
                       checkpoint_key: Optional[str] = None) -> tuple[dict[str, torch.Tensor], str]:
    """The backbone tensors inside a loaded checkpoint, and the name of the recognised layout."""
    b = detect(obj, path, checkpoint_key)
    return b.state, b.layout


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """Name an extra or absent key prefix when that alone explains the mismatch."""
    if unexpected:
        heads = {k.split(".", 1)[0] + "." for k in unexpected if "." in k}
        if len(heads) == 1:
            pre = heads.pop()
            if {k[len(pre):] for k in unexpected} & set(missing):
                return (f"; every unexpected key carries the prefix {pre!r}, which no known layout strips: "
                        "pass --checkpoint-key, or re-save the state dict without it")
    return "; check --arch, or the prefix the checkpoint uses (--checkpoint-key)"


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path | str, allowed_missing: set[str],
              layout: str = "") -> dict[str, list[str]]:
    """Load `state` into `model`, failing unless the only differences are in `allowed_missing`.

    Keys in `allowed_missing` (the classifier head) may be absent or carry another shape; every
    other missing, unexpected or mis-shaped tensor is an error that names them, because a
    silently random-initialised layer gives a plausible but wrong number.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - allowed_missing)
    unexpected = sorted(set(state) - set(expected) - allowed_missing)
    where = f"checkpoint {path}" + (f" (layout: {layout})" if layout else "")
    if missing or unexpected:
        def short(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "") if keys else "none"
        raise CheckpointError(
            f"{where} does not match the architecture: missing keys: {short(missing)}; "
            f"unexpected keys: {short(unexpected)}{_prefix_hint(missing, unexpected)}"
        )
    for key, tensor in state.items():
        if key in allowed_missing:
            continue
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{where}: tensor {key} has shape {tuple(tensor.shape)} but --arch expects "
                f"{tuple(expected[key].shape)}; check --arch"
            )
    loadable = {k: v for k, v in state.items() if k not in allowed_missing}
    model.load_state_dict(loadable, strict=False)
    return {"skipped_head_keys": sorted(set(state) & allowed_missing)}


def announce(message: str) -> None:
    """One line on stderr saying what was loaded (the layout a checkpoint was recognised as)."""
    print(f"evalbench: {message}", file=sys.stderr)


def load(path: str, features: FeatureOptions, arch: Optional[str] = None, preprocess: Optional[Preprocess] = None,
         checkpoint_key: Optional[str] = None, trust_checkpoint: bool = False) -> ModuleEncoder:
    """`--model PATH --arch ARCH`: a research checkpoint's backbone loaded into a torchvision or timm architecture."""
    p = Path(path)
    obj = read_checkpoint(p, trust=trust_checkpoint)  # checks existence first, so a typo'd path is reported as such
    if not arch:
        raise CheckpointError(f"--model {path} is a checkpoint file: also pass --arch (e.g. --arch resnet50 or --arch timm:vit_small_patch16_224)")
    backbone: Backbone = detect(obj, p, checkpoint_key)
    model, default_pre, backend = build_arch(arch)
    head = find_head(model)
    report = load_into(model, backbone.state, p, head_keys(model, head), layout=backbone.describe())
    strip_head(model, head)
    # The cache key holds what changes the features: the same weights in another file, layout or
    # --arch spelling ("resnet50" vs "torchvision:resnet50") must reuse the features already extracted.
    fp = {"adapter": "checkpoint", "backend": backend, "arch": arch.rpartition(":")[2], "head_removed": head}
    provenance = {"file": p.name, "layout": backbone.record(), "file_weights_sha256": hash_state_dict(backbone.state),
                  "load": "weights_only=False (--trust-checkpoint)" if trust_checkpoint else "weights_only=True",
                  **report}
    enc = ModuleEncoder(checkpoint_name(p, arch), model, preprocess or default_pre, fp, features,
                        provenance=provenance)
    announce(f"{p.name}: {backbone.describe()} -> {arch}")
    return enc
