"""Shared fixtures: every test gets its own cache, results and home directories."""
from __future__ import annotations

import numpy as np
import pytest
from _helpers import TinyEncoder


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Keep tests away from the user's cache and from each other."""
    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EVALBENCH_DATA", raising=False)
    monkeypatch.delenv("EVALBENCH_TASKS", raising=False)
    from evalbench.tasks import _registry

    _registry.cache_clear()
    yield
    _registry.cache_clear()


@pytest.fixture
def dirs(tmp_path):
    """A results directory and a feature cache of the test's own."""
    return {"out": tmp_path / "results", "cache": tmp_path / "cache"}


@pytest.fixture
def tiny_encoder():
    return TinyEncoder()


@pytest.fixture
def digits_pool():
    from evalbench.data.bundled import SklearnDigits

    return SklearnDigits().load()["all"]


def make_rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)
