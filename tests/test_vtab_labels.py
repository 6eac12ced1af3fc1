"""VTAB's label definitions and the source-dataset route's seeded, stratified 800/200 splits."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evalbench.data.vtab import source as vtab_source
from evalbench.data.vtab import Vtab
from evalbench.data.vtab.source import VtabSource, draw_1k
from evalbench.data.vtab.tasks import (VTAB_TASKS, clevr_count_label, clevr_dist_label, dsprites_bins, kitti_dist_label,
                                       smallnorb_label)


def test_the_19_tasks_and_their_groups():
    groups = {}
    for t in VTAB_TASKS.values():
        groups.setdefault(t.group, []).append(t.folder)
    assert {g: len(v) for g, v in groups.items()} == {"natural": 7, "specialized": 4, "structured": 8}
    assert {t.folder: t.num_classes for t in VTAB_TASKS.values()}["clevr_count"] == 8


def test_clevr_count_is_objects_minus_3():
    assert clevr_count_label(np.arange(3, 11)).tolist() == list(range(8))


def test_clevr_distance_bins():
    depths = [0.5, 7.99, 8.0, 8.01, 8.5, 8.7, 9.2, 9.6, 10.0, 10.01, 14.0]
    # label = the largest i with threshold[i] < depth; thresholds 0, 8, 8.5, 9, 9.5, 10, 100
    assert clevr_dist_label(np.array(depths)).tolist() == [0, 0, 0, 1, 1, 2, 3, 4, 4, 5, 5]


def test_kitti_closest_vehicle_bins():
    types = [["Car"], ["Pedestrian", "Van"], ["Truck", "Car"], ["Pedestrian"], [], ["Car"], ["Cyclist", "Car"]]
    depths = [[5.0], [1.0, 12.0], [30.0, 25.0], [3.0], [], [8.0], [2.0, 20.5]]
    # closest Car/Van/Truck: <= 8 -> 0, (8, 20] -> 1, (20, 999] -> 2, none -> 3 (distance 1000)
    assert kitti_dist_label(types, depths).tolist() == [0, 1, 2, 3, 3, 0, 2]


def test_dsprites_bins_and_smallnorb():
    assert dsprites_bins(np.arange(32), 32).tolist() == [i // 2 for i in range(32)]
    ori = dsprites_bins(np.arange(40), 40).tolist()  # 40 values / 2.5 per class
    assert ori[:6] == [0, 0, 0, 1, 1, 2] and ori[-1] == 15 and sorted(set(ori)) == list(range(16))
    assert np.bincount(ori).tolist() == [3, 2] * 8
    assert smallnorb_label(raw_azimuth=np.arange(0, 36, 2)).tolist() == list(range(18))
    assert smallnorb_label(raw_elevation=np.arange(9)).tolist() == list(range(9))


def test_draw_1k_is_disjoint_stratified_and_seeded():
    labels = {"train": np.repeat(np.arange(10), 300), "test": np.arange(50) % 10}
    a = draw_1k(labels, seed=3)
    assert {k: len(v[1]) for k, v in a.items()} == {"train800": 800, "val200": 200, "test": 50}
    assert not set(a["train800"][1]) & set(a["val200"][1])  # no val pool: val200 from the rest of train
    assert np.bincount(labels["train"][a["train800"][1]]).tolist() == [80] * 10
    assert np.bincount(labels["train"][a["val200"][1]]).tolist() == [20] * 10
    again, other = draw_1k(labels, seed=3), draw_1k(labels, seed=4)
    assert all(np.array_equal(a[k][1], again[k][1]) for k in a)
    assert not np.array_equal(a["train800"][1], other["train800"][1])
    parts = draw_1k({"all": np.repeat(np.arange(5), 400)}, seed=0, parts={"train": 0.6, "val": 0.2, "test": 0.2})
    assert parts["val200"][0] == "all" and len(parts["test"][1]) == 400
    assert not set(parts["test"][1]) & (set(parts["train800"][1]) | set(parts["val200"][1]))


@pytest.fixture
def fake_cifar(monkeypatch, tmp_path):
    """A torchvision-style CIFAR-100 stand-in: 1,200 train and 100 test tiny images."""
    def load(root, download):
        def pool(n, seed):
            y = np.arange(n) % 100
            images = np.random.default_rng(seed).integers(0, 255, (n, 4, 4, 3), dtype=np.uint8)
            return (lambda i: Image.fromarray(images[i])), y
        return {"train": pool(1200, 0), "test": pool(100, 1)}

    monkeypatch.setitem(vtab_source.LOADERS, "cifar", load)
    monkeypatch.setenv("EVALBENCH_DATA", str(tmp_path))


def test_source_route_is_marked_and_never_official(fake_cifar):
    src = Vtab("cifar")
    pools = src.load()
    assert src.identity()["route"] == "source" and src.identity()["split_variant"] == "source-stratified"
    assert src.identity()["seed"] == 0
    assert {k: len(v) for k, v in pools.items()} == {"train800": 800, "val200": 200, "test": 100}
    assert np.bincount(pools["train800"].labels).tolist() == [8] * 100
    assert pools["train800"].batch(np.array([0, 1])).shape == (2, 3, 224, 224)
    assert pools["train800"].digest() != VtabSource("cifar", seed=1).load()["train800"].digest()


def test_tasks_without_a_loader_say_so():
    assert "no source-dataset route" in VtabSource("dmlab").missing_message()
    assert "manual step needed" in VtabSource("resisc45", data_root="/nonexistent").prepare()
