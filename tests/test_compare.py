"""Paired comparison and rescoring from stored predictions: planted differences are found, identical runs are not."""
from __future__ import annotations

import numpy as np
import pytest

from evalbench.cli import main
from evalbench.compare import compare_runs, load_run
from evalbench.errors import EvalbenchError
from evalbench.results import ModelInfo, ProtocolInfo, ResultRecord, TaskInfo, iter_results, result_path

N = 360


def write_run(root, model, tasks, flip=0, ids_offset=0, seed=0):
    """A run whose predictions are right on 90% of items, then wrong on `flip` more of the right ones."""
    for t, task in enumerate(tasks):
        rng = np.random.default_rng(t)
        y = rng.integers(0, 10, N)
        pred = y.copy()
        wrong = rng.choice(N, N // 10, replace=False)
        pred[wrong] = (y[wrong] + 1) % 10
        if flip:
            right = np.setdiff1d(np.arange(N), wrong)
            flipped = np.random.default_rng(100 + seed + t).choice(right, flip, replace=False)
            pred[flipped] = (y[flipped] + 1) % 10
        arrays = {"y_true": y, "y_pred": pred, "top5": np.stack([pred] * 5, 1), "test_index": np.arange(N) + ids_offset}
        rec = ResultRecord(model=ModelInfo(name=model, fingerprint={"w": model}),
                           task=TaskInfo(name=task, version="1", splits={"test": N}, num_classes=10),
                           protocol=ProtocolInfo(id="linear", name="linear", version="1"),
                           metrics={"top1": 100 * float((pred == y).mean())})
        rec.write(result_path(root, model, task, "linear"), arrays)


def test_a_planted_difference_is_found_and_holm_corrected(tmp_path):
    write_run(tmp_path, "a", ["t1", "t2", "t3"])
    write_run(tmp_path, "b", ["t1", "t2", "t3"], flip=60)
    rows, suites = compare_runs(load_run("a", tmp_path), load_run("b", tmp_path))
    assert [r.task for r in rows] == ["t1", "t2", "t3"]
    for r in rows:
        assert r.n == N and r.top1_a == pytest.approx(90.0) and r.top1_b == pytest.approx(90 - 100 * 60 / N)
        assert r.diff.low > 0 and r.p_value < 1e-10 and r.p_holm >= r.p_value and r.verdict == "better"
    (suite,) = suites
    assert suite.tasks == 3 and suite.diff.estimate == pytest.approx(100 * 60 / N) and suite.diff.low > 0


def test_identical_runs_are_not_separable(tmp_path):
    write_run(tmp_path, "a", ["t1", "t2"])
    write_run(tmp_path, "b", ["t1", "t2"])
    rows, suites = compare_runs(load_run("a", tmp_path), load_run("b", tmp_path))
    assert all(r.verdict == "not separable" and r.p_value == 1.0 and (r.diff.low, r.diff.high) == (0.0, 0.0) for r in rows)
    assert suites[0].diff.estimate == 0.0


def test_a_one_item_difference_is_not_separable(tmp_path):
    write_run(tmp_path, "a", ["t1"])
    write_run(tmp_path, "b", ["t1"], flip=1)
    (row,), _ = compare_runs(load_run("a", tmp_path), load_run("b", tmp_path))
    assert row.verdict == "not separable" and row.diff.low <= 0 < row.diff.high


def test_other_test_items_are_refused(tmp_path, capsys):
    write_run(tmp_path, "a", ["t1"])
    write_run(tmp_path, "b", ["t1"], ids_offset=5)
    with pytest.raises(EvalbenchError, match="t1/linear: the runs were scored on different test items"):
        compare_runs(load_run("a", tmp_path), load_run("b", tmp_path))
    assert main(["compare", "a", "b", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "different test items" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_compare_cli_prints_differences_and_the_suite_mean(tmp_path, capsys):
    write_run(tmp_path, "a", ["t1", "t2"])
    write_run(tmp_path, "b", ["t1", "t2"], flip=60)
    assert main(["compare", str(tmp_path / "a"), "b", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "A = a, B = b" in out and out.count("│ better") == 2 and "+16.67 [" in out
    assert "linear: mean over 2 tasks, a - b = +16.67 [" in out


def test_unknown_run_is_one_line(tmp_path, capsys):
    assert main(["compare", "nope", "other", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'nope' is neither a results directory nor a model under" in err and "Traceback" not in err


def test_rescore_recomputes_the_stored_metrics_and_detects_a_changed_file(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--model", "pixels:8", "--tasks", "digits", "--output", str(out), "--cache-dir", str(tmp_path / "c"),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["rescore", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 records rescored from predictions, 0 metric(s) differ" in text and "top1_k200" in text
    record = next(r for r in iter_results([out]) if r.protocol.id == "knn")
    arrays = record.load_predictions()
    assert 100 * np.mean(arrays["y_pred@k20"] == arrays["y_true"]) == pytest.approx(record.metrics["top1_k20"])
    record.predictions_path.write_bytes(record.predictions_path.read_bytes()[:-10])
    assert main(["rescore", str(out)]) == 2
    assert "does not match the digest" in capsys.readouterr().err


def test_compare_draws_a_forest_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    write_run(tmp_path, "a", ["t1", "t2"])
    write_run(tmp_path, "b", ["t1", "t2"], flip=30)
    png = tmp_path / "forest.png"
    assert main(["compare", "a", "b", "--results", str(tmp_path), "--plot", str(png)]) == 0
    assert f"wrote {png}" in " ".join(capsys.readouterr().out.split())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_suite_summary_carries_the_bootstrap_interval_of_the_mean(tmp_path):
    from evalbench.leaderboard import group_summary
    from evalbench.scoring import suite_interval

    write_run(tmp_path, "a", ["t1", "t2"])
    records = iter_results([tmp_path])
    rows = [r.row() for r in records]
    ci = suite_interval([r.load_predictions() for r in records])
    (line,) = group_summary(rows, {"t1": "g", "t2": "g", "t3": ""})
    hw = f"{(ci.high - ci.low) / 2:.2f}"
    assert line == f"linear: mean 90.00 ± {hw} (partial: 2 of 3 tasks); g 90.00 ± {hw}"
    (full,) = group_summary(rows, {"t1": "", "t2": ""})
    assert full == f"linear: mean 90.00 ± {(ci.high - ci.low) / 2:.2f}"
