"""Split selection: exact sizes, stratified, disjoint, and the same every time."""
from __future__ import annotations

import numpy as np
import pytest

from evalbench.data.splits import resolve_splits, stratified_partition, stratified_sample
from evalbench.errors import ConfigError


def test_digits_partition_sizes_are_exact_disjoint_and_stratified(digits_pool):
    parts = stratified_partition(digits_pool.labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 1078, "val": 359, "test": 360}
    allidx = np.concatenate(list(parts.values()))
    assert len(np.unique(allidx)) == len(digits_pool) == 1797
    full = np.bincount(digits_pool.labels) / len(digits_pool)
    for idx in parts.values():
        frac = np.bincount(digits_pool.labels[idx], minlength=10) / len(idx)
        assert np.abs(frac - full).max() < 0.01


def test_partition_is_reproducible_and_seed_dependent(digits_pool):
    a = stratified_partition(digits_pool.labels, {"train": 0.5, "test": 0.5}, seed=3)
    b = stratified_partition(digits_pool.labels, {"train": 0.5, "test": 0.5}, seed=3)
    c = stratified_partition(digits_pool.labels, {"train": 0.5, "test": 0.5}, seed=4)
    assert np.array_equal(a["train"], b["train"])
    assert not np.array_equal(a["train"], c["train"])


def test_stratified_sample_counts_follow_class_shares():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    idx = stratified_sample(labels, 10, np.random.default_rng(0))
    assert np.bincount(labels[idx]).tolist() == [5, 3, 2]
    with pytest.raises(ConfigError, match="cannot draw 101 samples from 100"):
        stratified_sample(labels, 101, np.random.default_rng(0))


def test_resolve_splits_rejects_unknown_pool(digits_pool):
    with pytest.raises(ConfigError, match="pool 'train' not provided by the dataset"):
        resolve_splits({"train": {"pool": "train"}, "test": {"pool": "all"}}, {"all": digits_pool}, "x.yaml")
