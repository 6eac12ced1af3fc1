"""`hf:ID` — a Hugging Face transformers vision model (hub id or local directory) as an Encoder."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..env import hub_offline
from ..errors import CheckpointError, ConfigError
from .base import IMAGENET_MEAN, IMAGENET_STD, FeatureOptions, Preprocess
from .features import TokenAccess
from .module import ModuleEncoder
from .naming import hf_name
from .timm import hub_cache_dir

log = logging.getLogger(__name__)

_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL resample codes the image processors store


class HFViT(TokenAccess):
    """Token access through transformers' `output_hidden_states`, one forward pass per batch."""

    def __init__(self, backbone: "HFBackbone"):
        super().__init__(backbone)
        cfg = backbone.hf.config
        self.num_prefix = 1 + int(getattr(cfg, "num_register_tokens", 0) or 0)
        self.has_pooler = getattr(backbone.hf, "pooler", None) is not None
        self.n = int(cfg.num_hidden_layers)
        self._last: Any = None

    @property
    def blocks(self):
        return list(range(self.n))  # only the count is used; hidden states come from the model output

    def final_tokens(self, x):
        return self.model.hf(pixel_values=x).last_hidden_state

    def run(self, x, want, need_final):
        self._last = self.model.hf(pixel_values=x, output_hidden_states=bool(want))
        hidden = self._last.hidden_states
        return self._last.last_hidden_state, {i: self.norm(hidden[i + 1]) for i in want}

    def norm(self, t):
        ln = getattr(self.model.hf, "layernorm", None)
        return ln(t) if ln is not None else t

    def pooled(self, x):
        return self._last.pooler_output

    def native(self, x):
        return self.model(x)


class HFBackbone(nn.Module):
    """Wraps a transformers model: forward gives the pooled output (or CLS token) as (B, D)."""

    def __init__(self, hf_model: nn.Module, token_model: bool):
        super().__init__()
        self.hf = hf_model
        self.token_model = token_model

    def token_access(self) -> Optional[TokenAccess]:
        return HFViT(self) if self.token_model else None

    def forward(self, x):
        out = self.hf(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        return out.last_hidden_state[:, 0] if out.last_hidden_state.ndim == 3 else out.last_hidden_state


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def preprocess_from_processor(proc: Any, fallback_size: int) -> tuple[Preprocess, str]:
    """The image processor's resize/crop/normalisation as a Preprocess, and where it came from."""
    if proc is None:
        size = fallback_size
        return Preprocess(size, size, "bicubic", IMAGENET_MEAN, IMAGENET_STD, keep_aspect=False), "default (no image processor config)"
    size, crop = _get(proc, "size"), _get(proc, "crop_size") if getattr(proc, "do_center_crop", False) else None
    interp = _RESAMPLE.get(int(getattr(proc, "resample", 2) or 2), "bicubic")
    normalise = getattr(proc, "do_normalize", True)
    mean = tuple(proc.image_mean) if normalise else (0.0, 0.0, 0.0)
    std = tuple(proc.image_std) if normalise else (1.0, 1.0, 1.0)
    crop_side = _get(crop, "height") or _get(crop, "shortest_edge")
    if _get(size, "height"):
        h, w = int(_get(size, "height")), int(_get(size, "width"))
        if h != w:
            raise ConfigError(f"image processor resizes to {h}x{w}; evalbench feeds square inputs: pass --input-size")
        pre = Preprocess(int(crop_side or h), h, interp, mean, std, keep_aspect=False)
    elif _get(size, "shortest_edge"):
        s = int(_get(size, "shortest_edge"))
        crop_pct = getattr(proc, "crop_pct", None)
        if crop_side:
            pre = Preprocess(int(crop_side), s, interp, mean, std)
        elif crop_pct and s < 384:  # ConvNeXt: resize to s / crop_pct, then centre-crop s
            pre = Preprocess(s, int(s / crop_pct), interp, mean, std)
        else:
            pre = Preprocess(s, s, interp, mean, std)
    else:
        raise ConfigError(f"image processor size {size!r} is not understood; pass --input-size and --crop-pct")
    return pre, f"image processor {type(proc).__name__}"


def load(model_id: str, features: FeatureOptions, weights: Optional[str] = None) -> ModuleEncoder:
    """`hf:ID`: AutoModel weights and the image processor's preprocessing, local files only when offline.

    Args:
        model_id: a hub id (`facebook/dinov2-small`) or a local directory saved with save_pretrained.
        features: layer, pools, dtype, optimize.
        weights: a hub revision (branch, tag or commit).
    """
    try:
        import transformers
        from transformers import AutoImageProcessor, AutoModel
    except ImportError:
        raise ConfigError("hf: models need transformers: pip install 'evalbench[hf]'") from None
    local = Path(model_id).is_dir()
    offline = hub_offline()
    kwargs: dict[str, Any] = {"local_files_only": local or offline}
    if weights:
        kwargs["revision"] = weights
    try:
        try:
            hf_model, info = AutoModel.from_pretrained(model_id, output_loading_info=True, dtype=torch.float32, **kwargs)
        except TypeError:  # transformers < 4.56 calls it torch_dtype
            hf_model, info = AutoModel.from_pretrained(model_id, output_loading_info=True, torch_dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        if local:
            raise CheckpointError(f"hf:{model_id}: the directory holds no loadable transformers model ({str(exc).splitlines()[0]})") from None
        raise CheckpointError(
            f"hf:{model_id} is not in the Hugging Face cache ({hub_cache_dir()})"
            + (" and HF_HUB_OFFLINE is set" if offline else " and could not be downloaded")
            + f"; run once online (or `huggingface-cli download {model_id}`), or save it with save_pretrained and "
            "pass hf:/path/to/dir"
        ) from None
    missing = sorted(info.get("missing_keys") or [])
    wants_pooler = "pooled" in (features.pool or ())
    really_missing = [k for k in missing if wants_pooler or not k.startswith("pooler.")]
    if really_missing or info.get("mismatched_keys"):
        shown = ", ".join(really_missing[:6]) or str(list(info.get("mismatched_keys"))[:3])
        raise CheckpointError(f"hf:{model_id}: weights missing or mis-shaped for {shown}; these would be randomly "
                              "initialised, so evalbench refuses to evaluate them")
    if missing:  # only the pooler, which the default CLS/mean features never use
        hf_model.pooler = None
    try:
        proc = AutoImageProcessor.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError):
        proc = None
        log.warning("hf:%s has no image processor config; using ImageNet mean/std at the model's image size", model_id)
    cfg = hf_model.config
    pre, pre_source = preprocess_from_processor(proc, int(getattr(cfg, "image_size", 224) or 224))
    token_model = getattr(cfg, "patch_size", None) is not None and getattr(cfg, "num_hidden_layers", None) is not None \
        and not hasattr(cfg, "depths")  # Swin/ConvNeXt have stages (depths), not a CLS-token sequence
    backbone = HFBackbone(hf_model, token_model)
    fp = {"adapter": "hf", "model_type": cfg.model_type, "class": type(hf_model).__name__,
          "revision": getattr(cfg, "_commit_hash", None) or weights, "transformers": transformers.__version__,
          "preprocess_source": pre_source}
    # a hub id names the weights; a local directory's name is only where they were (kept out of the cache key)
    fp, provenance = ({**fp, "model": model_id}, {}) if not local else (fp, {"directory": Path(model_id).name})
    return ModuleEncoder(hf_name(model_id, local), backbone, pre, fp, features, provenance=provenance)
