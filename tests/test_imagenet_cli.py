"""The imagenet suite from the command line: `data status imagenet`, an end-to-end run, `--dry-run` at full scale."""
from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest
from _helpers import run_cli
from _imagenet_fixtures import WNIDS, make_imagenet, make_robustness

from evalbench.data.subsets import read_subset
from evalbench.tasks import list_suites, list_tasks


@pytest.fixture(scope="module")
def onepct_copy(tmp_path_factory):
    """A copy whose train/ holds exactly SimCLR's 1% files (1,000 real wnids), val/ one image per class."""
    by_class = defaultdict(list)
    for name in read_subset("simclr-1pct")[0]:
        by_class[name.split("_")[0]].append(name)
    root = tmp_path_factory.mktemp("onepct")
    make_imagenet(root / "imagenet", wnids=sorted(by_class), val_per_class=1, train_names=by_class)
    return root


def test_the_suite_has_the_papers_tasks():
    assert list_suites()["imagenet"] == ["imagenet-10pct", "imagenet-1pct", "imagenet-1shot", "imagenet-2shot",
                                         "imagenet-5shot", "imagenet-knn", "imagenet-linear"]
    tasks = list_tasks()
    dinov2_grid = [float(f"{10 ** (-6 + 11 * i / 44):.6g}") for i in range(45)]
    for name in ("imagenet-linear", "imagenet-1pct", "imagenet-10pct"):
        linear = next(e for e in tasks[name].protocols if e.name == "linear")
        assert linear.params["c_grid"] == dinov2_grid  # DINOv2's 10^linspace(-6, 5, 45), to 6 digits
        assert (linear.params["bisection_steps"], linear.params["patience"], linear.params["holdout_fraction"]) == (0, 0, 0.1)
    knn = tasks["imagenet-knn"].protocols[0]
    assert knn.params == {"k": 20, "ks": [10, 20, 100, 200], "temperature": 0.07}
    for k in (1, 2, 5):
        entry = tasks[f"imagenet-{k}shot"].protocols[0]
        assert entry.id == f"fewshot-linear-{k}shot"
        assert entry.params == {"shots": k, "seeds": 3, "C": 400.0, "l2_normalize": True}
    assert tasks["imagenet-1pct"].splits["train"] == {"pool": "train", "subset": "simclr-1pct"}
    assert all(t.splits["test"] == {"pool": "val"} for n, t in tasks.items() if n.startswith("imagenet-"))


def test_tasks_lists_the_suite_with_its_subsets_and_where_the_data_is(tmp_path, capsys):
    make_imagenet(tmp_path / "imagenet")
    code, out, _ = run_cli(["tasks", "--suite", "imagenet", "--data-root", str(tmp_path)], capsys)
    assert code == 0
    assert "imagenet-1pct imagenet imagenet:imagenet-1pct train=train[simclr-1pct], test=val linear, knn available" in out
    assert f"imagenet-knn imagenet imagenet:imagenet-knn train=train, test=val knn available ({tmp_path / 'imagenet'})" in out


def test_data_status_reports_layout_counts_test_sets_and_subsets(tmp_path, capsys):
    make_imagenet(tmp_path / "imagenet", layout="torchvision-flat")
    make_robustness(tmp_path, "imagenet-r", {WNIDS[1]: 1, WNIDS[2]: 2})
    code, out, err = run_cli(["data", "status", "imagenet", "--data-root", str(tmp_path)], capsys)
    assert code == 0, err
    assert (f"ImageNet (ILSVRC-2012) at {tmp_path / 'imagenet'}, torchvision layout; val/ is flat: labels from meta.bin "
            "(the devkit's ground truth); 6 classes where ILSVRC-2012 has 1000") in out
    assert re.search(r"train │ 24 │ 1,281,167 │ 6/6 │ \S+/imagenet/train", out)
    assert "24 images where the complete set has 1,281,167 (-1,281,143): a partial or modified copy" in out
    assert re.search(r"imagenet-r │ 4 │ 30,000 │ 2/200 │", out) and "scored over its 5 classes (logits restricted)" in out
    assert re.search(r"imagenet-a │ 0 │ 7,500 │ 0/200 │ not found \(its column is skipped\)", out)
    assert "subset simclr-1pct: 0 of 12,811 listed train images present, 12,811 missing (first: n04235860_14959.JPEG" in out
    code, out, _ = run_cli(["data", "status", "imagenet", "--data-root", str(tmp_path / "imagenet" / "train")], capsys)
    assert code == 0 and "ImageNet (ILSVRC-2012): not found; expected ROOT/train/<wnid>/*.JPEG" in out


def test_data_status_says_when_the_subsets_are_complete(onepct_copy, capsys):
    code, out, _ = run_cli(["data", "status", "imagenet", "--data-root", str(onepct_copy)], capsys)
    assert code == 0
    assert "subset simclr-1pct: 12,811 of 12,811 listed train images present, complete" in out
    assert "subset simclr-10pct: 12,811 of 128,116 listed train images present, 115,305 missing" in out


