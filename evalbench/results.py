"""Result records: the typed record of one (model, task, protocol) run, its JSON file and its schema versions."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from .cache import canonical_json, write_atomic
from .errors import EvalbenchError

# 2: per-item predictions beside each record (`predictions`) and 95% intervals (`uncertainty`)
SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
PREDICTIONS_SUFFIX = ".predictions.npz"


def slugify(name: str) -> str:
    """A filesystem-safe, stable form of a model name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug or "model"


def result_path(output: Path | str, model_slug: str, task: str, protocol_id: str) -> Path:
    return Path(output) / model_slug / task / f"{protocol_id}.json"


def canonical_digest(obj: Any) -> str:
    """SHA-256 of a JSON-able object in canonical form (sorted keys, no spaces)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced the features: spec, display name, fingerprint and the preprocessing actually applied.

    `preprocess` is the effective one for this task (a task override such as VTAB's no-crop is
    applied); `base_preprocess`, written only under an override, is the encoder's own, which with
    the fingerprint identifies the model.
    `provenance` holds facts that change neither features nor scores (checkpoint file name, layout).
    """

    name: str
    fingerprint: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    spec: Optional[str] = None
    slug: Optional[str] = None
    preprocess_override: Optional[dict[str, Any]] = None
    base_preprocess: Optional[dict[str, Any]] = None
    provenance: Optional[dict[str, Any]] = None

    @property
    def own_preprocess(self) -> Optional[dict[str, Any]]:
        """The encoder's own preprocessing (before a task override); None where a schema-1 record lacks it."""
        if self.base_preprocess is not None:
            return self.base_preprocess
        return None if self.preprocess_override else self.preprocess

    def same_model(self, fingerprint: dict[str, Any], own_preprocess: dict[str, Any]) -> bool:
        """True when these are the same weights and feature choice under the same own preprocessing."""
        if self.fingerprint != fingerprint:
            return False
        return self.own_preprocess is None or self.own_preprocess == own_preprocess


@dataclass(frozen=True)
class TaskInfo:
    """The task as it was run: name, version, dataset identity and split definition."""

    name: str
    version: str
    dataset: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    split_definition: dict[str, Any] = field(default_factory=dict)
    num_classes: Optional[int] = None
    file: Optional[str] = None
    group: Optional[str] = None
    suites: tuple[str, ...] = ()
    metric: Optional[str] = None  # the task's headline metric (None: top1, records before it was recorded)
    test_set: Optional[str] = None  # an extra test set of the task (scored with the fit for its test split)

    @property
    def column(self) -> str:
        """The task's column in tables: its name, `name@test set` for an extra test set."""
        return f"{self.name}@{self.test_set}" if self.test_set else self.name

    @property
    def headline(self) -> str:
        return self.metric or "top1"

    @property
    def split_variant(self) -> str:
        return str(self.dataset.get("split_variant") or "")


