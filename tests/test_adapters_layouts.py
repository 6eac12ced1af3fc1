"""Research-checkpoint layouts: each one loads the backbone's exact weights, or fails naming the keys."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import timm
import torch

from evalbench import load_encoder
from evalbench.adapters.heads import find_head, strip_head
from evalbench.errors import CheckpointError


def _model(arch: str, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(arch).eval()


@pytest.fixture(scope="module")
def vit():
    return _model("test_vit")


@pytest.fixture(scope="module")
def resnet():
    return _model("test_resnet")


def features(model: torch.nn.Module, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An input and the model's own features for it (classifier head removed)."""
    model = _copy(model)
    strip_head(model, find_head(model))
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        return x, model(x)


def _copy(model):
    import copy

    return copy.deepcopy(model)


def prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


def noise_like(state: dict, prefix: str = "") -> dict:
    return {prefix + k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}


def projector(prefix: str, dim: int = 8) -> dict:
    return {f"{prefix}0.weight": torch.randn(dim, dim), f"{prefix}0.bias": torch.randn(dim),
            f"{prefix}2.weight": torch.randn(dim, dim)}


def dino(sd):  # main_dino.py: student is DDP-wrapped, teacher is not; args and numpy scalars beside them
    return {"student": noise_like(sd, "module.backbone.") | projector("module.head.mlp."),
            "teacher": prefixed(sd, "backbone.") | projector("head.mlp."),
            "optimizer": {"state": {}, "param_groups": []}, "epoch": 100,
            "args": argparse.Namespace(arch="vit_small", patch_size=16, lr=np.float64(0.0005)),
            "dino_loss": {"center": torch.zeros(1, 8)}, "best": np.float32(71.5), "step": np.int64(1000)}


def dinov2_teacher(sd):
    return {"teacher": prefixed(sd, "backbone.") | projector("dino_head.mlp.") | projector("ibot_head.mlp.")}


def moco_v2(sd):
    body = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    return {"epoch": 200, "arch": "resnet50", "optimizer": {},
            "state_dict": prefixed(body, "module.encoder_q.") | projector("module.encoder_q.fc.")
            | noise_like(body, "module.encoder_k.") | {"module.queue": torch.randn(8, 16), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}}


def moco_v3(sd):
    body = {k: v for k, v in sd.items() if not k.startswith("head.")}
    return {"epoch": 300, "arch": "vit_small", "optimizer": {}, "scaler": {},
            "state_dict": prefixed(body, "module.base_encoder.") | projector("module.base_encoder.head.")
            | noise_like(body, "module.momentum_encoder.") | projector("module.predictor.")}


def mae(sd):
    body = {k: v for k, v in sd.items() if not k.startswith("head.")}
    return {"model": body | {"mask_token": torch.zeros(1, 1, 8), "decoder_embed.weight": torch.randn(8, 8),
                             "decoder_blocks.0.norm1.weight": torch.ones(8), "decoder_pred.bias": torch.zeros(8)},
            "epoch": 799, "args": argparse.Namespace(model="mae_vit_base_patch16")}


def solo_learn(sd):
    body = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    return {"epoch": 399, "global_step": 10, "pytorch-lightning_version": "2.0.0",
            "state_dict": prefixed(body, "backbone.") | noise_like(body, "momentum_backbone.")
            | projector("projector.") | {"classifier.weight": torch.randn(10, 8)}}


def vissl(sd):
    body = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    return {"phase_idx": 3, "iteration": 10, "type": "checkpoint",
            "classy_state_dict": {"base_model": {"model": {"trunk": prefixed(body, "_feature_blocks."),
                                                           "heads": projector("0.clf.")}}}}


def timm_train(sd):
    return {"epoch": 3, "arch": "test_resnet", "version": 2, "optimizer": {},
            "state_dict": noise_like(sd), "state_dict_ema": prefixed(sd, "_orig_mod.")}


def plain(sd):
    return dict(sd)


CASES = [  # (builder, model fixture, arch, layout name)
    (dino, "vit", "timm:test_vit", "DINO"),
    (dinov2_teacher, "vit", "timm:test_vit", "DINO"),
    (moco_v2, "resnet", "timm:test_resnet", "MoCo v2"),
    (moco_v3, "vit", "timm:test_vit", "MoCo v3"),
    (mae, "vit", "timm:test_vit", "MAE"),
    (solo_learn, "resnet", "timm:test_resnet", "solo-learn/Lightning"),
    (vissl, "resnet", "timm:test_resnet", "VISSL"),
    (timm_train, "resnet", "timm:test_resnet", "timm"),
    (plain, "resnet", "timm:test_resnet", "plain state dict"),
]


