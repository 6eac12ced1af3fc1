"""The split key `subset`: shipped SimCLR lists and list files select pool files by name; missing files are one-line errors."""
from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from importlib import resources

import numpy as np
import pytest
from _helpers import run_cli
from _imagenet_fixtures import WNIDS, make_imagenet

from evalbench.data import make_source
from evalbench.data.splits import resolve_splits
from evalbench.data.subsets import SHIPPED, read_subset
from evalbench.errors import ConfigError, DataUnavailableError
from evalbench.tasks import parse_task


@pytest.mark.parametrize("name, count, sha, per_class", [
    ("simclr-1pct", 12_811, "71e82a48ba78252683ae334c4d019ebd5c6e855b9599c1389fbe83eb9549cf17", (12, 13)),
    ("simclr-10pct", 128_116, "6d09de11e7bdaf5b1f3b1f249b6183695f97310cdd20f0c03e7235b6b9392091", (128, 129)),
])
def test_shipped_lists_decompress_to_simclrs_subsets(name, count, sha, per_class):
    names, digest = read_subset(name)
    assert len(names) == count and len(set(names)) == count
    assert digest == sha  # the uncompressed text is google-research/simclr's file, byte for byte
    by_class = Counter(n.split("_")[0] for n in names)
    assert len(by_class) == 1000 and (min(by_class.values()), max(by_class.values())) == per_class
    assert all(n.endswith(".JPEG") and n.split("_")[0] == n[:9] for n in names)


def test_shipped_lists_are_reproducible_gzip_with_their_attribution():
    folder = resources.files("evalbench.data").joinpath("imagenet/subsets")
    for file in SHIPPED.values():
        raw = resources.files("evalbench.data").joinpath(file).read_bytes()
        assert raw[4:8] == b"\0\0\0\0"  # gzip mtime 0: the same bytes on every rebuild
        assert hashlib.sha256(gzip.decompress(raw)).hexdigest() in folder.joinpath("README.md").read_text()
    readme = folder.joinpath("README.md").read_text()
    assert "google-research/simclr" in readme and "383d4143fd8cf7879ae10f1046a9baeb753ff438" in readme
    assert "Apache License" in folder.joinpath("LICENSE").read_text()


def _pools(tmp_path):
    make_imagenet(tmp_path / "imagenet")
    return make_source("imagenet", {}, data_root=str(tmp_path)).load()


def test_a_list_file_selects_those_train_images(tmp_path):
    pools = _pools(tmp_path)
    listed = [f"{WNIDS[0]}_2.JPEG", f"{WNIDS[3]}_1.JPEG", f"{WNIDS[5]}_4.JPEG"]
    lst = tmp_path / "my-1pct.txt"
    lst.write_text("# my own 1%\n" + "\n".join(reversed(listed)) + "\n")
    got = resolve_splits({"train": {"pool": "train", "subset": str(lst)}, "test": {"pool": "val"}}, pools, "task.yaml")
    pool, idx = got["train"]
    assert pool == "train" and idx.tolist() == sorted(idx.tolist()) and len(idx) == 3
    assert [pools["train"].names[i].split("/")[-1] for i in idx] == listed
    assert pools["train"].labels[idx].tolist() == [0, 3, 5]
    # a gzip list and a list of paths work the same (files are matched by name)
    gz = tmp_path / "paths.txt.gz"
    gz.write_bytes(gzip.compress("\n".join(f"train/{n.split('_')[0]}/{n}" for n in listed).encode()))
    again = resolve_splits({"train": {"pool": "train", "subset": str(gz)}, "test": {"pool": "val"}}, pools, "t")
    np.testing.assert_array_equal(again["train"][1], idx)


def test_a_relative_list_is_read_from_the_task_files_folder(tmp_path):
    pools = _pools(tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "two.txt").write_text(f"{WNIDS[1]}_1.JPEG\n{WNIDS[2]}_1.JPEG\n")
    task_file = tmp_path / "tasks" / "t.yaml"
    task_file.write_text("x")
    got = resolve_splits({"train": {"pool": "train", "subset": "two.txt"}, "test": {"pool": "val"}}, pools, str(task_file))
    assert pools["train"].labels[got["train"][1]].tolist() == [1, 2]


