"""Project error types: every user mistake becomes one of these, printed by the CLI as one line."""
from __future__ import annotations

import difflib
from typing import Iterable


class EvalbenchError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits with code 2."""


class UnknownNameError(EvalbenchError, KeyError):
    """An unknown model, task, suite, protocol or source name."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = ""):
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
        elif known:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            msg += f"; known: {shown}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
        self.name = name

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class DataUnavailableError(EvalbenchError):
    """A dataset is not on this machine and cannot be fetched."""


class CheckpointError(EvalbenchError):
    """A checkpoint is missing, unreadable, unsafe or does not match the architecture."""


class ConfigError(EvalbenchError):
    """A task YAML file or an option value is invalid."""


class ProtocolInputError(EvalbenchError):
    """Features or labels handed to a protocol are unusable (NaN, wrong shapes, too few samples)."""