def test_knn_and_1pct_run_end_to_end(onepct_copy, tmp_path, capsys):
    out = tmp_path / "out"
    code, text, err = run_cli(["run", "--model", "pixels", "--suite", "imagenet", "--tasks", "imagenet-knn", "imagenet-1pct",
                               "--protocols", "knn", "--data-root", str(onepct_copy), "--output", str(out),
                               "--no-progress", "--device", "cpu", "--num-workers", "0"], capsys)
    assert code == 0, err
    knn = json.loads((out / "pixels-16" / "imagenet-knn" / "knn.json").read_text())
    sub = json.loads((out / "pixels-16" / "imagenet-1pct" / "knn.json").read_text())
    assert sub["task"]["splits"] == {"train": 12_811, "test": 1000}
    assert sub["task"]["split_definition"]["train"] == {"pool": "train", "subset": "simclr-1pct"}
    assert sub["task"]["dataset"]["classes"][:2] == ["n01440764", "n01443537"] and len(sub["task"]["dataset"]["classes"]) == 1000
    # train holds exactly the 1% files here, so both tasks fit the same 12,811 images: same features, same numbers
    assert sub["cache_keys"]["train"] == knn["cache_keys"]["train"]
    assert sub["metrics"]["top1"] == knn["metrics"]["top1"] > 90.0  # one flat colour per class (JPEG blurs a few)


def test_dry_run_costs_the_complete_imagenet_from_a_small_copy(tmp_path, capsys):
    make_imagenet(tmp_path / "imagenet")
    code, out, err = run_cli(["run", "--model", "pixels", "--suite", "imagenet", "--tasks", "imagenet-knn", "imagenet-linear",
                              "--data-root", str(tmp_path), "--output", str(tmp_path / "out"), "--dry-run",
                              "--device", "cpu"], capsys)
    assert code == 0, err
    assert re.search(r"imagenet-knn/train: 24 images, 0 cached, 24 to extract, [\d.]+ KB to write, about [\d.]+ s; "
                     r"complete dataset: 1,281,167 images, 3.9 GB, about [\d.]+ (s|min|h)", out)
    assert "imagenet-linear/test: 12 images" in out and "complete dataset: 50,000 images, 153.6 MB" in out
    assert re.search(r"imagenet-linear/linear: probe cost n x d x classes x fits = 24 x 768 x 6 x 46 = [\d.e+]+ "
                     r"\(linear, rough: about [\d.]+ (s|min|h)\); complete dataset: 1,281,167 x 768 x 1000 x 46 = 4.53e\+13 "
                     r"\(linear, rough: about [\d.]+ (min|h)\)", out)
    # the train features of both tasks are the same cache entry: counted once (3.9 GB + 153.6 MB)
    assert re.search(r"complete dataset: about [\d.]+ (s|min|h) of extraction, 4.1 GB to write", out)
    assert not (tmp_path / "out").exists()


def test_linear_is_fitted_once_and_scored_on_the_robustness_sets(tmp_path, capsys, caplog, monkeypatch):
    import evalbench.runner as runner
    from _imagenet_fixtures import write_class_files

    from evalbench.results import read_result

    monkeypatch.setattr(runner, "ANNOUNCE_PROBE_S", 0.0)  # every C search on the CPU counts as long here
    make_imagenet(tmp_path / "imagenet", train_per_class=6)
    make_robustness(tmp_path, "sketch", {w: i for i, w in enumerate(WNIDS)})
    # ImageNet-R renditions of n01443537 (class 1) drawn in the colour of class 0, which ImageNet-R does not
    # cover: an unrestricted classifier answers 0; restricted to R's classes it never may
    write_class_files(tmp_path / "imagenet-r" / WNIDS[1], 0, ["r0.jpg", "r1.jpg"])
    make_robustness(tmp_path, "imagenet-r", {WNIDS[4]: 4})
    out = tmp_path / "out"
    code, text, err = run_cli(["run", "--model", "pixels:4", "--suite", "imagenet", "--tasks", "imagenet-linear",
                               "--data-root", str(tmp_path), "--output", str(out), "--no-progress", "--device", "cpu"],
                              capsys)
    assert code == 0, err
    folder = out / "pixels-4" / "imagenet-linear"
    assert sorted(p.name for p in folder.glob("*.json")) == ["linear.json", "linear@imagenet-r.json",
                                                             "linear@imagenet-sketch.json"]
    assert "imagenet-linear: test set(s) imagenet-v2, imagenet-a not found in the data, skipped" in text
    val, r, sketch = (read_result(folder / f) for f in ("linear.json", "linear@imagenet-r.json", "linear@imagenet-sketch.json"))
    assert val.protocol.params["C"] == r.protocol.params["C"] == sketch.protocol.params["C"]  # one fit
    assert len(val.details["search_log"]) == 45 and val.protocol.params["device"] == "cpu"
    assert val.metrics["top1"] == sketch.metrics["top1"] == 100.0
    pred = r.load_predictions()
    assert pred["y_true"].tolist() == [1, 1, 4, 4]
    assert set(pred["y_pred"].tolist()) <= {1, 2, 3, 4, 5} and pred["y_pred"].tolist()[2:] == [4, 4]
    # the C search on the CPU announced its cost before it ran
    assert re.search(r"linear on CPU: n x d x classes x fits = [\d.e+]+; roughly [\d.]+ h on this machine; "
                     r"--device cuda runs it on a GPU", caplog.text)
