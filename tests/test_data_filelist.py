"""File lists: CSV / TSV with detected or named columns, string and integer labels, VTAB-style lines, row-naming errors."""
from __future__ import annotations

import numpy as np
import pytest
from _own_data import CLASSES, csv_list, image_folder, listing

from evalbench.data import make_source
from evalbench.data.filelist import FileList
from evalbench.data.imagefolder import ImageFolder
from evalbench.errors import DataUnavailableError


@pytest.fixture
def pets(tmp_path):
    return image_folder(tmp_path / "pets")


def test_csv_with_string_labels_and_splits_matches_the_folder(pets, tmp_path):
    (tmp_path / "lists").mkdir()
    src = make_source("filelist", {"file": str(csv_list(pets, tmp_path / "lists" / "pets.csv"))})
    pools, folder = src.load(), ImageFolder(str(pets)).load()
    assert list(pools) == ["train", "val", "test"]
    ident = src.identity()
    assert ident["classes"] == list(CLASSES) and ident["class_index"] == "label strings in sorted (code point) order"
    for name in pools:
        assert pools[name].labels.tolist() == folder[name].labels.tolist()
        assert [p.resolve() for p in pools[name].paths] == [p.resolve() for p in folder[name].paths]
        assert np.array_equal(pools[name].batch(np.arange(3))[0], folder[name].batch(np.arange(3))[0])


def test_integer_labels_in_numeric_order_and_vtab_lines(tmp_path, pets):
    rows = listing(pets)
    numbers = {"cat": "2", "dog": "10", "owl": "7"}
    (pets / "list.txt").write_text("".join(f"{p} {numbers[n]}\n" for p, n, _ in rows))
    src = FileList(str(pets / "list.txt"))
    assert src.pool_names() == ["all"]
    assert src.identity()["classes"] == ["2", "7", "10"]  # numeric, not text order
    pool = src.load()["all"]
    assert pool.labels[:3].tolist() == [0, 0, 0] and set(pool.labels.tolist()) == {0, 1, 2}
    assert pool.classes[pool.labels[-1]] == "7"


def test_tsv_and_named_columns(tmp_path, pets):
    rows = listing(pets)
    lines = ["name\tanimal\tpart"] + [f"{p}\t{n}\t{s}" for p, n, s in rows]
    (pets / "x.tsv").write_text("\n".join(lines) + "\n")
    src = FileList(str(pets / "x.tsv"), path_column="name", label_column="animal", split_column="part")
    assert {k: len(v) for k, v in src.load().items()} == {"train": 36, "val": 12, "test": 18}


def test_missing_column_bad_split_and_unreadable_path_name_the_row(tmp_path, pets):
    (pets / "a.csv").write_text("filepath,split\ntrain/cat/img000.png,train\n")
    with pytest.raises(DataUnavailableError, match=r"a.csv: no label column \(looked for label, class, .*the header has filepath, split\)"):
        FileList(str(pets / "a.csv")).load()
    (pets / "b.csv").write_text("path,label,split\ntrain/cat/img000.png,cat,train\ntrain/cat/missing.png,cat,train\n")
    with pytest.raises(DataUnavailableError, match=r"b.csv line 3: image .*missing.png does not exist"):
        FileList(str(pets / "b.csv")).load()
    (pets / "c.csv").write_text("path,label,split\ntrain/cat/img000.png,cat,holdout\n")
    with pytest.raises(DataUnavailableError, match=r"c.csv line 2: split 'holdout' is not train, val"):
        FileList(str(pets / "c.csv")).load()
    (pets / "d.csv").write_text("path,label\ntrain/cat/img000.png,\n")
    with pytest.raises(DataUnavailableError, match=r"d.csv line 2: empty label"):
        FileList(str(pets / "d.csv")).load()


def test_an_image_that_cannot_be_decoded_names_its_line(tmp_path, pets):
    (pets / "broken.png").write_bytes(b"not a png at all")
    (pets / "e.csv").write_text("path,label\ntrain/cat/img000.png,cat\nbroken.png,dog\n")
    pool = FileList(str(pets / "e.csv")).load()["all"]
    with pytest.raises(DataUnavailableError, match=r"e.csv line 3: cannot decode image .*broken.png"):
        pool.batch(np.array([0, 1]))
