"""Average precision against references: scikit-learn's AP, and a straightforward VOC2007 11-point AP written here."""
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from evalbench.errors import ProtocolInputError
from evalbench.protocols.average_precision import (_draws_ap, _ranked, ap11, average_precision, bootstrap_map, mean_ap,
                                                   multilabel_metrics)
from evalbench.scoring import intervals, metrics_from_predictions


def voc07_ap_reference(scores, y):
    """VOCevalcls.m written out plainly: rank by decreasing score (stable), drop ignored (0 in the devkit,
    -1 here) items, precision/recall at each rank, average over t = 0, 0.1, ..., 1 of the best
    precision with recall >= t, recall compared as an exact fraction."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable
    order = [i for i in order if y[i] != -1]
    n_pos = sum(1 for i in order if y[i] == 1)
    tp = fp = 0
    points = []
    for i in order:
        tp += y[i] == 1
        fp += y[i] == 0
        points.append((Fraction(tp, n_pos), tp / (tp + fp)))
    total = 0.0
    for k in range(11):
        got = [p for r, p in points if r >= Fraction(k, 10)]
        total += max(got) if got else 0.0
    return total / 11


def _case(rng, n, ties):
    scores = rng.normal(size=n)
    if ties:
        scores = np.round(scores, 1)
    y = (rng.random(n) < 0.35).astype(int)
    y[0] = 1
    return scores, y


@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_equals_sklearn(ties):
    rng = np.random.default_rng(1)
    for _ in range(50):
        scores, y = _case(rng, int(rng.integers(2, 80)), ties)
        w = rng.integers(0, 4, size=len(y)).astype(float)
        w[0] = 1.0
        assert average_precision(scores, y) == pytest.approx(average_precision_score(y, scores), abs=1e-12)
        assert average_precision(scores, y, w) == pytest.approx(average_precision_score(y, scores, sample_weight=w),
                                                                abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_ap11_equals_a_plain_devkit_implementation(ties):
    rng = np.random.default_rng(2)
    for _ in range(60):
        scores, y = _case(rng, int(rng.integers(2, 60)), ties)
        y[rng.random(len(y)) < 0.1] = -1
        y[0] = 1
        assert ap11(scores, y) == pytest.approx(voc07_ap_reference(list(scores), list(y)), abs=1e-12)


def test_ap11_known_values_and_exact_recall_levels():
    # ranks: + - + - (2 positives): precision 1, .5, .667, .5 at recall .5, .5, 1, 1
    assert ap11(np.array([4, 3, 2, 1.0]), np.array([1, 0, 1, 0])) == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    # 10 positives, a negative at rank 4: recall is exactly 3/10 at rank 3 with precision 1; a float port
    # comparing with 0.30000000000000004 would skip that rank and give 10/11 at t = 0.3
    y = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1])
    assert ap11(-np.arange(11.0), y) == pytest.approx((4 * 1.0 + 7 * 10 / 11) / 11)
    # ignored items count for nothing: same AP as without them
    s, yy = np.array([5, 4, 3, 2, 1.0]), np.array([1, -1, 0, 1, -1])
    assert ap11(s, yy) == ap11(s[[0, 2, 3]], yy[[0, 2, 3]])
    assert average_precision(s, yy) == pytest.approx(average_precision_score([1, 0, 1], [5, 3, 2]))


def test_mean_over_classes_with_positives_and_errors():
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.1], [0.6, 0.3, 0.2]])
    Y = np.array([[1, 0, 0], [0, 1, -1], [1, 0, 0]])  # class 2 has no positive: left out of the mean
    assert mean_ap(scores, Y, "map11") == 100.0
    assert multilabel_metrics(scores, Y) == {"map11": 100.0, "map": 100.0}
    with pytest.raises(ProtocolInputError, match="no class has a positive"):
        mean_ap(scores, np.zeros_like(Y))


def test_bootstrap_reweighting_equals_resampling():
    rng = np.random.default_rng(3)
    scores, y = rng.normal(size=40), (rng.random(40) < 0.3).astype(int)
    y[rng.random(40) < 0.1] = -1
    y[0] = 1
    s, pos, items = _ranked(scores, y)
    draws = rng.integers(0, 40, size=(6, 40))
    counts = np.stack([np.bincount(d, minlength=40) for d in draws]).astype(float)
    got11, got = _draws_ap(s, pos, counts[:, items])
    for r, d in enumerate(draws):
        d = np.sort(d)  # copies of an item side by side, as the reweighting ranks them
        if not (y[d] == 1).any():
            assert np.isnan(got11[r]) and np.isnan(got[r])
            continue
        assert got11[r] == pytest.approx(voc07_ap_reference(list(scores[d]), list(y[d])), abs=1e-12)
        keep = y[d] != -1
        assert got[r] == pytest.approx(average_precision_score(y[d][keep], scores[d][keep]), abs=1e-12)


def test_bootstrap_interval_and_scoring_hooks():
    rng = np.random.default_rng(4)
    Y = (rng.random((60, 4)) < 0.3).astype(int)
    Y[0] = 1
    scores = Y + rng.normal(0, 0.8, size=Y.shape)
    point = multilabel_metrics(scores, Y)
    ci = bootstrap_map(scores, Y, B=300, seed=0)
    assert ci == bootstrap_map(scores, Y, B=300, seed=0)
    for kind in ("map11", "map"):
        assert ci[kind][0] < point[kind] < ci[kind][1]
    arrays = {"scores": scores, "y_true": Y, "test_index": np.arange(60)}
    assert metrics_from_predictions(arrays, 4) == point
    unc = intervals(arrays, point, seed=0, B=300)
    assert unc["map11"] == ci["map11"] and unc["n_test"] == 60 and "images" in unc["method"]
