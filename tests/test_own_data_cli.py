"""Your own data from the command line: each source end to end with --model pixels, the same numbers through
another route, reruns, `task new`, every protocol on any task, `tasks`, `data status`, and one-line errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from _helpers import run_cli as run
from _own_data import csv_list, image_folder, saved_dataset, write_image

from evalbench.cli import main


def pixels(dirs, *args):
    return ["run", "--model", "pixels:8", "--output", str(dirs["out"]), "--cache-dir", str(dirs["cache"]),
            "--no-progress", "--protocols", "linear", "knn", *args]


def record(dirs, task, protocol="linear"):
    path = dirs["out"] / "pixels-8" / task / f"{protocol}.json"
    rec = json.loads(path.read_text())
    return rec, np.load(path.with_name(rec["predictions"]["file"]))


def assert_same_numbers(dirs, task_a, task_b):
    for protocol in ("linear", "knn"):
        (a, pa), (b, pb) = record(dirs, task_a, protocol), record(dirs, task_b, protocol)
        assert a["metrics"] == b["metrics"] and a["protocol"]["params"] == b["protocol"]["params"]
        assert a["task"]["splits"] == b["task"]["splits"]
        assert np.array_equal(pa["y_pred"], pb["y_pred"]) and np.array_equal(pa["test_index"], pb["test_index"])


@pytest.fixture(autouse=True)
def hf_cache(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def test_image_folder_with_splits_and_a_csv_list_give_the_same_numbers(dirs, capsys, tmp_path):
    pets = image_folder(tmp_path / "pets")
    code, out, _ = run(pixels(dirs, "--dataset", str(pets)), capsys)
    assert code == 0 and "data-pets" in out and "66 samples extracted" in out
    rec, _ = record(dirs, "data-pets")
    assert rec["task"]["dataset"]["classes"] == ["cat", "dog", "owl"] and rec["task"]["dataset"]["location"] == str(pets)
    assert rec["task"]["splits"] == {"train": 36, "val": 12, "test": 18}
    assert rec["protocol"]["params"]["C_selection"] == "val split" and rec["metrics"]["top1"] > 60
    # a rerun reuses every result and feature
    code, out, _ = run(pixels(dirs, "--dataset", str(pets)), capsys)
    assert code == 0 and "0 samples extracted" in out and "2 already up to date" in out
    # the same images through a CSV list with string labels and a split column
    (tmp_path / "lists").mkdir()
    listed = csv_list(pets, tmp_path / "lists" / "pets-list.csv")
    code, out, _ = run(pixels(dirs, "--dataset", f"list:{listed}"), capsys)
    assert code == 0 and "data-pets-list" in out
    assert_same_numbers(dirs, "data-pets", "data-pets-list")


def test_single_folder_split_by_evalbench_equals_a_list_without_splits(dirs, capsys, tmp_path):
    flat = image_folder(tmp_path / "flat", splits=False)
    assert run(pixels(dirs, "--dataset", str(flat)), capsys)[0] == 0
    rec, _ = record(dirs, "data-flat")
    assert rec["task"]["split_definition"] == {"partition": {"pool": "all", "seed": 0, "sizes": {"train": 0.8, "test": 0.2}}}
    assert rec["task"]["splits"] == {"train": 53, "test": 13}
    assert rec["protocol"]["params"]["C_selection"].startswith("stratified 10% hold-out of train")
    listed = csv_list(flat, flat / "flat-list.csv", with_split=False)
    assert run(pixels(dirs, "--dataset", str(listed)), capsys)[0] == 0  # a .csv path works without list:
    assert_same_numbers(dirs, "data-flat", "data-flat-list")


def test_saved_dataset_and_imagefolder_builder_equal_the_folder(dirs, capsys, tmp_path):
    pets = image_folder(tmp_path / "pets")
    saved = saved_dataset(pets, tmp_path / "pets-saved")
    for spec in (str(pets), f"hf:{saved}", f"hf:imagefolder:{pets}"):
        code, out, err = run(pixels(dirs, "--dataset", spec, *(["--task-name", "data-pets-builder"] if "imagefolder:" in spec else [])), capsys)
        assert code == 0, err
    assert record(dirs, "data-pets-saved")[0]["task"]["dataset"]["source"] == "hf"
    assert_same_numbers(dirs, "data-pets", "data-pets-saved")
    assert_same_numbers(dirs, "data-pets", "data-pets-builder")


def test_changed_data_is_recomputed_not_reused(dirs, capsys, tmp_path):
    pets = image_folder(tmp_path / "pets")
    assert run(pixels(dirs, "--dataset", str(pets)), capsys)[0] == 0
    before = record(dirs, "data-pets")[0]["task"]["dataset"]["content_sha256"]
    write_image(pets / "test" / "dog" / "extra", 1, 0, np.random.default_rng(5))
    code, out, _ = run(pixels(dirs, "--dataset", str(pets)), capsys)
    assert code == 0 and "2 computed" in out and "19 samples extracted" in out  # train and val come from the cache
    assert record(dirs, "data-pets")[0]["task"]["dataset"]["content_sha256"] != before


def test_task_new_writes_the_equivalent_yaml(dirs, capsys, tmp_path, monkeypatch):
    pets = image_folder(tmp_path / "pets")
    assert run(pixels(dirs, "--dataset", str(pets)), capsys)[0] == 0
    tasks = tmp_path / "mytasks"
    monkeypatch.setenv("EVALBENCH_TASKS", str(tasks))
    code, out, _ = run(["task", "new", "data-pets", "--dataset", str(pets)], capsys)
    assert code == 0 and f"wrote {tasks / 'data-pets.yaml'}" in out
    written = yaml.safe_load((tasks / "data-pets.yaml").read_text())
    assert written["dataset"] == {"source": "imagefolder", "root": str(pets)}
    assert written["splits"] == {"train": {"pool": "train"}, "val": {"pool": "val"}, "test": {"pool": "test"}}
    code, out, _ = run(pixels(dirs, "--tasks", "data-pets"), capsys)  # the YAML task is the ad-hoc task
    assert code == 0 and "0 samples extracted" in out and "2 already up to date" in out
    code, _, err = run(["task", "new", "data-pets", "--dataset", str(pets)], capsys)
    assert code == 2 and "exists; pass --force" in err
    code, _, _ = run(["task", "new", "pets-fewshot", "--dataset", str(pets), "--protocols", "fewshot-linear", "--shots", "1,2"], capsys)
    assert code == 0
    assert yaml.safe_load((tasks / "pets-fewshot.yaml").read_text())["protocols"] == [{"name": "fewshot-linear", "shots": [1, 2]}]
    code, _, err = run(["task", "new", "x", "--dataset", str(pets), "--dir", str(tmp_path / "other"), "--protocols", "rige"], capsys)
    assert code == 2 and "did you mean 'ridge'" in err


def test_every_registered_protocol_runs_on_any_task(dirs, capsys):
    args = ["run", "--model", "pixels:8", "--tasks", "digits", "--output", str(dirs["out"]), "--cache-dir", str(dirs["cache"]),
            "--no-progress", "--protocols", "knn", "ridge", "fewshot-linear", "episodic-centroid", "--shots", "1,2",
            "--fewshot-seeds", "2", "--episodes", "20"]
    code, out, err = run(args, capsys)
    assert code == 0, err
    got = sorted(p.stem for p in (dirs["out"] / "pixels-8" / "digits").glob("*.json"))
    assert got == ["episodic-centroid-1shot", "episodic-centroid-2shot", "fewshot-linear-1shot", "fewshot-linear-2shot",
                   "knn", "ridge"]
    few = json.loads((dirs["out"] / "pixels-8" / "digits" / "fewshot-linear-2shot.json").read_text())
    assert few["protocol"]["params"]["seeds"] == 2 and few["protocol"]["params"]["shots"] == 2
    code, _, err = run(args[:-9] + ["rige"], capsys)
    assert code == 2 and "unknown protocol 'rige'; did you mean 'ridge'?" in " ".join(err.split())


def test_tasks_piped_json_suite_and_honest_data_state(capsys):
    code = main(["tasks"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split("\t") == ["task", "suites", "dataset", "splits", "protocols", "data"]
    row = next(line.split("\t") for line in lines if line.startswith("vtab-smallnorb-azi\t"))
    assert "downloaded on first run" not in row[5] and "the run refuses" in row[5]
    assert main(["tasks", "--suite", "quick", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == ["digits", "fashion-mnist-mini"] and rows[0]["data"] == "available"


def test_data_status_takes_run_task_names_and_dataset_specs(capsys, tmp_path):
    code, out, _ = run(["data", "status", "vtab", "--tasks", "vtab-cifar100", "dtd"], capsys)
    assert code == 0 and "│ cifar" in out and "│ dtd" in out
    code, _, err = run(["data", "status", "vtab", "--tasks", "vtab-cifar10"], capsys)
    assert code == 2 and "did you mean 'vtab-cifar100'" in err
    pets = image_folder(tmp_path / "pets")
    code, out, _ = run(["data", "status", str(pets)], capsys)
    assert code == 0 and "train: 36 images, 3/3 classes" in out and "task name data-pets" in out


def _loose_folder(tmp_path):
    (tmp_path / "loose").mkdir()
    write_image(tmp_path / "loose" / "a", 0, 0, np.random.default_rng(0))
    return str(tmp_path / "loose")


def _differing_classes(tmp_path):
    pets = image_folder(tmp_path / "pets")
    shutil.rmtree(pets / "test" / "owl")
    return str(pets)


def _csv(tmp_path, text):
    pets = image_folder(tmp_path / "pets")
    (pets / "l.csv").write_text(text)
    return f"list:{pets / 'l.csv'}"


@pytest.mark.parametrize("make, message", [
    (lambda t: str(t / "nowhere"), "does not exist; --dataset takes an image folder (ROOT/<split>/<class>/<image>"),
    (_loose_folder, "holds no class folders; expected ROOT/<split>/<class>/<image> (split folders train, val, test) or ROOT/<class>/<image>"),
    (_differing_classes, "the split folders hold different classes: test/ lacks owl"),
    (lambda t: _csv(t, "path,split\ntrain/cat/img000.png,train\n"), "no label column (looked for label, class"),
    (lambda t: _csv(t, "path,label\ntrain/cat/img000.png,cat\ntrain/cat/gone.png,cat\n"), "l.csv line 3: image"),
    (lambda t: "hf:someone/not-cached-anywhere", "Hugging Face dataset someone/not-cached-anywhere is not in the cache"),
])
def test_bad_input_is_one_line_and_exit_2(make, message, dirs, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    code, out, err = run(pixels(dirs, "--dataset", make(tmp_path)), capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in " ".join(err.split())
    assert not dirs["out"].exists()  # refused before any work


def test_protocol_selection_keeps_yaml_entries_and_result_ids():
    from evalbench.tasks import get_task, select_protocols

    digits = get_task("digits")
    assert select_protocols(digits) == digits.protocols
    assert [e.id for e in select_protocols(digits, ["fewshot-linear-5shot", "linear"])] == ["fewshot-linear-5shot", "linear"]
    picked = select_protocols(digits, ["episodic-logreg"], {"shots": [1, 5], "episodes": 10, "fewshot_seeds": 3})
    assert [(e.id, e.params) for e in picked] == [("episodic-logreg-1shot", {"shots": 1, "episodes": 10}),
                                                  ("episodic-logreg-5shot", {"shots": 5, "episodes": 10})]


def test_readme_has_one_example_per_source():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("### Your own data", 1)[1].split("\n### ", 1)[0]
    for form in ("--dataset ~/data/flowers", "--dataset ~/data/scans", "--dataset list:", "--dataset hf:food101",
                 "--dataset hf:/", "--dataset hf:imagefolder:", "task new flowers", "data status"):
        assert form in section, form
