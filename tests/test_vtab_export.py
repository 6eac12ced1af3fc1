"""The community VTAB-1k export: exact layout, lazy decoding of every image mode, clear errors."""
from __future__ import annotations

import io

import numpy as np
import pytest
from _vtab_fixtures import write_export_task
from PIL import Image

from evalbench.data import make_source
from evalbench.data.imagefiles import open_image
from evalbench.data.vtab import Vtab, status_rows
from evalbench.data.vtab.export import Vtab1kExport
from evalbench.errors import DataUnavailableError


def test_export_pools_match_the_list_files_exactly(tmp_path):
    task = write_export_task(tmp_path, "eurosat", 10, test_size=30)
    src = make_source("vtab-1k", {"task": "eurosat", "image_size": 16}, data_root=str(tmp_path))
    assert src.locate() == str(task)
    pools = src.load()
    assert {k: len(v) for k, v in pools.items()} == {"train800": 800, "val200": 200, "test": 30}
    assert pools["train800"].labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert pools["test"].classes == [str(i) for i in range(10)]
    x = pools["val200"].batch(np.array([0, 1, 2]))  # files of different sizes: resized to 16x16, no crop
    assert x.shape == (3, 3, 16, 16) and x.dtype.is_floating_point is False
    assert src.identity()["split_variant"] == "vtab-1k-official"
    assert pools["test"].digest() == make_source("vtab-1k", {"task": "eurosat", "image_size": 16}, str(tmp_path)).load()["test"].digest()
    # the root may also be the vtab-1k folder itself
    assert Vtab1kExport("eurosat", data_root=str(tmp_path / "vtab-1k")).locate() == str(task)


def test_digest_changes_when_a_file_is_reencoded(tmp_path):
    task = write_export_task(tmp_path, "eurosat", 10, test_size=10)
    before = Vtab1kExport("eurosat", data_root=str(tmp_path)).load()["test"].digest()
    Image.open(task / "images/test/000003.png").convert("RGB").save(task / "images/test/000003.png", format="JPEG")
    assert Vtab1kExport("eurosat", data_root=str(tmp_path)).load()["test"].digest() != before


def test_export_wins_over_generated_dsprites_and_is_marked_official(tmp_path):
    write_export_task(tmp_path, "dsprites_loc", 16, test_size=16)
    src = Vtab("dsprites_loc", data_root=str(tmp_path))
    assert src.load()["test"].labels.tolist() == list(range(16))
    assert src.identity()["route"] == "export" and src.identity()["split_variant"] == "vtab-1k-official"
    assert Vtab("dsprites_loc").identity()["split_variant"] == "procedural-stratified"


def test_missing_task_names_the_layout_and_the_prepare_command(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        Vtab("dmlab", data_root=str(tmp_path)).load()
    msg = str(err.value)
    assert "VTAB-1k task dmlab: community export not found" in msg
    assert "<root>/vtab-1k/<task>/{train800,val200,train800val200,test}.txt" in msg
    assert "evalbench data prepare vtab --root DIR" in msg


@pytest.mark.parametrize("damage, message", [
    (lambda t: (t / "train800.txt").write_text("images/train800/000000.png 0\n"), "lists 1 images; VTAB-1k's train800 has 800"),
    (lambda t: (t / "test.txt").write_text("images/test/000000.png 12\n"), "test.txt:1: label 12 outside [0, 10)"),
    (lambda t: (t / "test.txt").write_text("justonefield\n"), "expected '<image path> <integer label>'"),
    (lambda t: (t / "train800val200.txt").write_text("images/train800/000000.png 1\n"), "does not match train800.txt + val200.txt"),
])
def test_inconsistent_exports_fail_with_the_file_and_line(tmp_path, damage, message):
    task = write_export_task(tmp_path, "eurosat", 10, test_size=5)
    damage(task)
    with pytest.raises(DataUnavailableError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)").replace("{", r"\{").replace("}", r"\}").replace("+", r"\+")):
        Vtab1kExport("eurosat", data_root=str(tmp_path)).load()


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


def test_every_image_mode_becomes_rgb(tmp_path):
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    grey = _save(Image.fromarray(np.full((4, 6), 77, np.uint8), "L"), tmp_path / "g.png")
    rgba = _save(Image.fromarray(np.dstack([rgb, np.full((4, 6), 10, np.uint8)]), "RGBA"), tmp_path / "a.png")
    pal = _save(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE), tmp_path / "p.png")
    cmyk = _save(Image.fromarray(rgb).convert("CMYK"), tmp_path / "c.jpg", quality=100)
    deep = _save(Image.fromarray(np.full((4, 6), 65535, np.uint16)), tmp_path / "d.png")
    assert open_image(grey, None).shape == (4, 6, 3) and (open_image(grey, None) == 77).all()
    assert (open_image(rgba, None) == rgb).all()  # alpha dropped, colour kept
    assert (open_image(pal, None)[..., 0] == 200).all()
    assert abs(int(open_image(cmyk, None)[..., 0].mean()) - 200) <= 3
    assert (open_image(deep, None) == 255).all()  # 16-bit white stays white, not clipped noise
    # EXIF orientation 6 (rotate 90 degrees clockwise on display): a 4x6 file shows as 6x4
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = _save(Image.fromarray(rgb), tmp_path / "r.jpg", exif=exif.tobytes())
    assert open_image(rotated, None).shape == (6, 4, 3)
    assert open_image(rotated, 5).shape == (5, 5, 3)


def test_truncated_and_empty_files_fail_naming_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DataUnavailableError, match="empty.png is empty"):
        open_image(tmp_path / "empty.png", None)
    with pytest.raises(DataUnavailableError, match="cut.jpg"):
        open_image(tmp_path / "cut.jpg", None)
    with pytest.raises(DataUnavailableError, match="nothere.png is listed but missing"):
        open_image(tmp_path / "nothere.png", None)


def test_status_reports_route_counts_and_sun397_coverage_gaps(tmp_path):
    write_export_task(tmp_path, "sun397", 397, test_size=397, classes_in_train=300)
    rows = {r["task"]: r for r in status_rows(str(tmp_path), ["sun397", "dmlab"])}
    sun = rows["sun397"]
    assert sun["route"] == "export" and sun["variant"] == "vtab-1k-official"
    assert sun["counts"] == {"train800": 800, "val200": 200, "test": 397}
    assert sun["coverage"] == {"train800": 300, "val200": 200, "test": 397}
    assert sun["warnings"] == ["train800 covers 300 of 397 classes", "val200 covers 200 of 397 classes"]
    assert rows["dmlab"]["route"] is None
