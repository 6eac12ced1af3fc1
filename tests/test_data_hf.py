"""Hugging Face datasets through the real `datasets` library on local files: save_to_disk, the imagefolder
builder, column detection, unlabelled splits, and the offline error for a Hub id that is not cached."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from _own_data import CLASSES, image_folder, saved_dataset

datasets = pytest.importorskip("datasets")

from evalbench.data import make_source  # noqa: E402
from evalbench.data.hf import HfDataset  # noqa: E402
from evalbench.data.imagefolder import ImageFolder  # noqa: E402
from evalbench.errors import DataUnavailableError  # noqa: E402


@pytest.fixture(autouse=True)
def hf_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return tmp_path / "hf-cache"


@pytest.fixture
def pets(tmp_path):
    return image_folder(tmp_path / "pets")


def _same_as_folder(pools, folder_pools):
    for name, pool in folder_pools.items():
        assert pools[name].labels.tolist() == pool.labels.tolist()
        for i in range(0, len(pool), 5):
            assert np.array_equal(pools[name].batch(np.array([i]))[0], pool.batch(np.array([i]))[0])


def test_save_to_disk_dataset_detects_columns_and_splits(tmp_path, pets):
    src = make_source("hf", {"path": str(saved_dataset(pets, tmp_path / "saved"))})
    pools = src.load()
    assert list(pools) == ["train", "val", "test"]
    ident = src.identity()
    assert ident["builder"] is None and ident["image_column"] == "img" and ident["label_column"] == "animal"
    assert ident["classes"] == list(CLASSES) and ident["splits"]["val"] == "validation"
    _same_as_folder(pools, ImageFolder(str(pets)).load())
    prov = src.provenance()
    assert set(prov["fingerprints"]) == {"train", "val", "test"} and prov["rows"]["train"] == 36
    assert HfDataset(path=str(tmp_path / "saved")).load()["test"].digest() == pools["test"].digest()


def test_imagefolder_builder_on_local_files_matches_the_folder_route(pets):
    src = make_source("hf", {"path": str(pets), "builder": "imagefolder"})
    pools = src.load()
    assert src.identity()["classes"] == list(CLASSES)
    _same_as_folder(pools, ImageFolder(str(pets)).load())
    assert HfDataset(path=str(pets)).identity()["builder"] == "imagefolder"  # detected for a plain folder


def test_plain_columns_single_dataset_and_unlabelled_split(tmp_path, pets, caplog):
    from PIL import Image

    imgs = [Image.new("RGB", (4, 4), (i * 20, 0, 0)) for i in range(6)]
    one = datasets.Dataset.from_dict({"picture": imgs, "kind": ["b", "a", "b", "a", "c", "c"]},
                                     features=datasets.Features({"picture": datasets.Image(), "kind": datasets.Value("string")}))
    one.save_to_disk(str(tmp_path / "one"))
    src = HfDataset(path=str(tmp_path / "one"), label_column="kind")
    assert src.pool_names() == ["all"] and src.identity()["classes"] == ["a", "b", "c"]
    assert src.load()["all"].labels.tolist() == [1, 0, 1, 0, 2, 2]
    with pytest.raises(DataUnavailableError, match=r"no label column \(features: picture: Image, kind: Value\)"):
        HfDataset(path=str(tmp_path / "one")).load()

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y"])})
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"image": imgs, "label": [0, 1] * 3}, features=feats),
                               "test": datasets.Dataset.from_dict({"image": imgs[:2], "label": [-1, -1]}, features=feats)})
    dd.save_to_disk(str(tmp_path / "unl"))
    with caplog.at_level(logging.WARNING, logger="evalbench"):
        assert HfDataset(path=str(tmp_path / "unl")).pool_names() == ["train"]
    assert "has no labels (all -1) and is left out" in caplog.text


def test_offline_hub_id_not_cached_is_one_line_naming_id_and_cache(monkeypatch, hf_cache):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as err:
        HfDataset(id="someone/not-cached-anywhere", revision="v2").load()
    msg = str(err.value)
    assert "\n" not in msg and "someone/not-cached-anywhere@v2" in msg and str(hf_cache) in msg
    assert "HF_DATASETS_OFFLINE=1" in msg


def test_a_folder_datasets_cannot_read_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataUnavailableError, match=r"empty: `datasets` cannot read it as imagefolder"):
        HfDataset(path=str(tmp_path / "empty")).load()
