"""The reuse rule through evaluate(): a record is reused only when every input that makes it matches,
and a results directory never holds two models."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from _helpers import TinyEncoder

from evalbench import evaluate
from evalbench.errors import ConfigError
from evalbench.protocols.probe_protocols import KNNProtocol
from evalbench.results import read_result

TASK_YAML = """name: tiny-digits
version: {version}
description: digits, a small stratified slice (fast)
suites: [tiny]
dataset:
  source: sklearn-digits
splits:
  partition:
    pool: all
    seed: 0
    sizes: {{train: 200, val: 60, test: 100}}
protocols:
  - {protocol}
"""


@pytest.fixture
def task_dir(tmp_path, monkeypatch):
    """A one-task suite in $EVALBENCH_TASKS; `write(version=..., protocol=...)` rewrites it."""
    from evalbench.tasks import _registry

    d = tmp_path / "tasks"
    d.mkdir()
    monkeypatch.setenv("EVALBENCH_TASKS", str(d))

    def write(version: int = 1, protocol: str = "knn") -> None:
        (d / "tiny-digits.yaml").write_text(TASK_YAML.format(version=version, protocol=protocol))
        _registry.cache_clear()

    write()
    return write


def run(tmp_path, encoder=None, **kw):
    encoder = encoder or named(TinyEncoder(), "tiny")
    kw = {"tasks": ["tiny-digits"], "output": tmp_path / "out", "cache_dir": tmp_path / "cache", "progress": False, **kw}
    return evaluate(encoder, **kw)


def named(encoder, name):
    encoder.name = name
    return encoder


def snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_rerun_reuses_every_record_and_rewrites_nothing(tmp_path, task_dir):
    first = run(tmp_path)
    assert list(first["status"]) == ["computed"]
    before = snapshot(tmp_path / "out")
    again = run(tmp_path)
    assert list(again["status"]) == ["reused"] and again["top1"].tolist() == first["top1"].tolist()
    assert snapshot(tmp_path / "out") == before


def _other_weights(tmp_path, task_dir, monkeypatch):
    return {"encoder": named(TinyEncoder(seed=1), "tiny")}


def _other_preprocessing(tmp_path, task_dir, monkeypatch):
    enc = named(TinyEncoder(), "tiny")
    enc.preprocess = dataclasses.replace(enc.preprocess, interpolation="nearest")
    return {"encoder": enc}


def _new_task_version(tmp_path, task_dir, monkeypatch):
    task_dir(version=2)
    return {}


def _new_protocol_version(tmp_path, task_dir, monkeypatch):
    monkeypatch.setattr(KNNProtocol, "version", KNNProtocol.version + "-next")
    return {}


def _other_settings(tmp_path, task_dir, monkeypatch):
    task_dir(protocol="{name: knn, temperature: 0.1}")
    return {}


def _other_seed(tmp_path, task_dir, monkeypatch):
    return {"seed": 1}


@pytest.mark.parametrize("flip", [_other_weights, _other_preprocessing, _new_task_version, _new_protocol_version,
                                  _other_settings, _other_seed], ids=lambda f: f.__name__.strip("_"))
def test_each_input_of_the_reuse_rule_forces_a_recompute(tmp_path, task_dir, monkeypatch, flip):
    run(tmp_path)
    rerun = run(tmp_path, **flip(tmp_path, task_dir, monkeypatch))
    assert list(rerun["status"]) == ["computed"]


def test_other_weights_under_the_same_name_never_overwrite(tmp_path, task_dir, capsys):
    """Two DINO runs both save `checkpoint.pth`: the second model's results get their own directory."""
    first = run(tmp_path)
    a_path = tmp_path / "out" / "tiny" / "tiny-digits" / "knn.json"
    a_bytes = a_path.read_bytes()
    second = run(tmp_path, encoder=named(TinyEncoder(seed=1), "tiny"))
    b_dir = second["path"][0]
    assert "tiny/" not in b_dir and "/tiny-" in b_dir and second["model"][0].startswith("tiny-")
    assert a_path.read_bytes() == a_bytes  # the first model's result is untouched
    b = read_result(b_dir)
    assert b.model.fingerprint["seed"] == 1 and read_result(a_path).model.fingerprint["seed"] == 0
    # each model finds its own results again: the same weights are the same model
    assert list(run(tmp_path)["status"]) == ["reused"]
    again = run(tmp_path, encoder=named(TinyEncoder(seed=1), "tiny"))
    assert list(again["status"]) == ["reused"] and again["path"][0] == b_dir
    assert first["model"][0] == "tiny"


def test_an_explicit_name_of_another_model_is_refused(tmp_path, task_dir):
    run(tmp_path, name="mine")
    before = snapshot(tmp_path / "out")
    with pytest.raises(ConfigError, match=r"--name mine: .* holds results of another model .* choose another --name"):
        run(tmp_path, encoder=TinyEncoder(seed=1), name="mine")
    assert snapshot(tmp_path / "out") == before
    assert list(run(tmp_path, encoder=TinyEncoder(), name="mine")["status"]) == ["reused"]


def test_evaluate_does_not_rename_the_callers_encoder(tmp_path, task_dir):
    enc = TinyEncoder()
    original = enc.name
    df = run(tmp_path, encoder=enc, name="renamed")
    assert enc.name == original and df["model"][0] == "renamed"
    assert (tmp_path / "out" / "renamed" / "tiny-digits" / "knn.json").is_file()


def test_the_encoder_object_is_used_as_given(tmp_path, task_dir):
    """No attribute of the caller's encoder is set or replaced by a run."""
    enc = TinyEncoder()
    before = dict(vars(enc))
    run(tmp_path, encoder=enc)
    after = vars(enc)
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] or (isinstance(before[k], torch.Tensor) and torch.equal(after[k], before[k]))
               for k in before)


class TwoChoices(TinyEncoder):
    """A plugin-style encoder with two feature choices from one pass (the README's encode_multi contract)."""

    pools = ("proj", "mean")

    def __init__(self):
        super().__init__()
        self.calls = 0

    def encode_multi(self, images):
        self.calls += 1
        return {"proj": self.encode(images), "mean": images.mean(dim=3).flatten(1).numpy()}  # numpy is accepted


def test_a_plugin_encoder_with_encode_multi_gives_one_model_per_choice(tmp_path, task_dir):
    enc = named(TwoChoices(), "two")
    df = run(tmp_path, encoder=enc, batch_size=1000)
    assert sorted(df["model"]) == ["two@mean", "two@proj"] and set(df["status"]) == {"computed"}
    assert enc.calls == 3  # train, val and test: one encode_multi call each serves both choices
    mean = read_result(df.set_index("model").loc["two@mean", "path"])
    assert mean.model.fingerprint["pool"] == "mean" and mean.metrics["top1"] > 20
