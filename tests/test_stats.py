"""Tests for evalbench.stats: coverage, reference values, paired tests and determinism."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps

from evalbench.errors import EvalbenchError
from evalbench.stats import (
    ConfidenceInterval,
    StatsInputError,
    bootstrap_ci,
    holm,
    mcnemar,
    mean_per_class_ci,
    paired_bootstrap_diff,
    suite_mean_ci,
    verdict,
    wilson_ci,
)


def _exactly(k: int, n: int, seed: int = 0) -> np.ndarray:
    """n items of which exactly k are correct, in a shuffled order."""
    x = np.zeros(n, dtype=bool)
    x[:k] = True
    return np.random.default_rng(seed).permutation(x)


# ---------------------------------------------------------------------------- bootstrap_ci


def test_bootstrap_ci_covers_true_p_in_about_95_percent_of_binomial_datasets():
    p, n, sims = 0.9, 360, 400
    data = np.random.default_rng(12345).random((sims, n)) < p
    covered = 0
    for i in range(sims):
        ci = bootstrap_ci(data[i], B=1000, seed=i)
        covered += ci.low <= 100 * p <= ci.high
    coverage = covered / sims
    assert 0.92 <= coverage <= 0.98, coverage


def test_bootstrap_ci_width_matches_normal_approximation():
    n = 360
    ci = bootstrap_ci(_exactly(324, n), B=2000, seed=0)  # p_hat = 0.9 exactly
    normal_half = 100 * 1.96 * math.sqrt(0.9 * 0.1 / n)
    # The binomial formula gives 3.10 points here (PROTOCOLS.md quotes 2.4, which is n of about 600).
    assert normal_half == pytest.approx(3.099, abs=0.001)
    assert ci.estimate == pytest.approx(90.0)
    assert (ci.high - ci.low) / 2 == pytest.approx(normal_half, rel=0.15)
    assert ci.low < 90.0 < ci.high


def test_bootstrap_ci_large_n_is_chunked_and_still_matches_normal_approximation():
    n = 100_000
    ci = bootstrap_ci(_exactly(80_000, n), B=300, seed=1)
    normal_half = 100 * 1.96 * math.sqrt(0.8 * 0.2 / n)
    assert ci.estimate == pytest.approx(80.0)
    assert (ci.high - ci.low) / 2 == pytest.approx(normal_half, rel=0.2)


def test_bootstrap_ci_record_fields_and_frozen():
    ci = bootstrap_ci([1, 0, 1, 1], B=50, seed=7, level=0.9)
    assert isinstance(ci, ConfidenceInterval)
    assert (ci.method, ci.B, ci.seed, ci.level) == ("bootstrap-percentile", 50, 7, 0.9)
    assert ci.estimate == 75.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.low = 0.0  # type: ignore[misc]


def test_bootstrap_ci_other_statistic_and_scale():
    values = np.array([1.0, 2.0, 3.0, 10.0, 50.0])
    ci = bootstrap_ci(values, B=500, seed=0, statistic=np.median, scale=1.0)
    assert ci.estimate == 3.0
    assert values.min() <= ci.low <= 3.0 <= ci.high <= values.max()


def test_bootstrap_ci_is_deterministic_per_seed():
    x = _exactly(70, 100)
    assert bootstrap_ci(x, B=500, seed=3) == bootstrap_ci(x, B=500, seed=3)
    a, b = bootstrap_ci(x, B=500, seed=3), bootstrap_ci(x, B=500, seed=4)
    assert a.estimate == b.estimate
    assert (a.low, a.high) != (b.low, b.high)


def test_bootstrap_ci_accepts_a_generator_and_records_no_seed():
    x = _exactly(70, 100)
    from_gen = bootstrap_ci(x, B=500, seed=np.random.default_rng(3))
    from_int = bootstrap_ci(x, B=500, seed=3)
    assert from_gen.seed is None
    assert (from_gen.low, from_gen.high) == (from_int.low, from_int.high)


# ---------------------------------------------------------------------------- wilson_ci


def test_wilson_ci_hand_computed_90_of_100():
    # z = 1.959964; centre = (0.9 + z^2/200) / (1 + z^2/100) = 0.885200;
    # half = z / (1 + z^2/100) * sqrt(0.0009 + z^2/40000) = 0.059569
    ci = wilson_ci(90, 100)
    assert ci.estimate == 90.0
    assert ci.low == pytest.approx(82.5634, abs=1e-3)
    assert ci.high == pytest.approx(94.4771, abs=1e-3)
    assert (ci.method, ci.B, ci.seed) == ("wilson", None, None)
    ref = sps.binomtest(90, 100).proportion_ci(0.95, method="wilson")
    assert (ci.low, ci.high) == pytest.approx((100 * ref.low, 100 * ref.high), abs=1e-9)


def test_wilson_ci_edges_stay_inside_0_100():
    assert wilson_ci(0, 10).low == 0.0
    assert wilson_ci(10, 10).high == 100.0
    assert wilson_ci(0, 10).high > 0.0


# ---------------------------------------------------------------------------- mean_per_class_ci


def test_mean_per_class_ci_estimate_is_balanced_accuracy():
    y_true = np.array([0] * 8 + [1] * 2 + [2] * 4)
    y_pred = np.array([0] * 8 + [0, 1] + [2, 2, 2, 1])
    # per class: 8/8, 1/2, 3/4 -> mean 0.75 (plain accuracy would be 12/14)
    ci = mean_per_class_ci(y_true, y_pred, B=500, seed=0)
    assert ci.estimate == pytest.approx(75.0)
    assert ci.low <= 75.0 <= ci.high
    assert ci.method == "stratified-bootstrap-percentile"


def test_mean_per_class_ci_keeps_every_class_count():
    # Class 0 always right, class 1 always wrong: any stratified replicate is exactly 50%,
    # an unstratified one would wander with the class mix.
    y_true = np.array([0] * 30 + [1] * 10)
    y_pred = np.zeros(40, dtype=int)
    ci = mean_per_class_ci(y_true, y_pred, B=300, seed=0)
    assert (ci.estimate, ci.low, ci.high) == (50.0, 50.0, 50.0)


# ---------------------------------------------------------------------------- suite_mean_ci


def test_suite_mean_ci_estimate_is_mean_of_task_means():
    tasks = [_exactly(90, 100, 1), _exactly(300, 1000, 2), _exactly(5, 10, 3)]
    ci = suite_mean_ci(tasks, B=1000, seed=0)
    assert ci.estimate == pytest.approx((90.0 + 30.0 + 50.0) / 3)
    pooled = 100 * np.concatenate(tasks).mean()
    assert ci.estimate != pytest.approx(pooled)
    assert ci.low < ci.estimate < ci.high


def test_suite_mean_ci_of_one_task_is_that_task_bootstrap():
    x = _exactly(40, 60)
    one = suite_mean_ci([x], B=700, seed=5)
    direct = bootstrap_ci(x, B=700, seed=5)
    assert (one.estimate, one.low, one.high) == pytest.approx((direct.estimate, direct.low, direct.high))


# ---------------------------------------------------------------------------- paired comparisons


def _planted(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.random(n) < 0.8
    b = a.copy()
    right = np.flatnonzero(a)
    flip = rng.choice(right, size=len(right) // 10, replace=False)
    b[flip] = False
    return a, b


def test_paired_bootstrap_detects_planted_difference():
    a, b = _planted()
    diff = paired_bootstrap_diff(a, b, B=2000, seed=0)
    expected = 100 * (a.mean() - b.mean())
    assert diff.estimate == pytest.approx(expected)
    assert expected == pytest.approx(100 * (np.sum(a) // 10) / 2000)
    assert diff.low > 0
    assert diff.method == "paired-bootstrap-percentile"
    test = mcnemar(a, b)
    assert (test.a_only, test.b_only) == (np.sum(a) // 10, 0)
    assert test.p_value < 1e-30
    assert verdict(diff, test.p_value) == "better"
    reverse = paired_bootstrap_diff(b, a, B=2000, seed=0)
    assert reverse.high < 0
    assert verdict(reverse, mcnemar(b, a).p_value) == "worse"


def test_paired_bootstrap_identical_models_are_not_separable():
    a, _ = _planted()
    diff = paired_bootstrap_diff(a, a.copy(), B=1000, seed=0)
    assert (diff.estimate, diff.low, diff.high) == (0.0, 0.0, 0.0)
    test = mcnemar(a, a)
    assert (test.p_value, test.a_only, test.b_only) == (1.0, 0, 0)
    assert verdict(diff, test.p_value) == "not separable"


def test_verdict_needs_both_ci_and_adjusted_p():
    ci = ConfidenceInterval(2.0, 0.5, 3.5, "paired-bootstrap-percentile", 1000, 0, 0.95)
    assert verdict(ci, 0.01) == "better"
    assert verdict(ci, 0.2) == "not separable"
    straddles = dataclasses.replace(ci, low=-0.1)
    assert verdict(straddles, 0.001) == "not separable"


def test_mcnemar_matches_exact_binomial_by_hand():
    # a_only = 3, b_only = 12: p = 2 * P(X <= 3 | Bin(15, 1/2)) = 2 * (1 + 15 + 105 + 455) / 2**15
    a = np.array([1] * 3 + [0] * 12 + [1] * 50 + [0] * 20)
    b = np.array([0] * 3 + [1] * 12 + [1] * 50 + [0] * 20)
    test = mcnemar(a, b)
    assert (test.a_only, test.b_only) == (3, 12)
    assert test.p_value == pytest.approx(2 * 576 / 2**15)
    assert test.p_value == pytest.approx(sps.binomtest(3, 15, 0.5).pvalue)
    assert mcnemar(b, a).p_value == pytest.approx(test.p_value)


def test_mcnemar_textbook_example_fagerland_2013():
    # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91, airway
    # hyper-responsiveness before/after: discordant pairs 1 and 7, exact conditional p = 0.070.
    a = np.array([1] * 1 + [0] * 7 + [1] * 1 + [0] * 12)
    b = np.array([0] * 1 + [1] * 7 + [1] * 1 + [0] * 12)
    test = mcnemar(a, b)
    assert (test.a_only, test.b_only) == (1, 7)
    assert test.p_value == pytest.approx(18 / 256)
    assert round(test.p_value, 3) == 0.070


def test_mcnemar_balanced_discordance_gives_p_one():
    a = np.array([1, 0, 1, 0])
    b = np.array([0, 1, 0, 1])
    assert mcnemar(a, b).p_value == 1.0


# ---------------------------------------------------------------------------- holm


def _statsmodels_holm(pvals: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The 'holm' branch of statsmodels.stats.multitest.multipletests, transcribed."""
    order = np.argsort(pvals)
    ps = pvals[order]
    m = len(ps)
    notreject = ps > alpha / np.arange(m, 0, -1)
    nr = np.nonzero(notreject)[0]
    if nr.size > 0:
        notreject[nr.min():] = True
    corrected = np.maximum.accumulate(ps * np.arange(m, 0, -1))
    corrected[corrected > 1] = 1
    out_p, out_r = np.empty(m), np.empty(m, dtype=bool)
    out_p[order], out_r[order] = corrected, ~notreject
    return out_p, out_r


