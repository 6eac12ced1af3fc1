"""LinearProbe against scikit-learn's LogisticRegression, and the linear protocol's record."""
import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification
from sklearn.linear_model import LogisticRegression

from evalbench.protocols import LinearProbe, get_protocol
from evalbench.protocols.contract import FeatureSplit, FeatureSplits
from evalbench.protocols.lbfgs import softmax_objective
from evalbench.protocols.linear import CLIP_GRID


def _digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y, 1200


def _make_cls():
    X, y = make_classification(3000, 40, n_informative=20, n_classes=5, random_state=0)
    return X.astype(np.float32), y, 2000


def _hundred():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(100, 32)) * 0.6
    y = np.arange(6000) % 100
    return (means[y] + rng.normal(size=(6000, 32))).astype(np.float32), y, 4000


@pytest.mark.parametrize("make", [_digits, _make_cls, _hundred], ids=["digits", "make_classification", "100-class"])
@pytest.mark.parametrize("C", [0.1, 1.0])
def test_matches_sklearn_at_same_C(make, C):
    X, y, n = make()
    ours = LinearProbe(C=C).fit(X[:n], y[:n])
    ref = LogisticRegression(C=C, solver="lbfgs", max_iter=1000).fit(X[:n], y[:n])
    a, b = 100 * ours.score(X[n:], y[n:]), 100 * ref.score(X[n:], y[n:])
    assert abs(a - b) <= 0.3, (a, b)
    assert np.mean(ours.predict(X[n:]) == ref.predict(X[n:])) >= 0.99


def test_objective_is_sklearns_and_at_least_as_low():
    import torch

    X, y, n = _digits()
    X, y, C = X[:n].astype(np.float64), y[:n], 1.0
    ours = LinearProbe(C=C, dtype="float64").fit(X, y)
    ref = LogisticRegression(C=C, max_iter=1000, tol=1e-8).fit(X, y)

    def sk_objective(coef, b):  # C * sum(logloss) + 0.5 ||W||^2, computed independently
        z = X @ coef.T + b
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -C * logp[np.arange(len(y)), y].sum() + 0.5 * (coef ** 2).sum()

    f_ours, f_ref = sk_objective(ours.coef_, ours.intercept_), sk_objective(ref.coef_, ref.intercept_)
    assert f_ours <= f_ref * (1 + 1e-6)
    theta = torch.tensor(np.vstack([ours.coef_.T, ours.intercept_]))
    loss, _ = softmax_objective(torch.tensor(X), torch.tensor(y), theta, 1 / (C * len(y)))
    assert float(loss) * C * len(y) == pytest.approx(f_ours, rel=1e-9)


def test_search_records_every_C_and_refits_on_train_plus_val():
    X, y, _ = _digits()
    p = LinearProbe().fit(X[:1000], y[:1000], X[1000:1300], y[1000:1300])
    assert p.C_ in p.val_scores_
    assert p.val_scores_[p.C_] == max(p.val_scores_.values())
    coarse = [e["C"] for e in p.search_log_ if e["stage"] == "coarse"]
    assert coarse == sorted(coarse) and set(coarse) <= set(CLIP_GRID)
    assert 1 <= sum(e["stage"] == "bisection" for e in p.search_log_) <= 8
    # refit on train+val: same as a fixed-C fit on the concatenation
    fixed = LinearProbe(C=p.C_).fit(np.concatenate([X[:1000], X[1000:1300]]), np.concatenate([y[:1000], y[1000:1300]]))
    assert np.mean(fixed.predict(X[1300:]) == p.predict(X[1300:])) >= 0.99
    assert 100 * p.score(X[1300:], y[1300:]) > 88


def test_warm_started_search_matches_cold_fits():
    X, y, _ = _make_cls()
    p = LinearProbe(bisection_steps=3).fit(X[:1500], y[:1500], X[1500:2000], y[1500:2000])
    for C, acc in p.val_scores_.items():
        cold = LinearProbe(C=C).fit(X[:1500], y[:1500])
        assert abs(100 * cold.score(X[1500:2000], y[1500:2000]) - acc) <= 0.4, C


