"""Load a state-dict file safely and into an architecture, refusing anything that would not match."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import CheckpointError
from .base import Preprocess
from .heads import find_head, head_keys, strip_head
from .module import ModuleEncoder

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pth.tar", ".tar", ".bin", ".ckpt", ".safetensors")
# Wrappers under which training scripts nest the weights, in the order we look for them.
_NESTED_KEYS = ("state_dict", "model", "module", "net")
# Prefixes that wrappers (DataParallel, torch.compile) add; stripped with startswith only.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _is_safetensors(path: Path) -> bool:
    """safetensors files open with an 8-byte little-endian header length, then JSON '{'."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint file without executing code: safetensors, or torch.load(weights_only=True).

    Raises:
        CheckpointError: missing file, a directory, corrupt or truncated content, or pickled
            objects that weights-only loading refuses.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path passed to --model")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; pass the weights file inside it (.pt, .pth or .safetensors)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); the download or copy was probably interrupted")
    looks_safetensors = _is_safetensors(path)
    if path.suffix == ".safetensors" or looks_safetensors:
        if not looks_safetensors:
            raise CheckpointError(f"checkpoint {path} has a .safetensors name but is not a safetensors file; rename it to .pt/.pth if it is a torch file")
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise CheckpointError("reading .safetensors needs the safetensors package: pip install safetensors") from None
        try:
            return load_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} holds objects that weights-only loading refuses ({first}); "
            "evalbench never unpickles arbitrary code: re-save the file with only tensors (torch.save(model.state_dict(), ...))"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def extract_state_dict(obj: dict[str, Any], path: Path | str = "checkpoint") -> tuple[dict[str, torch.Tensor], str]:
    """The tensor dict inside a loaded checkpoint, and a word naming where it was found."""
    layout = "plain state dict"
    for _ in range(3):  # a few nesting levels cover the usual training-script wrappers
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        key = next((k for k in _NESTED_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            keys = ", ".join(list(map(str, obj))[:10])
            raise CheckpointError(
                f"checkpoint {path}: layout not recognised (top-level keys: {keys}); "
                "save a plain state dict, or write an adapter (see README, 'Writing an adapter')"
            )
        obj, layout = obj[key], f"nested under '{key}'"
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state, layout


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path | str, allowed_missing: set[str]) -> dict[str, list[str]]:
    """Load `state` into `model`, failing unless the only differences are in `allowed_missing`.

    Keys in `allowed_missing` (the classifier head) may be absent or carry another shape; every
    other missing, unexpected or mis-shaped tensor is an error that names them, because a
    silently random-initialised layer gives a plausible but wrong number.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - allowed_missing)
    unexpected = sorted(set(state) - set(expected) - allowed_missing)
    if missing or unexpected:
        def short(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "") if keys else "none"
        raise CheckpointError(
            f"checkpoint {path} does not match the architecture: missing keys: {short(missing)}; "
            f"unexpected keys: {short(unexpected)}; check --arch, or the prefix the checkpoint uses"
        )
    for key, tensor in state.items():
        if key in allowed_missing:
            continue
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"checkpoint {path}: tensor {key} has shape {tuple(tensor.shape)} but --arch expects "
                f"{tuple(expected[key].shape)}; check --arch"
            )
    loadable = {k: v for k, v in state.items() if k not in allowed_missing}
    model.load_state_dict(loadable, strict=False)
    return {"skipped_head_keys": sorted(set(state) & allowed_missing)}


def build_arch(arch: str) -> tuple[torch.nn.Module, Preprocess, str]:
    """An untrained model for `arch` ("torchvision:NAME", "timm:NAME", or a bare name), its preprocessing, and its backend."""
    from . import timm as timm_adapter
    from . import torchvision as tv

    backend, _, name = arch.rpartition(":")
    if backend not in ("", "torchvision", "timm"):
        raise CheckpointError(f"--arch {arch}: backend {backend!r} is not one of torchvision, timm")
    if backend == "torchvision" or (not backend and name in tv.list_architectures()):
        return tv.build(name), tv.preprocess_for(name), "torchvision"
    model = timm_adapter.build(name)
    return model, timm_adapter.preprocess_for(model), "timm"


def load(path: str, arch: Optional[str] = None, optimize: bool = True, preprocess: Optional[Preprocess] = None) -> ModuleEncoder:
    """`--model PATH --arch ARCH`: a state-dict file loaded into a torchvision or timm architecture."""
    p = Path(path)
    obj = read_checkpoint(p)  # checks existence first, so a typo'd path is reported as such
    if not arch:
        raise CheckpointError(f"--model {path} is a checkpoint file: also pass --arch (e.g. --arch resnet50 or --arch timm:vit_small_patch16_224)")
    state, layout = extract_state_dict(obj, p)
    model, default_pre, backend = build_arch(arch)
    head = find_head(model)
    report = load_into(model, state, p, head_keys(model, head))
    strip_head(model, head)
    from .base import hash_state_dict

    fp = {"adapter": "checkpoint", "backend": backend, "arch": arch, "pool": "avg", "head_removed": head,
          "layout": layout, "file": p.name, "file_weights_sha256": hash_state_dict(state), **report}
    return ModuleEncoder(f"{p.stem}.{arch.rpartition(':')[2]}", model, preprocess or default_pre, fp, optimize=optimize)
