"""End to end through the CLI: real runs on digits, reruns, and one-line errors with exit code 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import run_cli as run


def pixels_digits(dirs, *extra):
    return ["run", "--model", "pixels:8", "--tasks", "digits", "--output", str(dirs["out"]),
            "--cache-dir", str(dirs["cache"]), "--no-progress", *extra]


def test_run_writes_complete_records_and_a_rerun_extracts_nothing(dirs, capsys):
    code, out, _ = run(pixels_digits(dirs), capsys)
    assert code == 0
    assert "1797 samples extracted, 0 reused" in out
    low, high = json.loads((dirs["out"] / "pixels-8" / "digits" / "knn.json").read_text())["uncertainty"]["top1"]
    assert f"± {(high - low) / 2:.2f}" in out and "n (test)" in out and "│ 360 │" in out
    code, plain, _ = run(pixels_digits(dirs, "--no-ci"), capsys)
    assert code == 0 and "±" not in plain
    linear = json.loads((dirs["out"] / "pixels-8" / "digits" / "linear.json").read_text())
    knn = json.loads((dirs["out"] / "pixels-8" / "digits" / "knn.json").read_text())
    assert linear["schema_version"] == 2
    assert linear["uncertainty"]["top1"][0] < linear["metrics"]["top1"] < linear["uncertainty"]["top1"][1]
    assert linear["uncertainty"]["B"] >= 1000 and linear["uncertainty"]["n_test"] == 360
    preds = np.load(dirs["out"] / "pixels-8" / "digits" / linear["predictions"]["file"])
    assert preds["y_pred"].shape == (360,) and preds["top5"].shape == (360, 5) and len(preds["test_index"]) == 360
    assert np.isclose(100 * (preds["y_pred"] == preds["y_true"]).mean(), linear["metrics"]["top1"])
    knn_preds = np.load(dirs["out"] / "pixels-8" / "digits" / knn["predictions"]["file"])
    assert {"y_pred@k10", "y_pred@k200", "top5@k20"} <= set(knn_preds.files)
    assert linear["model"]["spec"] == "pixels:8" and linear["model"]["preprocess"]["input_size"] == 8
    assert linear["task"]["splits"] == {"train": 1078, "val": 359, "test": 360}
    assert linear["task"]["version"] == "1" and linear["protocol"]["version"]
    assert linear["protocol"]["params"]["C"] > 0
    assert set(linear["environment"]) >= {"evalbench", "torch", "scikit-learn", "device"}
    assert linear["seed"] == 0 and "started" in linear["timing"]
    assert 90 < linear["metrics"]["top1"] <= 100 and 90 < knn["metrics"]["top1"] <= 100

    # a rerun keeps the finished results as they are and extracts nothing
    code, out, _ = run(pixels_digits(dirs), capsys)
    assert code == 0 and "0 samples extracted" in out and "0 computed, 2 already up to date" in out
    # forcing recomputation reads every feature from the cache and reproduces the metrics exactly
    code, out, _ = run(pixels_digits(dirs, "--force"), capsys)
    again = json.loads((dirs["out"] / "pixels-8" / "digits" / "linear.json").read_text())
    assert "0 samples extracted, 1797 reused" in out and "2 computed" in out
    assert again["metrics"] == linear["metrics"] and again["protocol"]["params"] == linear["protocol"]["params"]


def test_pixels_baseline_matches_sklearn_and_brute_force_knn(dirs, capsys):
    """The same pixels and split through evalbench and through sklearn / a brute-force k-NN."""
    from sklearn.linear_model import LogisticRegression

    from evalbench import load_encoder
    from evalbench.data.bundled import SklearnDigits
    from evalbench.data.splits import stratified_partition

    assert run(pixels_digits(dirs), capsys)[0] == 0
    linear = json.loads((dirs["out"] / "pixels-8" / "digits" / "linear.json").read_text())
    knn = json.loads((dirs["out"] / "pixels-8" / "digits" / "knn.json").read_text())

    pool = SklearnDigits().load()["all"]
    parts = stratified_partition(pool.labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    enc = load_encoder("pixels:8")
    feats = {k: enc.encode(enc.preprocess(pool.batch(v))).numpy().astype(np.float64) for k, v in parts.items()}
    labels = {k: pool.labels[v] for k, v in parts.items()}

    trainval = np.concatenate([feats["train"], feats["val"]])
    y_trainval = np.concatenate([labels["train"], labels["val"]])
    # sklearn converged tightly: at its default tol=1e-4 it stops early at large C
    # (docs/protocols.md, "Convergence tolerance")
    clf = LogisticRegression(C=linear["protocol"]["params"]["C"], max_iter=10000, tol=1e-8).fit(trainval, y_trainval)
    sk_top1 = 100 * (clf.predict(feats["test"]) == labels["test"]).mean()
    assert abs(linear["metrics"]["top1"] - sk_top1) <= 0.5

    # DINO k-NN by brute force: cosine similarity, 20 neighbours, votes exp(sim / 0.07)
    def unit(a):
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    sims = unit(feats["test"]) @ unit(trainval).T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :20]
    votes = np.zeros((len(top), 10))
    for i, row in enumerate(top):
        np.add.at(votes[i], y_trainval[row], np.exp(sims[i, row] / 0.07))
    bf_top1 = 100 * (votes.argmax(1) == labels["test"]).mean()
    assert abs(knn["metrics"]["top1"] - bf_top1) <= 0.5


def test_custom_adapter_runs_end_to_end(dirs, capsys, tmp_path, monkeypatch):
    (tmp_path / "mean_adapter.py").write_text(textwrap.dedent('''
        import torch
        from evalbench import Preprocess

        class ChannelStats:
            name = "channel-stats"
            preprocess = Preprocess(input_size=8, resize_size=8, keep_aspect=False)
            def fingerprint(self):
                return {"adapter": "channel-stats", "version": 1}
            def encode(self, images):
                return torch.cat([images.flatten(2).std(dim=2), images[:, 0].flatten(1)], dim=1)
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run(["run", "--model", "mean_adapter:ChannelStats", "--tasks", "digits", "--protocols", "knn",
                          "--output", str(dirs["out"]), "--cache-dir", str(dirs["cache"]), "--no-progress"], capsys)
    assert code == 0, err
    rec = json.loads((dirs["out"] / "channel-stats" / "digits" / "knn.json").read_text())
    assert rec["model"]["spec"] == "mean_adapter:ChannelStats" and rec["metrics"]["top1"] > 10


@pytest.fixture
def earlier_result(dirs, capsys):
    assert run(pixels_digits(dirs, "--protocols", "knn"), capsys)[0] == 0
    path = dirs["out"] / "pixels-8" / "digits" / "knn.json"
    return path, path.read_bytes()


def _bad_checkpoint(tmp_path):
    import torchvision

    state = {"backbone." + k: v for k, v in torchvision.models.resnet18().state_dict().items()}
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    return path


def _unavailable_task(tmp_path, monkeypatch):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mnist.yaml").write_text(textwrap.dedent('''
        name: mnist-offline
        version: 1
        dataset: {source: idx, name: mnist, download: false}
        splits: {train: {pool: train}, test: {pool: test}}
        protocols: [knn]
        '''))
    monkeypatch.setenv("EVALBENCH_TASKS", str(tmp_path / "tasks"))
    from evalbench.tasks import _registry

    _registry.cache_clear()


@pytest.mark.parametrize("case, args, message", [
    ("unknown model", ["--model", "pixls", "--tasks", "digits"], "unknown model spec 'pixls'; did you mean 'pixels'?"),
    ("unknown suite", ["--model", "pixels", "--suite", "quik"], "unknown suite 'quik'; did you mean 'quick'?"),
    ("unknown task", ["--model", "pixels", "--tasks", "digts"], "unknown task 'digts'; did you mean 'digits'?"),
    ("missing checkpoint", ["--model", "missing.pth", "--arch", "resnet18", "--tasks", "digits"], "checkpoint missing.pth does not exist"),
    ("key mismatch", ["--model", "BAD", "--arch", "resnet18", "--tasks", "digits"], "does not match the architecture: missing keys: bn1.bias"),
    ("unavailable data", ["--model", "pixels", "--tasks", "mnist-offline"], "dataset mnist not found"),
])
def test_bad_input_is_one_line_exit_2_and_keeps_results(case, args, message, dirs, capsys, tmp_path, monkeypatch, earlier_result):
    if case == "key mismatch":
        args = [str(_bad_checkpoint(tmp_path)) if a == "BAD" else a for a in args]
    if case == "unavailable data":
        _unavailable_task(tmp_path, monkeypatch)
    code, out, err = run(["run", *args, "--output", str(dirs["out"]), "--cache-dir", str(dirs["cache"]), "--no-progress"], capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in " ".join(err.split())
    path, before = earlier_result
    assert path.read_bytes() == before


def test_console_script_exit_code(tmp_path):
    exe = Path(sys.executable).with_name("evalbench")
    proc = subprocess.run([str(exe), "run", "--model", "nope-model", "--suite", "quick"], capture_output=True, text=True,
                          env={**os.environ, "EVALBENCH_HOME": str(tmp_path)})
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown model spec 'nope-model'")


def test_reference_check_says_which_results_equal_the_reference(dirs, capsys, tmp_path):
    import shutil

    assert run(pixels_digits(dirs), capsys)[0] == 0
    ref = tmp_path / "reference"
    shutil.copytree(dirs["out"], ref)
    code, out, _ = run(pixels_digits(dirs, "--force", "--reference", str(ref)), capsys)
    assert code == 0 and f"reference check against {ref}/: 2 of 2 results equal the reference exactly" in out
    knn = ref / "pixels-8" / "digits" / "knn.json"
    record = json.loads(knn.read_text())
    record["metrics"]["top1"] += 1
    knn.write_text(json.dumps(record))
    code, out, _ = run(pixels_digits(dirs, "--reference", str(ref)), capsys)
    assert code == 0 and "1 of 2 results equal" in out and "differ: pixels-8/digits/knn.json (top1:" in out