def test_holdout_used_when_no_val_and_labels_can_be_strings():
    X, y, n = _make_cls()
    names = np.array(["ant", "bee", "cat", "dog", "eel"])[y]
    p = LinearProbe(bisection_steps=2, random_state=3).fit(X[:n], names[:n])
    assert list(p.classes_) == sorted(set(names))
    assert set(p.predict(X[n:n + 20])) <= set(names)
    proba = p.predict_proba(X[n:])
    assert np.allclose(proba.sum(1), 1) and proba.shape == (len(X) - n, 5)
    assert p.get_params()["C"] is None and p.get_params()["tol"] == 1e-6


def test_linear_protocol_outcome_records_everything():
    X, y, _ = _digits()
    splits = FeatureSplits(FeatureSplit(X[:1000], y[:1000]), FeatureSplit(X[1300:], y[1300:]), 10)
    out = get_protocol("linear", {"bisection_steps": 2}).evaluate(splits, seed=0)
    assert set(out.metrics) == {"top1", "top5", "mean_per_class"}
    assert all(isinstance(v, float) and 0 <= v <= 100 for v in out.metrics.values())
    assert out.metrics["top1"] > 88
    for key in ("C", "tol", "max_iter", "dtype", "c_grid", "standardize", "l2_normalize", "reference", "fit_on"):
        assert key in out.params
    assert out.params["C_selection"].startswith("stratified 10% hold-out")
    assert out.details["val_top1_by_C"] and "CLIP appendix A.3" in out.params["reference"]


def _ill_conditioned():
    """Correlated features with column scales spanning 4 decades (Gram condition ~1e8+)."""
    rng = np.random.default_rng(1)
    n, d, k = 1500, 30, 6
    means = rng.normal(size=(k, d))
    y = np.arange(n) % k
    Z = means[y] + rng.normal(size=(n, d))
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    X = (Z @ mix) * np.logspace(-2, 2, d) + 3.0  # offset: the bias matters too
    return X.astype(np.float32), y, 1000


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_preconditioned_fit_same_optimum_as_plain_and_sklearn(C):
    import torch

    X, y, n = _ill_conditioned()
    pre = LinearProbe(C=C, precondition=True).fit(X[:n], y[:n])
    plain = LinearProbe(C=C, precondition=False).fit(X[:n], y[:n])
    ref = LogisticRegression(C=C, max_iter=5000, tol=1e-8).fit(X[:n].astype(np.float64), y[:n])

    def objective(coef, b):
        theta = torch.tensor(np.vstack([coef.T, b]))
        loss, _ = softmax_objective(torch.tensor(X[:n].astype(np.float64)), torch.tensor(y[:n]), theta, 1 / (C * n))
        return float(loss)

    f_pre = objective(pre.coef_, pre.intercept_)
    f_plain = objective(plain.coef_, plain.intercept_)
    f_ref = objective(ref.coef_, ref.intercept_)
    # preconditioning changes coordinates only: the same minimum, to float32 resolution
    assert f_pre <= f_ref * (1 + 1e-5) + 1e-7, (f_pre, f_ref)
    assert f_pre <= f_plain * (1 + 1e-5) + 1e-7, (f_pre, f_plain)
    assert pre.fit_info_.n_evals < plain.fit_info_.n_evals
    for other in (plain, ref):
        assert np.mean(pre.predict(X[n:]) == other.predict(X[n:])) >= 0.99
        assert abs(pre.score(X[n:], y[n:]) - other.score(X[n:], y[n:])) <= 0.005


def test_precondition_switch_is_recorded():
    X, y, _ = _digits()
    splits = FeatureSplits(FeatureSplit(X[:1000], y[:1000]), FeatureSplit(X[1300:], y[1300:]), 10)
    on = get_protocol("linear", {"bisection_steps": 1}).evaluate(splits, seed=0)
    off = get_protocol("linear", {"bisection_steps": 1, "precondition": False}).evaluate(splits, seed=0)
    assert on.params["precondition"] is True and off.params["precondition"] is False
    assert abs(on.metrics["top1"] - off.metrics["top1"]) <= 0.5


