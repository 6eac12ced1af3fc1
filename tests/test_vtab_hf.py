"""The Hugging Face route for VTAB: label mappings, seeded stratified 800/200 splits, marking, offline errors.

Offline: the Hub is replaced by tiny `datasets.Dataset`s handed out by a patched `fetch_split`, plus
one test that runs the real `datasets.load_dataset` on a local folder laid out like clip-benchmark's
webdataset repos (train/N.tar, test/N.tar with <key>.png + <key>.cls members).
"""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

datasets = pytest.importorskip("datasets")

from evalbench.data.vtab import hf as vtab_hf  # noqa: E402
from evalbench.data.vtab import Vtab, prepare, status_rows  # noqa: E402
from evalbench.data.vtab.hf import HF_SPECS, HfSpec, VtabHf, split_rows  # noqa: E402
from evalbench.errors import DataUnavailableError  # noqa: E402


def fake(columns: dict[str, np.ndarray], image_col: str = "webp") -> "datasets.Dataset":
    n = len(next(iter(columns.values())))
    img = Image.new("RGB", (4, 4), (10, 20, 30))
    feats = datasets.Features({image_col: datasets.Image(), **{k: datasets.Value("int64") for k in columns}})
    return datasets.Dataset.from_dict({image_col: [img] * n, **{k: list(map(int, v)) for k, v in columns.items()}},
                                      features=feats)


class FakeHub:
    """Stands in for `datasets.load_dataset`: (repo, split) -> Dataset; records every call."""

    def __init__(self, tables):
        self.tables, self.calls = tables, []

    def __call__(self, repo, split, cache_dir, offline):
        self.calls.append((repo, split, offline))
        if (repo, split) not in self.tables:
            raise ConnectionError(f"Couldn't reach '{repo}' on the Hub")
        return self.tables[(repo, split)]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(vtab_hf, "hub_offline_reason", lambda: None)

    def install(tables):
        h = FakeHub(tables)
        monkeypatch.setattr(vtab_hf, "fetch_split", h)
        return h
    return install


def dmlab_tables():
    return {("clip-benchmark/wds_vtab-dmlab", "train"): fake({"cls": np.arange(1500) % 6}),
            ("clip-benchmark/wds_vtab-dmlab", "test"): fake({"cls": np.arange(90) % 6})}


def test_dmlab_splits_are_stratified_seeded_disjoint_and_marked(hub, tmp_path):
    h = hub(dmlab_tables())
    src = Vtab("dmlab", download=True)
    assert src.chosen() is None  # nothing downloaded yet: no route is found without the network
    pools = src.load()
    ident = src.identity()
    assert ident["route"] == "hf" and ident["split_variant"] == "source-stratified" and ident["seed"] == 0
    assert ident["hf_dataset"] == "clip-benchmark/wds_vtab-dmlab"
    assert {k: len(v) for k, v in pools.items()} == {"train800": 800, "val200": 200, "test": 90}
    assert not set(pools["train800"].items) & set(pools["val200"].items)  # val200 from the train rest
    assert pools["test"].items.tolist() == list(range(90))  # the whole test split
    assert np.bincount(pools["train800"].labels).tolist() == [134, 134, 133, 133, 133, 133]
    assert set(np.bincount(pools["val200"].labels).tolist()) == {33, 34}  # stratified on the train rest
    assert pools["val200"].batch(np.array([0, 1])).shape == (2, 3, 224, 224)
    assert (tmp_path / "vtab-hf" / "clip-benchmark__wds_vtab-dmlab" / "ready.json").is_file()
    assert all(not offline for _, _, offline in h.calls)

    # downloaded once: found without download, read from the cache only, same seed -> same draw
    h.calls.clear()
    again = Vtab("dmlab")
    assert again.locate().endswith("clip-benchmark__wds_vtab-dmlab")
    p2 = again.load()
    assert all(offline for _, _, offline in h.calls) and again.identity()["route"] == "hf"
    assert all(np.array_equal(pools[k].items, p2[k].items) for k in pools)
    other = Vtab("dmlab", seed=1).load()
    assert not np.array_equal(other["train800"].items, pools["train800"].items)
    assert other["train800"].digest() != pools["train800"].digest()


