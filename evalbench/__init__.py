"""evalbench: evaluate frozen pretrained encoders with cached features and faithful protocols."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Before anything loads MKL: thread-count independent GEMMs (see evalbench/blas.py).
from .blas import request_strict_mode  # noqa: E402  (no torch import)

request_strict_mode()

# Public names resolve lazily, so `import evalbench` and `evalbench --help` do not pay for torch.
_LAZY = {
    "load_encoder": ("evalbench.adapters", "load_encoder"),
    "Encoder": ("evalbench.adapters.base", "Encoder"),
    "Preprocess": ("evalbench.adapters.base", "Preprocess"),
    "EvalbenchError": ("evalbench.errors", "EvalbenchError"),
    "evaluate": ("evalbench.runner", "evaluate"),
    "list_tasks": ("evalbench.tasks", "list_tasks"),
    "list_suites": ("evalbench.tasks", "list_suites"),
    "leaderboard_frame": ("evalbench.leaderboard", "leaderboard_frame"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'evalbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["evaluate", "load_encoder", "list_tasks", "list_suites", "leaderboard_frame", "Encoder", "Preprocess", "EvalbenchError",
           "__version__"]
