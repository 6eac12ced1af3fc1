"""The `imagenet` source: folder and torchvision layouts, class order, robustness test sets and their class subsets."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from _imagenet_fixtures import WNIDS, make_imagenet, make_robustness

from evalbench.data import make_source
from evalbench.data.imagenet.robustness import shipped_wnids
from evalbench.errors import DataUnavailableError


def _load(data_root, **options):
    source = make_source("imagenet", options, data_root=str(data_root))
    return source, source.load()


def test_folder_layout_gives_train_and_val_in_sorted_wnid_order(tmp_path):
    make_imagenet(tmp_path / "imagenet", wnids=list(reversed(WNIDS)))
    source, pools = _load(tmp_path)
    assert list(pools) == ["train", "val"]
    assert len(pools["train"]) == 24 and len(pools["val"]) == 12
    ident = source.identity()
    assert ident["classes"] == sorted(WNIDS) and ident["class_index"].startswith("sorted wnids")
    # each image's label is its wnid folder's position in sorted order; names are <pool>/<wnid>/<file>
    for pool in pools.values():
        for name, label in zip(pool.names, pool.labels.tolist(), strict=True):
            assert name.split("/")[1] == sorted(WNIDS)[label]
    assert pools["val"].names[0] == "val/n01440764/ILSVRC2012_val_00000006.JPEG"
    prov = source.provenance()
    assert prov["layout"] == "folders" and prov["files"] == {"train": 24, "val": 12}
    assert prov["location"] == str(tmp_path / "imagenet")


@pytest.mark.parametrize("layout", ["torchvision", "torchvision-flat"])
def test_torchvision_layouts_give_the_same_pools_as_the_folder_layout(tmp_path, layout):
    make_imagenet(tmp_path / "a" / "imagenet", layout="folders")
    make_imagenet(tmp_path / "b" / "imagenet", layout=layout)
    ref_source, ref = _load(tmp_path / "a")
    source, pools = _load(tmp_path / "b")
    assert source.provenance()["layout"] == "torchvision"
    for name in ("train", "val"):
        assert pools[name].names == ref[name].names
        np.testing.assert_array_equal(pools[name].labels, ref[name].labels)
        assert pools[name].digest() == ref[name].digest()  # same images, same cache keys, whatever the layout
    assert source.provenance()["content_sha256"] == ref_source.provenance()["content_sha256"]
    assert source.listing().class_names[WNIDS[0]] == (f"class {WNIDS[0]}",)
    assert ("val/ is flat" in " ".join(source.listing().notes)) == (layout == "torchvision-flat")


def test_flat_val_is_labelled_by_meta_bin_not_by_file_order(tmp_path):
    root = make_imagenet(tmp_path / "imagenet", layout="torchvision-flat")
    _, val_wnids = torch.load(root / "meta.bin", weights_only=True)
    _, pools = _load(tmp_path)
    val = pools["val"]
    for path, label in zip(val.paths, val.labels.tolist(), strict=True):
        number = int(re.search(r"(\d{8})", path).group(1))
        assert sorted(WNIDS)[label] == val_wnids[number - 1]


def test_the_copy_is_found_under_other_names_and_by_the_root_option(tmp_path):
    make_imagenet(tmp_path / "ILSVRC2012")
    source, pools = _load(tmp_path)
    assert source.locate() == str(tmp_path / "ILSVRC2012") and len(pools["train"]) == 24
    make_imagenet(tmp_path / "elsewhere" / "my-copy")
    source, _ = _load(tmp_path, root="elsewhere/my-copy")  # relative to the data root
    assert source.locate() == str(tmp_path / "elsewhere" / "my-copy")


def test_no_copy_is_a_one_line_error_saying_where_it_looked(tmp_path):
    with pytest.raises(DataUnavailableError) as exc:
        _load(tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and f"not found in {tmp_path} and its folders imagenet/, ILSVRC2012/" in msg
    assert "evalbench data status imagenet" in msg
    with pytest.raises(DataUnavailableError, match="never downloaded: pass --data-root DIR"):
        make_source("imagenet", {}, data_root=None).load()


def test_flat_val_without_meta_bin_says_how_to_make_it(tmp_path):
    root = make_imagenet(tmp_path / "imagenet", layout="torchvision-flat")
    (root / "meta.bin").unlink()
    (root / "ILSVRC2012_devkit_t12.tar.gz").write_bytes(b"")
    with pytest.raises(DataUnavailableError, match=r"val has no class folders and there is no meta.bin.*"
                                                   r"parse_devkit_archive\('" + re.escape(str(root))):
        _load(tmp_path)


def test_layout_errors_name_the_problem(tmp_path):
    root = make_imagenet(tmp_path / "imagenet")
    (root / "val" / WNIDS[0]).rename(root / "val" / "n09999999")
    with pytest.raises(DataUnavailableError, match=r"train/ and val/ hold different classes \(val/ lacks n01440764; "
                                                   r"has n09999999 that train/ lacks\)"):
        _load(tmp_path)
    (root / "val" / "n09999999").rename(root / "val" / "cats")
    with pytest.raises(DataUnavailableError, match=r"folders cats are not WordNet ids"):
        _load(tmp_path)


def test_train_archive_without_folders_is_not_unpacked(tmp_path):
    root = tmp_path / "imagenet"
    root.mkdir()
    torch.save(({w: (w,) for w in WNIDS}, []), root / "meta.bin")
    (root / "ILSVRC2012_img_train.tar").write_bytes(b"")
    with pytest.raises(DataUnavailableError, match=r"no train/ or val/ folder; unpack ILSVRC2012_img_train.tar first"):
        _load(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["ILSVRC2012_img_train.tar", "meta.bin"]


def test_robustness_sets_are_labelled_in_imagenet_space_with_class_subsets(tmp_path):
    make_imagenet(tmp_path / "imagenet")
    make_robustness(tmp_path, "imagenet-r", {WNIDS[1]: 1, WNIDS[4]: 4}, per_class=3)
    make_robustness(tmp_path / "imagenet", "imagenet-a", {WNIDS[5]: 5})  # inside the ImageNet folder also counts
    make_robustness(tmp_path, "sketch", {w: i for i, w in enumerate(WNIDS)}, ext="JPEG")
    source, pools = _load(tmp_path)
    assert list(pools) == ["train", "val", "imagenet-sketch", "imagenet-r", "imagenet-a"]
    r, a, sketch = pools["imagenet-r"], pools["imagenet-a"], pools["imagenet-sketch"]
    assert r.labels.tolist() == [1, 1, 1, 4, 4, 4] and r.names[0] == f"imagenet-r/{WNIDS[1]}/{WNIDS[1]}_0.jpg"
    # predictions are restricted to the set's classes (of the copy's classes): R covers all fixture wnids
    # but n01440764, A covers n01498041 and n01531178, whatever folders the user's copy has
    assert r.class_subset.tolist() == [1, 2, 3, 4, 5] and r.class_subset.dtype == np.int64
    assert a.class_subset.tolist() == [4, 5]
    assert getattr(sketch, "class_subset", None) is None and len(sketch) == 12
    assert r.classes == sorted(WNIDS)  # labels stay in the full class space
    tests = source.provenance()["test_pools"]
    assert tests["imagenet-a"]["location"] == str(tmp_path / "imagenet" / "imagenet-a") and tests["imagenet-r"]["files"] == 6


def test_a_new_test_set_does_not_change_the_train_val_digest(tmp_path):
    make_imagenet(tmp_path / "imagenet")
    before = _load(tmp_path)[0].provenance()["content_sha256"]
    make_robustness(tmp_path, "imagenet-r", {WNIDS[1]: 1})
    assert _load(tmp_path)[0].provenance()["content_sha256"] == before


def test_imagenet_v2_folders_are_class_indices_in_numeric_order(tmp_path):
    wnids = [f"n{i:08d}" for i in range(1, 13)]
    make_imagenet(tmp_path / "imagenet", wnids=wnids, train_per_class=1, val_per_class=1)
    make_robustness(tmp_path, "imagenetv2-matched-frequency-format-val", {"10": 10, "2": 2}, ext="jpeg")
    _, pools = _load(tmp_path)
    v2 = pools["imagenet-v2"]
    assert v2.labels.tolist() == [2, 2, 10, 10]  # folder "10" is class 10, not the second folder in text order
    assert [n.split("/")[1] for n in v2.names] == ["2", "2", "10", "10"]
    make_robustness(tmp_path, "imagenetv2-matched-frequency-format-val", {"12": 0})
    with pytest.raises(DataUnavailableError, match=r"folders 12 are not class indices 0..11"):
        _load(tmp_path)


def test_a_test_set_class_outside_its_list_is_an_error(tmp_path):
    make_imagenet(tmp_path / "imagenet")
    make_robustness(tmp_path, "imagenet-a", {WNIDS[0]: 0})
    with pytest.raises(DataUnavailableError, match=r"imagenet-a: class folders n01440764 are not one of imagenet-a's "
                                                   r"200 classes"):
        _load(tmp_path)


def test_shipped_class_lists_are_200_sorted_wnids_each():
    r, a = shipped_wnids("imagenet-r.txt"), shipped_wnids("imagenet-a.txt")
    for wnids in (r, a):
        assert len(wnids) == 200 and wnids == sorted(set(wnids))
        assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    # facts from the source files: ImageNet-A's first and last classes, and classes both sets share
    assert a[0] == "n01498041" and a[-1] == "n12267677" and r[0] == "n01443537" and r[-1] == "n12267677"
    assert len(set(r) & set(a)) == 86  # counted from the two source files when the lists were shipped
