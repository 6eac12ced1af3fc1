"""Model names: one module builds them, and committed results depend on every one staying the same."""
from __future__ import annotations

import hashlib

from evalbench.adapters.base import Preprocess
from evalbench.adapters.naming import (checkpoint_name, hf_name, model_name, pixels_name, pool_suffix,
                                       preprocess_suffix, timm_name, torchvision_name)

DEMO = Preprocess(128, 146, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_backend_names():
    assert (pixels_name(16, False), pixels_name(8, True)) == ("pixels-16", "pixels-8-gray")
    assert torchvision_name("resnet50", "IMAGENET1K_V2") == "resnet50.imagenet1k_v2"
    assert torchvision_name("resnet50", None) == "resnet50.random-init"
    assert timm_name("vit_small_patch16_224", "augreg_in21k", False) == "vit_small_patch16_224.augreg_in21k"
    assert (timm_name("test_vit", None, False), timm_name("test_vit", None, True)) == ("test_vit", "test_vit.random-init")
    assert (hf_name("facebook/dinov2-small", False), hf_name("/tmp/x/tiny-vit", True)) == ("facebook--dinov2-small", "tiny-vit")
    assert checkpoint_name("/runs/a/checkpoint.pth", "torchvision:resnet50") == "checkpoint.resnet50"
    assert checkpoint_name("vit.safetensors", "timm:test_vit") == "vit.test_vit"


def test_preprocess_suffix():
    assert preprocess_suffix(DEMO, DEMO) == ""
    assert preprocess_suffix(DEMO, Preprocess(224, 255, "bicubic", (0.5,) * 3, (0.5,) * 3)) == "@224px"
    other = Preprocess(128, 146, "bilinear", (0.5,) * 3, (0.5,) * 3)
    assert preprocess_suffix(DEMO, other) == "@pp-" + hashlib.sha256(repr(other).encode()).hexdigest()[:6]
    assert preprocess_suffix(DEMO, Preprocess(224, 224, "bicubic", (0.5,) * 3, (0.5,) * 3)).startswith("@224px@pp-")


def test_pool_suffix_and_the_full_name():
    assert pool_suffix("cls", None, "cls") == ""
    assert pool_suffix("mean", "blocks.1", "cls") == "@blocks.1@mean"
    assert pool_suffix("avg", "layer3", "avg") == "@layer3@avg"
    assert model_name("effnet-lite0", DEMO, DEMO, "avg", None, "avg") == "effnet-lite0"
    big = Preprocess(224, 255, "bicubic", (0.5,) * 3, (0.5,) * 3)
    assert model_name("effnet-lite0", DEMO, big, "native", None, "avg") == "effnet-lite0@224px@native"
    assert model_name("pixels-16", DEMO, DEMO) == "pixels-16"
