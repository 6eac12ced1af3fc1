"""KNNProbe: DINO-style weighted k-NN on cosine similarity, one exact search serving every k."""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from .faiss_setup import faiss_available, import_faiss
from .metrics import accuracy, check_class_labels, check_n_features, mean_per_class, ranked_classes


#: Extra neighbours searched so that a tie at the k-th similarity is usually seen whole.
TIE_MARGIN = 16

#: Similarity-block budget (floats) of the torch backend: bounds memory at 128 MB per
#: block whatever the train size, and keeps the matmul large enough to run at full speed.
BLOCK_FLOATS = 2 ** 25

#: Train rows per similarity block of the torch backend: with query blocks of BLOCK_FLOATS / TRAIN_CHUNK
#: rows, memory is bounded whatever the train and query sizes (1.28M ImageNet train features included).
TRAIN_CHUNK = 2 ** 17

BACKENDS = ("auto", "faiss", "torch")

#: What fills the top 5 when a query's k neighbours vote for fewer than 5 classes.
#: "none" (default): nothing; a class without a vote is never a top-5 hit, so the score does
#: not depend on how classes are numbered. "class_index": the empty slots take the zero-vote
#: classes in increasing class index (the evalbench knn v1 rule). Neither reference has a
#: reproducible rule: DINO eval_knn.py ranks with `probs.sort(1, True)` and DINOv2
#: dinov2/eval/knn.py with torchmetrics MulticlassAccuracy(top_k=5) (torch.topk), and both
#: order the tied zero-vote classes as the sort kernel happens to; "class_index" is DINO's
#: fill made deterministic. The rules agree whenever 5 or more classes get votes.
TOP5_FILL = ("none", "class_index")
TOP5_FILL_HELP = "top-5 slots left empty when fewer than 5 classes get votes: 'none' or 'class_index' (v1)"
#: The rule in words, as recorded in results.
TOP5_RULES = {
    "none": "a hit when the true class received a vote and ranks among the 5 largest votes (ties -> smaller "
            "class); classes without a vote never fill the top 5",
    "class_index": "a hit when the true class ranks among the 5 largest votes; when fewer than 5 classes got "
                   "votes, the empty slots take zero-vote classes in increasing class index (DINO's fill, "
                   "deterministic)",
}


def resolve_backend(backend: str) -> str:
    """'auto' -> 'faiss' (exact IndexFlatIP, at the fp32 matrix-multiply limit once its
    OpenBLAS kernel matches the CPU, see faiss_setup), or 'torch' when faiss does not import.
    Both are exact searches with identical results (benchmarks/bench_knn.py)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "faiss" if faiss_available() else "torch"
    return backend


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32 (zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, np.float32(1e-12))


def canonical_order(sims: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by similarity (descending), equal similarities by train index (ascending)."""
    order = _lexsort_rows(sims, idx)
    return np.take_along_axis(sims, order, 1), np.take_along_axis(idx, order, 1)


def _lexsort_rows(sims: np.ndarray, idx: np.ndarray) -> np.ndarray:
    # Stable sort by index first, then a stable sort by -similarity keeps index order on ties.
    by_idx = np.argsort(idx, axis=1, kind="stable")
    s = np.take_along_axis(sims, by_idx, 1)
    by_sim = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(by_idx, by_sim, 1)


