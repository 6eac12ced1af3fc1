"""Image folders (torchvision ImageFolder convention): layouts, class order, decoding of every image mode, errors."""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
from _own_data import CLASSES, COUNTS, image_folder, write_image
from PIL import Image

from evalbench.adapters.base import Preprocess
from evalbench.data import make_source
from evalbench.data.imagefolder import ImageFolder
from evalbench.data.ragged import RaggedBatch, per_image
from evalbench.errors import DataUnavailableError
from evalbench.tasks import default_splits


def test_split_layout_classes_order_and_hidden_entries(tmp_path):
    root = image_folder(tmp_path / "pets")
    src = make_source("imagefolder", {"root": str(root)})
    pools = src.load()
    assert list(pools) == ["train", "val", "test"]
    assert {k: len(v) for k, v in pools.items()} == {k: n * len(CLASSES) for k, n in COUNTS.items()}
    ident = src.identity()
    assert ident["layout"] == "splits" and ident["classes"] == list(CLASSES)
    train = pools["train"]
    assert train.labels.tolist() == [c for c in range(3) for _ in range(COUNTS["train"])]
    assert train.names[0] == "train/cat/img000.png" and train.names[-1] == "train/owl/img011.png"
    assert not any(".ipynb" in n or n.endswith(".txt") for n in train.names)  # hidden folders, non-images ignored
    prov = src.provenance()
    assert prov["location"] == str(root) and prov["files"] == {"train": 36, "val": 12, "test": 18}


def test_every_image_mode_becomes_rgb_as_documented(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(7):
        write_image(tmp_path / "one" / "cat" / f"m{i}", 0, i, rng)
    pool = ImageFolder(str(tmp_path / "one")).load()["all"]
    modes = {p.suffix for p in pool.paths}
    assert modes == {".png", ".jpg"}
    for i in range(len(pool)):
        x = pool.batch(np.array([i]))
        assert x.dtype == torch.uint8 and x.shape[1] == 3
    exif = [i for i, p in enumerate(pool.paths) if p.name == "m6.jpg"][0]
    with Image.open(pool.paths[exif]) as img:
        stored = img.size
    assert tuple(pool.batch(np.array([exif])).shape[-2:]) == stored  # (W, H) stored rotated -> (H, W) upright
    sixteen = [i for i, p in enumerate(pool.paths) if p.name == "m4.png"][0]
    with Image.open(pool.paths[sixteen]) as img:
        raw = np.asarray(img, dtype=np.float64)
    decoded = pool.batch(np.array([sixteen]))[0, 0].numpy()
    assert np.array_equal(decoded, np.round(raw * 255 / 65535).astype(np.uint8))  # scaled, not clipped at 255


def test_mixed_sizes_are_ragged_and_preprocessed_as_alone(tmp_path):
    pool = ImageFolder(str(image_folder(tmp_path / "pets"))).load()["train"]
    batch = pool.batch(np.arange(8))
    assert isinstance(batch, RaggedBatch) and len({t.shape for t in batch}) > 1
    for pre in (Preprocess(8, 10, "bicubic"), Preprocess(16, 16, keep_aspect=False)):
        together = per_image(pre)(batch)
        alone = torch.cat([pre(t[None]) for t in batch])
        assert torch.equal(together, alone)
        assert per_image(pre).to_dict() == pre.to_dict()  # same cache keys


def test_single_folder_is_one_pool_cut_by_the_task(tmp_path):
    root = image_folder(tmp_path / "flat", splits=False)
    src = ImageFolder(str(root))
    assert src.pool_names() == ["all"] and src.identity()["layout"] == "single"
    splits, note = default_splits(src.pool_names(), "x")
    assert splits == {"partition": {"pool": "all", "seed": 0, "sizes": {"train": 0.8, "test": 0.2}}}
    assert "80/20" in note
    assert default_splits(["train", "val"], "x")[0] == {"train": {"pool": "train"}, "test": {"pool": "val"}}


def test_identity_is_names_and_sizes_not_location(tmp_path):
    root = image_folder(tmp_path / "a")
    first = ImageFolder(str(root)).load()["test"].digest()
    moved = tmp_path / "b"
    shutil.copytree(root, moved)
    assert ImageFolder(str(moved)).load()["test"].digest() == first  # a copied folder keeps its cache entries
    victim = moved / "test" / "dog" / "img000.png"
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert ImageFolder(str(moved)).load()["test"].digest() != first


def test_class_sets_that_differ_are_listed(tmp_path):
    root = image_folder(tmp_path / "pets")
    shutil.rmtree(root / "val" / "dog")
    write_image(root / "test" / "cow" / "x", 0, 0, np.random.default_rng(0))
    with pytest.raises(DataUnavailableError, match="val/ lacks dog; test/ has cow that train/ lacks"):
        ImageFolder(str(root)).load()


def test_empty_class_folder_and_no_layout_are_errors(tmp_path):
    root = image_folder(tmp_path / "pets")
    (root / "train" / "eel").mkdir()
    (root / "train" / "eel" / "readme.txt").write_text("x")
    with pytest.raises(DataUnavailableError, match="class folders without images: train/eel"):
        ImageFolder(str(root)).load()
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.new("RGB", (4, 4)).save(loose / "a.png")
    with pytest.raises(DataUnavailableError, match=r"holds no class folders; expected ROOT/<split>/<class>/<image>"):
        ImageFolder(str(loose)).load()
    with pytest.raises(DataUnavailableError, match="both val/ and validation/"):
        (root / "validation").mkdir()
        ImageFolder(str(root)).load()


def test_numeric_class_names_sort_as_text_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for name in ("1", "2", "10"):
        write_image(tmp_path / "num" / name / "a", 0, 0, rng)
    with caplog.at_level(logging.WARNING, logger="evalbench"):
        src = ImageFolder(str(tmp_path / "num"))
        assert src.identity()["classes"] == ["1", "10", "2"]
    assert "sorted as text" in caplog.text and "10->1" in caplog.text
