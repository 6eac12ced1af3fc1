"""MKL's strict conditional numerical reproducibility (CNR): GEMMs whose results do not depend on the thread count.

By default MKL's multi-threaded GEMM splits the inner sums differently for each thread count, so a
result computed on 2 cores differs in its last bits from one computed on 16. In MKL's strict CNR mode
(``MKL_CBWR=AUTO,STRICT``, Intel oneMKL developer reference, "Obtaining Numerically Reproducible
Results") ?gemm, ?trsm and ?symm give bit-identical results for any number of threads on one CPU
type, at about the same speed on several threads (measured on 2 Xeon cores: the linear probe's
products 0.44 ms either way). evalbench asks for it at import (``evalbench/__init__.py`` sets the
variable unless the user has), and the linear probe multi-threads its fits only where it is active.

The mode must be chosen before MKL's first call: a process that ran torch GEMMs before importing
evalbench keeps MKL's default mode, and the fits then stay on one thread (still reproducible).
"""
from __future__ import annotations

import ctypes
import functools
import os
from typing import Optional

#: What evalbench sets MKL_CBWR to when the user has not (the CPU's own code path, strict).
DEFAULT_MKL_CBWR = "AUTO,STRICT"

#: mkl_service.h: MKL_CBWR_ALL (query everything) and the STRICT flag.
_CBWR_ALL = -1
_CBWR_STRICT = 0x10000


def request_strict_mode() -> None:
    """Ask MKL for strict CNR unless MKL_CBWR is already set (read by MKL at its first call)."""
    os.environ.setdefault("MKL_CBWR", DEFAULT_MKL_CBWR)


def _mkl_cbwr_get() -> Optional[ctypes._CFuncPtr]:
    """MKL's CNR query from the MKL linked into torch (torch's Linux x86 wheels), or None (no MKL)."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll"):
        path = os.path.join(lib_dir, name)
        if not os.path.exists(path):
            continue
        try:
            fn = ctypes.CDLL(path).mkl_serv_cbwr_get  # mkl_cbwr_get's exported name in torch's static MKL
        except (OSError, AttributeError):
            return None
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


@functools.lru_cache(maxsize=1)
def thread_count_independent_gemm() -> bool:
    """Whether torch's CPU GEMMs run in MKL's strict CNR mode (results independent of the thread count)."""
    get = _mkl_cbwr_get()
    return get is not None and bool(get(_CBWR_ALL) & _CBWR_STRICT)


def gemm_mode() -> str:
    """For the environment record: whether CPU GEMM results depend on the thread count."""
    if thread_count_independent_gemm():
        return f"MKL strict CNR (MKL_CBWR={os.environ.get('MKL_CBWR', '')})"
    return "thread-count dependent (MKL's default mode, or no MKL)"