def test_fit_starts_from_the_lowest_loss_candidate():
    import torch

    from evalbench.protocols.lbfgs import fit_softmax_lbfgs

    X, y, n = _make_cls()
    Xt, yt = torch.tensor(X[:n]), torch.tensor(y[:n])
    lam = 1 / (1.0 * n)
    good, good_info = fit_softmax_lbfgs(Xt, yt, lam, torch.zeros(41, 5), 1e-6, 1000)
    bad = good * 50  # a far worse point: much higher loss
    _, bad_info = fit_softmax_lbfgs(Xt, yt, lam, bad, 1e-6, 1000)
    theta, info = fit_softmax_lbfgs(Xt, yt, lam, [bad, good], 1e-6, 1000)
    assert info.start == 1
    # started at the optimum: the two candidate evaluations and a few stall checks only
    assert info.n_evals <= 2 + 6 < bad_info.n_evals
    assert info.loss <= good_info.loss + 1e-9
    assert torch.allclose(theta, good, atol=1e-3)
    _, info_bad_first = fit_softmax_lbfgs(Xt, yt, lam, [good, bad], 1e-6, 1000)
    assert info_bad_first.start == 0


def test_search_log_names_each_fits_warm_start():
    X, y, _ = _digits()
    p = LinearProbe().fit(X[:1000], y[:1000], X[1000:1300], y[1000:1300])
    starts = [e["start"] for e in p.search_log_]
    assert starts[0] == "zeros"
    assert all(s in {"nearest", "extrapolated"} for s, e in zip(starts[1:], p.search_log_[1:], strict=True) if e["stage"] == "coarse")
    assert all(s == "interpolated" for s, e in zip(starts, p.search_log_, strict=True) if e["stage"] == "bisection")


def _binary():
    X, y = make_classification(700, 12, n_informative=6, random_state=1)
    return X, np.where(y == 1, "pos", "neg"), 500


@pytest.mark.parametrize("C", [0.05, 1.0, 20.0])
def test_two_classes_are_sklearns_binary_model_at_the_same_C(C):
    """Two classes: one weight vector and the sigmoid loss, as sklearn's LogisticRegression.
    (Two softmax columns equal sklearn at twice the C: the bug this pins.)"""
    X, y, n = _binary()
    ours = LinearProbe(C=C, dtype="float64", tol=1e-10).fit(X[:n], y[:n])
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X[:n], y[:n])
    assert ours.coef_.shape == ref.coef_.shape == (1, 12) and ours.intercept_.shape == (1,)
    scale = np.abs(ref.coef_).max()
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-4 * max(scale, 1.0))
    d_ours, d_ref = ours.decision_function(X[n:]), ref.decision_function(X[n:])
    assert d_ours.shape == d_ref.shape == (len(X) - n,)
    np.testing.assert_allclose(d_ours, d_ref, rtol=0, atol=1e-4 * np.abs(d_ref).max())
    np.testing.assert_array_equal(ours.predict(X[n:]), ref.predict(X[n:]))
    np.testing.assert_allclose(ours.predict_proba(X[n:]), ref.predict_proba(X[n:]), atol=1e-5)
    # the default float32 fit lands on the same model to float32 resolution
    f32 = LinearProbe(C=C).fit(X[:n], y[:n])
    np.testing.assert_allclose(f32.decision_function(X[n:]), d_ref, rtol=0, atol=2e-3 * np.abs(d_ref).max())


def test_two_classes_preconditioned_and_searched():
    X, y, n = _binary()
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(X[:n], y[:n])
    pre = LinearProbe(C=1.0, dtype="float64", tol=1e-10, precondition=True).fit(X[:n], y[:n])
    np.testing.assert_allclose(pre.decision_function(X[n:]), ref.decision_function(X[n:]),
                               rtol=0, atol=1e-4 * np.abs(ref.decision_function(X[n:])).max())
    searched = LinearProbe(bisection_steps=2).fit(X[:400], y[:400], X[400:n], y[400:n])
    assert searched.coef_.shape == (1, 12) and searched.val_scores_[searched.C_] == max(searched.val_scores_.values())
    assert 100 * searched.score(X[n:], y[n:]) > 80