class KNNProbe(ClassifierMixin, BaseEstimator):
    """Weighted k-NN classifier (DINO eval_knn): votes exp(sim / T) over the k most similar.

    Similarity is the inner product of L2-normalised float32 features, searched exactly
    (torch matmul + topk, or faiss IndexFlatIP). Deterministic ties, whatever the backend:
    neighbours of equal similarity are taken in increasing train index (the search returns
    a few extra candidates, re-sorted canonically; rows whose boundary tie group runs past
    them are re-ranked against the whole train set), votes are accumulated neighbour by
    neighbour in that order, and equal class votes go to the smaller class index.

    Args:
        k: neighbours used by predict / predict_proba (capped at the train size).
        temperature: T in exp(sim / T).
        ks: every k scored by ``scores_for_ks`` from one search at max(ks).
        normalize: L2-normalise features (cosine similarity); False = raw inner product.
        chunk_size: queries per search, to bound memory.
        backend: "auto" (= "faiss" when it imports, else "torch"), "faiss" (IndexFlatIP)
            or "torch" (blocked matmul + topk).
        top5_fill: top-5 rule of ``scores_for_ks`` for queries whose neighbours vote for
            fewer than 5 classes (see TOP5_FILL): "none" or "class_index".
    """

    def __init__(self, k: int = 20, temperature: float = 0.07, ks: Iterable[int] = (10, 20, 100, 200),
                 normalize: bool = True, chunk_size: int = 4096, backend: str = "auto", top5_fill: str = "none"):
        self.k = k
        self.temperature = temperature
        self.ks = ks
        self.normalize = normalize
        self.chunk_size = chunk_size
        self.backend = backend
        self.top5_fill = top5_fill

    def fit(self, X, y):
        """Index the training features.

        Returns:
            self

        Raises:
            ValueError: bad shapes or settings.
        """
        if not (isinstance(self.k, (int, np.integer)) and self.k > 0):
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        if self.top5_fill not in TOP5_FILL:
            raise ValueError(f"top5_fill must be one of {TOP5_FILL}, got {self.top5_fill!r}")
        self.backend_ = resolve_backend(self.backend)
        X, y = check_X_y(X, y, dtype=np.float32)
        check_class_labels(y)
        self.classes_, self._y_idx = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        Xn = l2_normalize(X) if self.normalize else np.ascontiguousarray(X, dtype=np.float32)
        # self._X: the train features for exact re-ranking of rows with ties at the k-th neighbour
        if self.backend_ == "faiss":
            faiss = import_faiss()
            self.index_ = faiss.IndexFlatIP(X.shape[1])
            self.index_.add(Xn)
            # a view of the index's own copy (alive as long as index_), not a second N x D array
            self._X = faiss.rev_swig_ptr(self.index_.get_xb(), Xn.size).reshape(Xn.shape)
            self._X.flags.writeable = False
        else:
            # torch wants writable memory; a read-only (memory-mapped) cache array is copied.
            self.index_ = torch.from_numpy(Xn if Xn.flags.writeable else Xn.copy())
            self._X = self.index_.numpy()
        self.n_train_ = X.shape[0]
        return self

    def kneighbors(self, X, k: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
        """Similarities and train indices of the k nearest neighbours, in canonical order.

        Args:
            X: (N, D) queries.
            k: neighbours (default self.k), capped at the train size.

        Returns:
            (sims float32 (N, k), idx int64 (N, k)).
        """
        check_is_fitted(self, "index_")
        X = check_array(X, dtype=np.float32)
        check_n_features(self, X)
        k = min(self.k if k is None else int(k), self.n_train_)
        # Search a few extra neighbours: the search may return any of several train points with
        # the same similarity as the k-th, so the tie group at the boundary must be seen
        # whole to take the smallest indices; rows where it runs past the margin are
        # re-ranked exactly against the full train set.
        kk = min(self.n_train_, k + TIE_MARGIN)
        sims, idx = [], []
        for start in range(0, X.shape[0], self.chunk_size):
            q = X[start:start + self.chunk_size]
            q = l2_normalize(q) if self.normalize else np.ascontiguousarray(q)
            s, i = canonical_order(*self._search(q, kk))
            if kk < self.n_train_:
                for r in np.flatnonzero(s[:, kk - 1] >= s[:, k - 1]):
                    full = self._X @ q[r]
                    order = np.lexsort((np.arange(self.n_train_), -full))[:kk]
                    s[r], i[r] = full[order], order
            sims.append(s[:, :k])
            idx.append(i[:, :k])
        if not sims:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(sims), np.concatenate(idx)

    def _search(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        """The kk largest similarities (any order, any choice among ties) and their indices."""
        if self.backend_ == "faiss":
            return self.index_.search(q, kk)  # faiss blocks queries and train rows itself
        # query blocks x train chunks: the similarity block stays under BLOCK_FLOATS whatever the train size
        chunk = min(self.n_train_, TRAIN_CHUNK)
        block = max(1, min(len(q), BLOCK_FLOATS // chunk))
        qt = torch.from_numpy(q if q.flags.writeable else q.copy())
        sims = np.empty((len(q), kk), np.float32)
        idx = np.empty((len(q), kk), np.int64)
        for start in range(0, len(q), block):
            s, i = self._search_block(qt[start:start + block], kk, chunk)
            sims[start:start + block], idx[start:start + block] = s.numpy(), i.numpy()
        return sims, idx

    def _search_block(self, qb: torch.Tensor, kk: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top kk of one query block, merged over train chunks (the kk largest of the union of each chunk's kk largest)."""
        best_s = best_i = None
        for t0 in range(0, self.n_train_, chunk):
            part = self.index_[t0:t0 + chunk]
            s, i = torch.topk(torch.mm(qb, part.T), min(kk, part.shape[0]), dim=1)
            i += t0
            if best_s is not None:
                s, i = torch.cat([best_s, s], 1), torch.cat([best_i, i], 1)
                s, pos = torch.topk(s, min(kk, s.shape[1]), dim=1)
                i = torch.gather(i, 1, pos)
            best_s, best_i = s, i
        return best_s, best_i

    def _votes(self, sims: np.ndarray, idx: np.ndarray, ks: list[int]):
        """Yield (k, votes (n, n_classes) float64) for each k in increasing order."""
        n = sims.shape[0]
        rows = np.arange(n)
        weights = np.exp(sims.astype(np.float64) / self.temperature)
        labels = self._y_idx[idx]
        votes = np.zeros((n, len(self.classes_)), dtype=np.float64)
        done = 0
        for k in ks:
            for j in range(done, k):  # neighbour by neighbour: a fixed summation order
                votes[rows, labels[:, j]] += weights[:, j]
            done = k
            yield k, votes

    def predict_proba(self, X) -> np.ndarray:
        """Vote shares per class (rows sum to 1)."""
        sims, idx = self.kneighbors(X)
        (_, votes), = self._votes(sims, idx, [sims.shape[1]])
        return votes / votes.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Class with the largest vote; ties -> smaller class."""
        sims, idx = self.kneighbors(X)
        (_, votes), = self._votes(sims, idx, [sims.shape[1]])
        return self.classes_[np.argmax(votes, axis=1)]

    def _ranked_labels(self, votes: np.ndarray, order: np.ndarray) -> np.ndarray:
        """The top-5 labels stored with the predictions; under top5_fill 'none' a zero-vote slot is -1,
        so a top-5 rescored from them equals the reported one."""
        labels = self.classes_[order].astype(np.int64)
        if self.top5_fill == "none":
            labels[np.take_along_axis(votes, order, axis=1) <= 0] = -1
        return labels

    def _top5_hits(self, votes: np.ndarray, order: np.ndarray, true_idx: np.ndarray) -> np.ndarray:
        """Whether each query's true class (index into classes_) is a top-5 hit under top5_fill."""
        hit = (order == true_idx[:, None]).any(axis=1)
        if self.top5_fill == "none":  # a zero-vote class only sits in the top 5 as filler
            hit &= votes[np.arange(len(true_idx)), true_idx] > 0
        return hit

    def scores_for_ks(self, X, y, ks: Optional[Iterable[int]] = None,
                      predictions: Optional[dict[str, np.ndarray]] = None,
                      class_subset: Optional[np.ndarray] = None) -> dict[int, dict[str, float]]:
        """top1, top5 and mean_per_class (percent) for several k from one search at max(ks).

        Args:
            X, y: queries and their labels.
            ks: values of k (default self.ks plus self.k); each is capped at the train size.
            predictions: a dict to fill with the per-item predictions of every k: `y_pred@k{k}` (N,)
                and the ranked labels `top5@k{k}` (N, <=5).
            class_subset: labels the prediction is restricted to (ImageNet-R / -A); the votes of the
                other classes count as below zero, so they are never predicted nor fill the top 5.

        Returns:
            dict k -> {"top1", "top5", "mean_per_class"}; top5 counts a hit when the true
            class is among the 5 highest votes (ties -> smaller class first) and, with
            top5_fill="none", received a vote.
        """
        check_is_fitted(self, "index_")
        X = check_array(X, dtype=np.float32)
        y = np.asarray(y)
        ks = sorted({int(k) for k in (self.ks if ks is None else ks)} | ({int(self.k)} if ks is None else set()))
        kmax = min(max(ks), self.n_train_)
        capped = sorted({min(k, kmax) for k in ks})
        # Rank of the true label among classes_; labels unseen in train can never be hit.
        pos = np.searchsorted(self.classes_, y)
        known = (pos < len(self.classes_)) & (self.classes_[np.minimum(pos, len(self.classes_) - 1)] == y)
        outside = None if class_subset is None else ~np.isin(self.classes_, np.asarray(class_subset))
        preds = {k: [] for k in capped}
        ranked5 = {k: [] for k in capped}
        hits5 = {k: [] for k in capped}
        for start in range(0, len(X), self.chunk_size):
            sl = slice(start, start + self.chunk_size)
            sims, idx = self.kneighbors(X[sl], kmax)
            true_idx = np.minimum(pos[sl], len(self.classes_) - 1)
            for k, votes in self._votes(sims, idx, capped):
                if outside is not None:  # a copy: _votes keeps accumulating into its array
                    votes = np.where(outside[None, :], -1.0, votes)
                order = ranked_classes(votes, 5)
                preds[k].append(self.classes_[order[:, 0]])
                ranked5[k].append(self._ranked_labels(votes, order))
                hits5[k].append(known[sl] & self._top5_hits(votes, order, true_idx))
        out = {}
        for k in ks:
            kc = min(k, kmax)
            pred = np.concatenate(preds[kc])
            out[k] = {
                "top1": accuracy(pred, y),
                "top5": float(100.0 * np.mean(np.concatenate(hits5[kc]))),
                "mean_per_class": mean_per_class(pred, y),
            }
            if predictions is not None:
                predictions[f"y_pred@k{k}"] = pred.astype(np.int64)
                predictions[f"top5@k{k}"] = np.concatenate(ranked5[kc]).astype(np.int64)
        return out
