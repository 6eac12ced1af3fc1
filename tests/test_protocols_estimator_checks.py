"""scikit-learn's own estimator checks on the three probes, and the defects they found.

`parametrize_with_checks` (scikit-learn >= 1.6 for `expected_failed_checks`) runs every
check scikit-learn applies to its own classifiers: fit/predict contracts, input validation,
NotFittedError, n_features_in_, binary decision_function shape, subset invariance, ...
A check listed in EXPECTED_FAILED runs as an expected failure (xfail) with its reason.
Sizes are scikit-learn's own small ones; LinearProbe gets a fixed C (no C search) and the
CPU, so the whole module runs in a few seconds.
"""
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from evalbench.blas import thread_count_independent_gemm
from evalbench.protocols import KNNProbe, LinearProbe, RidgeProbe

#: Checks expected to fail, per probe configuration: check name -> why.
EXPECTED_FAILED: dict[str, dict[str, str]] = {
    "LinearProbe": {},
    "KNNProbe": {},  # the default backend ("auto" = faiss IndexFlatIP)
    # MKL's strict CNR mode (evalbench/blas.py) rounds each row of a product the same way whatever the
    # chunk, so the check passes there; other BLAS kernels differ with the chunk's row count.
    "KNNProbe(backend='torch')": {} if thread_count_independent_gemm() else {
        "check_methods_subset_invariance":
            "the torch backend scores a chunk of queries with one float32 torch.mm; outside MKL's strict CNR "
            "mode the BLAS kernel, hence the rounding of each similarity, depends on how many query rows the "
            "chunk has, so predict_proba of a row differs at ~1e-7 relative between a batch and its subsets "
            "(the check allows 1e-7). Labels can only differ where two classes' votes agree to that precision. "
            "DINO's eval_knn.py (torch.mm per chunk) has the same property; the default faiss backend passes.",
    },
    "RidgeProbe": {},
}

PROBES = {
    "LinearProbe": LinearProbe(C=1.0, device="cpu"),
    "KNNProbe": KNNProbe(),
    "KNNProbe(backend='torch')": KNNProbe(backend="torch"),
    "RidgeProbe": RidgeProbe(),
}


def _key(estimator) -> str:
    name = type(estimator).__name__
    if name == "KNNProbe" and estimator.backend == "torch":
        return "KNNProbe(backend='torch')"
    return name


@parametrize_with_checks(list(PROBES.values()), expected_failed_checks=lambda est: EXPECTED_FAILED[_key(est)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("name", ["LinearProbe", "KNNProbe", "RidgeProbe"])
def test_predict_before_fit_raises_not_fitted(name):
    with pytest.raises(NotFittedError):
        PROBES[name].predict(np.zeros((3, 4)))


@pytest.mark.parametrize("name", ["LinearProbe", "KNNProbe", "RidgeProbe"])
def test_wrong_number_of_features_is_refused(name):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), np.arange(40) % 3
    probe = PROBES[name].fit(X, y)
    # a single column used to broadcast against RidgeProbe's 4-feature mean and predict
    with pytest.raises(ValueError, match=f"X has 1 features, but {name} is expecting 4 features as input"):
        probe.predict(X[:, :1])
