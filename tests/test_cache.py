"""The feature cache: keys cover what changes features; writes are atomic; damage reads as a miss; resume is exact."""
from __future__ import annotations

import json

import numpy as np
import pytest

import evalbench.extract as extract_mod
from evalbench.adapters.base import Preprocess
from evalbench.cache import FeatureCache, feature_key
from evalbench.extract import extract_one

from _helpers import TinyEncoder

IDENTITY = {"source": "sklearn-digits", "pool": "all"}


def key_of(enc, indices, identity=IDENTITY):
    return feature_key(enc.fingerprint(), enc.preprocess.to_dict(), identity, np.asarray(indices))[0]


def test_key_changes_with_weights_preprocessing_data_and_indices():
    a, b = TinyEncoder(seed=0), TinyEncoder(seed=1)
    idx = np.arange(10)
    base = key_of(a, idx)
    assert key_of(b, idx) != base  # other weights
    a2 = TinyEncoder(seed=0)
    a2.preprocess = Preprocess(8, 8, mean=(0.5, 0.5, 0.5), keep_aspect=False)
    assert key_of(a2, idx) != base  # other preprocessing
    assert key_of(a, np.arange(1, 11)) != base  # other samples
    assert key_of(a, idx, {**IDENTITY, "pool_sha256": "x"}) != base  # other data
    assert key_of(TinyEncoder(seed=0), idx) == base  # same everything -> same key


def test_second_extraction_is_a_hit_with_identical_features(tmp_path, digits_pool, tiny_encoder):
    cache = FeatureCache(tmp_path)
    idx = np.arange(0, 300)
    first = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache, batch_size=64)
    second = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache, batch_size=64)
    assert first.extracted == 300 and second.extracted == 0
    assert np.array_equal(np.asarray(first.features), np.asarray(second.features))
    assert np.array_equal(second.labels, digits_pool.labels[idx])
    manifest = json.loads((cache.entry_dir(first.key) / "manifest.json").read_text())
    assert manifest["shape"] == [300, 16] and manifest["key_material"]["count"] == 300


def test_features_do_not_depend_on_batch_size(tmp_path, digits_pool, tiny_encoder):
    idx = np.arange(200)
    a = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "a"), batch_size=7)
    b = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "b"), batch_size=200)
    np.testing.assert_allclose(np.asarray(a.features), np.asarray(b.features), rtol=1e-5, atol=1e-4)


def test_entry_without_manifest_is_a_miss(tmp_path, digits_pool, tiny_encoder):
    cache = FeatureCache(tmp_path)
    got = extract_one(tiny_encoder, digits_pool, np.arange(50), IDENTITY, cache)
    (cache.entry_dir(got.key) / "manifest.json").unlink()  # as if the process died before the last write
    assert cache.read(got.key, digits_pool.labels[:50]) is None
    again = extract_one(tiny_encoder, digits_pool, np.arange(50), IDENTITY, cache)
    assert again.extracted == 50


def test_truncated_features_are_detected_and_recomputed(tmp_path, digits_pool, tiny_encoder, caplog):
    cache = FeatureCache(tmp_path)
    got = extract_one(tiny_encoder, digits_pool, np.arange(50), IDENTITY, cache)
    good = np.asarray(got.features).copy()
    path = cache.entry_dir(got.key) / "features.npy"
    path.write_bytes(path.read_bytes()[:200])
    again = extract_one(tiny_encoder, digits_pool, np.arange(50), IDENTITY, cache)
    assert again.extracted == 50 and np.array_equal(np.asarray(again.features), good)
    assert "damaged" in caplog.text


def test_interrupted_extraction_resumes_and_matches(tmp_path, digits_pool, tiny_encoder, monkeypatch):
    monkeypatch.setattr(extract_mod, "SHARD_SIZE", 100)
    idx = np.arange(350)
    reference = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, FeatureCache(tmp_path / "ref"))

    cache = FeatureCache(tmp_path / "run")
    calls = {"n": 0}
    original = cache.write_shard

    def crash_on_third_shard(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(cache, "write_shard", crash_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache)
    assert len(cache.completed_shards(reference.key)) == 2
    assert cache.read(reference.key, digits_pool.labels[idx]) is None  # nothing half-written looks valid
    monkeypatch.setattr(cache, "write_shard", original)
    resumed = extract_one(tiny_encoder, digits_pool, idx, IDENTITY, cache)
    assert resumed.extracted == 150
    assert np.array_equal(np.asarray(resumed.features), np.asarray(reference.features))


def test_nan_features_are_caught_at_extraction(tmp_path, digits_pool, tiny_encoder):
    from evalbench.errors import EvalbenchError

    tiny_encoder.weight[0, 0] = float("nan")
    with pytest.raises(EvalbenchError, match="produced NaN or inf features"):
        extract_one(tiny_encoder, digits_pool, np.arange(20), IDENTITY, FeatureCache(tmp_path))
