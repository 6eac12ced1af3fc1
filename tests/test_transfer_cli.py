"""The transfer suite end to end through the CLI on fake dataset copies: results, rescoring, data status, missing data."""
from __future__ import annotations

import json

import numpy as np
import pytest

import _transfer_fixtures as F
from evalbench.cli import main
from evalbench.results import read_result


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer-cli")
    F.build(root / "transfer", ["dtd", "voc2007", "flowers102"])
    return root


def run_args(tmp_path, data_root, *tasks, extra=()):
    return ["run", "--model", "pixels", "--suite", "transfer", "--tasks", *tasks, "--data-root", str(data_root),
            "--output", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra]


def test_run_two_tasks_writes_results_with_their_metrics(tmp_path, data_root, capsys):
    assert main(run_args(tmp_path, data_root, "transfer-dtd", "transfer-voc2007")) == 0
    out = tmp_path / "results" / "pixels-16"
    dtd = json.loads((out / "transfer-dtd" / "linear.json").read_text())
    assert dtd["task"]["splits"] == {"train": 12, "val": 12, "test": 12}
    assert dtd["protocol"]["params"]["C_selection"] == "val split" and dtd["protocol"]["name"] == "linear"
    assert len(dtd["details"]["search_log"]) == 45  # every grid value fitted (patience 0, no bisection)
    assert dtd["metrics"]["top1"] > 90  # colours say the class
    assert dtd["task"]["dataset"]["source"] == "transfer" and dtd["task"]["dataset"]["val"].startswith("split 1")

    voc = read_result(out / "transfer-voc2007" / "linear.json")
    assert voc.protocol.name == "linear" and set(voc.metrics) == {"map11", "map"}
    assert voc.protocol.params["multilabel"].startswith("labels are multi-label")  # one-vs-rest ran
    assert voc.task.num_classes == 20 and voc.task.splits == {"train": 24, "val": 20, "test": 30}
    assert voc.metrics["map11"] > 50
    lo, hi = voc.uncertainty["map11"]
    assert lo <= voc.metrics["map11"] <= hi and voc.uncertainty["n_test"] == 30
    arrays = voc.load_predictions()
    assert arrays["scores"].shape == (30, 20) and arrays["y_true"].shape == (30, 20)
    assert (arrays["y_true"] == -1).any()  # difficult-only entries travel to the stored predictions
    assert np.array_equal(np.sort(arrays["test_index"]), np.arange(30))

    # rescoring from the stored predictions gives the recorded numbers
    capsys.readouterr()
    assert main(["rescore", str(tmp_path / "results")]) == 0
    assert "0 metric(s) differ" in " ".join(capsys.readouterr().out.split())

    # a rerun reuses the cached features and the records
    assert main(run_args(tmp_path, data_root, "transfer-dtd", "transfer-voc2007")) == 0
    assert "0 computed, 2 already up to date" in " ".join(capsys.readouterr().out.split())

    # the leaderboard: one transfer table, each column in its task's metric, the other 10 tasks empty
    board = tmp_path / "transfer.md"
    assert main(["leaderboard", str(tmp_path / "results"), "-o", str(board)]) == 0
    text = board.read_text()
    assert "## transfer: linear (protocol v" in text
    header = next(line for line in text.splitlines() if line.startswith("| model |"))
    metrics = next(line for line in text.splitlines() if line.startswith("| metric |"))
    cols = [c.strip() for c in header.split("|")[2:-1]]
    named = dict(zip(cols, [c.strip() for c in metrics.split("|")[2:-1]], strict=True))
    assert len(cols) == 13 and named["transfer-voc2007"] == "map11" and named["transfer-dtd"] == "top1"
    assert named["transfer-aircraft"] == "mean_per_class"
    assert "(partial)" in text  # 2 of 12 tasks: the mean says so


def test_a_protocol_that_cannot_take_multi_label_labels_is_refused_before_extraction(tmp_path, data_root, capsys):
    assert main(run_args(tmp_path, data_root, "transfer-voc2007", extra=["--protocols", "knn"])) == 2
    err = capsys.readouterr().err
    assert "multi-label" in err and "run `linear`" in err and "Traceback" not in err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))


def test_missing_datasets_refuse_the_run_and_allow_missing_scores_the_rest(tmp_path, data_root, capsys):
    assert main(run_args(tmp_path, data_root, "transfer-flowers102", "transfer-food101", "transfer-cars")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: 2 of 3 tasks have no data here (transfer-cars, transfer-food101); 1 can run")
    assert "first: transfer dataset cars (Stanford Cars) not found" in err and "stanford_cars/devkit/cars_meta.mat" in err
    assert not (tmp_path / "results").exists()

    assert main(run_args(tmp_path, data_root, "transfer-flowers102", "transfer-food101",
                         extra=("--allow-missing",))) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped for lack of data (1): transfer-food101" in out
    rec = json.loads((tmp_path / "results" / "pixels-16" / "transfer-flowers102" / "linear.json").read_text())
    assert set(rec["metrics"]) >= {"top1", "mean_per_class"}


def test_one_missing_task_is_its_own_error_line(tmp_path, data_root, capsys):
    assert main(run_args(tmp_path, data_root, "transfer-sun397")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "transfer dataset sun397 (SUN397) not found" in err and "SUN397/ClassName.txt" in err


def test_data_status_reports_each_dataset(tmp_path, data_root, capsys):
    assert main(["data", "status", "transfer", "--data-root", str(data_root)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "3 of 12 datasets found" in out
    assert "12 / 12 / 12" in out and "24 / 20 / 30" in out  # dtd and voc2007 train / val / test
    assert "missing:" in out and "stanford_cars/devkit/cars_meta.mat" in out

    assert main(["data", "status", "transfer", "--tasks", "transfer-dtd", "--data-root", str(data_root)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 of 1 datasets found" in out and "train 3/47" in out and "train covers 3 of 47 classes" in out
    assert main(["data", "status", "transfer", "--tasks", "dtdd"]) == 2
    assert "did you mean 'dtd'" in capsys.readouterr().err


def test_prepare_lists_manual_steps_for_what_torchvision_cannot_fetch(tmp_path, capsys):
    assert main(["data", "prepare", "transfer", "--root", str(tmp_path), "--tasks", "birdsnap", "cars"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "birdsnap: manual step needed: not in torchvision: run get_birdsnap.py" in out
    assert "cars: manual step needed" in out
