"""torchvision classification architectures and their pretrained weights as encoders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from ..errors import CheckpointError, UnknownNameError
from .base import IMAGENET_MEAN, IMAGENET_STD, FeatureOptions, Preprocess
from .heads import find_head, strip_head
from .module import ModuleEncoder
from .naming import torchvision_name
from .safeload import read_checkpoint  # one safe loader for every file we read


def list_architectures() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build(arch: str) -> torch.nn.Module:
    """An untrained torchvision classification model (1000 classes)."""
    import torchvision

    if arch not in list_architectures():
        raise UnknownNameError("torchvision architecture", arch, list_architectures())
    return torchvision.models.get_model(arch, weights=None)


def _weights_enum(arch: str, tag: Optional[str]):
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    if tag is None or tag == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[tag]
    except KeyError:
        raise UnknownNameError(f"weights tag for {arch}", tag, [w.name for w in enum]) from None


def preprocess_for(arch: str, weights=None) -> Preprocess:
    """The preprocessing torchvision documents for these weights (ImageNet 256/224 otherwise)."""
    if weights is None:
        try:
            weights = _weights_enum(arch, None)
        except Exception:  # architectures without published weights
            weights = None
    if weights is None:
        return Preprocess(224, 256, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
    t = weights.transforms()
    crop = int(t.crop_size[0])
    resize = int(t.resize_size[0]) if t.resize_size else crop
    return Preprocess(crop, resize, t.interpolation.value, tuple(t.mean), tuple(t.std))


def weights_path(weights) -> Path:
    """Where torch.hub keeps (or would keep) the file for these weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def fetch_weights(arch: str, weights) -> Path:
    """The local file of torchvision's weights, downloading it when it is missing and we are online."""
    path = weights_path(weights)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    try:
        torch.hub.download_url_to_file(weights.url, str(tmp), progress=True)
        os.replace(tmp, path)
    except Exception as exc:  # offline, proxy, HTTP error: all mean "not available here"
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"torchvision weights {arch}.{weights.name} are not cached at {path} and could not be "
            f"downloaded ({type(exc).__name__}); copy the file there, pass the file as --model PATH "
            f"--arch {arch}, or add --random-init to evaluate the untrained architecture on purpose"
        ) from None
    return path


def load(arch: str, features: FeatureOptions, weights: Optional[str] = None, random_init: bool = False,
         preprocess: Optional[Preprocess] = None) -> ModuleEncoder:
    """`torchvision:ARCH` — pretrained weights unless `random_init` is asked for explicitly."""
    if random_init:
        source, tag = "random-init", None
        # torch's default init draws from the global RNG; a fixed generator keeps it reproducible
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build(arch)
    else:
        model = build(arch)
        w = _weights_enum(arch, weights)
        state = read_checkpoint(fetch_weights(arch, w))
        model.load_state_dict(state, strict=True)
        source, tag = "torchvision", w.name
    head = find_head(model, 1000)
    strip_head(model, head)
    pre = preprocess or preprocess_for(arch)
    fp = {"adapter": "torchvision", "arch": arch, "weights": tag, "source": source, "head_removed": head}
    return ModuleEncoder(torchvision_name(arch, tag), model, pre, fp, features)