def test_two_class_decision_function_works_with_sklearn_scorers():
    from sklearn.metrics import get_scorer

    X, y, n = _binary()
    ours = LinearProbe(C=1.0).fit(X[:n], y[:n])
    ref = LogisticRegression(C=1.0).fit(X[:n], y[:n])
    auc = get_scorer("roc_auc")(ours, X[n:], y[n:])
    assert np.isfinite(auc) and auc == pytest.approx(get_scorer("roc_auc")(ref, X[n:], y[n:]), abs=2e-3)
    # class_scores keeps one column per class for the protocols' top-k ranking
    scores = ours.class_scores(X[n:])
    assert scores.shape == (len(X) - n, 2)
    np.testing.assert_array_equal(ours.classes_[scores.argmax(1)], ours.predict(X[n:]))


def test_linear_protocol_on_two_classes():
    X, y, n = _binary()
    yi = (y == "pos").astype(np.int64)
    splits = FeatureSplits(FeatureSplit(X[:400], yi[:400]), FeatureSplit(X[n:], yi[n:]), 2,
                           val=FeatureSplit(X[400:n], yi[400:n]))
    out = get_protocol("linear", {"C": 1.0}).evaluate(splits, seed=0)
    ref = LogisticRegression(C=1.0).fit(X[:n], yi[:n])
    assert out.metrics["top1"] == pytest.approx(100 * ref.score(X[n:], yi[n:]), abs=0.5)
    assert "sigmoid" in out.params["objective"]