def test_images_missing_from_the_copy_are_one_line_naming_them(tmp_path):
    pools = _pools(tmp_path)
    lst = tmp_path / "l.txt"
    lst.write_text(f"{WNIDS[0]}_1.JPEG\n{WNIDS[0]}_99.JPEG\nn01440764_7.JPEG\n")
    with pytest.raises(DataUnavailableError) as exc:
        resolve_splits({"train": {"pool": "train", "subset": str(lst)}, "test": {"pool": "val"}}, pools, "t")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"subset {lst}: 2 of 3 listed images are missing from pool 'train' "
                          "(n01440764_99.JPEG, n01440764_7.JPEG)")
    with pytest.raises(DataUnavailableError, match=r"subset simclr-1pct: 12811 of 12811 listed images are missing"):
        resolve_splits({"train": {"pool": "train", "subset": "simclr-1pct"}, "test": {"pool": "val"}}, pools, "t")


def test_bad_subset_settings_are_config_errors(tmp_path, digits_pool):
    with pytest.raises(ConfigError, match=r"not a shipped list \(simclr-1pct, simclr-10pct\) and no file"):
        resolve_splits({"train": {"pool": "all", "subset": "simclr-2pct"}, "test": {"pool": "all"}}, {"all": digits_pool}, "t")
    lst = tmp_path / "l.txt"
    lst.write_text("a.png\n")
    with pytest.raises(ConfigError, match=r"pool 'all' is not read from files"):
        resolve_splits({"train": {"pool": "all", "subset": str(lst)}, "test": {"pool": "all"}}, {"all": digits_pool}, "t")
    lst.write_text("a.png\nb.png\na.png\n")
    with pytest.raises(ConfigError, match=r"names 1 file\(s\) twice \(first: a.png\)"):
        read_subset(str(lst))
    base = {"name": "t", "version": 1, "dataset": {"source": "imagenet"}, "protocols": ["knn"]}
    with pytest.raises(ConfigError, match=r"both 'subset' \(a list of files\) and 'size'/'seed'"):
        parse_task({**base, "splits": {"train": {"pool": "train", "subset": "simclr-1pct", "size": 10},
                                       "test": {"pool": "val"}}}, "t.yaml")
    with pytest.raises(ConfigError, match=r"'subset' must be a shipped list name"):
        parse_task({**base, "splits": {"train": {"pool": "train", "subset": 1}, "test": {"pool": "val"}}}, "t.yaml")


def test_a_task_with_its_own_list_runs_linear_and_knn_end_to_end(tmp_path, capsys, monkeypatch):
    make_imagenet(tmp_path / "data" / "imagenet")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mine.txt").write_text("\n".join(f"{w}_{k}.JPEG" for w in WNIDS for k in (1, 2, 3)) + "\n")
    (tasks / "my-subset.yaml").write_text(
        "name: my-subset\nversion: 1\ndataset: {source: imagenet}\n"
        "splits:\n  train: {pool: train, subset: mine.txt}\n  test: {pool: val}\n"
        "protocols:\n  - {name: linear, c_grid: [1.0, 100.0, 10000.0], bisection_steps: 0}\n  - knn\n")
    monkeypatch.setenv("EVALBENCH_TASKS", str(tasks))
    out = tmp_path / "out"
    code, text, err = run_cli(["run", "--model", "pixels:4", "--tasks", "my-subset", "--data-root", str(tmp_path / "data"),
                               "--output", str(out), "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, err
    for protocol in ("linear", "knn"):
        record = json.loads((out / "pixels-4" / "my-subset" / f"{protocol}.json").read_text())
        assert record["task"]["splits"] == {"train": 18, "test": 12}
        assert record["task"]["split_definition"]["train"] == {"pool": "train", "subset": "mine.txt"}
        assert record["metrics"]["top1"] == 100.0  # one flat colour per class: labels line up