@pytest.mark.parametrize("build, which, arch, layout", CASES, ids=[c[0].__name__ for c in CASES])
def test_layout_is_detected_and_features_equal_the_original(build, which, arch, layout, request, tmp_path, capsys):
    model = request.getfixturevalue(which)
    path = tmp_path / f"{build.__name__}.pth"
    torch.save(build(model.state_dict()), path)
    enc = load_encoder(str(path), arch=arch)
    x, expected = features(model, enc.preprocess.input_size if which == "vit" else 64)
    assert torch.allclose(enc.encode(x), expected, atol=1e-4)
    prov = enc.provenance()
    assert prov["layout"]["layout"] == layout and prov["load"] == "weights_only=True"
    assert capsys.readouterr().err.count(f"{layout} (") == 1  # announced once


def test_dino_student_on_request(vit, tmp_path):
    path = tmp_path / "checkpoint.pth"
    ckpt = dino(vit.state_dict())
    torch.save(ckpt, path)
    teacher = load_encoder(str(path), arch="timm:test_vit")
    student = load_encoder(str(path), arch="timm:test_vit", checkpoint_key="student")
    assert student.provenance()["layout"]["source"] == "student"
    assert student.provenance()["layout"]["stripped_prefixes"] == ["module.", "backbone."]
    assert student.fingerprint()["weights_sha256"] != teacher.fingerprint()["weights_sha256"]


def test_checkpoint_key_takes_a_dotted_path(resnet, tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"meta": {"step": 1}, "weights": {"ema": dict(resnet.state_dict())}}, path)
    enc = load_encoder(str(path), arch="timm:test_resnet", checkpoint_key="weights.ema")
    x, expected = features(resnet, 64)
    assert torch.allclose(enc.encode(x), expected, atol=1e-4)
    with pytest.raises(CheckpointError, match=r"--checkpoint-key 'weights.nope' not found \(top-level keys: meta, weights\)"):
        load_encoder(str(path), arch="timm:test_resnet", checkpoint_key="weights.nope")


def test_unrecognised_layout_lists_top_level_keys(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"epoch": 1, "encoder_weights": {"step": 3}}, path)
    with pytest.raises(CheckpointError, match=r"layout not recognised \(top-level keys: epoch, encoder_weights\); pass --checkpoint-key"):
        load_encoder(str(path), arch="timm:test_resnet")


def test_wrong_prefix_is_an_error_never_random_weights(resnet, tmp_path):
    # a DINO checkpoint whose backbone sits under an unknown prefix: nothing may load silently
    path = tmp_path / "dino.pth"
    torch.save({"teacher": prefixed(resnet.state_dict(), "encoder.") | projector("head.mlp."),
                "student": {}}, path)
    with pytest.raises(CheckpointError, match=r"\(layout: DINO .*\) does not match the architecture: missing keys: "
                       r"bn1\.bias.*unexpected keys: encoder\.bn1\.bias.*prefix 'encoder\.'"):
        load_encoder(str(path), arch="timm:test_resnet")


def test_moco_without_query_encoder_names_the_prefix(resnet, tmp_path):
    path = tmp_path / "moco.pth.tar"
    torch.save({"state_dict": prefixed(resnet.state_dict(), "module.encoder_k.") | {"module.encoder_q.fc.0.weight": torch.ones(1)}}, path)
    with pytest.raises(CheckpointError, match=r"moco.pth.tar: no backbone tensors left after reading it as MoCo v2 .*dropped encoder_k\.\* \(\d+\), fc\.\* \(1\)"):
        load_encoder(str(path), arch="timm:test_resnet")


def test_shape_mismatch_names_the_tensor_and_both_shapes(vit, tmp_path):
    sd = dict(vit.state_dict())
    sd["blocks.0.mlp.fc1.weight"] = torch.zeros(3, 64)
    path = tmp_path / "mae.pth"
    torch.save(mae(sd), path)
    expected = tuple(vit.state_dict()["blocks.0.mlp.fc1.weight"].shape)
    with pytest.raises(CheckpointError, match=rf"tensor blocks\.0\.mlp\.fc1\.weight has shape \(3, 64\) but --arch expects \({expected[0]}, {expected[1]}\)"):
        load_encoder(str(path), arch="timm:test_vit")


def test_missing_backbone_tensor_is_an_error(resnet, tmp_path):
    sd = {k: v for k, v in resnet.state_dict().items() if k != "layer1.0.conv1.weight"}
    path = tmp_path / "solo.ckpt"
    torch.save(solo_learn(sd), path)
    with pytest.raises(CheckpointError, match=r"missing keys: layer1\.0\.conv1\.weight; unexpected keys: none"):
        load_encoder(str(path), arch="timm:test_resnet")
