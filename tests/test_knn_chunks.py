"""KNNProbe's torch backend searches train chunks as well as query blocks: same neighbours as one big block."""
from __future__ import annotations

import numpy as np

import evalbench.protocols.knn as knn_mod
from evalbench.protocols.knn import KNNProbe


def test_train_chunks_give_the_neighbours_of_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 16)).astype(np.float32)
    X[500:520] = X[0]  # exact ties that straddle chunk boundaries
    y = rng.integers(0, 7, 1000)
    q = np.concatenate([X[:3], rng.standard_normal((60, 16)).astype(np.float32)])
    whole = KNNProbe(k=25, backend="torch").fit(X, y)
    ref = whole.kneighbors(q)
    monkeypatch.setattr(knn_mod, "TRAIN_CHUNK", 97)
    monkeypatch.setattr(knn_mod, "BLOCK_FLOATS", 97 * 5)  # query blocks of 5 rows
    chunked = KNNProbe(k=25, backend="torch").fit(X, y)
    got = chunked.kneighbors(q)
    assert np.array_equal(got[1], ref[1]) and np.allclose(got[0], ref[0], atol=1e-6)
    assert np.array_equal(chunked.predict(q), whole.predict(q))
