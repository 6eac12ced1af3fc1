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


class DiskFullError(EvalbenchError):
    """A write ran out of space (or quota): names the directory and the bytes it needed."""


class UserCodeError(EvalbenchError):
    """A user adapter (factory, encode, fingerprint, ...) raised; the original exception is the cause."""


def describe_exception(exc: BaseException) -> str:
    """`TypeName: first line of the message`, for one-line reports of someone else's exception."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # unreachable


def is_no_space(exc: BaseException) -> bool:
    """True for 'no space left on device' and 'disk quota exceeded'."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(directory, needed: int | None, what: str, free: int | None = None) -> DiskFullError:
    """The one-line error for a write that does not fit: the directory, the bytes needed and what to do."""
    import shutil

    if free is None:
        try:
            free = shutil.disk_usage(directory).free
        except OSError:
            free = None
    have = f"{free:,} bytes ({human_bytes(free)}) free" if free is not None else "the disk is full"
    need = f"needs {needed:,} bytes ({human_bytes(needed)}), " if needed is not None else "failed, "
    return DiskFullError(
        f"no space left in {directory}: {what} {need}{have}; free space there "
        "(`evalbench cache prune` removes old features) or choose another disk (--cache-dir, --output), then rerun: "
        "finished results and feature shards are kept")
