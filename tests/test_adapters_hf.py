"""`hf:ID`: a tiny randomly initialised transformers ViT saved locally; no downloads."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from evalbench import load_encoder  # noqa: E402
from evalbench.errors import CheckpointError, ConfigError  # noqa: E402


def _config():
    return transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                  image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    model = transformers.ViTModel(_config()).eval()
    model.save_pretrained(d)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, resample=3, image_mean=[0.5] * 3,
                                   image_std=[0.25] * 3).save_pretrained(d)
    return d, model


def test_cls_pooled_and_last_blocks_match_the_model(hf_dir):
    d, model = hf_dir
    enc = load_encoder(f"hf:{d}", pool="cls,mean,pooled,last1,last2")
    x = torch.randn(2, 3, 32, 32)
    out = enc.encode_multi(x)
    with torch.inference_mode():
        ref = model(pixel_values=x, output_hidden_states=True)
        first = model.layernorm(ref.hidden_states[1])[:, 0]  # DINO-style: intermediate blocks get the final norm
    cls = ref.last_hidden_state[:, 0]
    assert torch.allclose(out["cls"], cls, atol=1e-4)
    assert torch.allclose(out["mean"], ref.last_hidden_state[:, 1:].mean(1), atol=1e-4)
    assert torch.allclose(out["pooled"], ref.pooler_output, atol=1e-4)
    assert torch.allclose(out["last1"], cls, atol=1e-4)
    assert torch.allclose(out["last2"], torch.cat([first, cls], -1), atol=1e-4)
    fp = enc.fingerprint()
    assert fp["adapter"] == "hf" and fp["model_type"] == "vit" and fp["preprocess_source"] == "image processor ViTImageProcessor"


def test_preprocessing_comes_from_the_image_processor(hf_dir):
    enc = load_encoder(f"hf:{hf_dir[0]}")
    p = enc.preprocess
    assert (p.input_size, p.resize_size, p.keep_aspect, p.interpolation) == (32, 32, False, "bicubic")
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.25, 0.25, 0.25)
    assert enc.pools == ("cls",) and enc.name == hf_dir[0].name
    # the directory is where the weights were, not what they are: recorded, but not in the cache key
    assert enc.provenance() == {"directory": hf_dir[0].name} and "model" not in enc.fingerprint()


def test_missing_weights_are_refused_except_an_unused_pooler(tmp_path):
    d = tmp_path / "classifier"
    transformers.ViTForImageClassification(_config()).save_pretrained(d)  # no pooler weights in it
    enc = load_encoder(f"hf:{d}")  # the CLS token never touches the (absent) pooler
    assert enc.encode(torch.randn(1, 3, 32, 32)).shape == (1, 32)
    with pytest.raises(CheckpointError, match="weights missing or mis-shaped for pooler.dense"):
        load_encoder(f"hf:{d}", pool="pooled")


def test_offline_hub_id_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match=r"hf:someone/tiny-vit-xyz is not in the Hugging Face cache .* and HF_HUB_OFFLINE is set"):
        load_encoder("hf:someone/tiny-vit-xyz")


def test_directory_without_a_model(tmp_path):
    with pytest.raises(CheckpointError, match="holds no loadable transformers model"):
        load_encoder(f"hf:{tmp_path}")


def test_cnn_pool_on_a_vit_is_refused(hf_dir):
    with pytest.raises(ConfigError, match="--pool avg is for convolutional models"):
        load_encoder(f"hf:{hf_dir[0]}", pool="avg")
