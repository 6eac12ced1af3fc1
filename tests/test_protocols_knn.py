"""KNNProbe against a brute-force numpy reference, including its tie rules, and the knn protocol."""
import numpy as np
import pytest

from evalbench.protocols import KNNProbe, get_protocol
from evalbench.protocols.contract import FeatureSplit, FeatureSplits


def _tied_data(rng, n, classes):
    # Unit vectors with entries +-0.25 in 16 dims: norms, similarities and exp weights are
    # computed exactly alike by faiss and numpy, and equal similarities are everywhere.
    X = (rng.integers(0, 2, size=(n, 16)) * 2 - 1).astype(np.float32) * 0.25
    return X, rng.integers(0, classes, n)


def _reference(Xtr, ytr, Xte, k, T, n_classes):
    """Documented rules, written plainly: sort by (-sim, train index), vote exp(sim/T)
    neighbour by neighbour, ties between classes -> smaller class."""
    S = Xte @ Xtr.T
    preds, votes_all = [], []
    for s in S:
        order = sorted(range(len(s)), key=lambda j: (-s[j], j))[:k]
        votes = np.zeros(n_classes)
        for j in order:
            votes[ytr[j]] += np.exp(np.float64(s[j]) / T)
        preds.append(int(np.argmax(votes)))
        votes_all.append(votes)
    return np.array(preds), np.array(votes_all)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("k", [1, 5, 20, 200])
def test_identical_to_brute_force_with_heavy_ties(k, backend):
    rng = np.random.default_rng(k)
    Xtr, ytr = _tied_data(rng, 1500, 7)
    Xte, _ = _tied_data(rng, 300, 7)
    probe = KNNProbe(k=k, chunk_size=128, backend=backend).fit(Xtr, ytr)
    ref_pred, ref_votes = _reference(Xtr, ytr, Xte, k, 0.07, 7)
    assert np.array_equal(probe.predict(Xte), ref_pred)
    assert np.allclose(probe.predict_proba(Xte), ref_votes / ref_votes.sum(1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_one_search_serves_every_k(backend):
    rng = np.random.default_rng(0)
    Xtr, ytr = _tied_data(rng, 800, 9)
    Xte, yte = _tied_data(rng, 150, 9)
    probe = KNNProbe(k=20, ks=(10, 20, 100, 200), backend=backend).fit(Xtr, ytr)
    scores = probe.scores_for_ks(Xte, yte)
    for k in (10, 20, 100, 200):
        pred, votes = _reference(Xtr, ytr, Xte, k, 0.07, 9)
        assert scores[k]["top1"] == pytest.approx(100 * np.mean(pred == yte))
        top5 = np.argsort(-votes, axis=1, kind="stable")[:, :5]
        assert scores[k]["top5"] == pytest.approx(100 * np.mean((top5 == yte[:, None]).any(1)))


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_general_float_data_matches_reference(backend):
    rng = np.random.default_rng(1)
    Xtr, Xte = rng.normal(size=(2000, 32)).astype(np.float32), rng.normal(size=(50, 32)).astype(np.float32)
    ytr = rng.integers(0, 4, 2000)
    probe = KNNProbe(k=20, backend=backend).fit(Xtr, ytr)
    n = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    ref_pred, _ = _reference(n(Xtr), ytr, n(Xte), 20, 0.07, 4)
    assert np.mean(probe.predict(Xte) == ref_pred) >= 0.98  # only float rounding can differ


def test_fewer_train_than_k_and_tiny_test_set():
    rng = np.random.default_rng(2)
    Xtr, ytr = rng.normal(size=(7, 5)).astype(np.float32), np.array([0, 1, 2, 0, 1, 2, 0])
    Xte = rng.normal(size=(3, 5)).astype(np.float32)
    probe = KNNProbe(k=20).fit(Xtr, ytr)
    sims, idx = probe.kneighbors(Xte)
    assert idx.shape == (3, 7) and sorted(idx[0]) == list(range(7))
    splits = FeatureSplits(FeatureSplit(Xtr, ytr), FeatureSplit(Xte, np.array([0, 1, 2])), 3)
    out = get_protocol("knn", {}).evaluate(splits)
    assert set(out.metrics) == {"top1", "mean_per_class", "top1_k10", "top1_k20", "top1_k100", "top1_k200"}
    assert out.params["ks_effective"] == {10: 7, 20: 7, 100: 7, 200: 7} and out.params["fit_on"] == "train+val"


def test_knn_protocol_fits_on_train_plus_val():
    rng = np.random.default_rng(3)
    Xtr, ytr = _tied_data(rng, 400, 8)
    Xv, yv = _tied_data(rng, 100, 8)
    Xte, yte = _tied_data(rng, 120, 8)
    splits = FeatureSplits(FeatureSplit(Xtr, ytr), FeatureSplit(Xte, yte), 8, val=FeatureSplit(Xv, yv))
    out = get_protocol("knn", {"k": 10}).evaluate(splits)
    pred, _ = _reference(np.concatenate([Xtr, Xv]), np.concatenate([ytr, yv]), Xte, 10, 0.07, 8)
    assert out.metrics["top1"] == pytest.approx(100 * np.mean(pred == yte))
    assert "top5" in out.metrics and out.metrics["top1"] == out.metrics["top1_k10"]


def test_backends_agree_on_blocks_and_read_only_input(monkeypatch):
    import evalbench.protocols.knn as knn

    monkeypatch.setattr(knn, "BLOCK_FLOATS", 3 * 1000)  # 3-query blocks: exercise the block loop
    rng = np.random.default_rng(4)
    Xtr, ytr = _tied_data(rng, 1000, 5)
    Xte, _ = _tied_data(rng, 40, 5)
    Xtr.flags.writeable = False
    Xte.flags.writeable = False
    t = KNNProbe(k=7, backend="torch").fit(Xtr, ytr)
    f = KNNProbe(k=7, backend="faiss").fit(Xtr, ytr)
    assert t.backend_ == "torch" and KNNProbe().fit(Xtr, ytr).backend_ == "faiss"  # auto
    monkeypatch.setattr(knn, "faiss_available", lambda: False)
    assert KNNProbe().fit(Xtr, ytr).backend_ == "torch"  # auto without faiss
    st, it = t.kneighbors(Xte)
    sf, if_ = f.kneighbors(Xte)
    assert np.array_equal(it, if_) and np.array_equal(st, sf)
    with pytest.raises(ValueError, match="backend must be one of"):
        KNNProbe(backend="annoy").fit(Xtr, ytr)


def test_faiss_openblas_kernel_follows_cpu_flags():
    from evalbench.protocols.faiss_setup import cpu_flags, openblas_coretype

    avx512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "sse2"}
    assert openblas_coretype(avx512) == "SkylakeX"
    assert openblas_coretype({"avx2", "fma", "sse2"}) == "Haswell"
    assert openblas_coretype({"sse2", "avx"}) is None  # old CPUs: OpenBLAS's own detection
    assert isinstance(cpu_flags(), set)
