"""Result records: one JSON file per (model, task, protocol), with full provenance and a schema version."""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import EvalbenchError

SCHEMA_VERSION = 1


def slugify(name: str) -> str:
    """A filesystem-safe, stable form of a model name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug or "model"


def result_path(output: Path | str, model_slug: str, task: str, protocol_id: str) -> Path:
    return Path(output) / model_slug / task / f"{protocol_id}.json"


def write_result(path: Path, record: dict[str, Any]) -> None:
    """Write atomically: a reader sees the old record or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_result(path: Path) -> Optional[dict[str, Any]]:
    """A record, or None for files that are not evalbench results."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or "schema_version" not in record:
        return None
    if record["schema_version"] > SCHEMA_VERSION:
        raise EvalbenchError(f"{path} has schema_version {record['schema_version']}; this evalbench reads up to {SCHEMA_VERSION}: upgrade evalbench")
    return record


def iter_results(dirs: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Every result record under the given directories (sorted by path, so output is stable)."""
    records = []
    for d in dirs:
        d = Path(d)
        if not d.exists():
            raise EvalbenchError(f"results directory {d} does not exist; run `evalbench run` first or pass the right path")
        for path in sorted(d.rglob("*.json")):
            rec = read_result(path)
            if rec is not None:
                rec["_path"] = str(path)
                records.append(rec)
    return records


def _git_commit() -> Optional[str]:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _cpu_model() -> Optional[str]:
    """The CPU's model name from /proc/cpuinfo (None where it does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def environment(device: str) -> dict[str, Any]:
    """Versions and machine facts that can change a number."""
    import numpy
    import sklearn
    import torch
    import torchvision

    from . import __version__

    try:
        from .protocols.faiss_setup import import_faiss

        faiss = import_faiss()
        faiss_version = faiss.__version__
    except ImportError:
        faiss_version = None
    return {
        "evalbench": __version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "faiss": faiss_version,
        # the kernel family faiss's bundled OpenBLAS was pinned to (protocols/faiss_setup.py)
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        # float32 results depend on the kernels the CPU selects (MKL picks its code path from
        # the CPU, ATen its vector width), not on the thread count: these say which ran.
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_overrides": {k: os.environ[k] for k in ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS") if k in os.environ} or None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