def test_preconditioner_scale_follows_the_penalty_with_one_factorisation():
    """c = min(c_max, 0.1*lam/median feature variance): below the cap P/lam is the same matrix
    for every lam, so a whole C search factorises once."""
    import torch

    from evalbench.protocols.lbfgs import PRECONDITION_RATIO, GramPreconditioner

    X, _, n = _ill_conditioned()
    Xt = torch.tensor(X[:n])
    pre = GramPreconditioner(Xt, 1 / 6)
    var = np.sort(X[:n].astype(np.float64).var(axis=0))
    g_ref = float(var[(len(var) - 1) // 2])  # torch's median: the lower middle value
    assert pre.curvature(1e-4) == pytest.approx(PRECONDITION_RATIO * 1e-4 / g_ref, rel=1e-4)
    assert pre.curvature(1e6) == 1 / 6  # capped at the softmax curvature
    m_a, _, scale_a, _ = pre.maps(1e-4)
    m_b, _, scale_b, _ = pre.maps(1e-6)
    assert m_a is m_b and scale_b == pytest.approx(10 * scale_a)
    fixed = GramPreconditioner(Xt, 1 / 6, ratio=None)  # linear v3-v5: c = 1/K for every lam
    assert fixed.curvature(1e-4) == fixed.curvature(1e-6) == 1 / 6


def test_float64_preconditioned_fit_reaches_the_plain_optimum():
    """The float64 path (the final fit's polish) in preconditioned coordinates: same minimiser."""
    import torch

    from evalbench.protocols.lbfgs import GramPreconditioner, fit_softmax_lbfgs, fit_softmax_lbfgs_precond

    X, y, n = _make_cls()
    Xt, yt = torch.tensor(X[:n], dtype=torch.float64), torch.tensor(y[:n])
    lam = 1 / (10.0 * n)
    zero = torch.zeros(X.shape[1] + 1, 5, dtype=torch.float64)
    pre_theta, pre_info = fit_softmax_lbfgs_precond(GramPreconditioner(Xt, 0.2), yt, lam, zero, 1e-6, 2000)
    plain_theta, plain_info = fit_softmax_lbfgs(Xt, yt, lam, zero, 1e-6, 5000)
    assert pre_info.converged and plain_info.converged
    assert pre_info.n_evals < plain_info.n_evals
    np.testing.assert_allclose(pre_theta.numpy(), plain_theta.numpy(), atol=1e-4 * float(plain_theta.abs().max()))


@pytest.mark.parametrize("make", [_digits, _hundred, _ill_conditioned], ids=["digits", "100-class", "ill-conditioned"])
@pytest.mark.parametrize("C,tol,slack", [(1.0, None, 1e-7), (100.0, 1e-8, 1e-9)], ids=["C=1,default-tol", "C=100,tol=1e-8"])
def test_fixed_C_fidelity_against_converged_sklearn(make, C, tol, slack):
    """At a fixed C: >= 99% identical predictions to scikit-learn converged at tol 1e-8. The
    objective is no higher at the same tol; at the protocol's tol (1e-6) it is within 1e-7 relative
    (measured: <= 2e-8). Includes features whose scales span decades."""
    X, y, n = make()
    ours = LinearProbe(C=C, **({} if tol is None else {"tol": tol})).fit(X[:n], y[:n])
    ref = LogisticRegression(C=C, tol=1e-8, max_iter=20000).fit(X[:n].astype(np.float64), y[:n])
    assert ours.converged_ or tol is not None  # 1e-8 can sit below float64's line-search resolution
    assert np.mean(ours.predict(X[n:]) == ref.predict(X[n:])) >= 0.99

    def objective(coef, b):
        z = X[:n].astype(np.float64) @ coef.T + b
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -C * logp[np.arange(n), y[:n]].sum() + 0.5 * (coef ** 2).sum()

    assert objective(ours.coef_, ours.intercept_) <= objective(ref.coef_, ref.intercept_) * (1 + slack)


def test_strict_cnr_mode_is_on_when_evalbench_loads_mkl_first():
    """evalbench asks MKL for strict CNR at import (evalbench/blas.py); the test process imports it
    before any torch GEMM, so where torch carries MKL the mode must be active."""
    import torch

    from evalbench.blas import gemm_mode, thread_count_independent_gemm

    if not torch.backends.mkl.is_available():
        pytest.skip("torch without MKL: fits stay on one thread below 1e8 multiply-adds")
    assert thread_count_independent_gemm(), gemm_mode()


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "one-vs-rest"])
def test_fits_give_the_same_bits_on_one_thread_and_on_two(kind):
    """A search + refit large enough to run multi-threaded (N*D*K >= MULTI_THREAD_MIN_WORK) gives
    bit-identical coefficients with 1 and 2 intra-op threads: results never depend on the core count."""
    from evalbench.protocols import lbfgs
    from evalbench.protocols.multilabel import MultiLabelLinearProbe
    from evalbench.threads import intra_op_threads

    # one output column: the binary fit needs more rows to reach the multi-threaded size
    n = 7000 if kind == "sigmoid" else 1500
    X, y = make_classification(n, 300, n_informative=40, n_classes=8, random_state=3)
    X = X.astype(np.float32)
    if kind == "sigmoid":
        y = (y > 3).astype(np.int64)
    k = {"softmax": 8, "sigmoid": 1, "one-vs-rest": 8}[kind]
    assert X.shape[0] * X.shape[1] * k >= lbfgs.MULTI_THREAD_MIN_WORK
    coefs = []
    for threads in (1, 2):
        with intra_op_threads(threads):
            if kind == "one-vs-rest":
                Y = np.stack([(y == c) for c in range(8)], axis=1).astype(np.float64)
                probe = MultiLabelLinearProbe(bisection_steps=2).fit(X, Y)
            else:
                probe = LinearProbe(bisection_steps=2).fit(X, y)
        coefs.append((probe.coef_, probe.intercept_, probe.C_))
    assert coefs[0][2] == coefs[1][2]
    assert np.array_equal(coefs[0][0], coefs[1][0]) and np.array_equal(coefs[0][1], coefs[1][1])
