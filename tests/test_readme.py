"""The README is the contract: its adapter example works, and CI runs its test command."""
from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_adapter_example_runs(tmp_path, monkeypatch):
    code = re.search(r"# my_encoders.py\n(.*?)```", README, re.S).group(1)
    (tmp_path / "my_encoders.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    from evalbench import load_encoder

    enc = load_encoder("my_encoders:make")
    feats = enc.encode(enc.preprocess(torch.randint(0, 256, (4, 3, 20, 30), dtype=torch.uint8)))
    assert feats.shape == (4, 24)
    assert torch.allclose(feats.view(4, 3, 8).sum(-1), torch.ones(4, 3))  # each channel's histogram sums to 1


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"## Run the tests\n\n```bash\n(.*?)\n```", README, re.S)
    assert blocks, "README lost its test command"
    assert blocks[0].strip() in (ROOT / ".ci" / "run").read_text()


def test_multi_choice_example_gives_one_forward_pass_per_batch(tmp_path, monkeypatch):
    base = re.search(r"# my_encoders.py\n(.*?)```", README, re.S).group(1)
    multi = re.search(r"```python\n(class TwoViews.*?)```", README, re.S).group(1)
    (tmp_path / "my_multi_encoders.py").write_text(base + "\n\n" + multi)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_multi_encoders

    from evalbench.extract import feature_choices

    enc = my_multi_encoders.TwoViews()
    choices = feature_choices(enc, enc.name)
    assert [c.name for c in choices] == ["colour-hist@hist", "colour-hist@mean"]
    assert [c.fingerprint["pool"] for c in choices] == ["hist", "mean"]
    out = enc.encode_multi(enc.preprocess(torch.randint(0, 256, (2, 3, 20, 30), dtype=torch.uint8)))
    assert out["hist"].shape == (2, 24) and out["mean"].shape == (2, 3)
