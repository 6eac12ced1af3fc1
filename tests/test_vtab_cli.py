"""VTAB end to end through the CLI on a tiny generated export: refusal, --allow-missing, records, leaderboard."""
from __future__ import annotations

import json

import pytest

from evalbench.protocols import get_protocol
from _vtab_fixtures import write_export_task

from evalbench.cli import main


@pytest.fixture
def export(tmp_path):
    write_export_task(tmp_path / "data", "patch_camelyon", 2, test_size=40)
    write_export_task(tmp_path / "data", "eurosat", 10, test_size=40, seed=1)
    return tmp_path / "data"


def args(tmp_path, data, *extra):
    return ["run", "--model", "pixels:8", "--suite", "vtab", "--tasks", "vtab-camelyon", "vtab-eurosat", "vtab-dmlab",
            "--protocols", "linear", "--data-root", str(data), "--output", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra]


def test_missing_tasks_refuse_the_run_before_any_work(tmp_path, export, capsys):
    assert main(args(tmp_path, export)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: 1 of 3 tasks have no data here (vtab-dmlab); 2 can run: pass --allow-missing to score them; ")
    assert "evalbench data status vtab --data-root DIR" in err and "evalbench data prepare vtab --root DIR" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_allow_missing_scores_the_rest_with_a_partial_mean(tmp_path, export, capsys):
    assert main(args(tmp_path, export, "--allow-missing")) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped for lack of data (1): vtab-dmlab" in out
    assert "vtab linear: mean" in out and "(partial: 2 of 19 tasks)" in out
    rec = json.loads((tmp_path / "results" / "pixels-8" / "vtab-eurosat" / "linear.json").read_text())
    assert rec["task"]["splits"] == {"train": 800, "val": 200, "test": 40}
    assert rec["task"]["group"] == "specialized" and rec["task"]["dataset"]["split_variant"] == "vtab-1k-official"
    assert rec["task"]["dataset"]["image_size"] == 224
    pre = rec["model"]["preprocess"]
    assert (pre["input_size"], pre["resize_size"], pre["keep_aspect"]) == (8, 8, False)
    assert rec["model"]["preprocess_override"] == {"crop": False}
    assert rec["metrics"]["top1"] > 50  # colours encode the labels

    assert main(["leaderboard", str(tmp_path / "results")]) == 0
    md = capsys.readouterr().out
    version = get_protocol("linear", {}).version  # the records carry the live protocol version
    assert f"## vtab: linear (protocol v{version}), split variant vtab-1k-official" in md
    assert "- **structured** (8 tasks):" in md and "(partial)" in md

    # a rerun reuses everything: the effective preprocessing matches the stored record
    assert main(args(tmp_path, export, "--allow-missing")) == 0
    assert "0 computed, 2 already up to date" in " ".join(capsys.readouterr().out.split())


def test_data_status_and_offline_prepare(tmp_path, export, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich would otherwise cut the table's cells
    assert main(["data", "status", "vtab", "--data-root", str(export), "--tasks", "eurosat", "dmlab"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "eurosat" in out and "vtab-1k-official" in out and "missing" in out
    assert main(["data", "prepare", "vtab", "--root", str(tmp_path / "prep"), "--tasks", "dmlab", "dsprites_ori"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "dmlab: manual step needed" in out and "dsprites_ori: nothing to download" in out