@pytest.mark.parametrize("task, repo, column, raw, expected", [
    ("smallnorb_azi", "Ramos-Ramos/smallnorb", "azimuth", np.arange(0, 36, 2), list(range(18))),
    ("smallnorb_ele", "Ramos-Ramos/smallnorb", "elevation", np.arange(9), list(range(9))),
    ("smallnorb_azi", "clip-benchmark/wds_vtab-smallnorb_label_azimuth", "cls", np.arange(18), list(range(18))),
    ("caltech101", "clip-benchmark/wds_vtab-caltech101", "cls", np.arange(102), list(range(102))),
    ("resisc45", "clip-benchmark/wds_vtab-resisc45", "cls", np.arange(45), list(range(45))),
    ("diabetic_retinopathy", "clip-benchmark/wds_vtab-diabetic_retinopathy", "cls", np.arange(5), list(range(5))),
])
def test_label_mappings_follow_vtab(hub, task, repo, column, raw, expected):
    ramos = repo.startswith("Ramos")
    image = "image_lt" if ramos else "webp"
    reps = int(np.ceil(1100 / len(raw)))
    train = np.tile(raw, reps)
    # Ramos-Ramos: val200 comes from the test split's first half, so it needs 2 x 200 rows and more
    test = np.tile(raw, 2 * int(np.ceil(220 / len(raw)))) if ramos else raw.copy()
    extra = {"instance": np.zeros(len(train), int)} if ramos else {}
    hub({(repo, "train"): fake({column: train, **extra}, image), (repo, "test"): fake({column: test}, image)})
    pools = VtabHf(task, download=True).load()  # Ramos-Ramos: the clip-benchmark copy is absent, the fallback serves
    if ramos:
        assert sorted(set(pools["test"].labels.tolist())) == expected and len(pools["test"]) == len(test) // 2
    else:
        assert pools["test"].labels.tolist() == expected
    assert sorted(set(pools["train800"].labels.tolist())) == expected


def test_smallnorb_fallback_halves_raw_azimuth_and_rejects_bad_labels(hub):
    raw = np.tile(np.arange(0, 36, 2), 70)
    h = hub({("Ramos-Ramos/smallnorb", "train"): fake({"azimuth": raw}, "image_lt"),
             ("Ramos-Ramos/smallnorb", "test"): fake({"azimuth": np.tile([0, 2, 34], 140)}, "image_lt")})
    src = VtabHf("smallnorb_azi", download=True)
    assert src.load()["test"].labels.tolist() == [0, 1, 17] * 70
    assert [c[0] for c in h.calls][:1] == ["clip-benchmark/wds_vtab-smallnorb_label_azimuth"]  # tried first
    assert src.identity()["hf_dataset"] == "Ramos-Ramos/smallnorb"

    hub({("clip-benchmark/wds_vtab-dmlab", "train"): fake({"cls": np.arange(1200) % 7}),
         ("clip-benchmark/wds_vtab-dmlab", "test"): fake({"cls": np.arange(10) % 6})})
    with pytest.raises(DataUnavailableError, match=r"label 6 outside \[0, 6\) for VTAB task dmlab"):
        VtabHf("dmlab", download=True).load()


def test_split_rows_follows_tfds_slicing():
    assert split_rows("test", 5)[0] == "test" and split_rows("test", 5)[1].tolist() == [0, 1, 2, 3, 4]
    name, first = split_rows("test[:50%]", 24300)
    _, second = split_rows("test[50%:]", 24300)
    assert name == "test" and (first[0], first[-1], len(first)) == (0, 12149, 12150)
    assert (second[0], second[-1], len(second)) == (12150, 24299, 12150)  # smallNORB: 12,150 val / 12,150 test
    for n in (5, 7, 24301):  # TFDS rounds percent bounds to the closest row: the halves always partition
        a, b = split_rows("test[:50%]", n)[1], split_rows("test[50%:]", n)[1]
        assert np.array_equal(np.concatenate([a, b]), np.arange(n))
    assert split_rows("train[:800]", 1000)[1].tolist() == list(range(800))
    assert split_rows("test[10:12]", 100)[1].tolist() == [10, 11]
    with pytest.raises(ValueError, match="bad split slice"):
        split_rows("test[:half]", 10)


@pytest.mark.parametrize("task, column", [("smallnorb_azi", "azimuth"), ("smallnorb_ele", "elevation")])
def test_smallnorb_fallback_takes_val200_from_the_first_half_of_test(hub, task, column):
    """task_adaptation/data/smallnorb.py: train = train, val = test[:50%], test = test[50%:]."""
    values = np.arange(0, 36, 2) if column == "azimuth" else np.arange(9)
    half = len(values) // 2
    # test split rows 0..299 hold the low label values only, rows 300..599 the high ones: where each
    # pool's labels come from shows which rows it took
    test = np.concatenate([np.resize(values[:half], 300), np.resize(values[half:], 300)])
    h = hub({("Ramos-Ramos/smallnorb", "train"): fake({column: np.resize(values, 1200)}, "image_lt"),
             ("Ramos-Ramos/smallnorb", "test"): fake({column: test}, "image_lt")})
    src = VtabHf(task, download=True)
    pools = src.load()
    assert {k: len(v) for k, v in pools.items()} == {"train800": 800, "val200": 200, "test": 300}
    assert set(pools["val200"].labels.tolist()) == set(range(half))  # val200 from test[:50%] (VTAB labels)
    assert set(pools["test"].labels.tolist()) == set(range(half, len(values)))  # scored on all of test[50%:]
    assert pools["test"].items.tolist() == list(range(300))
    assert sorted(set(pools["train800"].labels.tolist())) == list(range(len(values)))  # train only
    assert [c[:2] for c in h.calls].count(("Ramos-Ramos/smallnorb", "test")) == 1  # one fetch serves both halves
    assert "test[:50%]" in src.identity()["note"]


