"""evalbench: evaluate frozen pretrained encoders with cached features and faithful protocols."""
from __future__ import annotations

__version__ = "0.1.0"

from .adapters import load_encoder  # noqa: E402  (light: backends import lazily)
from .adapters.base import Encoder, Preprocess  # noqa: E402
from .errors import EvalbenchError  # noqa: E402


def evaluate(*args, **kwargs):
    """Evaluate a model on tasks or a suite; returns a pandas DataFrame (see evalbench.runner.evaluate)."""
    from .runner import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def list_tasks():
    """Registered tasks by name (see evalbench.tasks.list_tasks)."""
    from .tasks import list_tasks as _list

    return _list()


def list_suites():
    """Registered suites and their task names."""
    from .tasks import list_suites as _list

    return _list()


__all__ = ["evaluate", "load_encoder", "list_tasks", "list_suites", "Encoder", "Preprocess", "EvalbenchError", "__version__"]
