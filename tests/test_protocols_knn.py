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
        voted = votes[np.arange(len(yte)), yte] > 0  # top5_fill="none": zero-vote classes never fill
        assert scores[k]["top5"] == pytest.approx(100 * np.mean((top5 == yte[:, None]).any(1) & voted))


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


def _top5_example():
    """7 classes in 2-d. The three class-3 points are the only neighbours (k=3) of every
    query, so each query's votes go to class 3 alone and four top-5 slots are empty."""
    deg = np.deg2rad
    angles = [0.0, 0.5, -0.5] + [90.0 + 10 * i for i in range(6)]  # class 3 near 0 deg, the rest far away
    Xtr = np.array([[np.cos(deg(a)), np.sin(deg(a))] for a in angles], np.float32)
    ytr = np.array([3, 3, 3, 0, 1, 2, 4, 5, 6])
    Xte = np.array([[1.0, 0.001], [1.0, 0.0], [1.0, -0.001]], np.float32)
    yte = np.array([0, 3, 6])  # a zero-vote class with a small index, the voted class, a large one
    return Xtr, ytr, Xte, yte


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_top5_fill_rule_on_a_hand_made_example(backend):
    Xtr, ytr, Xte, yte = _top5_example()
    none = KNNProbe(k=3, ks=(3,), backend=backend).fit(Xtr, ytr).scores_for_ks(Xte, yte)[3]
    by_index = KNNProbe(k=3, ks=(3,), backend=backend, top5_fill="class_index").fit(Xtr, ytr).scores_for_ks(Xte, yte)[3]
    assert none["top1"] == by_index["top1"] == pytest.approx(100 / 3)
    # "none" (default): only class 3 has a vote, so only the query of class 3 is a top-5 hit
    assert none["top5"] == pytest.approx(100 / 3)
    # "class_index" (knn v1, DINO's fill made deterministic): slots 2-5 take classes 0, 1, 2, 4,
    # so the class-0 query counts as a hit with no vote at all; the class-6 query does not
    assert by_index["top5"] == pytest.approx(200 / 3)
    # renumbering the classes (0 <-> 5) moves the filled score, never the default one
    swap = np.array([5, 1, 2, 3, 4, 0, 6])
    none_sw = KNNProbe(k=3, ks=(3,), backend=backend).fit(Xtr, swap[ytr]).scores_for_ks(Xte, swap[yte])[3]
    idx_sw = KNNProbe(k=3, ks=(3,), backend=backend, top5_fill="class_index").fit(Xtr, swap[ytr]).scores_for_ks(
        Xte, swap[yte])[3]
    assert none_sw["top5"] == none["top5"] and idx_sw["top5"] == pytest.approx(100 / 3)


def test_knn_protocol_records_the_top5_rule():
    Xtr, ytr, Xte, yte = _top5_example()
    splits = FeatureSplits(FeatureSplit(Xtr, ytr), FeatureSplit(Xte, yte), 7)
    default = get_protocol("knn", {"k": 3, "ks": [3]})
    assert default.version == "2" and default.params["top5_fill"] == "none"
    out = default.evaluate(splits)
    assert out.metrics["top5"] == pytest.approx(100 / 3) and "never fill the top 5" in out.params["top5"]
    old = get_protocol("knn", {"k": 3, "ks": [3], "top5_fill": "class_index"}).evaluate(splits)
    assert old.metrics["top5"] == pytest.approx(200 / 3) and "class index" in old.params["top5"]
    with pytest.raises(Exception, match="top5_fill"):
        get_protocol("knn", {"top5_fill": "dino"})
