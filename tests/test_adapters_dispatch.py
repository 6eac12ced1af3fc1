"""The prefix table: each spec kind reaches its backend, in order, and entry points are read only when needed."""
from __future__ import annotations

import pytest

from evalbench.adapters import BACKENDS, BUILTIN_NAMES, _resolve, custom, load_encoder
from evalbench.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize("spec, usage, arg", [
    ("pixels", "pixels", ""),
    ("pixels:8", "pixels", "8"),
    ("effnet-lite0", "effnet-lite0", ""),
    ("torchvision:resnet18", "torchvision:ARCH", "resnet18"),
    ("timm:vit_small_patch16_224.augreg_in21k", "timm:NAME[.TAG]", "vit_small_patch16_224.augreg_in21k"),
    ("hf:facebook/dinov2-small", "hf:ID", "facebook/dinov2-small"),
    ("runs/dino/checkpoint.pth", "PATH --arch ARCH", "runs/dino/checkpoint.pth"),
    ("weights.safetensors", "PATH --arch ARCH", "weights.safetensors"),
    ("my_pkg.encoders:make", "package.module:attr", "my_pkg.encoders:make"),
])
def test_each_spec_kind_reaches_its_backend(spec, usage, arg, monkeypatch):
    monkeypatch.setattr(custom, "registered_adapters", lambda: {})
    backend, got = _resolve(spec)
    assert (backend.usage, got) == (usage, arg)


def test_builtin_prefixes_never_read_the_entry_points(monkeypatch):
    def scan():
        raise AssertionError("entry points scanned for a built-in spec")

    monkeypatch.setattr(custom, "registered_adapters", scan)
    for spec in ("pixels", "effnet-lite0", "torchvision:x", "timm:x", "hf:x"):
        _resolve(spec)


def test_the_listing_comes_from_the_table():
    assert list(BUILTIN_NAMES) == ["pixels", "effnet-lite0", "torchvision:ARCH", "timm:NAME[.TAG]", "hf:ID",
                                   "PATH --arch ARCH", "package.module:attr"]
    assert [b.usage for b in BACKENDS if b.random_init] == ["torchvision:ARCH", "timm:NAME[.TAG]"]


def test_unknown_specs_and_misplaced_random_init(monkeypatch):
    monkeypatch.setattr(custom, "registered_adapters", lambda: {})
    with pytest.raises(UnknownNameError, match=r"did you mean 'effnet-lite0'.*use pixels, effnet-lite0, torchvision:ARCH"):
        load_encoder("effnet-lite")
    with pytest.raises(ConfigError, match="--random-init applies to torchvision:ARCH and timm:NAME specs only"):
        load_encoder("pixels", random_init=True)
    with pytest.raises(ConfigError, match="pixels size must be a positive integer, got 'x'"):
        load_encoder("pixels:x")
