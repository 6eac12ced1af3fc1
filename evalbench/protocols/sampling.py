"""Seeded sampling of K-shot training subsets and N-way K-shot episodes from labels alone."""
from __future__ import annotations

import numpy as np

from ..errors import ProtocolInputError
from .metrics import check_min_per_class


def kshot_indices(y: np.ndarray, shots: int, rng: np.random.Generator, classes: np.ndarray) -> np.ndarray:
    """Pick `shots` examples of every class in `classes` without replacement.

    Classes are visited in increasing order and each draws ``rng.choice(its indices,
    shots, replace=False)``, so the subset depends only on (y, shots, classes, rng state).

    Returns:
        Sorted int64 indices into y.

    Raises:
        ProtocolInputError: some class has fewer than `shots` examples (all listed).
    """
    y = np.asarray(y, dtype=np.int64)
    check_min_per_class(y, shots, classes, "train", f"{shots}-shot sampling")
    picked = [rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in np.sort(classes)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold id per example: each class's examples, shuffled by rng, dealt round-robin to folds."""
    fold = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = np.arange(len(members)) % folds
    return fold


def sample_episodes(
    y: np.ndarray, ways: int, shots: int, queries: int, episodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw N-way K-shot episodes from labels y with numpy.random.default_rng(seed).

    Per episode: ``ways`` distinct classes (rng.choice over the sorted class list), then for
    each of them ``shots + queries`` distinct examples (rng.choice); the first ``shots`` are
    the support set. The draw depends only on (y, ways, shots, queries, episodes, seed), so
    two encoders evaluated on the same split see exactly the same episodes.

    Returns:
        classes (E, ways), support indices (E, ways, shots), query indices (E, ways, queries).

    Raises:
        ProtocolInputError: fewer than `ways` classes, or a class with fewer than
            shots + queries examples (all listed).
    """
    y = np.asarray(y, dtype=np.int64)
    classes = np.unique(y)
    if len(classes) < ways:
        raise ProtocolInputError(f"{ways}-way episodes need at least {ways} classes, the split has {len(classes)}")
    need = shots + queries
    check_min_per_class(y, need, classes, "test", f"{ways}-way {shots}-shot episodes with {queries} queries")
    members = [np.flatnonzero(y == c) for c in classes]
    rng = np.random.default_rng(seed)
    cls = np.empty((episodes, ways), dtype=np.int64)
    sup = np.empty((episodes, ways, shots), dtype=np.int64)
    qry = np.empty((episodes, ways, queries), dtype=np.int64)
    for e in range(episodes):
        chosen = rng.choice(len(classes), ways, replace=False)
        cls[e] = classes[chosen]
        for w, c in enumerate(chosen):
            pick = rng.choice(members[c], need, replace=False)
            sup[e, w], qry[e, w] = pick[:shots], pick[shots:]
    return cls, sup, qry
