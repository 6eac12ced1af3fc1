"""User adapters: a `package.module:attr` callable, or one registered under the `evalbench.adapters` entry points."""
from __future__ import annotations

import difflib
import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, Callable

from ..errors import ConfigError, EvalbenchError, UserCodeError, describe_exception
from .base import Encoder, check_encoder

ENTRY_POINT_GROUP = "evalbench.adapters"


def registered_adapters() -> dict[str, Any]:
    """Entry points in the `evalbench.adapters` group, by name (not yet imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _did_you_mean(module_name: str, attr: str) -> str:
    """The built-in spec a misspelt one read as `module:attr` was probably meant to be (pixles:8 -> pixels:8), or ""."""
    from . import ALIASES, BUILTIN_NAMES

    prefixed = {u.partition(":")[0] for u in BUILTIN_NAMES if u.partition(":")[0].isalpha()}  # torchvision, timm, hf
    plain = {u for u in BUILTIN_NAMES if ":" not in u and " " not in u} | set(ALIASES) | set(registered_adapters())
    close = difflib.get_close_matches(module_name, sorted(prefixed | plain), n=1, cutoff=0.6)
    if not close:
        return ""
    return f"{close[0]}:{attr}" if attr else close[0]


def import_attr(spec: str) -> Callable[..., Any]:
    """Import `package.module:attr` (attr may be dotted)."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name != module_name and not module_name.startswith(exc.name + "."):
            raise UserCodeError(f"module {module_name!r} of model spec {spec!r} failed to import: it needs {exc.name!r}, "
                                "which is not installed (pip install it)") from exc
        guess = _did_you_mean(module_name, attr)
        if guess:
            raise ConfigError(f"unknown model spec {spec!r} (no module {module_name!r} to import); did you mean {guess!r}?") from None
        raise ConfigError(f"cannot import module {module_name!r} for model spec {spec!r}; is the adapter module installed "
                          "or on PYTHONPATH?") from None
    except Exception as exc:  # the user's module itself fails at import time
        raise UserCodeError(f"importing module {module_name!r} of model spec {spec!r} raised {describe_exception(exc)}; "
                            "fix the module, or rerun with --debug for the traceback") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, public, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r} (model spec {spec!r}){hint}")
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
        if _signature_mismatch(exc):
            raise ConfigError(f"{origin} could not be called with options {sorted(accepted)}: {exc}") from None
        raise UserCodeError(f"{origin}: the factory raised {describe_exception(exc)}; fix the adapter, or rerun "
                            "with --debug for the traceback") from exc
    except Exception as exc:
        raise UserCodeError(f"{origin}: the factory raised {describe_exception(exc)}; fix the adapter, or rerun "
                            "with --debug for the traceback") from exc
    return check_encoder(encoder, origin)


def _signature_mismatch(exc: TypeError) -> bool:
    """True when the TypeError is about the call itself (missing or unexpected arguments), not raised inside."""
    tb = exc.__traceback__
    return tb is not None and tb.tb_next is None  # raised at the call site, before any line of the factory ran