@dataclass(frozen=True)
class ProtocolInfo:
    """The protocol as it ran: registered id and name, version, requested and resolved parameters."""

    id: str
    name: str
    version: str
    requested: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRequest:
    """What a run asks for; a stored record answers it when every part matches (the reuse rule)."""

    fingerprint: dict[str, Any]
    preprocess: dict[str, Any]
    task_version: str
    protocol_name: str
    protocol_version: str
    requested: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class ResultRecord:
    """One result: model, task, protocol, metrics and provenance. Reads schema 1 files.

    Build with the constructor, store with `write`, load with `read` / `from_dict`; `to_dict`
    gives the JSON layout (unchanged since schema 1). `path` is where it was read from.
    """

    model: ModelInfo
    task: TaskInfo
    protocol: ProtocolInfo
    metrics: dict[str, Any]
    seed: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    cache_keys: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    uncertainty: dict[str, Any] = field(default_factory=dict)  # {"top1": [low, high], ..., "method", "level", ...}
    predictions: Optional[dict[str, Any]] = None  # {"file", "sha256", "arrays", "n_test"} of the .npz beside it
    schema_version: int = SCHEMA_VERSION
    path: Optional[Path] = field(default=None, compare=False)

    # -- questions the runner, leaderboard and CLI ask -------------------------------------------
    def answers(self, request: RunRequest) -> bool:
        """True when this record was computed exactly as `request` asks (same weights, preprocessing,
        task version, protocol version, settings and seed), so it can be reused instead of recomputed."""
        return (self.schema_version == SCHEMA_VERSION
                and self.model.fingerprint == request.fingerprint
                and self.model.preprocess == request.preprocess
                and self.task.version == request.task_version
                and self.protocol.name == request.protocol_name
                and self.protocol.version == request.protocol_version
                and self.protocol.requested == request.requested
                and self.seed == request.seed)

    def metric(self, name: str) -> Optional[float]:
        value = self.metrics.get(name)
        return None if value is None else float(value)

    def interval(self, name: str) -> Optional[tuple[float, float]]:
        """The stored 95% (or `uncertainty["level"]`) interval of a metric, if one was computed."""
        got = self.uncertainty.get(name)
        return (float(got[0]), float(got[1])) if got else None

    @property
    def n_test(self) -> Optional[int]:
        return self.task.splits.get("test") if self.task.splits else None

    @property
    def converged(self) -> Optional[bool]:
        """False when the final fit stopped before its tolerance (None when the protocol has no such fit)."""
        fit = self.details.get("final_fit") if isinstance(self.details, dict) else None
        return None if not isinstance(fit, dict) or "converged" not in fit else bool(fit["converged"])

    @property
    def predictions_path(self) -> Optional[Path]:
        if self.path is None or not self.predictions:
            return None
        return self.path.with_name(self.predictions["file"])

    def load_predictions(self) -> dict[str, np.ndarray]:
        """The per-item predictions stored beside this record, checked against the recorded digest.

        Raises:
            EvalbenchError: the record has no predictions (schema 1), or the file is missing or changed.
        """
        where = self.predictions_path
        if where is None:
            raise EvalbenchError(f"{self.path}: no stored predictions (written by an older evalbench); "
                                 "rerun it with --force to store them")
        try:
            blob = where.read_bytes()
        except OSError:
            raise EvalbenchError(f"{where} is missing; rerun the result with --force to write it again") from None
        if hashlib.sha256(blob).hexdigest() != self.predictions.get("sha256"):
            raise EvalbenchError(f"{where} does not match the digest in {self.path.name} (changed or damaged); "
                                 "rerun the result with --force")
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def row(self, status: str = "") -> dict[str, Any]:
        """The summary row the Python API and the CLI show: model, task, protocol and headline metrics."""
        return {"model": self.model.name, "task": self.task.column, "group": self.task.group,
                "protocol": self.protocol.id, "top1": self.metric("top1"), "top5": self.metric("top5"),
                "mean_per_class": self.metric("mean_per_class"), "status": status,
                "metric": self.task.headline, "value": self.metric(self.task.headline),
                "value_ci": self.interval(self.task.headline),
                "top1_ci": self.interval("top1"), "mean_per_class_ci": self.interval("mean_per_class"),
                "n_test": self.n_test, "converged": self.converged,
                "path": str(self.path) if self.path else None}

    # -- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        m = self.model  # schema-1 key order; optional facts only when set
        model = {"spec": m.spec, "name": m.name, "slug": m.slug, "fingerprint": m.fingerprint, "preprocess": m.preprocess,
                 **_drop_none({"preprocess_override": m.preprocess_override, "base_preprocess": m.base_preprocess,
                               "provenance": m.provenance})}
        task = {k: v for k, v in dataclasses.asdict(self.task).items()
                if v is not None or k not in ("metric", "test_set")}  # optional facts only when set
        task["suites"] = list(self.task.suites)
        return {"schema_version": self.schema_version, "model": model, "task": task,
                "protocol": dataclasses.asdict(self.protocol), "metrics": self.metrics, "details": self.details,
                "seed": self.seed, "cache_keys": self.cache_keys, "environment": self.environment,
                "timing": self.timing, "uncertainty": self.uncertainty, "predictions": self.predictions}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Optional[Path] = None) -> "ResultRecord":
        """A record from its JSON form.

        Raises:
            ValueError: the mapping is not an evalbench record of a readable schema (missing or
                mistyped fields, unknown schema version); the message names what is wrong.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a record is a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"schema_version must be an integer, got {version!r}")
        if version not in READABLE_SCHEMAS:
            raise ValueError(f"schema_version {version} is not one this evalbench reads ({', '.join(map(str, READABLE_SCHEMAS))})")
        try:
            model = _build(ModelInfo, data["model"])
            task = _build(TaskInfo, data["task"])
            protocol = _build(ProtocolInfo, data["protocol"])
            metrics = dict(data["metrics"])
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"malformed field ({exc})") from None
        return cls(model=model, task=dataclasses.replace(task, version=str(task.version), suites=tuple(task.suites or ())),
                   protocol=dataclasses.replace(protocol, version=str(protocol.version)), metrics=metrics,
                   seed=data.get("seed", 0), details=dict(data.get("details") or {}),
                   cache_keys=dict(data.get("cache_keys") or {}), environment=dict(data.get("environment") or {}),
                   timing=dict(data.get("timing") or {}), uncertainty=dict(data.get("uncertainty") or {}),
                   predictions=data.get("predictions"), schema_version=version, path=path)

    def write(self, path: Path | str, predictions: Optional[dict[str, np.ndarray]] = None) -> "ResultRecord":
        """Write atomically (a reader sees the old record or the new one, never half of one); returns
        the record as written, with `path`.

        `predictions` (named per-item arrays) go first to `<protocol>.predictions.npz` beside the
        JSON, whose digest the record then holds, so a record never points at a missing file.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = self
        if predictions:
            buf = io.BytesIO()
            np.savez_compressed(buf, **{k: np.asarray(v) for k, v in predictions.items()})
            blob = buf.getvalue()
            name = path.name[: -len(".json")] + PREDICTIONS_SUFFIX
            write_atomic(path.with_name(name), [blob], len(blob), f"predictions file {name}", check_space=False)
            record = dataclasses.replace(self, predictions={
                "file": name, "sha256": hashlib.sha256(blob).hexdigest(), "arrays": sorted(predictions),
                "n_test": int(len(np.asarray(predictions.get("y_true", next(iter(predictions.values()))))))})
        text = json.dumps(record.to_dict(), indent=2, sort_keys=False, default=str) + "\n"
        data = text.encode()
        write_atomic(path, [data], len(data), f"result file {path.name}", check_space=False)
        return dataclasses.replace(record, path=path)

    @classmethod
    def read(cls, path: Path | str) -> Optional["ResultRecord"]:
        """The record at `path`; None when the file is absent or not an evalbench record.

        Raises:
            EvalbenchError: the record was written by a newer evalbench (a schema this one cannot read).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(data, dict) or "schema_version" not in data:
            return None
        version = data["schema_version"]
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise EvalbenchError(f"{path} has schema_version {version}; this evalbench reads up to "
                                 f"{SCHEMA_VERSION}: upgrade evalbench")
        try:
            return cls.from_dict(data, path)
        except ValueError:
            return None


def _build(cls, data: Mapping[str, Any]):
    """A dataclass from a mapping, ignoring keys it does not declare (older or newer optional fields)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in dict(data).items() if k in names})


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    """Leave optional fields out of the JSON when unset, so schema-1 files keep their exact layout."""
    return {k: v for k, v in d.items() if v is not None}


def as_record(obj: ResultRecord | Mapping[str, Any]) -> ResultRecord:
    """A ResultRecord from a record or its JSON dict (for notebooks and tests)."""
    return obj if isinstance(obj, ResultRecord) else ResultRecord.from_dict(obj)


def read_result(path: Path | str) -> Optional[ResultRecord]:
    """The record at `path`, or None for files that are not evalbench results."""
    return ResultRecord.read(path)


def write_result(path: Path | str, record: ResultRecord | Mapping[str, Any]) -> ResultRecord:
    """Write a record (or its JSON dict) atomically to `path`."""
    return as_record(record).write(path)


def iter_results(dirs: Iterable[Path | str]) -> list[ResultRecord]:
    """Every result record under the given directories (sorted by path, so output is stable)."""
    records = []
    for d in dirs:
        d = Path(d)
        if not d.exists():
            raise EvalbenchError(f"results directory {d} does not exist; run `evalbench run` first or pass the right path")
        for path in sorted(d.rglob("*.json")):
            rec = read_result(path)
            if rec is not None:
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
    from .blas import gemm_mode

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
        "gemm_mode": gemm_mode(),  # whether products depend on the thread count (evalbench/blas.py)
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
