"""The Protocol base class: declared parameters, their validation, and progress helpers."""
from __future__ import annotations

from abc import ABC, abstractmethod

import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

from ..errors import ConfigError
from .contract import FeatureSplits, ProtocolOutcome


@dataclass(frozen=True)
class Param:
    """One declared protocol parameter.

    check(value) returns the normalised value or raises ValueError with a short reason
    ("must be a positive number"); the caller turns it into a ConfigError.
    """

    name: str
    default: Any
    check: Callable[[Any], Any]
    help: str = ""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def positive_float(v: Any) -> float:
    if not _is_number(v) or v <= 0:
        raise ValueError("must be a positive number")
    return float(v)


def positive_float_or_none(v: Any) -> Optional[float]:
    if v is None:
        return None
    if not _is_number(v) or v <= 0:
        raise ValueError("must be a positive number or null")
    return float(v)


def positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError("must be a positive integer")
    return int(v)


def non_negative_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("must be a non-negative integer")
    return int(v)


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def one_of(*choices: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"must be one of {', '.join(repr(c) for c in choices)}")
        return v

    return check


def positive_int_list(v: Any) -> tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError("must be a positive integer or a non-empty list of them")
    return tuple(sorted({positive_int(x) for x in v}))


def positive_float_list(v: Any) -> tuple[float, ...]:
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError("must be a non-empty list of positive numbers")
    return tuple(sorted({positive_float(x) for x in v}))


class Protocol(ABC):
    """A named evaluation protocol with declared, validated parameters.

    Subclasses set ``name``, ``version``, ``description``, ``params_spec`` and implement
    ``evaluate``. ``self.params`` holds every declared parameter (defaults filled in).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]
    params_spec: ClassVar[tuple[Param, ...]]
    #: True when evaluate() also scores splits.test_sets with its one fit (ProtocolOutcome.test_sets)
    scores_test_sets: ClassVar[bool] = False

    def __init__(self, params: Optional[dict[str, Any]] = None):
        self.params = self.validate_params(params or {})

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and check every value.

        Raises:
            ConfigError: one line naming the parameter and the valid ones.
        """
        if not isinstance(params, dict):
            raise ConfigError(f"protocol {cls.name!r}: params must be a mapping, got {type(params).__name__}")
        spec = {p.name: p for p in cls.params_spec}
        valid = ", ".join(spec)
        out: dict[str, Any] = {}
        for key in params:
            if key not in spec:
                close = difflib.get_close_matches(str(key), list(spec), n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"protocol {cls.name!r} has no parameter {key!r}{hint} (valid: {valid})"
                )
        for name, p in spec.items():
            value = params.get(name, p.default)
            try:
                out[name] = p.check(value)
            except ValueError as exc:
                raise ConfigError(
                    f"protocol {cls.name!r}: parameter {name!r} {exc}, got {value!r}"
                ) from None
        return out

    @abstractmethod
    def evaluate(self, splits: FeatureSplits, seed: int = 0, progress: Any = None) -> ProtocolOutcome:
        """Run the protocol on cached features.

        Args:
            splits: train / optional val / test features and labels.
            seed: the only source of randomness (numpy default_rng / torch.Generator).
            progress: None or an already running ``rich.progress.Progress``.

        Returns:
            ProtocolOutcome with metrics in percent, every setting in params.
        """

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class Ticker:
    """Advance a task of an already running rich Progress; a no-op when progress is None."""

    def __init__(self, progress: Any, description: str, total: Optional[float]):
        self._progress = progress
        self._task = progress.add_task(description, total=total) if progress is not None else None

    def advance(self, n: float = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def done(self) -> None:
        # Remove the finished task so a long suite does not pile up bars.
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
