"""timm models: `timm:NAME` with timm's pretrained weights, architectures for checkpoints, timm's preprocessing."""
from __future__ import annotations

import math

import torch

from ..env import hub_offline
from ..errors import CheckpointError, ConfigError, UnknownNameError
from .base import FeatureOptions, Preprocess
from .heads import find_head, strip_head
from .module import ModuleEncoder
from .naming import timm_name


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


def hub_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return "~/.cache/huggingface/hub"


def load(name: str, features: FeatureOptions, random_init: bool = False) -> ModuleEncoder:
    """`timm:NAME[.TAG]` with timm's pretrained weights (from the Hugging Face hub cache), or `random_init` on request."""
    timm = _timm()
    arch = name.partition(".")[0]
    if not timm.is_model(arch):
        raise UnknownNameError("timm model", name, timm.list_models(), hint="see timm.list_models()")
    if random_init:
        # timm's init draws from the global RNG; a fixed seed inside fork_rng keeps it reproducible and contained
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=False)
        source, weights = "random-init", None
    else:
        if not (timm.list_pretrained(name) or timm.list_pretrained(f"{name}.*")):
            raise CheckpointError(f"timm model {name!r} has no pretrained weights in timm; pick a tagged name from "
                                  f"timm.list_pretrained('{arch}*'), or add --random-init to evaluate it untrained on purpose")
        try:
            model = timm.create_model(name, pretrained=True)
        except Exception as exc:  # offline, missing cache entry, HTTP errors: all mean "weights not here"
            offline = hub_offline()
            raise CheckpointError(
                f"timm weights for {name!r} are not in the Hugging Face cache ({hub_cache_dir()})"
                + (" and HF_HUB_OFFLINE is set" if offline else f" and could not be downloaded ({type(exc).__name__})")
                + f"; run once online (or `huggingface-cli download timm/{name}`), pass a weights file as "
                f"--model PATH --arch timm:{arch}, or add --random-init to evaluate it untrained on purpose"
            ) from None
        cfg = model.pretrained_cfg
        source, weights = "timm", cfg.get("hf_hub_id") or f"{cfg.get('architecture', arch)}.{cfg.get('tag', '')}"
    head = find_head(model)
    strip_head(model, head)
    fp = {"adapter": "timm", "arch": name, "weights": weights, "source": source, "head_removed": head}
    tag = model.pretrained_cfg.get("tag") if not random_init else None
    return ModuleEncoder(timm_name(arch, tag, random_init), model, preprocess_for(model), fp, features)
