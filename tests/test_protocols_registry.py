"""The protocol registry contract: names, parameter validation, outcomes, progress."""
import numpy as np
import pytest
from rich.progress import Progress

from evalbench.errors import ConfigError, UnknownNameError
from evalbench.protocols import get_protocol, list_protocols
from evalbench.protocols.contract import FeatureSplit, FeatureSplits, ProtocolOutcome

NAMES = ["episodic-centroid", "episodic-logreg", "fewshot-knn", "fewshot-linear", "knn", "linear", "ridge"]
MULTILABEL = ["multilabel-linear"]  # (N, K) labels only; tests/test_multilabel_probe.py evaluates it
FAST = {"linear": {"bisection_steps": 1}, "fewshot-linear": {"shots": 2, "seeds": 2},
        "fewshot-knn": {"shots": 2, "seeds": 2}, "episodic-centroid": {"episodes": 10},
        "episodic-logreg": {"episodes": 5}}


def _splits():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(7, 12)) * 2

    def part(n):
        y = np.arange(n) % 7
        return FeatureSplit((means[y] + rng.normal(size=(n, 12))).astype(np.float32), y)

    return FeatureSplits(part(140), part(140), 7, val=part(35))


def test_registered_names_and_descriptions():
    protos = list_protocols()
    assert sorted(protos) == sorted(NAMES + MULTILABEL)
    assert all(isinstance(d, str) and d and "\n" not in d for d in protos.values())


def test_unknown_protocol_suggests():
    with pytest.raises(UnknownNameError) as err:
        get_protocol("linaer", {})
    assert str(err.value) == "unknown protocol 'linaer'; did you mean 'linear', 'fewshot-linear'?"


def test_unknown_param_names_valid_ones():
    with pytest.raises(ConfigError) as err:
        get_protocol("knn", {"temprature": 0.1})
    assert str(err.value) == ("protocol 'knn' has no parameter 'temprature'; did you mean 'temperature'? "
                              "(valid: k, ks, temperature, normalize, top5_fill)")


@pytest.mark.parametrize("name,params,message", [
    ("linear", {"C": -1}, "protocol 'linear': parameter 'C' must be a positive number or null, got -1"),
    ("linear", {"dtype": "bf16"}, "protocol 'linear': parameter 'dtype' must be one of 'float32', 'float64', got 'bf16'"),
    ("fewshot-linear", {"shots": [1, 5]}, "protocol 'fewshot-linear': parameter 'shots' must be a positive integer, got [1, 5]"),
    ("ridge", {"l2": "big"}, "protocol 'ridge': parameter 'l2' must be a positive number, got 'big'"),
])
def test_invalid_values_one_line(name, params, message):
    with pytest.raises(ConfigError) as err:
        get_protocol(name, params)
    assert str(err.value) == message


def test_defaults_filled():
    p = get_protocol("linear", {"C": None})
    assert p.name == "linear" and isinstance(p.version, str)
    assert p.params["C"] is None and p.params["max_iter"] == 1000 and p.params["tol"] == 1e-6
    assert get_protocol("knn", None).params == {"k": 20, "ks": (10, 20, 100, 200), "temperature": 0.07, "normalize": True,
                                                 "top5_fill": "none"}
    e = get_protocol("episodic-centroid").params
    assert e == {"ways": 5, "shots": 1, "queries": 15, "episodes": 2000}
    assert get_protocol("ridge").params == {"l2": 1024.0}


@pytest.mark.parametrize("name", NAMES)
def test_every_protocol_evaluates_with_progress(name):
    proto = get_protocol(name, FAST.get(name, {}))
    with Progress(disable=True) as progress:
        out = proto.evaluate(_splits(), seed=0, progress=progress)
    assert isinstance(out, ProtocolOutcome)
    assert "top1" in out.metrics
    assert all(type(v) is float and 0 <= v <= 100 for v in out.metrics.values())
    assert out.params["seed"] == 0
    if name in ("linear", "knn", "ridge"):
        assert {"top5", "mean_per_class"} <= set(out.metrics)