def test_resisc45_fallback_cuts_one_pool_60_20_20(hub):
    labels = np.repeat(np.arange(45), 40)  # 1,800 images
    hub({("jonathan-roberts1/NWPU-RESISC45", "train"): fake({"label": labels}, "image")})
    src = Vtab("resisc45", download=True)
    pools = src.load()
    assert src.identity()["hf_dataset"] == "jonathan-roberts1/NWPU-RESISC45"
    assert {k: len(v) for k, v in pools.items()} == {"train800": 800, "val200": 200, "test": 360}
    sets = [set(pools[k].items.tolist()) for k in pools]
    assert not (sets[0] & sets[1]) and not (sets[2] & (sets[0] | sets[1]))
    assert np.bincount(pools["test"].labels).tolist() == [8] * 45


def test_offline_gives_one_clear_line_per_task(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the real loader is never reached: no marker, offline
    with pytest.raises(DataUnavailableError) as err:
        Vtab("dmlab", data_root=str(tmp_path), download=True).load()
    msg = str(err.value)
    assert "\n" not in msg
    assert "Hugging Face dataset clip-benchmark/wds_vtab-dmlab not downloaded" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "community export" in msg and "evalbench data prepare vtab --root DIR" in msg
    with pytest.raises(DataUnavailableError, match="VTAB-1k task smallnorb_ele: community export not found"):
        Vtab("smallnorb_ele", data_root=str(tmp_path)).load()  # without download: the export's message first
    lines = prepare(str(tmp_path / "prep"), ["smallnorb_azi", "caltech101"])
    azi = next(line for line in lines if line.startswith("smallnorb_azi:"))
    assert "manual step needed" in azi and "clip-benchmark/wds_vtab-smallnorb_label_azimuth or Ramos-Ramos/smallnorb" in azi
    assert any(line.startswith("caltech101: manual step needed") for line in lines)


def test_status_lists_the_hf_route(hub, tmp_path):
    rows = {r["task"]: r for r in status_rows(str(tmp_path), ["dmlab", "smallnorb_ele"])}
    assert rows["dmlab"]["route"] is None and "clip-benchmark/wds_vtab-dmlab" in rows["dmlab"]["source_route"]
    hub(dmlab_tables())
    Vtab("dmlab", download=True).load()
    row = status_rows(str(tmp_path), ["dmlab"])[0]
    assert (row["route"], row["variant"]) == ("hf", "source-stratified")
    assert row["counts"] == {"train800": 800, "val200": 200, "test": 90} and row["coverage"]["val200"] == 6


def _tar(path, labels, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w") as tar:
        for i, y in enumerate(labels):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (5, 5, 3), dtype=np.uint8)).save(buf, format="PNG")
            for ext, data in (("png", buf.getvalue()), ("cls", str(int(y)).encode())):
                info = tarfile.TarInfo(f"{i:06d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_real_datasets_loader_reads_a_clip_benchmark_style_webdataset(monkeypatch, tmp_path):
    repo = tmp_path / "wds_vtab-dmlab"
    _tar(repo / "train" / "0.tar", np.arange(1100) % 6, 0)
    _tar(repo / "test" / "0.tar", np.arange(30) % 6, 1)
    (repo / "classnames.txt").write_text("\n".join(f"c{i}" for i in range(6)) + "\n")
    monkeypatch.setitem(HF_SPECS, "dmlab", [HfSpec(str(repo))])
    monkeypatch.setattr(vtab_hf, "hub_offline_reason", lambda: None)
    src = VtabHf("dmlab", data_root=str(tmp_path / "data"), download=True)
    pools = src.load()
    assert {k: len(v) for k, v in pools.items()} == {"train800": 800, "val200": 200, "test": 30}
    assert pools["test"].labels.tolist() == (np.arange(30) % 6).tolist()
    assert pools["test"].batch(np.array([0, 1])).shape == (2, 3, 224, 224)
    assert (tmp_path / "data" / "vtab-hf").is_dir()  # cache_dir = <root>/vtab-hf
