"""timm architectures: model construction and the preprocessing timm's pretrained config gives."""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError, UnknownNameError
from .base import Preprocess


def _timm():
    try:
        import timm
    except ImportError:
        raise ConfigError("timm architectures need the timm package: pip install 'evalbench[timm]'") from None
    return timm


def build(name: str) -> torch.nn.Module:
    """An untrained timm model, head included (so checkpoints with heads load and are checked)."""
    timm = _timm()
    if not timm.is_model(name):
        raise UnknownNameError("timm architecture", name, timm.list_models())
    return timm.create_model(name, pretrained=False)


def preprocess_for(model: torch.nn.Module) -> Preprocess:
    """timm's resolved data config as a Preprocess (resize = input / crop_pct, as timm computes it)."""
    cfg = _timm().data.resolve_data_config({}, model=model)
    size = int(cfg["input_size"][-1])
    resize = int(math.floor(size / cfg.get("crop_pct", 0.875)))
    return Preprocess(size, resize, cfg.get("interpolation", "bicubic"), tuple(cfg["mean"]), tuple(cfg["std"]))
