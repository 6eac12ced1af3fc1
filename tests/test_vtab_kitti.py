"""KITTI-Dist through torchvision's Kitti: split by drive as TFDS kitti 3.1.0, on a generated KITTI folder."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evalbench.data.vtab import Vtab
from evalbench.data.vtab.source import LOADERS, VtabSource, kitti_image_drives, kitti_video_split
from evalbench.errors import DataUnavailableError

DRIVES = [f"2011_09_26_drive_{i:04d}_sync" for i in range(1, 31)]
# TFDS kitti 3.1.0's _build_splits on these 30 names (np.random.seed(123), then choice of 3 test
# videos from the sorted names, then 3 validation videos from the rest); computed with TFDS's own
# legacy global-RNG calls, pinned here
TFDS_TEST = {"2011_09_26_drive_0006_sync", "2011_09_26_drive_0008_sync", "2011_09_26_drive_0030_sync"}
TFDS_VAL = {"2011_09_26_drive_0017_sync", "2011_09_26_drive_0028_sync", "2011_09_26_drive_0029_sync"}
Z = {0: 5.0, 1: 12.0, 2: 30.0}  # closest-vehicle depth per label; label 3 = no vehicle


def _frames():
    """(drive, frame, label) of every image, in mapping-file order: 2 to 5 frames a drive."""
    out = []
    for d, drive in enumerate(DRIVES):
        out += [(drive, f, (d + f) % 4) for f in range(2 + d % 4)]
    return out


def write_kitti(root: Path, devkit: str = "folder") -> dict[int, tuple[str, int]]:
    """A torchvision-layout Kitti (<root>/vtab-source/Kitti/raw/training/{image_2,label_2}) whose image
    ids are a shuffled order of the frames, plus the devkit's mapping files ("folder", "zip" or "none").
    Each image's pixel value encodes its id. Returns id -> (drive, label)."""
    raw = root / "vtab-source" / "Kitti" / "raw"
    (raw / "training" / "image_2").mkdir(parents=True)
    (raw / "training" / "label_2").mkdir(parents=True)
    frames = _frames()
    line_of_image = np.random.default_rng(0).permutation(len(frames))  # image id -> mapping line (0-based)
    truth = {}
    for image_id, line in enumerate(line_of_image):
        drive, _, label = frames[line]
        Image.new("RGB", (3, 2), (image_id % 256, image_id // 256, 7)).save(
            raw / "training" / "image_2" / f"{image_id:06d}.png")
        rows = ["Pedestrian 0 0 0 0 0 5 5 1 1 1 0 0 3.0 0"]  # never a vehicle: must not count
        if label < 3:
            rows.append(f"Car 0 0 0 0 0 5 5 1 1 1 0 0 {Z[label]} 0")
        (raw / "training" / "label_2" / f"{image_id:06d}.txt").write_text("\n".join(rows) + "\n")
        truth[image_id] = (drive, label)
    mapping = "".join(f"2011_09_26 {drive} {frame:010d}\n" for drive, frame, _ in frames)
    rand = ",".join(str(int(line) + 1) for line in line_of_image) + "\n"
    if devkit == "folder":
        (raw / "devkit_object" / "mapping").mkdir(parents=True)
        (raw / "devkit_object" / "mapping" / "train_mapping.txt").write_text(mapping)
        (raw / "devkit_object" / "mapping" / "train_rand.txt").write_text(rand)
    elif devkit == "zip":
        with zipfile.ZipFile(raw / "devkit_object.zip", "w") as z:
            z.writestr("mapping/train_mapping.txt", mapping)
            z.writestr("mapping/train_rand.txt", rand)
            z.writestr("readme.txt", "object devkit")
    return truth


def test_video_split_reproduces_tfds_and_keeps_drives_whole():
    drives = [d for d, _, _ in _frames()]
    split = kitti_video_split(drives)
    side = {name: {drives[i] for i in pos} for name, pos in split.items()}
    assert side["test"] == TFDS_TEST and side["val"] == TFDS_VAL
    assert side["train"] == set(DRIVES) - TFDS_TEST - TFDS_VAL
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(len(drives)))
    assert kitti_image_drives("2,1\n", "2011_09_26 a 0000000001\n2011_09_26 b 0000000002\n") == ["b", "a"]


@pytest.mark.parametrize("devkit", ["folder", "zip"])
def test_torchvision_route_splits_kitti_by_drive(tmp_path, devkit):
    truth = write_kitti(tmp_path, devkit)
    pools = LOADERS["kitti"](str(tmp_path / "vtab-source"), False)
    assert set(pools) == {"train", "val", "test"}
    seen = {}
    for name, (get, labels) in pools.items():
        for j, label in enumerate(labels):
            r, g, _ = get(j).getpixel((0, 0))
            image_id = r + 256 * g
            assert image_id not in seen and label == truth[image_id][1]
            seen[image_id] = name
    assert sorted(seen) == sorted(truth)  # every image once
    drive_sides = {}
    for image_id, name in seen.items():
        drive_sides.setdefault(truth[image_id][0], set()).add(name)
    assert all(len(s) == 1 for s in drive_sides.values())  # no drive on two sides
    assert {d for d, s in drive_sides.items() if s == {"test"}} == TFDS_TEST
    assert {d for d, s in drive_sides.items() if s == {"val"}} == TFDS_VAL


def test_without_the_devkit_the_route_refuses_and_names_the_alternatives(tmp_path):
    write_kitti(tmp_path, devkit="none")
    src = VtabSource("kitti", data_root=str(tmp_path))
    assert src.locate() is None  # images alone are not enough: no split by frame any more
    msg = src.missing_message()
    assert "splits KITTI by drive" in msg and "devkit_object.zip" in msg and "vtab-1k/kitti" in msg
    with pytest.raises(DataUnavailableError, match="never by frame"):
        Vtab("kitti", data_root=str(tmp_path), routes=["source"]).load()
