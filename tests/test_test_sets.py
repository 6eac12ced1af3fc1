"""A task with several named test splits: one fit scored on `test` and on each extra test set (`test_sets`)."""
from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pytest

import evalbench
from evalbench.data import SOURCES, ImagePool
from evalbench.data.bundled import SklearnDigits
from evalbench.errors import ConfigError
from evalbench.leaderboard import build_leaderboard, load_records
from evalbench.protocols.contract import restrict_to_subset
from evalbench.protocols.knn import KNNProbe
from evalbench.results import read_result
from evalbench.runner import RunSummary
from evalbench.tasks import parse_task

SUBSET = np.arange(5)  # the "renditions" pool covers digits 0-4 only


class DigitsWithRenditions(SklearnDigits):
    """Digits cut into train / test, plus `renditions`: the test images of digits 0-4 with a class subset
    (as ImageNet-R covers 200 of ImageNet's 1,000 classes)."""

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "variant": "with renditions (test fixture)"}

    def load(self) -> dict[str, ImagePool]:
        pool = super().load()["all"]
        train, test = np.arange(0, 1200), np.arange(1200, len(pool))
        keep = test[np.isin(pool.labels[test], SUBSET)]

        def part(idx, subset=None):
            return ImagePool(pool.images[idx], pool.labels[idx], pool.classes, class_subset=subset)

        return {"train": part(train), "test": part(test), "renditions": part(keep, SUBSET)}


TASK = """\
name: digits-multi
version: 1
dataset: {source: digits-renditions}
splits:
  train: {pool: train}
  test: {pool: test}
test_sets:
  renditions: {pool: renditions}
  sketches: {pool: sketches}
protocols: [linear, knn, ridge, {name: fewshot-linear, shots: 2, seeds: 2}]
"""


@pytest.fixture
def multi_task(tmp_path, monkeypatch):
    monkeypatch.setitem(SOURCES, "digits-renditions", DigitsWithRenditions)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "digits-multi.yaml").write_text(TASK)
    monkeypatch.setenv("EVALBENCH_TASKS", str(tasks))
    return tmp_path


def _run(root, **kw):
    summary = RunSummary()
    df = evalbench.evaluate("pixels", tasks=["digits-multi"], output=root / "results", cache_dir=root / "cache",
                            progress=False, summary=summary, **kw)
    return df, summary


def test_one_fit_scores_every_test_set_with_the_subset_restriction(multi_task):
    df, summary = _run(multi_task)
    out = multi_task / "results" / "pixels-16" / "digits-multi"
    names = sorted(p.name for p in out.glob("*.json"))
    assert names == ["fewshot-linear-2shot.json", "knn.json", "knn@renditions.json", "linear.json",
                     "linear@renditions.json", "ridge.json", "ridge@renditions.json"]
    assert any("sketches" in n and "not found" in n for n in summary.notes)
    assert set(df["task"]) == {"digits-multi", "digits-multi@renditions"}
    for pid in ("linear", "knn", "ridge"):
        main, extra = read_result(out / f"{pid}.json"), read_result(out / f"{pid}@renditions.json")
        assert extra.task.test_set == "renditions" and extra.task.column == "digits-multi@renditions"
        assert extra.protocol == main.protocol  # the same fit: same id, version and resolved settings (C)
        mp, ep = main.load_predictions(), extra.load_predictions()
        # renditions are the test images of digits 0-4: where the unrestricted prediction already lies in
        # the subset, the restricted one equals it; elsewhere it is the best class inside the subset
        rows = np.isin(mp["y_true"], SUBSET)
        assert np.array_equal(ep["y_true"], mp["y_true"][rows])
        assert np.isin(ep["y_pred"], SUBSET).all()
        inside = np.isin(mp["y_pred"][rows], SUBSET)
        assert np.array_equal(ep["y_pred"][inside], mp["y_pred"][rows][inside])
        assert extra.task.splits["test"] == int(rows.sum()) == extra.n_test
        assert extra.metrics["top1"] == pytest.approx(100 * np.mean(ep["y_pred"] == ep["y_true"]))
        assert extra.metrics["top1"] >= 100 * np.mean(mp["y_pred"][rows] == mp["y_true"][rows])
        assert "top1" in extra.uncertainty and extra.details["fit"].startswith("shared with")


