"""Import faiss with a BLAS kernel that matches the CPU.

The faiss-cpu wheels bundle their own OpenBLAS (0.3.15 in faiss-cpu 1.15), which does not
recognise CPUs newer than it (Sapphire Rapids, for one) and falls back to a generic kernel:
an exact IndexFlatIP search then runs ~5x below the fp32 matrix-multiply limit (measured
here: 50,000 x 768 against 10,000 queries, 20 s instead of 3.8 s). OpenBLAS reads
OPENBLAS_CORETYPE when the library loads, so it is set, only when the user has not set it,
to the newest kernel family the CPU's flags support before faiss is first imported.
numpy's own (newer) OpenBLAS is loaded before this runs and is not affected.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Optional

#: OpenBLAS kernel family -> CPU flags it needs (OpenBLAS's own dynamic-arch checks).
KERNELS = (
    ("SkylakeX", {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}),
    ("Haswell", {"avx2", "fma"}),
)


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where it does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_coretype(flags: set[str]) -> Optional[str]:
    """The OpenBLAS kernel family for these CPU flags, or None to leave detection alone."""
    for name, needed in KERNELS:
        if needed <= flags:
            return name
    return None


@lru_cache(maxsize=None)
def import_faiss():
    """faiss, imported after pinning OPENBLAS_CORETYPE (unless set, or faiss already loaded)."""
    if "faiss" not in sys.modules and "OPENBLAS_CORETYPE" not in os.environ:
        core = openblas_coretype(cpu_flags())
        if core:
            os.environ["OPENBLAS_CORETYPE"] = core
    import faiss

    return faiss


def faiss_available() -> bool:
    """Whether faiss imports (it is a dependency, but a broken install should not stop k-NN)."""
    try:
        import_faiss()
    except ImportError:
        return False
    return True
