"""Protocol registry: names used by task YAML files -> validated Protocol instances."""
from __future__ import annotations

from typing import Any, Optional

from ..errors import UnknownNameError
from .contract import FeatureSplit, FeatureSplits, ProtocolOutcome
from .episodic import EpisodicCentroidProtocol, EpisodicLogRegProtocol
from .fewshot import FewShotKNNProtocol, FewShotLinearProtocol
from .knn import KNNProbe
from .linear import LinearProbe
from .multilabel import MultiLabelLinearProbe, MultiLabelLinearProtocol
from .probe_protocols import KNNProtocol, LinearProtocol, RidgeProtocol
from .protocol_base import Param, Protocol
from .ridge import RidgeProbe

_REGISTRY: dict[str, type[Protocol]] = {
    cls.name: cls
    for cls in (
        LinearProtocol, KNNProtocol, RidgeProtocol, FewShotLinearProtocol, FewShotKNNProtocol,
        EpisodicCentroidProtocol, EpisodicLogRegProtocol, MultiLabelLinearProtocol,
    )
}


def get_protocol(name: str, params: Optional[dict[str, Any]] = None) -> Protocol:
    """Build a registered protocol with validated params.

    Args:
        name: registered name ("linear", "knn", ...).
        params: parameter overrides from the task YAML (missing ones take defaults).

    Returns:
        A Protocol instance with .name, .version, .params and .evaluate(splits, seed, progress).

    Raises:
        UnknownNameError: unknown protocol name (with a did-you-mean hint).
        ConfigError: unknown parameter or invalid value, in one line.
    """
    if name not in _REGISTRY:
        raise UnknownNameError("protocol", name, _REGISTRY)
    return _REGISTRY[name](params)


def list_protocols() -> dict[str, str]:
    """Registered protocol names -> one-line descriptions."""
    return {name: cls.description for name, cls in sorted(_REGISTRY.items())}


def protocol_class(name: str) -> type[Protocol]:
    """The Protocol class registered under `name` (for defaults and parameter docs).

    Raises:
        UnknownNameError: unknown protocol name.
    """
    if name not in _REGISTRY:
        raise UnknownNameError("protocol", name, _REGISTRY)
    return _REGISTRY[name]


__all__ = [
    "get_protocol", "list_protocols", "protocol_class", "Protocol", "Param",
    "LinearProbe", "KNNProbe", "RidgeProbe", "MultiLabelLinearProbe",
    "FeatureSplit", "FeatureSplits", "ProtocolOutcome",
]
