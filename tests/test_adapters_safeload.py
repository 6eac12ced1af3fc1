"""Safe checkpoint reading: an explicit allow-list, refused payloads that never run, content-checked extensions."""
from __future__ import annotations

import argparse
import datetime
import io
import logging
import zipfile

import numpy as np
import pytest
import torch

from evalbench import load_encoder
from evalbench.adapters.safeload import read_checkpoint
from evalbench.errors import CheckpointError


class Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_research_extras_load_under_weights_only(tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save({"teacher": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1, arch="vit_small"),
                "epoch": np.int64(3), "loss": np.float64(1.5), "acc": np.float32(0.5), "flag": np.bool_(True),
                "dtype": np.dtype("float32")}, path)
    obj = read_checkpoint(path)
    assert obj["args"].arch == "vit_small" and obj["epoch"] == 3 and obj["loss"] == 1.5 and obj["dtype"] == np.float32
    # the allow-list is scoped to our load: torch's global list is untouched
    assert not any("Namespace" in str(g) for g in torch.serialization.get_safe_globals())


def _as_numpy1_pickle(src, dst):
    """Rewrite a checkpoint so its numpy scalars reference numpy 1.x's module path (numpy.core)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # protocol 2 GLOBAL is newline-terminated
            zout.writestr(item, data)


def test_numpy1_scalar_path_is_allowed(tmp_path):
    src, dst = tmp_path / "np2.pth", tmp_path / "np1.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "best_acc1": np.float64(76.1)}, src)
    _as_numpy1_pickle(src, dst)
    assert read_checkpoint(dst)["best_acc1"] == 76.1


def test_payload_is_refused_naming_the_global_and_the_flag_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"teacher": {"w": torch.ones(1)}, "args": argparse.Namespace(a=1), "x": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"blocked globals: (posix|nt|os)\.system\b.*--trust-checkpoint"):
        load_encoder(str(path), arch="resnet18")
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()


def test_trust_checkpoint_is_explicit_and_recorded(tmp_path, resnet18_state):
    path = tmp_path / "dated.pth"
    torch.save({"state_dict": resnet18_state, "saved": datetime.date(2024, 1, 2)}, path)
    with pytest.raises(CheckpointError, match=r"blocked globals: datetime\.date.*--trust-checkpoint"):
        load_encoder(str(path), arch="resnet18")
    enc = load_encoder(str(path), arch="resnet18", trust_checkpoint=True)
    assert enc.provenance()["load"] == "weights_only=False (--trust-checkpoint)"


@pytest.fixture(scope="module")
def resnet18_state():
    import torchvision

    return torchvision.models.resnet18().state_dict()


def test_extension_must_match_content(tmp_path):
    from safetensors.torch import save_file

    st = tmp_path / "weights.pth"
    save_file({"w": torch.ones(2)}, str(st))
    with pytest.raises(CheckpointError, match=r"weights.pth is a safetensors file with a torch name; rename it to weights.safetensors"):
        read_checkpoint(st)
    pt = tmp_path / "weights.safetensors"
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    pt.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match=r"has a .safetensors name but is not a safetensors file \(it looks like a torch zip/pickle file\)"):
        read_checkpoint(pt)
    bin_st = tmp_path / "model.bin"  # .bin is ambiguous (HF uses it for pickles): read by content
    save_file({"w": torch.ones(2)}, str(bin_st))
    assert torch.equal(read_checkpoint(bin_st)["w"], torch.ones(2))


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "cut.pth"
    buf = io.BytesIO()
    torch.save({"w": torch.ones(1000)}, buf)
    path.write_bytes(buf.getvalue()[:300])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_checkpoint(path)


def test_old_torch_is_warned_about(tmp_path, monkeypatch, caplog):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.ones(1)}, path)
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with caplog.at_level(logging.WARNING):
        read_checkpoint(path)
    assert "CVE-2025-32434" in caplog.text
