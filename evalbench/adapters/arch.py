"""Untrained architectures by name (torchvision or timm) for checkpoints to be loaded into."""
from __future__ import annotations

import torch

from ..errors import CheckpointError
from . import timm as timm_adapter
from . import torchvision as tv
from .base import Preprocess


def build_arch(arch: str) -> tuple[torch.nn.Module, Preprocess, str]:
    """An untrained model for `arch`, its default preprocessing, and its backend.

    Args:
        arch: "torchvision:NAME", "timm:NAME", or a bare NAME (torchvision when it has one, else timm).

    Raises:
        CheckpointError: the backend prefix is neither torchvision nor timm.
        UnknownNameError: the architecture does not exist in that backend.
    """
    backend, _, name = arch.rpartition(":")
    if backend not in ("", "torchvision", "timm"):
        raise CheckpointError(f"--arch {arch}: backend {backend!r} is not one of torchvision, timm")
    if backend == "torchvision" or (not backend and name in tv.list_architectures()):
        return tv.build(name), tv.preprocess_for(name), "torchvision"
    model = timm_adapter.build(name)
    return model, timm_adapter.preprocess_for(model), "timm"
