"""K-shot sampling, few-shot and episodic protocols, and ridge, against plain references."""
import numpy as np
import pytest
from sklearn.linear_model import Ridge

from evalbench.errors import ProtocolInputError
from evalbench.protocols import RidgeProbe, get_protocol
from evalbench.protocols.contract import FeatureSplit, FeatureSplits
from evalbench.protocols.ridge import BIAS_CONSTANT
from evalbench.protocols.sampling import kshot_indices, sample_episodes


def _splits(n_train=300, n_test=200, classes=6, dim=16, seed=0, val=True):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, dim)) * 2

    def part(n):
        y = np.arange(n) % classes
        return FeatureSplit((means[y] + rng.normal(size=(n, dim))).astype(np.float32), y)

    return FeatureSplits(part(n_train), part(n_test), classes, val=part(60) if val else None)


def test_kshot_indices_per_class_deterministic():
    y = np.repeat(np.arange(5), 10)
    a = kshot_indices(y, 3, np.random.default_rng(7), np.arange(5))
    b = kshot_indices(y, 3, np.random.default_rng(7), np.arange(5))
    assert np.array_equal(a, b) and np.array_equal(np.bincount(y[a]), [3] * 5)


def test_too_few_shots_lists_classes():
    y = np.array([0] * 5 + [1] * 2 + [2] * 1 + [3] * 6)
    with pytest.raises(ProtocolInputError) as err:
        kshot_indices(y, 3, np.random.default_rng(0), np.arange(4))
    assert str(err.value) == ("3-shot sampling needs at least 3 train examples per class; "
                              "2 classes have fewer (class 1: 2, class 2: 1)")


def test_fewshot_linear_never_uses_val_and_reports_spread():
    s = _splits()
    poisoned = FeatureSplits(s.train, s.test, s.num_classes,
                             val=FeatureSplit(np.full_like(s.val.X, 1e6), s.val.y))
    a = get_protocol("fewshot-linear", {"shots": 4, "seeds": 3}).evaluate(s, seed=1)
    b = get_protocol("fewshot-linear", {"shots": 4, "seeds": 3}).evaluate(poisoned, seed=1)
    assert a.metrics == b.metrics
    per = [m["top1"] for m in a.details["per_seed"]]
    assert a.metrics["top1"] == pytest.approx(np.mean(per))
    assert a.metrics["top1_std"] == pytest.approx(np.std(per, ddof=1))
    assert a.metrics["top1_ci95"] == pytest.approx(1.96 * np.std(per, ddof=1) / np.sqrt(3))
    assert a.params["val_used"] is False and a.params["shots"] == 4
    assert "CV" in a.params["C_selection"] and len(a.params["C_per_seed"]) == 3


def test_fewshot_linear_one_shot_uses_documented_default():
    out = get_protocol("fewshot-linear", {"shots": 1, "seeds": 2}).evaluate(_splits())
    assert out.params["C_per_seed"] == [1.0, 1.0] and "K=1" in out.params["C_selection"]
    assert out.metrics["top1"] > 50


def test_fewshot_linear_too_few_examples():
    s = _splits(n_train=30, classes=6)  # 5 per class
    with pytest.raises(ProtocolInputError, match=r"10-shot sampling .* 6 classes have fewer \(class 0: 5"):
        get_protocol("fewshot-linear", {"shots": 10}).evaluate(s)


def test_fewshot_knn_caps_k():
    out = get_protocol("fewshot-knn", {"shots": 2, "seeds": 2, "k": 50}).evaluate(_splits())
    assert out.params["k_effective"] == 12 and out.metrics["top1"] > 50


def test_fewshot_knn_top5_fill():
    # k=1: one class gets the vote, so under "none" (default) top-5 is top-1; "class_index"
    # (v1) fills the other four slots by class index and counts hits without a vote
    rng = np.random.default_rng(0)
    means = rng.normal(size=(8, 16)) * 0.3  # overlapping classes: 1-NN is often wrong

    def part(n):
        y = np.arange(n) % 8
        return FeatureSplit((means[y] + rng.normal(size=(n, 16))).astype(np.float32), y)

    splits = FeatureSplits(part(160), part(400), 8)
    default = get_protocol("fewshot-knn", {"shots": 2, "seeds": 2, "k": 1}).evaluate(splits)
    filled = get_protocol("fewshot-knn", {"shots": 2, "seeds": 2, "k": 1, "top5_fill": "class_index"}).evaluate(splits)
    assert default.params["top5_fill"] == "none" and default.metrics["top5"] == default.metrics["top1"]
    assert filled.metrics["top1"] == default.metrics["top1"] and filled.metrics["top5"] > default.metrics["top5"] + 10


def test_episodes_depend_only_on_labels_and_seed():
    y = np.repeat(np.arange(12), 20)
    a = sample_episodes(y, 5, 1, 15, 50, seed=3)
    b = sample_episodes(y.copy(), 5, 1, 15, 50, seed=3)
    c = sample_episodes(y, 5, 1, 15, 50, seed=4)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    cls, sup, qry = a
    assert np.all(y[sup] == cls[:, :, None]) and np.all(y[qry] == cls[:, :, None])
    assert all(len(set(np.r_[sup[e].ravel(), qry[e].ravel()])) == 5 * 16 for e in range(50))


