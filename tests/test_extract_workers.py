"""DataLoader workers: features and their order are bit-identical whatever the worker count and batch size."""
from __future__ import annotations

import numpy as np
import pytest

from evalbench.cache import FeatureCache
from evalbench.extract import PlainProgress, default_num_workers, extract_one

from _helpers import TinyEncoder

IDENTITY = {"source": "sklearn-digits", "pool": "all"}


@pytest.mark.parametrize("workers,batch_size", [(2, 64), (2, 7), (1, 100), (0, 13)])
def test_features_identical_whatever_workers_and_batch_size(tmp_path, digits_pool, monkeypatch, workers, batch_size):
    monkeypatch.setenv("EVALBENCH_SHARD_SIZE", "100")  # several shards, batches that do not divide them
    enc = TinyEncoder(size=16)  # 8 px digits resized to 16: the interpolation runs in the workers
    idx = np.random.default_rng(0).permutation(len(digits_pool))[:333]
    ref = extract_one(enc, digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "ref"), batch_size=64)
    got = extract_one(enc, digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "got"), batch_size=batch_size,
                      num_workers=workers)
    assert got.key == ref.key and got.extracted == 333
    assert np.asarray(got.features).tobytes() == np.asarray(ref.features).tobytes()
    assert np.array_equal(got.labels, digits_pool.labels[idx])


def test_default_workers_leave_small_machines_in_process(monkeypatch):
    import evalbench.extract as ex

    monkeypatch.setattr(ex.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    assert default_num_workers() == 0
    monkeypatch.setattr(ex.os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert default_num_workers() == 8


def test_plain_progress_prints_lines_for_logs(capsys, monkeypatch):
    import evalbench.extract as ex

    clock = iter([0.0, 10.0, 31.0, 40.0, 65.0, 70.0])
    monkeypatch.setattr(ex.time, "monotonic", lambda: next(clock))
    ticker = PlainProgress("extract digits/train", 400, 30.0)
    for _ in range(4):
        ticker.advance(100)
    ticker.finish()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "extract digits/train: 200/400 images, 6.5/s, elapsed 31 s, eta 31 s"
    assert lines[-1].startswith("extract digits/train: 400/400 images")
    assert len(lines) == 3
