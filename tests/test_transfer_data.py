"""Every transfer dataset read from a fake copy in its real on-disk layout: split sizes, disjointness, the official
file behind each split, and the val split that chooses C."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import _transfer_fixtures as F
from evalbench.data import make_source
from evalbench.data.transfer import DATASETS, Transfer
from evalbench.data.transfer.catalog import HOLDOUT_SEED
from evalbench.data.transfer.readers import CALTECH_SEED
from evalbench.data.transfer.source import hold_out
from evalbench.errors import DataUnavailableError
from evalbench.tasks import get_task, list_suites


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer-data")
    facts = F.build(root / "transfer")
    return root, facts


def _load(data, key):
    src = Transfer(key, data_root=str(data[0]))
    return src, src.load()


def _names(pool):
    return set(pool.names)


def _check_disjoint(pools):
    names = {k: _names(p) for k, p in pools.items()}
    assert not (names["train"] & names["val"]) and not (names["train"] & names["test"]) and not (names["val"] & names["test"])
    for p in pools.values():
        assert len(_names(p)) == len(p)  # no image twice in a split


def _check_holdout(pools, fraction, official_train_names):
    train, val = pools["train"], pools["val"]
    assert _names(train) | _names(val) == official_train_names
    n = len(official_train_names)
    assert len(val) == int(round(fraction * n))
    # stratified: every class keeps its share (largest remainder, within one image)
    labels = np.concatenate([train.labels, val.labels])
    for c in np.unique(labels):
        assert abs(np.sum(val.labels == c) - fraction * np.sum(labels == c)) < 1.0 + 1e-9


def test_every_suite_task_names_a_catalog_dataset_and_its_metric():
    tasks = list_suites()["transfer"]
    assert len(tasks) == 12
    expected = {"aircraft": "mean_per_class", "pets": "mean_per_class", "caltech101": "mean_per_class",
                "flowers102": "mean_per_class", "voc2007": "map11"}
    for name in tasks:
        t = get_task(name)
        key = t.source_options["dataset"]
        assert t.source == "transfer" and name == f"transfer-{key}" and key in DATASETS
        assert t.metric == expected.get(key, "top1") == DATASETS[key].metric
        assert [s for s in t.split_names] == ["train", "val", "test"]
        p = t.protocols[0]
        assert p.id == "linear" and len(p.params["c_grid"]) == 45
        assert p.params["bisection_steps"] == 0 and p.params["patience"] == 0
        assert ("Val (chooses C)" in t.description) and DATASETS[key].val in " ".join(t.description.split())
    assert get_task("transfer-voc2007").protocols[0].name == "linear"


def test_food101_official_json_and_10pct_holdout(data):
    src, pools = _load(data, "food101")
    meta = json.loads((data[0] / "transfer/food-101/meta/train.json").read_text())
    official = {f"food-101/images/{rel}.jpg" for ids in meta.values() for rel in ids}
    _check_disjoint(pools)
    _check_holdout(pools, 0.1, official)
    assert len(pools["test"]) == data[1]["food101"]["test"]
    assert pools["train"].classes == ["apple_pie", "bibimbap", "churros"]
    assert src.identity()["holdout"] == {"fraction": 0.1, "seed": HOLDOUT_SEED, "stratified": True}


@pytest.mark.parametrize("key", ["cifar10", "cifar100"])
def test_cifar_batches_and_holdout(data, key):
    _, pools = _load(data, key)
    facts = data[1][key]
    assert len(pools["train"]) + len(pools["val"]) == facts["train"] and len(pools["test"]) == facts["test"]
    assert len(pools["val"]) == round(0.1 * facts["train"])
    assert len(pools["train"].classes) == (10 if key == "cifar10" else 100)
    batch = pools["test"].batch(np.arange(2))
    assert tuple(batch.shape) == (2, 3, 32, 32)
    # the colour of each fake image says its class: pixels come back in the right order and orientation
    red = batch[:, 0].float().mean().item()
    assert red > 150  # class 0 = red
    assert pools["train"].digest() != pools["val"].digest()


def test_cifar_reader_refuses_pickled_code(data, tmp_path):
    folder = tmp_path / "transfer" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for f in (data[0] / "transfer" / "cifar-10-batches-py").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil(), "labels": []}))
    with pytest.raises(DataUnavailableError, match="builtins.print is not allowed"):
        Transfer("cifar10", data_root=str(tmp_path)).load()


def test_birdsnap_test_list_and_missing_images(data, caplog):
    src, pools = _load(data, "birdsnap")
    _check_disjoint(pools)
    assert len(pools["test"]) == data[1]["birdsnap"]["test"]  # the never-downloaded listed image is left out
    assert all(n.split("/")[-1] in ("100.jpg", "101.jpg") for n in _names(pools["test"]))
    assert len(pools["train"]) + len(pools["val"]) == data[1]["birdsnap"]["train"]
    assert src.provenance()["notes"] == ["1 of 7 listed test images are not in this copy"]


def test_sun397_uses_partition_01_and_20pct_holdout(data):
    _, pools = _load(data, "sun397")
    part = data[0] / "transfer" / "SUN397" / "Partitions"
    official = {"SUN397" + x for x in part.joinpath("Training_01.txt").read_text().split()}
    test = {"SUN397" + x for x in part.joinpath("Testing_01.txt").read_text().split()}
    _check_disjoint(pools)
    _check_holdout(pools, 0.2, official)
    assert _names(pools["test"]) == test
    assert pools["train"].classes == ["a/abbey", "b/bakery/shop", "c/canyon"]  # nested class folders kept whole


def test_cars_through_torchvision_mat_files(data):
    _, pools = _load(data, "cars")
    _check_disjoint(pools)
    official = {f"stanford_cars/cars_train/{c:02d}{i:03d}.jpg" for c in range(3) for i in range(10)}
    _check_holdout(pools, 0.2, official)
    assert len(pools["test"]) == 12 and pools["test"].classes[0] == "Car Model 0 2012"
    assert sorted(set(pools["test"].labels.tolist())) == [0, 1, 2]


def test_aircraft_official_val(data):
    _, pools = _load(data, "aircraft")
    _check_disjoint(pools)
    base = data[0] / "transfer" / "fgvc-aircraft-2013b" / "data"
    for split in ("train", "val", "test"):
        ids = [line.split(" ", 1)[0] for line in (base / f"images_variant_{split}.txt").read_text().splitlines()]
        assert _names(pools[split]) == {f"fgvc-aircraft-2013b/data/images/{i}.jpg" for i in ids}
    assert pools["train"].classes == ["707-320", "A300B4", "Boeing 717"]


def test_voc2007_multilabel_entries_from_the_devkit_class_files(data):
    _, pools = _load(data, "voc2007")
    _check_disjoint(pools)
    truth = data[1]["voc2007"]["truth"]
    for split in ("train", "val", "test"):
        Y = pools[split].labels
        assert Y.shape == (data[1]["voc2007"][split], 20)
        expected = np.select([truth[split] == 1, truth[split] == 0], [1, -1], 0)  # devkit 0 (difficult only) -> -1
        np.testing.assert_array_equal(Y, expected)
    assert (pools["test"].labels == -1).any()


def test_dtd_partition_1_official_val(data):
    _, pools = _load(data, "dtd")
    _check_disjoint(pools)
    labels = data[0] / "transfer" / "dtd" / "dtd" / "labels"
    for split in ("train", "val", "test"):
        assert _names(pools[split]) == {f"dtd/dtd/images/{x}" for x in (labels / f"{split}1.txt").read_text().split()}
    assert len(pools["val"]) == 12


def test_pets_trainval_holdout(data):
    _, pools = _load(data, "pets")
    _check_disjoint(pools)
    ids = [line.split()[0] for line in (data[0] / "transfer/oxford-iiit-pet/annotations/trainval.txt").read_text().splitlines()]
    _check_holdout(pools, 0.2, {f"oxford-iiit-pet/images/{i}.jpg" for i in ids})
    assert pools["train"].classes == ["Abyssinian", "American Bulldog", "Bengal"]


def test_caltech101_tfds_rule_102_classes_and_5_per_class_val(data):
    _, pools = _load(data, "caltech101")
    _check_disjoint(pools)
    base = data[0] / "transfer" / "caltech101" / "101_ObjectCategories"
    rng = np.random.RandomState(CALTECH_SEED)  # TFDS caltech.py: np.random.seed(1234), choice(files, 30)
    expected_train = set()
    for d in sorted(p.name for p in base.iterdir()):
        files = sorted(p.name for p in (base / d).iterdir())
        expected_train |= {f"caltech101/101_ObjectCategories/{d}/{f}" for f in rng.choice(files, 30, replace=False)}
    assert _names(pools["train"]) | _names(pools["val"]) == expected_train
    assert pools["train"].classes == ["accordion", "anchor", "background_google", "faces_easy"]
    assert np.bincount(pools["val"].labels).tolist() == [5, 5, 5, 5]  # 5 of each class's 30
    assert len(pools["test"]) == data[1]["caltech101"]["test"]


def test_flowers102_setid_ids_and_official_val(data):
    _, pools = _load(data, "flowers102")
    _check_disjoint(pools)
    facts = data[1]["flowers102"]
    ids, cut, labels = facts["ids"], facts["cut"], facts["labels"]
    for split, chosen in (("train", ids[:cut[0]]), ("val", ids[cut[0]:cut[1]]), ("test", ids[cut[1]:])):
        assert [Path(n).name for n in pools[split].names] == [f"image_{i:05d}.jpg" for i in chosen]
        np.testing.assert_array_equal(pools[split].labels, labels[chosen - 1] - 1)
    assert len(pools["train"].classes) == 102


def test_holdout_is_seeded_and_stratified():
    from evalbench.data.transfer.listing import files

    part = files([f"{i}.jpg" for i in range(100)], np.arange(100) % 4)
    a, b = hold_out(part, 0.2, 0), hold_out(part, 0.2, 0)
    assert np.array_equal(a[1], b[1]) and len(a[1]) == 20
    assert np.bincount(part.labels[a[1]]).tolist() == [5, 5, 5, 5]
    assert not np.array_equal(hold_out(part, 0.2, 1)[1], a[1])


def test_missing_data_is_one_line_naming_the_files(tmp_path):
    src = make_source("transfer", {"dataset": "dtd"}, data_root=str(tmp_path))
    assert src.locate() is None
    with pytest.raises(DataUnavailableError) as exc:
        src.load()
    msg = str(exc.value)
    assert "\n" not in msg and "transfer dataset dtd (DTD) not found" in msg
    assert "dtd/dtd/labels/train1.txt" in msg and "evalbench data prepare transfer" in msg
    with pytest.raises(DataUnavailableError, match="get it by hand: manual: torchvision's StanfordCars cannot download"):
        Transfer("cars", data_root=str(tmp_path)).load()
    with pytest.raises(DataUnavailableError, match="no --data-root or \\$EVALBENCH_DATA given"):
        Transfer("food101", data_root=None).load()


def test_datasets_found_directly_under_the_data_root(data, monkeypatch):
    monkeypatch.delenv("EVALBENCH_DATA", raising=False)
    src = Transfer("dtd", data_root=str(data[0] / "transfer"))  # a folder of torchvision datasets, no transfer/ level
    assert src.locate() == str(data[0] / "transfer")
    assert len(src.load()["test"]) == 12


def test_status_rows_compare_with_the_official_sizes(data):
    from evalbench.data.transfer import status_rows

    rows = {r["dataset"]: r for r in status_rows(str(data[0]), ["dtd", "food101", "cars"])}
    assert rows["dtd"]["counts"] == {"train": 12, "val": 12, "test": 12}
    assert "train has 12 images; the official split has 1,880" in rows["dtd"]["problems"]
    assert "train + val (official train) has 30 images; the official split has 75,750" in rows["food101"]["problems"]
    assert rows["cars"]["where"] is not None and rows["cars"]["splits"]["val"].startswith("stratified 20%")