def test_episodic_protocols_same_episodes_for_two_models():
    s = _splits(n_train=120, n_test=240, classes=8)
    other = FeatureSplits(s.train, FeatureSplit(s.test.X * 3 + 1, s.test.y), 8)
    o1 = get_protocol("episodic-centroid", {"episodes": 40}).evaluate(s, seed=5)
    o2 = get_protocol("episodic-centroid", {"episodes": 40}).evaluate(other, seed=5)
    assert o1.params["seed"] == o2.params["seed"] == 5 and set(o1.metrics) == {"top1", "top1_ci95", "top1_std"}
    # centroid reference for the first episodes
    cls, sup, qry = sample_episodes(s.test.y, 5, 1, 15, 40, seed=5)
    mean = s.train.X.astype(np.float64).mean(0)
    Z = s.test.X - mean
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    accs = []
    for e in range(40):
        cent = Z[sup[e]].mean(1)
        q = Z[qry[e].ravel()]
        pred = np.argmin(((q[:, None] - cent[None]) ** 2).sum(-1), axis=1)
        accs.append(100 * np.mean(pred == np.repeat(np.arange(5), 15)))
    assert o1.metrics["top1"] == pytest.approx(np.mean(accs), abs=1e-6)
    assert o1.metrics["top1_ci95"] == pytest.approx(1.96 * np.std(accs, ddof=1) / np.sqrt(40), abs=1e-6)
    lr = get_protocol("episodic-logreg", {"episodes": 20, "shots": 2}).evaluate(s, seed=5)
    assert 0 <= lr.metrics["top1"] <= 100 and lr.params["C"] == 1.0


def test_episodic_too_few_lists_classes():
    s = _splits(n_train=60, n_test=6 * 10, classes=6)  # 10 test examples per class
    with pytest.raises(ProtocolInputError, match=r"needs at least 16 test examples per class; 6 classes have fewer"):
        get_protocol("episodic-centroid", {}).evaluate(s)


def test_ridge_matches_closed_form_reference():
    s = _splits()
    probe = RidgeProbe().fit(s.train.X, s.train.y)
    X = s.train.X.astype(np.float64)
    A = np.hstack([(X - X.mean(0)) / (X.std(0) + 1e-5), np.full((len(X), 1), BIAS_CONSTANT)])
    ref = Ridge(alpha=2.0 ** 10, fit_intercept=False).fit(A, 2 * np.eye(6)[s.train.y] - 1)
    assert np.allclose(probe.coef_, ref.coef_.T, atol=1e-8)
    wide = RidgeProbe().fit(s.train.X[:8, :], s.train.y[:8])  # dual form (n < d)
    A8 = np.hstack([(X[:8] - X[:8].mean(0)) / (X[:8].std(0) + 1e-5), np.full((8, 1), BIAS_CONSTANT)])
    ref8 = Ridge(alpha=2.0 ** 10, fit_intercept=False).fit(A8, 2 * np.eye(6)[s.train.y[:8]] - 1)
    assert np.allclose(wide.coef_, ref8.coef_.T, atol=1e-8)
    out = get_protocol("ridge", {}).evaluate(s)
    assert out.metrics["top1"] > 80 and out.params["l2"] == 1024.0


@pytest.mark.parametrize("ways,shots,dim", [(5, 1, 24), (5, 5, 24), (5, 5, 6), (2, 3, 24)],
                         ids=["5w1s", "5w5s", "5w5s-fewer-dims-than-support", "2w3s-binary"])
def test_batched_logreg_matches_per_episode_sklearn(ways, shots, dim):
    import torch
    from sklearn.linear_model import LogisticRegression

    from evalbench.protocols.batched_logreg import fit_predict_logreg
    from evalbench.protocols.knn import l2_normalize

    rng = np.random.default_rng(ways * 10 + shots)
    y = np.repeat(np.arange(12), 25)
    X = (rng.normal(size=(12, dim))[y] * 0.5 + rng.normal(size=(len(y), dim))).astype(np.float32)
    Z = l2_normalize(X)
    _, sup, qry = sample_episodes(y, ways, shots, 15, 40, seed=0)
    Zt = torch.from_numpy(Z.astype(np.float64))
    ys = np.repeat(np.arange(ways), shots)
    pred = fit_predict_logreg(Zt[torch.from_numpy(sup.reshape(40, -1))], torch.from_numpy(ys).expand(40, -1),
                              Zt[torch.from_numpy(qry.reshape(40, -1))], ways).numpy()
    ref = np.stack([LogisticRegression(C=1.0, max_iter=1000).fit(Z[sup[e].ravel()], ys).predict(Z[qry[e].ravel()])
                    for e in range(40)])
    assert np.mean(pred == ref) >= 0.99


def test_episodic_logreg_protocol_matches_sklearn_loop():
    from sklearn.linear_model import LogisticRegression

    s = _splits(n_train=120, n_test=240, classes=8)
    out = get_protocol("episodic-logreg", {"episodes": 30, "shots": 2}).evaluate(s, seed=2)
    _, sup, qry = sample_episodes(s.test.y, 5, 2, 15, 30, seed=2)
    Z = s.test.X / np.linalg.norm(s.test.X, axis=1, keepdims=True)
    ys, yq = np.repeat(np.arange(5), 2), np.repeat(np.arange(5), 15)
    accs = [100 * np.mean(LogisticRegression(C=1.0, max_iter=1000).fit(Z[sup[e].ravel()], ys)
                          .predict(Z[qry[e].ravel()]) == yq) for e in range(30)]
    # >= 99% identical predictions bound the per-episode mean difference by 1 point.
    assert abs(out.metrics["top1"] - np.mean(accs)) <= 1.0
    assert out.details["episode_top1_first_20"] == pytest.approx(accs[:20], abs=100 / 75 + 1e-9) and out.params["C"] == 1.0
