"""The multi-label probe against scikit-learn's one-vs-rest logistic regression, its C search, the protocol and the contract."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from evalbench.errors import ConfigError, ProtocolInputError
from evalbench.protocols import FeatureSplit, FeatureSplits, MultiLabelLinearProbe, get_protocol
from evalbench.protocols.average_precision import mean_ap


def _data(seed=0, n=240, d=12, k=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    W = rng.normal(size=(d, k))
    Y = ((X @ W + rng.normal(0, 1.5, size=(n, k))) > 0.8).astype(np.int64)
    Y[rng.random((n, k)) < 0.05] = -1  # "difficult only": left out of that class
    return X, Y


def _sklearn_ovr(X, Y, C):
    """One binary scikit-learn LogisticRegression per class on its non-ignored rows."""
    out = []
    for k in range(Y.shape[1]):
        keep = Y[:, k] >= 0
        out.append(LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X[keep].astype(np.float64), Y[keep, k]))
    return out


def test_fixed_C_equals_sklearn_one_vs_rest():
    X, Y = _data()
    probe = MultiLabelLinearProbe(C=0.5, dtype="float64", tol=1e-9).fit(X, Y)
    for k, ref in enumerate(_sklearn_ovr(X, Y, 0.5)):
        np.testing.assert_allclose(probe.coef_[k], ref.coef_[0], atol=1e-6)
        assert probe.intercept_[k] == pytest.approx(ref.intercept_[0], abs=1e-6)
    ref_scores = np.stack([m.decision_function(X.astype(np.float64)) for m in _sklearn_ovr(X, Y, 0.5)], axis=1)
    np.testing.assert_allclose(probe.decision_function(X), ref_scores, atol=1e-5)


def test_mid_sized_multi_threaded_fits_equal_sklearn():
    """N*D*K of 1.6e7 runs on all intra-op threads (lbfgs.MULTI_THREAD_MIN_WORK) and still equals sklearn."""
    from evalbench.protocols import lbfgs

    X, Y = _data(2, n=2000, d=400, k=20)
    assert X.shape[0] * X.shape[1] * Y.shape[1] >= lbfgs.MULTI_THREAD_MIN_WORK
    probe = MultiLabelLinearProbe(C=0.05, dtype="float64", tol=1e-8).fit(X, Y)
    refs = _sklearn_ovr(X, Y, 0.05)
    ref_scores = np.stack([m.decision_function(X.astype(np.float64)) for m in refs], axis=1)
    np.testing.assert_allclose(probe.decision_function(X), ref_scores, atol=1e-4)


def test_C_is_the_grid_value_with_the_best_validation_map11():
    X, Y = _data(1, n=400)
    grid = tuple(10.0 ** np.arange(-3, 3))
    probe = MultiLabelLinearProbe(dtype="float64", tol=1e-9, c_grid=grid, bisection_steps=0, patience=0)
    probe.fit(X[:250], Y[:250], X[250:], Y[250:])
    ref = []
    for C in grid:
        scores = np.stack([m.decision_function(X[250:].astype(np.float64)) for m in _sklearn_ovr(X[:250], Y[:250], C)], 1)
        ref.append(mean_ap(scores, Y[250:], "map11"))
    assert [e["C"] for e in probe.search_log_] == pytest.approx(list(grid))
    np.testing.assert_allclose([e["val_map11"] for e in probe.search_log_], ref, atol=1e-6)
    best = grid[int(np.argmax(np.round(ref, 9)))]  # first maximum: ties go to the smaller C
    assert probe.C_ == pytest.approx(best)
    # the final model is refit on train+val at that C
    refit = MultiLabelLinearProbe(C=best, dtype="float64", tol=1e-9).fit(X, Y)
    np.testing.assert_allclose(probe.coef_, refit.coef_, atol=1e-5)


def test_search_stops_with_patience_and_bisects():
    X, Y = _data(2)
    probe = MultiLabelLinearProbe(c_grid=(1e-4, 1e-2, 1, 1e2, 1e4, 1e6), patience=1, bisection_steps=3)
    probe.fit(X, Y)  # no val: a seeded 10% of the images is held out
    stages = [e["stage"] for e in probe.search_log_]
    assert stages.count("coarse") < 6 and stages.count("bisection") == 3
    assert probe.holdout_ == (216, 24)


def test_protocol_outcome_and_recorded_settings():
    X, Y = _data(3)
    splits = FeatureSplits(train=FeatureSplit(X[:150], Y[:150]), val=FeatureSplit(X[150:200], Y[150:200]),
                           test=FeatureSplit(X[200:], Y[200:]), num_classes=4)
    out = get_protocol("multilabel-linear", {"c_grid": [0.01, 1.0, 100.0], "bisection_steps": 0}).evaluate(splits)
    assert set(out.metrics) == {"map11", "map"}
    assert out.predictions["scores"].shape == (40, 4)
    assert out.metrics["map11"] == pytest.approx(mean_ap(out.predictions["scores"], Y[200:], "map11"))
    assert out.params["C"] in (0.01, 1.0, 100.0) and out.params["fit_on"] == "train+val"
    assert "difficult" in out.params["difficult"] and len(out.details["val_map11_by_C"]) == 3


def test_protocol_refuses_single_label_tasks_and_bad_settings():
    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    y = np.arange(20) % 2
    splits = FeatureSplits(train=FeatureSplit(X, y), test=FeatureSplit(X, y), num_classes=2)
    with pytest.raises(ProtocolInputError, match="multi-label"):
        get_protocol("multilabel-linear").evaluate(splits)
    with pytest.raises(ConfigError, match="patience"):
        get_protocol("multilabel-linear", {"patience": -1})


def test_contract_accepts_multi_hot_labels_and_refuses_bad_ones():
    X = np.zeros((3, 2), np.float32)
    ok = FeatureSplits(train=FeatureSplit(X, np.array([[1, 0], [0, -1], [1, 1]])),
                       test=FeatureSplit(X, np.array([[1, 0], [0, 1], [0, 0]])), num_classes=2)
    assert ok.multilabel
    with pytest.raises(ProtocolInputError, match=r"\(N, 2\) arrays of 1 / 0 / -1"):
        FeatureSplits(train=FeatureSplit(X, np.array([[2, 0], [0, 1], [1, 1]])),
                      test=FeatureSplit(X, np.array([[1, 0], [0, 1], [0, 0]])), num_classes=2)
    with pytest.raises(ProtocolInputError, match=r"\(N, 2\)"):
        FeatureSplits(train=FeatureSplit(X, np.ones((3, 3), int)), test=FeatureSplit(X, np.ones((3, 3), int)),
                      num_classes=2)


def test_class_without_positives_gets_constant_scores():
    X, Y = _data(4)
    Y[:, 2] = np.where(Y[:, 2] == 1, 0, Y[:, 2])  # class 2 never present
    probe = MultiLabelLinearProbe(C=1.0).fit(X, Y)
    assert probe.constant_classes_ == [2]
    assert np.all(probe.decision_function(X)[:, 2] == 0)


def test_linear_on_a_multi_label_task_runs_the_one_vs_rest_probe_with_the_same_settings():
    X, Y = _data(3)
    splits = FeatureSplits(train=FeatureSplit(X[:150], Y[:150]), val=FeatureSplit(X[150:200], Y[150:200]),
                           test=FeatureSplit(X[200:], Y[200:]), num_classes=4)
    settings = {"c_grid": [0.01, 1.0, 100.0], "bisection_steps": 0}
    ovr = get_protocol("multilabel-linear", settings).evaluate(splits)
    lin = get_protocol("linear", settings).evaluate(splits)
    assert lin.metrics == ovr.metrics and lin.params["C"] == ovr.params["C"]
    np.testing.assert_array_equal(lin.predictions["scores"], ovr.predictions["scores"])
    with pytest.raises(ProtocolInputError, match="standardize"):
        get_protocol("linear", {**settings, "standardize": True}).evaluate(splits)
