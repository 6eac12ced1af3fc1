"""User adapters: a `package.module:attr` callable, or one registered under the `evalbench.adapters` entry points."""
from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, Callable

from ..errors import ConfigError, EvalbenchError
from .base import Encoder, check_encoder

ENTRY_POINT_GROUP = "evalbench.adapters"


def registered_adapters() -> dict[str, Any]:
    """Entry points in the `evalbench.adapters` group, by name (not yet imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def import_attr(spec: str) -> Callable[..., Any]:
    """Import `package.module:attr` (attr may be dotted)."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for model spec {spec!r} ({exc}); is it installed or on PYTHONPATH?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r} (model spec {spec!r})")
        obj = getattr(obj, part)
    return obj


def call_adapter(factory: Callable[..., Any], origin: str, options: dict[str, Any]) -> Encoder:
    """Call a user factory with the options it accepts, and check that it returns an Encoder."""
    if not callable(factory):
        raise ConfigError(f"{origin} is not callable; it must be a function or class returning an encoder")
    try:
        params = inspect.signature(factory).parameters
        takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
        accepted = options if takes_kwargs else {k: v for k, v in options.items() if k in params}
    except (TypeError, ValueError):  # builtins without signatures
        accepted = {}
    try:
        encoder = factory(**accepted)
    except EvalbenchError:
        raise
    except TypeError as exc:
        raise ConfigError(f"{origin} could not be called with options {sorted(accepted)}: {exc}") from None
    return check_encoder(encoder, origin)
