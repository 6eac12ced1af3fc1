"""Feature choice (--layer, --pool, --dtype), timm:NAME models, and several pools from one forward pass."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import timm
import torch
import torchvision

from evalbench import load_encoder
from evalbench.adapters.features import FeatureModule
from evalbench.errors import ConfigError, UnknownNameError
from evalbench.extract import feature_choices


@pytest.fixture(scope="module")
def vit_enc():
    return load_encoder("timm:test_vit", random_init=True, pool="cls,mean,cls+mean,last2,last2+avg,native")


@pytest.fixture(scope="module")
def reference_vit():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the seed timm:NAME --random-init uses
        return timm.create_model("test_vit").eval()


def test_vit_pools_match_timm_and_dino_definitions(vit_enc, reference_vit):
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    out = vit_enc.encode_multi(x)
    with torch.inference_mode():
        tokens = reference_vit.forward_features(x)
        last2 = reference_vit.forward_intermediates(x, indices=2, norm=True, output_fmt="NLC", intermediates_only=True,
                                                    return_prefix_tokens=True)
        native = reference_vit.forward_head(tokens, pre_logits=True)
    cls, mean = tokens[:, 0], tokens[:, 1:].mean(1)
    assert torch.allclose(out["cls"], cls, atol=1e-5) and torch.allclose(out["native"], native, atol=1e-5)
    assert torch.allclose(out["mean"], mean, atol=1e-5)
    assert torch.allclose(out["cls+mean"], torch.cat([cls, mean], -1), atol=1e-5)
    dino_cls = torch.cat([prefix[:, 0] for patches, prefix in last2], -1)  # DINO eval_linear: normed CLS of the last n blocks
    assert torch.allclose(out["last2"], dino_cls, atol=1e-5)
    assert torch.allclose(out["last2+avg"], torch.cat([dino_cls, last2[-1][0].mean(1)], -1), atol=1e-5)


def test_feature_choices_are_named_and_fingerprinted_per_pool(vit_enc):
    choices = feature_choices(vit_enc, vit_enc.name)
    assert [c.name for c in choices] == ["test_vit.random-init", "test_vit.random-init@mean", "test_vit.random-init@cls+mean",
                                        "test_vit.random-init@last2", "test_vit.random-init@last2+avg", "test_vit.random-init@native"]
    assert [c.key for c in choices] == list(vit_enc.pools)
    fps = [c.fingerprint for c in choices]
    assert [f["pool"] for f in fps] == list(vit_enc.pools) and len({f["weights_sha256"] for f in fps}) == 1
    with pytest.raises(ConfigError, match="several feature choices"):
        vit_enc.encode(torch.zeros(1, 3, 160, 160))


def test_vit_intermediate_block(reference_vit):
    enc = load_encoder("timm:test_vit", random_init=True, layer="blocks.1", pool="mean")
    assert enc.name == "test_vit.random-init@blocks.1@mean" and enc.fingerprint()["layer"] == "blocks.1"
    x = torch.randn(1, 3, 160, 160)
    with torch.inference_mode():
        (tokens,) = reference_vit.forward_intermediates(x, indices=[1], norm=True, output_fmt="NLC", intermediates_only=True)
    assert torch.allclose(enc.encode(x), tokens.mean(1), atol=1e-5)


def test_resnet_stage_and_default_pool():
    ref = torchvision.models.resnet18().eval()
    x = torch.randn(2, 3, 64, 64)
    fm = FeatureModule(ref, "layer3", None)
    with torch.inference_mode():
        stage = ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x)))))))
        assert torch.allclose(fm(x)["avg"], stage.mean((2, 3)), atol=1e-5)
    enc = load_encoder("torchvision:resnet18", random_init=True, layer="layer3")
    assert enc.encode(x).shape == (2, 256) and enc.name == "resnet18.random-init@layer3@avg"
    assert load_encoder("torchvision:resnet18", random_init=True).fingerprint()["pool"] == "avg"


def test_torchvision_vit_tokens():
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32).eval()
    vit.heads = torch.nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    out = FeatureModule(vit, None, ("cls", "last1", "mean"))(x)
    with torch.inference_mode():
        assert torch.allclose(out["cls"], vit(x), atol=1e-5) and torch.allclose(out["last1"], out["cls"], atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"spec": "timm:test_vit", "pool": "avg"}, "--pool avg is for convolutional models"),
    ({"spec": "timm:test_vit", "pool": "last9"}, "--pool last9: the model has only 6 blocks"),
    ({"spec": "timm:test_vit", "pool": "last2", "layer": "blocks.1"}, "takes the last blocks itself"),
    ({"spec": "timm:test_vit", "layer": "blocks.6"}, r"use blocks.N with N in 0..5"),
    ({"spec": "timm:test_resnet", "pool": "cls"}, "--pool 'cls' needs a ViT"),
    ({"spec": "timm:test_resnet", "pool": "max"}, "--pool 'max' is not one of"),
    ({"spec": "pixels", "pool": "cls"}, "do not apply to the pixels baseline"),
])
def test_feature_choice_errors(kwargs, message):
    spec = kwargs.pop("spec")
    with pytest.raises(ConfigError, match=message):
        load_encoder(spec, random_init=spec != "pixels", **kwargs)


def test_unknown_cnn_layer_suggests_names():
    with pytest.raises(UnknownNameError, match="unknown --layer 'layer5'; did you mean"):
        load_encoder("timm:test_resnet", random_init=True, layer="layer5")


def test_dtype_is_recorded_and_warned_on_cpu(caplog):
    with caplog.at_level(logging.WARNING):
        enc = load_encoder("timm:test_resnet", random_init=True, dtype="bf16")
    assert enc.fingerprint()["dtype"] == "bfloat16-autocast" and "--dtype bf16 on CPU" in caplog.text
    fp32 = load_encoder("timm:test_resnet", random_init=True)
    assert fp32.fingerprint()["dtype"] == "float32"
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(enc.encode(x), fp32.encode(x), atol=0.1, rtol=0.1)


def test_timm_pretrained_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    from evalbench.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"timm weights for 'test_vit' are not in the Hugging Face cache \(.*hf/hub\) "
                       r"and HF_HUB_OFFLINE is set; run once online .*--random-init"):
        load_encoder("timm:test_vit")
    with pytest.raises(UnknownNameError, match="unknown timm model 'test_vitt'"):
        load_encoder("timm:test_vitt", random_init=True)
    again = load_encoder("timm:test_vit", random_init=True)
    assert again.fingerprint()["source"] == "random-init" and again.preprocess.input_size == 160


def test_one_forward_pass_fills_every_pools_cache_entry(tmp_path, digits_pool):
    from evalbench.cache import FeatureCache
    from evalbench.extract import extract_features, extract_one

    enc = load_encoder("timm:test_resnet", random_init=True, pool="avg,native", input_size=32)
    choices = feature_choices(enc, enc.name)
    cache = FeatureCache(tmp_path / "cache")
    idx = np.arange(40)
    ident = {"source": "digits-test"}
    calls = []
    hook = enc.module.register_forward_hook(lambda *a: calls.append(1))
    got = extract_features(enc, enc.preprocess, choices, digits_pool, idx, ident, cache, batch_size=16)
    assert len(calls) == 3  # 40 samples in batches of 16: one forward pass per batch for both choices
    hook.remove()
    avg, native = got["avg"], got["native"]
    assert avg.extracted == 40 and native.extracted == 40 and avg.key != native.key
    assert np.array_equal(np.asarray(avg.features), np.asarray(native.features))  # resnet's native head = avg pool
    calls.clear()
    enc.module.register_forward_hook(lambda *a: calls.append(1))
    again = extract_features(enc, enc.preprocess, choices, digits_pool, idx, ident, cache, batch_size=16)
    assert again["native"].extracted == 0 and again["native"].key == native.key and not calls  # both cached
    single = load_encoder("timm:test_resnet", random_init=True, pool="native", input_size=32)
    alone = extract_one(single, digits_pool, idx, ident, FeatureCache(tmp_path / "other"), batch_size=16)
    assert np.allclose(np.asarray(alone.features), np.asarray(native.features), atol=1e-5)


def test_cli_runs_each_pool_as_its_own_model(tmp_path, capsys):
    import json

    from evalbench.cli import main

    args = ["run", "--model", "timm:test_resnet", "--random-init", "--input-size", "32", "--pool", "avg,native",
            "--tasks", "digits", "--protocols", "knn", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"),
            "--no-progress"]
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1797 samples extracted, 0 reused" in out  # one forward pass served both pools
    avg = json.loads((tmp_path / "out" / "test_resnet.random-init-32px" / "digits" / "knn.json").read_text())
    native = json.loads((tmp_path / "out" / "test_resnet.random-init-32px-native" / "digits" / "knn.json").read_text())
    assert avg["model"]["spec"] == native["model"]["spec"] == "timm:test_resnet"
    assert (avg["model"]["fingerprint"]["pool"], native["model"]["fingerprint"]["pool"]) == ("avg", "native")
    assert avg["metrics"] == native["metrics"]  # on a CNN the two choices are the same numbers
