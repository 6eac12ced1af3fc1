"""Read checkpoint files as data: safetensors, or torch.load(weights_only=True) with a short allow-list."""
from __future__ import annotations

import argparse
import logging
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

log = logging.getLogger(__name__)

TRUST_FLAG = "--trust-checkpoint"
# torch < 2.6 let a crafted file run code even under weights_only=True (CVE-2025-32434).
FIRST_SAFE_TORCH = (2, 6)
# Extensions that always mean a torch (zip or legacy pickle) file; `.bin` and others are read by content.
_TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt")
# numpy dtype classes research checkpoints carry (numeric and bool only: no object/str/void dtypes).
_NUMPY_DTYPE_CLASSES = (
    "BoolDType", "Int8DType", "Int16DType", "Int32DType", "Int64DType", "UInt8DType", "UInt16DType",
    "UInt32DType", "UInt64DType", "Float16DType", "Float32DType", "Float64DType", "LongDType", "ULongDType",
    "LongLongDType", "ULongLongDType", "ByteDType", "UByteDType", "ShortDType", "UShortDType", "IntDType", "UIntDType",
)


def torch_version() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def warn_if_unsafe_torch() -> None:
    if torch_version() < FIRST_SAFE_TORCH:
        log.warning("torch %s has known weights_only bypasses (CVE-2025-32434): only load checkpoints you trust, "
                    "or upgrade to torch >= 2.6", torch.__version__)


def allowed_globals() -> list[Any]:
    """The harmless globals common research checkpoints carry, registered under every module path numpy used.

    DINO and MAE save their argparse `args`; training loops save numpy scalars (epoch, best metric),
    pickled as `numpy.core.multiarray.scalar` by numpy 1.x and `numpy._core.multiarray.scalar` by numpy 2.x.
    """
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    allowed: list[Any] = [argparse.Namespace, np.dtype,
                          (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    for name in _NUMPY_DTYPE_CLASSES:
        cls = getattr(dtypes, name, None) if dtypes is not None else None
        if cls is not None:
            allowed.append((cls, f"numpy.dtypes.{name}"))
    return allowed


def _allowed_names() -> set[str]:
    names = set()
    for entry in allowed_globals():
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f"{entry.__module__}.{entry.__qualname__}")
    return names


def _sniff(path: Path) -> str:
    """'safetensors', 'zip' (torch >= 1.6), 'pickle' (legacy torch.save) or 'unknown', from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # 8-byte little-endian header length, then JSON
        return "safetensors"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80":  # pickle protocol marker
        return "pickle"
    return "unknown"


def _blocked_globals(path: Path) -> list[str]:
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # legacy (non-zip) files cannot be scanned; the error message still names the first one
        return []
    allowed = _allowed_names()
    return sorted(g for g in found if g not in allowed)


def _torch_reason(exc: BaseException) -> str:
    """The informative part of a torch.load error: without torch's advice to retry with weights_only=False (evalbench
    never relays it: that would run the file's code), its ANSI codes and its boilerplate."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    text = text.replace(getattr(torch.serialization, "UNSAFE_MESSAGE", "\0"), " ")
    for noise in ("Weights only load failed.", "This file can still be loaded, to do so you have two options,",
                  "do those steps only if you trust the source of the checkpoint.", "WeightsUnpickler error:"):
        text = text.replace(noise, " ")
    lines = [line.strip(" .\t") for line in text.splitlines()]
    lines = [line for line in lines if line and "weights_only" not in line and "file an issue" not in line]
    return lines[0] if lines else type(exc).__name__


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    if "TorchScript" in str(exc):
        return CheckpointError(f"checkpoint {path} is a TorchScript archive, not a state dict; save its weights with "
                               "torch.save(torch.jit.load(path).state_dict(), 'weights.pth') and pass that file")
    return CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {_torch_reason(exc)}); "
                           "download or copy it again")


def read_checkpoint(path: Path | str, trust: bool = False) -> dict[str, Any]:
    """Read a checkpoint file without executing code.

    Args:
        path: a .safetensors file, or a torch file (.pt/.pth/.pth.tar/.ckpt/.bin).
        trust: load with weights_only=False (arbitrary code may run): only on the user's explicit
            --trust-checkpoint, never as a fallback.

    Returns:
        The loaded top-level dict.

    Raises:
        CheckpointError: missing file, a directory, an extension that lies about the content,
            corrupt or truncated content, or pickled objects outside the allow-list.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path passed to --model")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; pass the weights file inside it (.pt, .pth or .safetensors)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); the download or copy was probably interrupted")
    kind = _sniff(path)
    name = path.name.lower()
    if name.endswith(".safetensors") and kind != "safetensors":
        what = " (it looks like a torch zip/pickle file)" if kind in ("zip", "pickle") else ""
        raise CheckpointError(f"checkpoint {path} has a .safetensors name but is not a safetensors file{what}; "
                              "rename it to .pth if it is a torch file")
    if name.endswith(_TORCH_SUFFIXES) and kind == "safetensors":
        raise CheckpointError(f"checkpoint {path} is a safetensors file with a torch name; rename it to {path.stem}.safetensors")
    if kind == "safetensors":
        return _read_safetensors(path)
    warn_if_unsafe_torch()
    if trust:
        log.warning("loading %s with weights_only=False because of %s: code inside the file can run", path, TRUST_FLAG)
        loader = lambda: torch.load(path, map_location="cpu", weights_only=False)  # noqa: E731
    else:
        def loader():
            with torch.serialization.safe_globals(allowed_globals()):  # scoped: nothing leaks into other loads
                return torch.load(path, map_location="cpu", weights_only=True)
    try:
        with warnings.catch_warnings():  # a TorchScript archive gets its own error below, not torch's warning too
            warnings.filterwarnings("ignore", message=".*TorchScript archive.*")
            obj = loader()
    except pickle.UnpicklingError as exc:
        blocked = _blocked_globals(path)
        what = f"blocked globals: {', '.join(blocked)}" if blocked else _torch_reason(exc)
        raise CheckpointError(
            f"checkpoint {path} holds objects that weights-only loading refuses ({what}); evalbench never unpickles "
            f"arbitrary code: re-save only the tensors (torch.save(model.state_dict(), ...)), or pass {TRUST_FLAG} "
            "if you trust the file's origin"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def _read_safetensors(path: Path) -> dict[str, Any]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError("reading .safetensors needs the safetensors package: pip install safetensors") from None
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated headers and data
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({exc})") from None
