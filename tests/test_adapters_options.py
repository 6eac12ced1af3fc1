"""FeatureOptions: the feature choice is validated once, before any backend runs."""
from __future__ import annotations

import pytest

from evalbench.adapters.base import FeatureOptions
from evalbench.errors import ConfigError


def test_keyword_options_become_one_validated_object():
    opts = FeatureOptions.from_options({"layer": "", "pool": "cls, mean,cls", "dtype": None, "optimize": None})
    assert opts == FeatureOptions(layer=None, pool=("cls", "mean"), dtype="fp32", optimize=True)
    assert FeatureOptions.from_options({"pool": ["last4", "avg"], "optimize": False}).pool == ("last4", "avg")
    assert FeatureOptions().given() == []
    assert FeatureOptions(layer="layer3", pool=("avg",), dtype="bf16").given() == ["--layer", "--pool", "--dtype"]


@pytest.mark.parametrize("options, message", [
    ({"dtype": "fp64"}, "--dtype 'fp64' is not one of fp32, bf16, fp16"),
    ({"pool": "last0"}, "--pool 'last0' is not one of"),
    ({"pool": "max,cls"}, "--pool 'max' is not one of"),
])
def test_bad_feature_options_are_one_clear_error(options, message):
    with pytest.raises(ConfigError, match=message):
        FeatureOptions.from_options(options)


def test_direct_construction_is_checked_too():
    with pytest.raises(ConfigError, match="pool must be a tuple of distinct pool names"):
        FeatureOptions(pool=["cls"])
    with pytest.raises(ConfigError, match="is not one of fp32"):
        FeatureOptions(dtype="float32")
