"""Adapters: every model spec kind loads the right weights, or fails with one clear line."""
from __future__ import annotations

import textwrap

import pytest
import torch
import torchvision

from evalbench import load_encoder
from evalbench.adapters.heads import find_head, strip_head
from evalbench.errors import CheckpointError, ConfigError, UnknownNameError


def reference_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    strip_head(model, find_head(model))
    with torch.inference_mode():
        return model.eval()(x)


@pytest.fixture
def resnet18_file(tmp_path):
    model = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "r18.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_pixels_flattens_the_preprocessed_image():
    enc = load_encoder("pixels:4")
    x = enc.preprocess(torch.full((2, 1, 8, 8), 255, dtype=torch.uint8))
    feats = enc.encode(x)
    assert feats.shape == (2, 3 * 4 * 4) and torch.all(feats == 1.0)
    assert enc.fingerprint()["size"] == 4


def test_checkpoint_features_equal_the_original_models(resnet18_file):
    model, path = resnet18_file
    x = torch.randn(2, 3, 64, 64)
    enc = load_encoder(str(path), arch="resnet18")
    expected = reference_features(model, x)
    assert torch.allclose(enc.encode(x), expected, atol=1e-4)
    assert enc.fingerprint()["head_removed"] == "fc" and enc.preprocess.input_size == 224


def test_checkpoint_nested_and_module_prefixed_is_unwrapped(tmp_path, resnet18_file):
    model, _ = resnet18_file
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    path = tmp_path / "wrapped.pth"
    torch.save(wrapped, path)
    enc = load_encoder(str(path), arch="torchvision:resnet18")
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(enc.encode(x), reference_features(model, x), atol=1e-4)


def test_safetensors_checkpoint_with_a_timm_arch(tmp_path):
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("test_vit", pretrained=False)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    enc = load_encoder(str(path), arch="timm:test_vit")
    size = enc.preprocess.input_size
    x = torch.randn(2, 3, size, size)
    assert torch.allclose(enc.encode(x), reference_features(model, x), atol=1e-4)


def test_weights_change_the_fingerprint(tmp_path, resnet18_file):
    _, path = resnet18_file
    other = tmp_path / "other.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    a = load_encoder(str(path), arch="resnet18").fingerprint()["weights_sha256"]
    b = load_encoder(str(other), arch="resnet18").fingerprint()["weights_sha256"]
    assert a != b


def test_key_mismatch_lists_missing_and_unexpected_keys(tmp_path, resnet18_file):
    model, _ = resnet18_file
    state = {("backbone." + k): v for k, v in model.state_dict().items()}
    path = tmp_path / "prefixed.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"does not match the architecture: missing keys: bn1\.bias.*unexpected keys: backbone\."):
        load_encoder(str(path), arch="resnet18")


def test_shape_mismatch_names_the_tensor(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path / "r18.pth"
    torch.save({**state, "conv1.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError, match=r"tensor conv1\.weight has shape \(64, 3, 3, 3\) but --arch expects \(64, 3, 7, 7\)"):
        load_encoder(str(path), arch="resnet18")


def test_missing_directory_empty_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_encoder(str(tmp_path / "nope.pth"), arch="resnet18")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_encoder(str(tmp_path) + "/", arch="resnet18")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_encoder(str(tmp_path / "empty.pth"), arch="resnet18")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="corrupt or truncated|refuses"):
        load_encoder(str(tmp_path / "junk.pth"), arch="resnet18")
    (tmp_path / "fake.safetensors").write_bytes(b"PK\x03\x04 zip data")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_encoder(str(tmp_path / "fake.safetensors"), arch="resnet18")


DEMO_WEIGHTS_SHA256 = "6f9744b3ba88e4cf937c63663bc07c9a973aea459e04535cb5303deab17a4f6f"


class Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_pickle_payload_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="weights-only loading refuses"):
        load_encoder(str(path), arch="resnet18")
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()


def test_checkpoint_without_arch_asks_for_it(resnet18_file):
    with pytest.raises(CheckpointError, match="also pass --arch"):
        load_encoder(str(resnet18_file[1]))


def test_unknown_specs_suggest_names():
    with pytest.raises(UnknownNameError, match="did you mean 'pixels'"):
        load_encoder("pixel")
    with pytest.raises(UnknownNameError, match="unknown torchvision architecture 'resnet5'"):
        load_encoder("torchvision:resnet5")


def test_random_init_only_on_request():
    enc = load_encoder("torchvision:resnet18", random_init=True)
    assert enc.fingerprint()["source"] == "random-init"
    again = load_encoder("torchvision:resnet18", random_init=True)
    assert enc.fingerprint()["weights_sha256"] == again.fingerprint()["weights_sha256"]  # reproducible init


def test_custom_adapter_module_attr(tmp_path, monkeypatch):
    (tmp_path / "my_adapter.py").write_text(textwrap.dedent('''
        import torch
        from evalbench import Preprocess

        class Mean:
            name = "channel-mean"
            preprocess = Preprocess(input_size=8, resize_size=8, keep_aspect=False)
            def fingerprint(self):
                return {"adapter": "channel-mean", "version": 1}
            def encode(self, images):
                return images.mean(dim=(2, 3))

        def make(**options):
            return Mean()
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    enc = load_encoder("my_adapter:make")
    assert enc.name == "channel-mean"
    assert enc.encode(torch.ones(2, 3, 8, 8)).shape == (2, 3)
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_encoder("my_adapter:nope")
    with pytest.raises(ConfigError, match="cannot import module 'not_a_module_xyz'"):
        load_encoder("not_a_module_xyz:make")


def test_preprocess_overrides_apply_and_rename_the_model():
    enc = load_encoder("pixels", input_size=24, crop_pct=1.0)
    assert (enc.preprocess.input_size, enc.preprocess.resize_size) == (24, 24)
    assert enc.name == "pixels-16@24px"
    native = load_encoder("effnet-lite0", input_size=224)
    assert (native.preprocess.input_size, native.preprocess.resize_size, native.name) == (224, 255, "effnet-lite0@224px")
    other_norm = load_encoder("pixels", mean=(0.5, 0.5, 0.5))
    assert other_norm.name.startswith("pixels-16@pp-")


def test_demo_encoder_is_pretrained_efficientnet_lite0():
    enc = load_encoder("effnet-lite0")
    assert enc.name == "effnet-lite0" and enc.preprocess.input_size == 128
    x = torch.zeros(1, 3, 128, 128)
    feats = enc.encode(x)
    assert feats.shape == (1, 1280)
    # exactly the packaged ImageNet weights (hash over names, shapes and bytes), never a random init
    assert enc.fingerprint()["weights_sha256"] == DEMO_WEIGHTS_SHA256
    assert load_encoder("demo").fingerprint() == enc.fingerprint()