def test_a_second_run_reuses_the_test_set_records_and_a_missing_one_recomputes_the_fit(multi_task):
    _run(multi_task)
    _, again = _run(multi_task)
    assert again.computed == [] and "digits-multi/linear@renditions" in again.skipped
    (multi_task / "results" / "pixels-16" / "digits-multi" / "knn@renditions.json").unlink()
    _, third = _run(multi_task)
    assert sorted(third.computed) == ["digits-multi/knn", "digits-multi/knn@renditions"]


def test_leaderboard_puts_the_test_set_beside_its_task_and_out_of_the_mean(multi_task):
    _run(multi_task)
    records, _ = load_records([multi_task / "results"])
    board = next(b for b in build_leaderboard(records).boards if b.protocol == "linear")
    assert board.columns == ["digits-multi", "digits-multi@renditions", "mean"]
    assert board.means == {"mean": ["digits-multi"]}
    row = board.values.iloc[0]
    assert row["mean"] == row["digits-multi"] != row["digits-multi@renditions"]
    assert "`task@set`" in build_leaderboard(records).markdown(["results"])


def test_restrict_to_subset_never_predicts_outside_it():
    scores = np.array([[5.0, 1.0, 3.0, 0.0], [0.0, 2.0, 9.0, 1.0]])
    got = restrict_to_subset(scores, np.array([1, 3]))
    assert got.argmax(axis=1).tolist() == [1, 1]
    assert restrict_to_subset(scores, None) is scores


def test_knn_votes_are_restricted_to_the_subset():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    y = np.arange(200) % 6
    probe = KNNProbe(k=10, ks=(10,)).fit(X, y)
    preds: dict = {}
    probe.scores_for_ks(X[:50], y[:50], predictions=preds, class_subset=np.array([0, 2, 4]))
    assert np.isin(preds["y_pred@k10"], [0, 2, 4]).all()
    assert np.isin(preds["top5@k10"], [-1, 0, 2, 4]).all()


@pytest.mark.parametrize("block, message", [
    ("test_sets: [a]", "must be a mapping"),
    ("test_sets: {Bad Name: {pool: x}}", "lower-case"),
    ("test_sets: {test: {pool: x}}", "not one of"),
    ("test_sets: {extra: {size: 3}}", "needs a 'pool'"),
    ("test_sets: {extra: {pool: x, sise: 3}}", "did you mean 'size'"),
    ("metric: map", "is not one of"),
])
def test_bad_test_sets_and_metrics_are_refused_in_one_line(block, message):
    import yaml

    data = yaml.safe_load(textwrap.dedent(TASK).split("test_sets:")[0] + "protocols: [linear]\n" + block)
    with pytest.raises(ConfigError, match=message):
        parse_task(data, "t.yaml")


def test_the_task_metric_names_each_leaderboard_column(multi_task, tmp_path):
    (multi_task / "tasks" / "digits-mpc.yaml").write_text(
        TASK.replace("digits-multi", "digits-mpc").replace("protocols: [linear, knn, ridge, {name: fewshot-linear, "
                                                           "shots: 2, seeds: 2}]", "protocols: [knn]\nmetric: mean_per_class"))
    evalbench.evaluate("pixels", tasks=["digits-mpc", "digits-multi"], protocols=["knn"], output=multi_task / "results",
                       cache_dir=multi_task / "cache", progress=False)
    records, _ = load_records([multi_task / "results"])
    lb = build_leaderboard(records)
    board = lb.boards[0]
    assert board.metrics == {"digits-mpc": "mean_per_class", "digits-mpc@renditions": "mean_per_class",
                             "digits-multi": "top1", "digits-multi@renditions": "top1"}
    mpc = next(r for r in records if r.task.column == "digits-mpc")
    assert board.values.loc["pixels-16", "digits-mpc"] == mpc.metrics["mean_per_class"]
    text = lb.markdown(["results"])
    assert "| metric | mean_per_class | mean_per_class | top1 | top1 |" in text
    frame = lb.frame()
    assert set(frame.loc[frame["task"] == "digits-mpc", "metric"]) == {"mean_per_class"}
