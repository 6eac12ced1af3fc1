"""Recognise research-checkpoint layouts (DINO, MoCo, MAE, solo-learn, VISSL, timm) and extract the backbone."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import CheckpointError

# Wrappers (DataParallel/DDP, torch.compile) prefix every key; stripped with startswith only.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Where training scripts nest the weights when no known layout matched, in the order we look.
_TIMM_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
_GENERIC_KEYS = ("state_dict", "model", "module", "net")


@dataclass
class Backbone:
    """The backbone's tensors and how they were found (recorded in the encoder fingerprint)."""

    state: dict[str, torch.Tensor]
    layout: str
    source: str = ""  # the key path the state dict came from
    stripped: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # prefix -> number of tensors dropped

    def record(self) -> dict[str, Any]:
        return {"layout": self.layout, "source": self.source, "stripped_prefixes": self.stripped,
                "dropped": self.dropped}

    def describe(self) -> str:
        parts = [f"from '{self.source}'" if self.source else "top level"]
        if self.stripped:
            parts.append("stripped " + ", ".join(self.stripped))
        if self.dropped:
            parts.append("dropped " + ", ".join(f"{p}* ({n})" for p, n in self.dropped.items()))
        return f"{self.layout} ({'; '.join(parts)})"


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _tensors(obj: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _strip_all(b: Backbone, prefix: str) -> None:
    """Strip `prefix` when every key carries it (a wrapper prefix is all or nothing)."""
    if b.state and all(k.startswith(prefix) for k in b.state):
        b.state = {k[len(prefix):]: v for k, v in b.state.items()}
        b.stripped.append(prefix)


def _drop(b: Backbone, *prefixes: str) -> None:
    """Drop the tensors of heads that are not part of the backbone (projectors, decoders, predictors)."""
    for p in prefixes:
        hit = [k for k in b.state if k.startswith(p) or k == p.rstrip(".")]
        if hit:
            b.dropped[p] = len(hit)
            for k in hit:
                del b.state[k]


def _select(b: Backbone, prefix: str, path: Path | str) -> None:
    """Keep only the tensors under `prefix`, without it (e.g. MoCo's query encoder)."""
    kept = {k[len(prefix):]: v for k, v in b.state.items() if k.startswith(prefix)}
    if not kept:
        raise CheckpointError(f"checkpoint {path}: {b.layout} layout but no tensor starts with {prefix!r}; "
                              "pass --checkpoint-key to say where the weights are")
    others = {}
    for k in b.state:
        if not k.startswith(prefix):
            head = k.split(".", 1)[0] + "."
            others[head] = others.get(head, 0) + 1
    b.dropped.update(others)
    b.state = kept
    b.stripped.append(prefix)


def _lookup(obj: dict, key: str, path: Path | str) -> Any:
    """`obj[key]`, or a dotted path through nested dicts (`classy_state_dict.base_model.model.trunk`)."""
    if key in obj:
        return obj[key]
    node: Any = obj
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            keys = ", ".join(map(str, list(obj)[:12]))
            raise CheckpointError(f"checkpoint {path}: --checkpoint-key {key!r} not found (top-level keys: {keys})")
        node = node[part]
    return node


def _prefixes(state: dict) -> set[str]:
    return {k.split(".", 1)[0] for k in state}


def _dino(obj: dict, path: Path | str, checkpoint_key: Optional[str]) -> Optional[Backbone]:
    """DINO checkpoint.pth, DINOv2 teacher_checkpoint.pth: `teacher` / `student` dicts."""
    teacher_student = [k for k in ("teacher", "student") if isinstance(obj.get(k), dict)]
    if not teacher_student:
        return None
    key = checkpoint_key or ("teacher" if "teacher" in teacher_student else "student")
    b = Backbone(_tensors(_lookup(obj, key, path)), "DINO", key)
    _strip_all(b, "module.")
    _drop(b, "head.", "dino_head.", "ibot_head.")
    _strip_all(b, "backbone.")
    return b


def _vissl(obj: dict, path: Path | str, checkpoint_key: Optional[str]) -> Optional[Backbone]:
    if not (isinstance(obj.get("classy_state_dict"), dict) or isinstance(obj.get("model_state_dict"), dict)):
        return None
    default = "classy_state_dict.base_model.model.trunk" if "classy_state_dict" in obj else "model_state_dict"
    key = checkpoint_key or default
    b = Backbone(_tensors(_lookup(obj, key, path)), "VISSL", key)
    _strip_all(b, "_feature_blocks.")
    return b


def _under_state_dict(obj: dict, path: Path | str, checkpoint_key: Optional[str]) -> Optional[Backbone]:
    """MoCo v2/v3 and solo-learn/Lightning: recognised by the key prefixes under `state_dict`."""
    sd = obj.get("state_dict")
    if not isinstance(sd, dict) or checkpoint_key is not None:
        return None
    keys = list(sd)
    for version, prefix in (("v2", "encoder_q."), ("v3", "base_encoder.")):
        if any(k.startswith(prefix) or k.startswith("module." + prefix) for k in keys):  # MoCo
            b = Backbone(_tensors(sd), f"MoCo {version}", "state_dict")
            _strip_all(b, "module.")
            _select(b, prefix, path)
            # the projection MLP replaces the classifier: fc.* on ResNets, head.* on ViTs
            _drop(b, "fc.", "head.")
            return b
    if any(k.startswith("backbone.") for k in keys) and not any(k.startswith("teacher.") for k in keys):
        b = Backbone(_tensors(sd), "solo-learn/Lightning", "state_dict")  # projector, classifier, momentum_*
        _strip_all(b, "module.")
        _select(b, "backbone.", path)
        return b
    return None


def _under_model(obj: dict, path: Path | str, checkpoint_key: Optional[str]) -> Optional[Backbone]:
    """MAE pre-training and DINOv2 training checkpoints: recognised by the key prefixes under `model`."""
    model = obj.get("model")
    if not isinstance(model, dict) or checkpoint_key is not None:
        return None
    keys = list(model)
    if any(k.startswith("decoder_") or k == "mask_token" for k in keys):  # MAE pre-training
        b = Backbone(_tensors(model), "MAE", "model")
        _strip_all(b, "module.")
        _drop(b, "decoder_", "mask_token.")
        return b
    if any(k.startswith("teacher.backbone.") for k in keys):  # DINOv2 training checkpoint
        b = Backbone(_tensors(model), "DINOv2 (training)", "model")
        _select(b, "teacher.backbone.", path)
        return b
    return None


def _unwrapped(b: Backbone) -> Backbone:
    for p in WRAPPER_PREFIXES:
        _strip_all(b, p)
    return b


def _custom_key(obj: dict, path: Path | str, checkpoint_key: Optional[str]) -> Optional[Backbone]:
    """--checkpoint-key where no known layout claimed the file."""
    if checkpoint_key is None:
        return None
    node = _lookup(obj, checkpoint_key, path)
    if not isinstance(node, dict) or not _tensors(node):
        raise CheckpointError(f"checkpoint {path}: --checkpoint-key {checkpoint_key!r} holds no tensors")
    return _unwrapped(Backbone(_tensors(node), "custom key", checkpoint_key))


def _plain(obj: dict, path: Path | str, checkpoint_key: Optional[str]) -> Optional[Backbone]:
    return _unwrapped(Backbone(dict(obj), "plain state dict", "")) if _is_tensor_dict(obj) else None


def _nested(obj: dict, path: Path | str, checkpoint_key: Optional[str]) -> Optional[Backbone]:
    """timm training checkpoints (EMA first), else the first usual key that holds tensors."""
    timm_like = any(isinstance(obj.get(k), dict) for k in ("state_dict_ema", "model_ema")) or "arch" in obj or "version" in obj
    for key in (_TIMM_KEYS if timm_like else _GENERIC_KEYS):
        node = obj.get(key)
        if isinstance(node, dict) and _tensors(node):
            return _unwrapped(Backbone(_tensors(node), "timm" if timm_like else f"nested under '{key}'", key))
    return None


# Tried in order; the first that recognises the checkpoint wins (specific layouts before generic ones).
_DETECTORS = (_dino, _vissl, _under_state_dict, _under_model, _custom_key, _plain, _nested)


def detect(obj: dict[str, Any], path: Path | str = "checkpoint", checkpoint_key: Optional[str] = None) -> Backbone:
    """The backbone tensors inside a loaded checkpoint, with the layout that was recognised.

    Args:
        obj: what read_checkpoint returned.
        checkpoint_key: take the state dict from this key (dotted for nesting) instead of the
            layout's default, e.g. `student` for a DINO checkpoint.

    Raises:
        CheckpointError: no layout matches (lists the top-level keys), or a layout's expected
            prefix is absent.
    """
    for detector in _DETECTORS:
        b = detector(obj, path, checkpoint_key)
        if b is not None:
            return _finish(b, path)
    keys = ", ".join(map(str, list(obj)[:12]))
    raise CheckpointError(
        f"checkpoint {path}: layout not recognised (top-level keys: {keys}); pass --checkpoint-key KEY to say "
        "where the state dict is, save a plain state dict, or write an adapter (see README, 'Writing an adapter')"
    )


def _finish(b: Backbone, path: Path | str) -> Backbone:
    if not b.state:
        raise CheckpointError(f"checkpoint {path}: no backbone tensors left after reading it as {b.describe()}; "
                              "pass --checkpoint-key to say where the weights are")
    return b
