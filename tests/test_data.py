"""Data sources: IDX parsing, the bundled Fashion-MNIST subset against the official files, clear errors."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from evalbench.data import make_source
from evalbench.data.bundled import BundledArrays, SklearnDigits
from evalbench.data.idx import IdxDataset, read_idx
from evalbench.errors import DataUnavailableError, UnknownNameError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_debian_fashion = pytest.mark.skipif(not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
                                          reason="Debian package dataset-fashion-mnist not installed (.ci/run installs it)")


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def test_idx_roundtrip_and_truncation(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    write_idx(tmp_path / "b", arr, gz=False)
    (tmp_path / "b").write_bytes((tmp_path / "b").read_bytes()[:-3])
    with pytest.raises(DataUnavailableError, match="is truncated"):
        read_idx(tmp_path / "b")


def test_idx_dataset_found_through_data_root(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    pools = IdxDataset("mnist", data_root=str(tmp_path), download=False).load()
    assert len(pools["train"]) == 12 and len(pools["test"]) == 5
    assert pools["train"].batch(np.array([0, 1])).shape == (2, 1, 28, 28)


def test_missing_idx_dataset_lists_the_ways_to_get_it(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"dataset mnist not found .* pass --data-root DIR .* set \$EVALBENCH_DATA"):
        IdxDataset("mnist", data_root=str(tmp_path), download=False).load()


@needs_debian_fashion
def test_full_fashion_mnist_from_the_debian_package():
    pools = make_source("idx", {"name": "fashion-mnist"}).load()
    assert pools["train"].images.shape == (60000, 28, 28) and pools["test"].images.shape == (10000, 28, 28)
    assert np.bincount(pools["train"].labels).tolist() == [6000] * 10


@needs_debian_fashion
def test_bundled_subset_is_exactly_the_official_images():
    import io
    from importlib import resources

    official = IdxDataset("fashion-mnist", download=False).load()
    bundled = BundledArrays("fashion-mnist-mini").load()
    raw = resources.files("evalbench.data").joinpath("bundled", "fashion_mnist_mini.npz").read_bytes()
    with np.load(io.BytesIO(raw)) as z:
        for split, source in (("train", "train"), ("val", "train"), ("test", "test")):
            idx = z[f"{split}_source_index"]
            assert np.array_equal(bundled[split].images, official[source].images[idx])
            assert np.array_equal(bundled[split].labels, official[source].labels[idx])
        assert not set(z["train_source_index"]) & set(z["val_source_index"])


def test_bundled_subset_sizes_and_balance():
    pools = BundledArrays("fashion-mnist-mini").load()
    assert {k: len(v) for k, v in pools.items()} == {"train": 5000, "val": 1000, "test": 2000}
    assert np.bincount(pools["test"].labels).tolist() == [200] * 10


def test_digits_scaled_to_uint8():
    pool = SklearnDigits().load()["all"]
    assert len(pool) == 1797 and pool.images.dtype == np.uint8 and pool.images.max() == 255


def test_unknown_source_kind():
    with pytest.raises(UnknownNameError, match="unknown dataset source 'idxx'; did you mean 'idx'"):
        make_source("idxx", {})