def test_holm_hand_computed_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> cummax 0.02, 0.03, 0.06, 0.06
    # step-down: 0.005 <= 0.0125, 0.01 <= 0.0167, 0.03 > 0.025 -> stop
    adjusted, reject = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert reject.tolist() == [True, False, False, True]


def test_holm_caps_at_one_and_stays_monotone():
    adjusted, reject = holm([0.3, 0.6, 0.7])
    assert adjusted == pytest.approx([0.9, 1.0, 1.0])
    assert not reject.any()


def test_holm_matches_statsmodels_formula_on_random_pvalues():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 19, 50):
        p = np.concatenate([rng.random(m) ** 3, [0.01, 0.01]])  # ties included
        got_p, got_r = holm(p, alpha=0.05)
        ref_p, ref_r = _statsmodels_holm(p, 0.05)
        np.testing.assert_allclose(got_p, ref_p, rtol=0, atol=1e-15)
        assert got_r.tolist() == ref_r.tolist()


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: bootstrap_ci([]), "non-empty 1-D"),
        (lambda: bootstrap_ci([1.0, np.nan]), "NaN"),
        (lambda: bootstrap_ci([1, 0], B=0), "positive integer"),
        (lambda: bootstrap_ci([1, 0], level=95), "strictly between 0 and 1"),
        (lambda: paired_bootstrap_diff([1, 0, 1], [1, 0]), "same test items"),
        (lambda: mcnemar([1, 2], [1, 0]), "booleans or 0/1"),
        (lambda: wilson_ci(11, 10), "0 <= k <= n"),
        (lambda: holm([0.5, 1.5]), r"\[0, 1\]"),
        (lambda: suite_mean_ci([]), "at least one task"),
        (lambda: mean_per_class_ci([0, 1], [0]), "same test items"),
    ],
)
def test_bad_input_raises_project_error(call, message):
    with pytest.raises(StatsInputError, match=message) as info:
        call()
    assert isinstance(info.value, EvalbenchError)
